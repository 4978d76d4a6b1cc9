"""Reports from a user's run: pytest-html extras and summary, --clip-report, JUnit, xdist, interruption."""

from __future__ import annotations

import html
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

SUITE = """
import pytest
from pytest_clipcompress import assert_accuracy

@pytest.mark.clip_dataset("cifar10")
@pytest.mark.compression("jpeg", quality=[75, 25])
def test_floor(clip_eval, compression):
    result = clip_eval()
    # This tiny model loses accuracy at q25 only, so that case fails and the q75 case passes.
    assert_accuracy(result, max_drop=0.0 if compression.param("quality") == 25 else 1.0)
"""


@pytest.fixture
def run_args(tiny_args: list[str], cifar_sample_root: Path) -> list[str]:
    return [*tiny_args, f"--clip-data-root={cifar_sample_root}", "--clip-offline", "--clip-samples=80", "--clip-ig-samples=2", "--clip-ig-steps=8", "-p", "no:cacheprovider"]


def html_tests(report: Path) -> dict[str, list[dict]]:
    """The per-test data pytest-html 4 embeds in its page as a JSON blob."""
    blob = re.search(r'data-jsonblob="([^"]*)"', report.read_text()).group(1)
    return json.loads(html.unescape(blob))["tests"]


def without_run_block(text: str) -> str:
    """The results file without its run metadata (time, versions, commit), the one part allowed to differ."""
    data = json.loads(text)
    assert set(data["run"]) == {"models", "device", "precision", "versions", "git", "started_utc"}
    del data["run"]
    return json.dumps(data, indent=2, sort_keys=True)


def extras_by_test(report: Path) -> dict[str, list[tuple[str, str]]]:
    return {
        nodeid: [(extra["format_type"], extra["name"]) for row in rows for extra in row.get("extras", [])]
        for nodeid, rows in html_tests(report).items()
    }


def test_html_report_carries_attributions_on_failing_rows_only(pytester: pytest.Pytester, run_args: list[str]) -> None:
    pytester.makepyfile(SUITE)
    report = pytester.path / "report.html"
    result = pytester.runpytest(*run_args, f"--html={report}", "--self-contained-html")
    result.assert_outcomes(passed=1, failed=1)
    extras = extras_by_test(report)
    failing = extras["test_html_report_carries_attributions_on_failing_rows_only.py::test_floor[cifar10-jpeg-q25]"]
    passing = extras["test_html_report_carries_attributions_on_failing_rows_only.py::test_floor[cifar10-jpeg-q75]"]
    assert passing == []
    assert [kind for kind, _ in failing] == ["html", "image", "image"]
    assert failing[1][1].startswith("jpeg-q25 image ")
    text = report.read_text()
    assert "CLIP accuracy under compression" in text and "data:image/png;base64," in text  # summary chart
    assert "completeness" in text and "boundary share" in text  # the IG table on the failing row
    assert "all 2: mean completeness gap" in text  # and the per-test totals
    result.stdout.fnmatch_lines(["*Captured stdout clipcompress attributions*", "Integrated Gradients (2 flipped images, *", "all 2: mean completeness gap * of pixels", "attributions: 2 flipped images of 1 failing tests explained with Integrated Gradients in * s"])


def test_report_folder_without_pytest_html(pytester: pytest.Pytester, run_args: list[str]) -> None:
    pytester.makepyfile(SUITE)
    folder = pytester.path / "robustness"
    result = pytester.runpytest(*run_args, "-p", "no:html", f"--clip-report={folder}")
    result.assert_outcomes(passed=1, failed=1)
    index = (folder / "index.html").read_text()
    for link in re.findall(r'src="([^"]+\.png)"', index):
        assert (folder / link).is_file(), link
    assert len(list((folder / "attributions").glob("*.png"))) == 2
    assert len(list((folder / "charts").glob("*.png"))) == 1
    assert not list(folder.rglob("*.tmp"))


def test_junit_has_properties_and_attribution_text(pytester: pytest.Pytester, run_args: list[str]) -> None:
    pytester.makepyfile(SUITE)
    junit = pytester.path / "junit.xml"
    pytester.runpytest(*run_args, f"--junitxml={junit}", "-o", "junit_logging=system-out")
    cases = {case.get("name"): case for case in ET.parse(junit).getroot().iter("testcase")}
    properties = {p.get("name"): p.get("value") for p in cases["test_floor[cifar10-jpeg-q25]"].iter("property")}
    prefix = "clip[cifar10-jpeg-q25]"
    assert set(properties) == {f"{prefix}.{name}" for name in ("accuracy", "drop", "n", "max_drop", "check")}
    assert properties[f"{prefix}.n"] == "80"
    assert properties[f"{prefix}.max_drop"] == "0.000000" and properties[f"{prefix}.check"] == "failed"  # the floor and its verdict
    assert "Integrated Gradients" in cases["test_floor[cifar10-jpeg-q25]"].find("system-out").text


def test_serial_and_parallel_runs_give_the_same_results_and_report(pytester: pytest.Pytester, run_args: list[str]) -> None:
    pytester.makepyfile(SUITE)
    outputs = {}
    for mode, extra in (("serial", []), ("again", []), ("xdist", ["-n", "2"])):
        results, report = pytester.path / f"{mode}.json", pytester.path / f"{mode}.html"
        outcome = pytester.runpytest_subprocess(*run_args, *extra, f"--clip-results={results}", f"--html={report}", "--self-contained-html")
        outcome.assert_outcomes(passed=1, failed=1)
        rows = html_tests(report)
        extras = {nodeid: [e["content"] for row in rows[nodeid] for e in row.get("extras", [])] for nodeid in rows}
        outputs[mode] = (without_run_block(results.read_text()), extras)
    assert outputs["serial"][0] == outputs["again"][0] == outputs["xdist"][0]  # identical results but for the run block
    assert outputs["serial"][1] == outputs["xdist"][1]  # same attribution tables and pictures


def test_interrupted_run_keeps_what_it_evaluated(pytester: pytest.Pytester, run_args: list[str]) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.clip_dataset("cifar10")
        @pytest.mark.compression("jpeg", quality=[90, 60, 30])
        def test_evaluate(clip_eval, compression):
            clip_eval()
            if compression.param("quality") == 60:
                raise KeyboardInterrupt  # what Ctrl-C does in the middle of a run
        """
    )
    results = pytester.path / "results.json"
    outcome = pytester.runpytest_subprocess(*run_args, f"--clip-results={results}")
    assert outcome.ret == pytest.ExitCode.INTERRUPTED
    data = json.loads(results.read_text())
    assert [r["compression_id"] for r in data["evaluations"]] == ["jpeg-q60", "jpeg-q90"]
    assert not list(pytester.path.glob(".results.json.*"))  # no temporary file left behind


def test_crashed_worker_keeps_what_the_others_evaluated(pytester: pytest.Pytester, run_args: list[str]) -> None:
    pytester.makepyfile(
        """
        import os
        import pytest

        @pytest.mark.clip_dataset("cifar10")
        @pytest.mark.compression("jpeg", quality=[90, 60])
        def test_evaluate(clip_eval):
            clip_eval()

        def test_crash():
            os._exit(3)  # a worker dying mid-run, e.g. killed for memory
        """
    )
    results = pytester.path / "results.json"
    outcome = pytester.runpytest_subprocess(*run_args, "-n", "2", f"--clip-results={results}")
    outcome.assert_outcomes(passed=2, failed=1)
    outcome.stdout.fnmatch_lines(["*worker*crashed while running*test_crash*"])
    assert [r["compression_id"] for r in json.loads(results.read_text())["evaluations"]] == ["jpeg-q60", "jpeg-q90"]
