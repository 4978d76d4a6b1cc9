"""CI-native outputs: the Markdown summary, run metadata, JUnit properties and attachments, progress lines, the IG gap flag."""

from __future__ import annotations

import html
import json
import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pytest_clipcompress.render.markdown import summary_markdown, write_summary
from pytest_clipcompress.render.terminal import attribution_text
from pytest_clipcompress.results.metadata import git_state, library_versions
from pytest_clipcompress.results.schema import BreakingPoint

GOLDEN = Path(__file__).parent / "golden" / "summary.md"


def record(dataset: str, compression_id: str, codec: str, accuracy: float, bits: float, *, model: str = "ViT-B-32", baseline: float = 0.9) -> dict:
    """A hand-made evaluation record with the fields the results file has (n=200)."""
    return {
        "model": model,
        "pretrained": "openai",
        "dataset": dataset,
        "n": 200,
        "seed": 0,
        "templates": "clip",
        "compression": {"codec": codec},
        "compression_id": compression_id,
        "accuracy": accuracy,
        "baseline_accuracy": baseline,
        "drop": baseline - accuracy,
        "ci95": [accuracy - 0.05, accuracy + 0.04],
        "per_class": {},
        "bits_per_pixel": bits,
        "flipped": round((baseline - accuracy) * 200),
    }


def check(test: str, dataset: str, compression_id: str, passed: bool, outcome: str | None = None, **floors: float) -> dict:
    row = {
        "test": test,
        "model": "ViT-B-32",
        "pretrained": "openai",
        "dataset": dataset,
        "compression_id": compression_id,
        "min_accuracy": floors.get("min_accuracy"),
        "max_drop": floors.get("max_drop"),
        "passed": passed,
    }
    return row if outcome is None else {**row, "outcome": outcome}


RECORDS = [
    record("cifar10", "jpeg-q75", "jpeg", 0.88, 2.1),
    record("cifar10", "jpeg-q31", "jpeg", 0.79, 1.0),  # a breaking-point probe: no floor check of its own
    {**record("cifar10", "jpeg-q25", "jpeg", 0.71, 0.9), "drop_ci95": [0.141, 0.243]},  # the paired drop interval, when recorded
    record("cifar10", "webp-q50", "webp", 0.86, 1.2),
    record("imagefolder:/data/a|b <b>pets</b>", "jpeg-q50", "jpeg", 0.5, 1.5, baseline=0.625),
]
CHECKS = [
    check("tests/test_x.py::test_jpeg[cifar10-jpeg-q75]", "cifar10", "jpeg-q75", True, "passed", min_accuracy=0.8, max_drop=0.05),
    check("tests/test_x.py::test_jpeg[cifar10-jpeg-q25]", "cifar10", "jpeg-q25", False, "failed", min_accuracy=0.8, max_drop=0.05),
    check("tests/test_x.py::test_webp[cifar10-webp-q50]", "cifar10", "webp-q50", False, "xfailed", max_drop=0.02),
    check("tests/test_x.py::test_pets[a|b `x`]", "imagefolder:/data/a|b <b>pets</b>", "jpeg-q50", False, min_accuracy=0.6),
]
POINTS = [
    BreakingPoint.from_dict(
        {
            "test": "tests/test_x.py::test_search",
            "model": "ViT-B-32",
            "pretrained": "openai",
            "dataset": "cifar10",
            "codec": "jpeg",
            "param": "quality",
            "floor": 0.8,
            "metric": "accuracy",
            "breaking_value": 31,
            "last_passing_value": 32,
            "evaluations": 7,
            "frontier": [{"setting": "jpeg-q50"}] * 7,
        }
    ),
    BreakingPoint.from_dict(
        {
            "test": "tests/test_x.py::test_search",
            "model": "ViT-B-32",
            "pretrained": "openai",
            "dataset": "cifar10",
            "codec": "jpeg2000",
            "param": "rate",
            "floor": 0.05,
            "metric": "drop",
            "breaking_value": None,
            "last_passing_value": None,
            "evaluations": 2,
            "frontier": [{"setting": "jpeg2000-r1"}] * 2,
        }
    ),
]
RUN = {
    "models": [{"label": "ViT-B-32/openai", "weights_hash": "0123456789abcdef0123456789abcdef", "device": "cuda:0", "precision": "fp16"}],
    "device": "auto",
    "precision": "fp16",
    "versions": {"python": "3.11.7", "torch": "2.14.1", "open_clip": "3.3.0", "Pillow": "13.0.0"},
    "git": {"commit": "89abcdef0123456789abcdef0123456789abcdef", "dirty": True},
    "started_utc": "2026-11-29T07:00:00Z",
}


def test_summary_matches_the_golden_file() -> None:
    text = summary_markdown(RECORDS, CHECKS, POINTS, run=RUN)
    assert text.encode("utf-8") == GOLDEN.read_bytes(), f"regenerate after checking by eye:\n{text}"


def test_summary_puts_unexpected_failures_first_and_counts_xfail_apart() -> None:
    text = summary_markdown(RECORDS, CHECKS, POINTS, run=RUN)
    lines = text.splitlines()
    assert lines[2] == "**2 of 4 checks failed**, 1 failed as expected (xfail); 5 evaluations."
    failures = lines[lines.index("### Failures") + 4 :]
    assert failures[0].startswith(
        "| `tests/test_x.py::test_jpeg[cifar10-jpeg-q25]` | `ViT-B-32/openai` | `cifar10` | `jpeg-q25` | accuracy 71.00%; drop 19.00 points |"
    )
    assert "min_accuracy 80.00% **failed**; max_drop 5.00 points **failed**" in failures[0]
    assert failures[1].startswith("| ``tests/test_x.py::test_pets[a\\|b `x`]`` |")  # a pipe cannot end the cell, a backtick the code span
    assert "test_webp" not in "\n".join(lines[: lines.index("### Failures") + 7])  # xfailed: in the table only
    assert "started" not in text and "2026" not in text  # nothing that changes between identical runs
    assert "<" not in re.sub(r"(`+).+?\1", "", text)  # user markup only inside code spans, where it is text


def test_summary_without_evaluations_says_so() -> None:
    assert summary_markdown([], [], []) == "## clipcompress: zero-shot accuracy under compression\n\nNo evaluations ran.\n"


def test_write_summary_replaces_its_file_and_appends_to_the_step_summary(tmp_path: Path) -> None:
    ours, step = tmp_path / "out" / "summary.md", tmp_path / "step.md"
    ours.parent.mkdir()
    ours.write_text("old run\n")
    step.write_text("an earlier step\n")
    assert write_summary("new\n", ours, {"GITHUB_STEP_SUMMARY": str(step)}) == []
    assert ours.read_text() == "new\n" and step.read_text() == "an earlier step\nnew\n"
    assert sorted(p.name for p in ours.parent.iterdir()) == ["summary.md"]  # no temporary file left behind
    blocked = tmp_path / "file"
    blocked.write_text("")
    notes = write_summary("x\n", blocked / "summary.md", {"GITHUB_STEP_SUMMARY": str(tmp_path / "missing" / "step.md")})
    assert len(notes) == 2 and notes[0].startswith(f"summary not written to {blocked / 'summary.md'}: ")
    assert "$GITHUB_STEP_SUMMARY" in notes[1]


def test_git_state_inside_and_outside_a_repository(tmp_path: Path) -> None:
    assert git_state(tmp_path) is None

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=tmp_path, check=True, capture_output=True, text=True
        ).stdout.strip()

    git("init", "-q")
    (tmp_path / "a.txt").write_text("a")
    git("add", "a.txt")
    git("commit", "-qm", "a")
    assert git_state(tmp_path) == {"commit": git("rev-parse", "HEAD"), "dirty": False}
    (tmp_path / "a.txt").write_text("b")
    assert git_state(tmp_path)["dirty"] is True


def test_library_versions_are_the_installed_ones() -> None:
    import sys

    import captum
    import numpy
    import open_clip
    import PIL
    import torch
    import torchvision

    import pytest_clipcompress

    versions = library_versions()
    expected = {
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "open_clip": open_clip.__version__,
        "Pillow": PIL.__version__,
        "numpy": numpy.__version__,
        "captum": captum.__version__,
        "pytest-clipcompress": pytest_clipcompress.__version__,
    }
    for name, version in expected.items():
        assert versions[name] == version.split("+")[0] or versions[name] == version, name
    assert versions["python"] == ".".join(map(str, sys.version_info[:3]))


def item(index: int, delta_f: float, gap: float) -> dict:
    return {
        "index": index,
        "true_name": "cat",
        "pred_uncompressed_name": "cat",
        "pred_compressed_name": "dog",
        "delta_f": delta_f,
        "sum_attributions": delta_f - gap,
        "completeness_gap": gap,
        "positive_mass": 1.0,
        "negative_mass": 0.5,
        "boundary_share": 0.4,
        "boundary_area_share": 0.2,
    }


def test_attribution_text_flags_a_large_completeness_gap() -> None:
    summary = {
        "count": 3,
        "mean_completeness_gap": 2.1,
        "mean_abs_delta_f": 30.0,
        "total_positive_mass": 3.0,
        "total_negative_mass": 1.5,
        "mean_boundary_share": 0.4,
        "mean_boundary_area_share": 0.2,
    }
    data = {"items": [item(17, 88.29, 6.29), item(3, 1.6, 0.01), item(5, -2.0, 0.09)], "seconds": 1.0, "summary": summary}
    flags = [line for line in attribution_text(data).splitlines() if "IG gap" in line]
    # 6.29 / 88.29 = 7.1% and 0.09 / 2.0 = 4.5%: only the first is above the 5% docs/attributions.md states.
    assert flags == ["image 17: IG gap 7% of ΔF: raise --clip-ig-steps or use auto"]
    assert "above 1e-4" in (Path(__file__).parents[1] / "docs" / "attributions.md").read_text(encoding="utf-8")


DEMO_SUITE = """
import pytest
from pytest_clipcompress import assert_accuracy

@pytest.mark.clip_dataset("demo")
@pytest.mark.compression("jpeg", quality=[100, 25], subsampling="4:4:4")
def test_floor(clip_eval):
    assert_accuracy(clip_eval(), min_accuracy=0.85)  # holds at q100, fails at q25

@pytest.mark.clip_dataset("demo")
@pytest.mark.compression("jpeg", quality=30)
@pytest.mark.xfail(strict=True, reason="harsh JPEG")
def test_expected(clip_eval):
    assert_accuracy(clip_eval(), max_drop=0.05)
"""
DEMO_ARGS = ["--clip-samples=40", "--clip-device=cpu", "--clip-no-cache", "--clip-ig-samples=1", "--clip-ig-steps=2", "-p", "no:cacheprovider"]
FAILING = "test_floor[demo-jpeg-q25-s444]"


def environment(report: Path) -> dict[str, str]:
    blob = re.search(r'data-jsonblob="([^"]*)"', report.read_text()).group(1)
    return json.loads(html.unescape(blob))["environment"]


def test_ci_outputs_are_the_same_serial_and_under_xdist(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile(DEMO_SUITE)
    seen = {}
    for mode, extra in (("serial", []), ("xdist", ["-n", "2"])):
        out = pytester.path / mode
        monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(pytester.path / f"{mode}-step.md"))
        result = pytester.runpytest_subprocess(
            *DEMO_ARGS,
            *extra,
            f"--clip-summary={out}/summary.md",
            f"--clip-results={out}/results.json",
            f"--clip-report={mode}-report",
            f"--html={out}/report.html",
            f"--junitxml={out}/junit.xml",
            "-o",
            "junit_logging=system-out",
        )
        result.assert_outcomes(passed=1, failed=1, xfailed=1)
        summary = (out / "summary.md").read_bytes()
        assert (pytester.path / f"{mode}-step.md").read_bytes() == summary
        run = json.loads((out / "results.json").read_text())["run"]
        cases = {case.get("name"): case for case in ET.parse(out / "junit.xml").getroot().iter("testcase")}
        properties = [(p.get("name"), p.get("value")) for p in cases[FAILING].iter("property")]
        system_out = cases[FAILING].find("system-out").text
        attachments = re.findall(r"^\[\[ATTACHMENT\|(.+)\]\]$", system_out, re.MULTILINE)
        seen[mode] = (summary, run["models"], properties, len(attachments))

        lines = summary.decode().splitlines()
        assert lines[lines.index("### Failures") + 4].startswith(
            f"| `test_ci_outputs_are_the_same_serial_and_under_xdist.py::{FAILING}` "
            "| `clipcompress-demo/clipcompress-demo.pt` | `demo` | `jpeg-q25-s444` | accuracy "
        )
        assert "**1 of 3 checks failed**, 1 failed as expected (xfail); 3 evaluations." in lines
        # The facts of the model the workers loaded, as this process computes them from the same checkpoint.
        from pytest_clipcompress.config.settings import build_settings
        from pytest_clipcompress.engine.evaluator import Evaluator

        loaded = Evaluator.from_settings(build_settings(lambda option: "cpu" if option.name == "device" else None)).model("clipcompress-demo")
        assert run["models"] == [loaded.facts()]
        assert run["git"] is None  # pytester's folder is not a repository
        env = environment(out / "report.html")
        assert env[f"clipcompress model {loaded.spec.label}"] == f"weights {loaded.weights_hash()} on cpu (fp32)"
        assert env["version torch"] == run["versions"]["torch"] and env["started (UTC)"] == run["started_utc"]

        floors = dict(properties)
        assert (
            floors["clip[clipcompress-demo|demo|jpeg-q25-s444].min_accuracy"] == "0.850000"
            and floors["clip[clipcompress-demo|demo|jpeg-q25-s444].check"] == "failed"
        )
        passing = {p.get("name"): p.get("value") for p in cases["test_floor[demo-jpeg-q100-s444]"].iter("property")}
        assert passing["clip[clipcompress-demo|demo|jpeg-q100-s444].check"] == "passed"
        assert len(attachments) == 1
        for path in attachments:  # the report folder holds each attached figure under that name
            assert path.startswith(f"{mode}-report/attributions/") and (pytester.path / path).is_file(), path
    assert seen["serial"] == seen["xdist"]


PROGRESS_SUITE = """
import pytest
from hypothesis import given, settings
from pytest_clipcompress import assert_accuracy
from pytest_clipcompress import strategies as cs

def test_skipped():
    pytest.skip("not here")

@pytest.mark.clip_dataset("demo")
@pytest.mark.compression("jpeg", quality=[90, 60])
def test_grid(clip_eval):
    clip_eval()

@settings(max_examples=3, deadline=None, derandomize=True)
@given(compression=cs.jpeg(quality=cs.qualities(10, 50)))
def test_search(clip_eval, compression):
    clip_eval(dataset="demo", compression=compression)

def test_plain():
    pass
"""
LETTERS = re.compile(r"^[.sFxXE]+(\s+\[\s*\d+%\])?$")


def test_progress_lines_leave_pytests_line_whole(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_progress=PROGRESS_SUITE)
    pytester.makeconftest("from pytest_clipcompress.plugin import progress\nprogress.PROGRESS_AFTER_SECONDS = 0.0  # as if every batch were slow\n")
    for verbosity in ([], ["-v", "-k", "not search"]):
        result = pytester.runpytest_subprocess(
            "--clip-samples=20", "--clip-batch-size=10", "--clip-device=cpu", "--clip-no-cache", "-p", "no:cacheprovider", *verbosity
        )
        result.assert_outcomes(passed=3 if verbosity else 4, skipped=1)
        lines = result.stdout.lines
        progress = [line for line in lines if line.startswith("clipcompress: clipcompress-demo")]
        assert len(progress) >= 3  # the uncompressed pass and the first JPEG quality are one evaluation
        for line in progress:
            assert re.fullmatch(r"clipcompress: \S+ demo \S+: \d+/20 images, [\d.]+ images/s", line), line
        assert not [line for line in lines if LETTERS.match(line.strip())], "a result letter was left alone on a line"
        if not verbosity:
            results = [line for line in lines if line.startswith("test_progress.py")]
            assert "".join(re.sub(r"\s+\[.*\]$", "", line)[len("test_progress.py ") :] for line in results) == "s....", results
            summary = lines[lines.index(next(line for line in lines if "zero-shot accuracy under compression" in line)) :]
            probes = summary.index("search probes (hypothesis examples, apart from the grid above):")
            grid = "\n".join(summary[:probes])
            assert "jpeg-q90" in grid and "jpeg-q60" in grid
            assert len(re.findall(r"^  jpeg-q\d+ ", "\n".join(summary[probes:]), re.MULTILINE)) >= 2  # the examples, apart
            assert not re.search(r"^  jpeg-q(?!90 |60 )\d+ ", grid, re.MULTILINE)
        else:
            assert all(line.startswith("test_progress.py::") for line in lines if "PASSED" in line or "SKIPPED" in line)
