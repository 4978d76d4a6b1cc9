"""Reports from a user's run: pytest-html extras and summary, --clip-report, JUnit, xdist, interruption."""

from __future__ import annotations

import html
import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

from pytest_clipcompress.render.html import escape_test_id_cell

from .helpers import TINY_MODEL, without_run_block

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


def html_tests(report: Path) -> dict[str, list[dict]]:
    """The per-test data pytest-html 4 embeds in its page as a JSON blob."""
    blob = re.search(r'data-jsonblob="([^"]*)"', report.read_text()).group(1)
    return json.loads(html.unescape(blob))["tests"]


def extras_by_test(report: Path) -> dict[str, list[tuple[str, str]]]:
    return {nodeid: [(extra["format_type"], extra["name"]) for row in rows for extra in row.get("extras", [])] for nodeid, rows in html_tests(report).items()}


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
    # Triage first: the failing case and its numbers come before pytest-html's counts and the charts.
    assert text.index("1 check failed") < text.index("test_floor[cifar10-jpeg-q25]") < text.index('class="run-count"') < text.index(CHARTS)
    assert "completeness" in text and "boundary share" in text  # the IG table on the failing row
    assert "all 2: mean completeness gap" in text  # and the per-test totals
    result.stdout.fnmatch_lines(
        [
            "*Captured stdout clipcompress attributions*",
            "Integrated Gradients (2 flipped images, *",
            "all 2: mean completeness gap * of pixels",
            "attributions: 2 flipped images of 1 failing tests explained with Integrated Gradients in * s",
        ]
    )


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
    prefix = f"clip[{TINY_MODEL}|cifar10|jpeg-q25]"  # the model id (no role: the model name), dataset, compression
    metrics = ("accuracy", "drop", "top5", "top5_drop", "mean_per_class_recall", "mean_per_class_recall_drop")
    assert set(properties) == {f"{prefix}.{name}" for name in (*metrics, "n", "max_drop", "check")}
    assert properties[f"{prefix}.n"] == "80"
    assert properties[f"{prefix}.max_drop"] == "0.000000" and properties[f"{prefix}.check"] == "failed"  # the floor and its verdict
    assert "Integrated Gradients" in cases["test_floor[cifar10-jpeg-q25]"].find("system-out").text


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def test_serial_and_parallel_runs_give_the_same_results_and_report(pytester: pytest.Pytester, run_args: list[str]) -> None:
    pytester.makepyfile(SUITE)
    outputs = {}
    for mode, extra in (("serial", []), ("again", []), ("xdist", ["-n", "2"])):
        results, report, folder = pytester.path / f"{mode}.json", pytester.path / f"{mode}.html", pytester.path / f"{mode}-report"
        outcome = pytester.runpytest_subprocess(
            *run_args, *extra, f"--clip-results={results}", f"--html={report}", "--self-contained-html", f"--clip-report={folder}"
        )
        outcome.assert_outcomes(passed=1, failed=1)
        rows = html_tests(report)
        extras = {nodeid: [e["content"] for row in rows[nodeid] for e in row.get("extras", [])] for nodeid in rows}
        outputs[mode] = (without_run_block(results.read_text()), extras, folder_bytes(folder))
    assert outputs["serial"][0] == outputs["again"][0] == outputs["xdist"][0]  # identical results but for the run block
    assert outputs["serial"][1] == outputs["xdist"][1]  # same attribution tables and pictures
    # The report folder (page, charts, attribution pictures) is byte-identical too.
    assert len(outputs["serial"][2]) == 6 and any(name.startswith("attributions/") for name in outputs["serial"][2])
    assert outputs["serial"][2] == outputs["again"][2] == outputs["xdist"][2]


CHARTS = '<div class="cc-charts">'  # where our charts start (pytest-html has <img> templates of its own)

XFAIL_SUITE = """
import pytest
from pytest_clipcompress import assert_accuracy

@pytest.mark.clip_dataset("cifar10")
@pytest.mark.compression("jpeg", quality=[75, 25])
def test_floor(clip_eval, compression, request):
    if compression.param("quality") == 25:
        request.applymarker(pytest.mark.xfail(strict=True, reason="q25 is expected to hurt"))
    assert_accuracy(clip_eval(), max_drop=0.0 if compression.param("quality") == 25 else 1.0)

@pytest.mark.clip_dataset("cifar10")
@pytest.mark.compression("jpeg", quality=75)
@pytest.mark.xfail(reason="the floor holds after all")
def test_xpass(clip_eval):
    assert_accuracy(clip_eval(), max_drop=1.0)

@pytest.mark.skip(reason="not today")
def test_skipped(clip_eval):
    pass

@pytest.mark.skip(reason="not a clip case")
def test_other():
    pass
"""


def test_xfail_outcomes_in_results_report_folder_and_html(pytester: pytest.Pytester, run_args: list[str]) -> None:
    pytester.makepyfile(XFAIL_SUITE)
    results, report, folder = pytester.path / "results.json", pytester.path / "report.html", pytester.path / "robustness"
    outcome = pytester.runpytest(*run_args, "--clip-ig-samples=0", f"--clip-results={results}", f"--html={report}", f"--clip-report={folder}")
    outcome.assert_outcomes(passed=1, xfailed=1, xpassed=1, skipped=2)
    name = "test_xfail_outcomes_in_results_report_folder_and_html.py"
    checks = {c["test"]: (c["passed"], c["outcome"]) for c in json.loads(results.read_text())["checks"]}
    assert checks == {
        f"{name}::test_floor[cifar10-jpeg-q25]": (False, "xfailed"),
        f"{name}::test_floor[cifar10-jpeg-q75]": (True, "passed"),
        f"{name}::test_xpass[cifar10-jpeg-q75]": (True, "xpassed"),
    }
    index = (folder / "index.html").read_text()
    html_report = report.read_text()
    for page in (index, html_report):
        assert "No unexpected failures." in page
        assert "3 floor checks: 1 passed, 1 xfailed (expected), 1 XPASS (passed unexpectedly); 1 clip case skipped." in page
        assert "1 clip case skipped, first reason: not today" in page and "not a clip case" not in page.split('id="results-table"')[0]
        assert page.index("Expected failures (xfail)") < page.index("test_floor[cifar10-jpeg-q25]") < page.index(CHARTS)
        ours = re.sub(r"<style>.*?</style>", "", page.split('<table id="results-table"')[0], flags=re.S)  # not pytest-html's table and script
        assert "FAILED" not in ours and "cc-verdict cc-red" not in ours
    assert "No attributions were computed for this test" in index  # --clip-ig-samples 0


def test_first_failure_comes_before_the_charts_without_attributions(pytester: pytest.Pytester, run_args: list[str]) -> None:
    pytester.makepyfile(SUITE)
    report, folder = pytester.path / "report.html", pytester.path / "robustness"
    outcome = pytester.runpytest(*run_args, "--clip-ig-samples=0", f"--html={report}", "--self-contained-html", f"--clip-report={folder}")
    outcome.assert_outcomes(passed=1, failed=1)
    failing = "test_first_failure_comes_before_the_charts_without_attributions.py::test_floor[cifar10-jpeg-q25]"
    for page in (report.read_text(), (folder / "index.html").read_text()):
        first = page.index(failing)
        assert page.index("1 check failed") < first < page.index(CHARTS)
        row = page[first : page.index("</tr>", first)]
        assert "jpeg-q25" in row and "drop" in row and "&gt; max 0.0 pp" in row  # measured value against its floor


def test_markup_and_dollars_in_names_render_safely(pytester: pytest.Pytester, tiny_args: list[str], image_folder_sample: Path) -> None:
    import shutil

    markup, math = "<img src=x onerror=alert(1)>", "$\\frac{1}{$"
    root = pytester.path / f"data-{markup}$x$"
    for k, source in enumerate(sorted(image_folder_sample.iterdir())):
        # Every class name holds an unbalanced mathtext fraction (matplotlib raises if it parses one); one holds markup too.
        shutil.copytree(source, root / f"{source.name} {markup if k == 3 else ''}{math}")
    pytester.makepyfile(
        f"""
        import pytest
        from pytest_clipcompress import assert_accuracy

        @pytest.mark.compression("jpeg", quality=[90, 50, 5])
        def test_folder(clip_eval):
            assert_accuracy(clip_eval(dataset={f"imagefolder:{root}"!r}), min_accuracy=1.0)
        """
    )
    report, folder = pytester.path / "report.html", pytester.path / "robustness"
    outcome = pytester.runpytest(
        *tiny_args, "--clip-samples=60", "--clip-ig-samples=1", "--clip-ig-steps=4", "-p", "no:cacheprovider", f"--html={report}", f"--clip-report={folder}"
    )
    outcome.assert_outcomes(failed=3)
    assert "INTERNALERROR" not in outcome.stdout.str()
    index = (folder / "index.html").read_text()
    assert "&lt;img src=x onerror=alert(1)&gt;" in index and "<img src=x" not in index
    assert len(list((folder / "charts").glob("*.png"))) == 2  # rate-accuracy and JPEG settings, titles with a literal $
    assert list((folder / "attributions").glob("*.png"))  # class names with $ in the IG figure
    ours = report.read_text().split('class="cc-report"')[1:]
    assert ours and all("<img src=x" not in part.split("</div>\n</div>")[0] for part in ours)


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


# --- pytest-html's Test cell ---------------------------------------------------------------------

MARKUP_IDS = """
import pytest
import pytest_html

@pytest.mark.parametrize("value", ["<img src=x onerror=alert(1)>", "a&b", "plain"])
def test_value(value, extras):
    extras.append(pytest_html.extras.url("https://example.org/log", name="log"))
    assert value != "plain"

@pytest.fixture
def broken():
    raise RuntimeError("setup broke")

@pytest.mark.parametrize("value", ["<script>alert(2)</script>"])
def test_setup_error(value, broken):
    pass
"""


class Fragment(HTMLParser):
    """The elements (tag and attributes) and the text of an HTML fragment, as a browser's parser reads it."""

    def __init__(self, markup: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text = ""
        self.feed(markup)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text += data


class JsonBlob(HTMLParser):
    """The data pytest-html 4 embeds in its page: the ``data-jsonblob`` attribute of ``#data-container``."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.blob: dict = {}
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if attributes.get("id") == "data-container":
            self.blob = json.loads(attributes["data-jsonblob"] or "{}")  # the parser has already unescaped the attribute


@pytest.mark.parametrize("xdist", [False, True], ids=["serial", "xdist"])
def test_markup_in_a_parametrize_id_is_text_in_pytest_html(pytester: pytest.Pytester, xdist: bool) -> None:
    pytester.makepyfile(test_ids=MARKUP_IDS)
    report = pytester.path / "report.html"
    args = [f"--html={report}", "--self-contained-html", "-p", "no:cacheprovider"]
    result = pytester.runpytest_subprocess(*args, "-n", "2") if xdist else pytester.runpytest(*args)
    result.assert_outcomes(passed=2, failed=1, errors=1)
    rows = {nodeid: row for nodeid, test in JsonBlob(report.read_text()).blob["tests"].items() for row in test}
    shown = {
        "test_ids.py::test_value[<img src=x onerror=alert(1)>]": "test_ids.py::test_value[<img src=x onerror=alert(1)>]",
        "test_ids.py::test_value[a&b]": "test_ids.py::test_value[a&b]",
        "test_ids.py::test_value[plain]": "test_ids.py::test_value[plain]",
        "test_ids.py::test_setup_error[<script>alert(2)</script>]": "test_ids.py::test_setup_error[<script>alert(2)</script>]::setup",
    }
    assert sorted(rows) == sorted(shown)
    for nodeid, row in rows.items():
        cells = [Fragment(cell) for cell in row["resultsTableRow"]]
        result_cell, test_cell, _, links_cell = cells
        # The Test cell is one <td> whose text is the id: no <img>, no <script>, nothing to run.
        assert test_cell.elements == [("td", {"class": "col-testId"})] and test_cell.text == shown[nodeid]
        # pytest-html sorts the column by the cell's text, hydrated from the cell: still the id.
        assert html.unescape(row["testId"]) == shown[nodeid] and Fragment(row["testId"]).elements == []
        assert result_cell.text == row["result"] == ("Error" if "setup_error" in nodeid else "Failed" if "plain" in nodeid else "Passed")
        if "test_value" in nodeid:  # pytest-html's own links column is untouched
            assert links_cell.elements == [
                ("td", {"class": "col-links"}),
                ("a", {"target": "_blank", "href": "https://example.org/log", "class": "col-links__extra url"}),
            ]


def test_only_the_test_cell_pytest_html_built_is_escaped_and_only_once() -> None:
    test_id = 'test_x.py::test_a[<b>"x"&y</b>]'
    built = [
        '<td class="col-result">Passed</td>',
        f'<td class="col-testId">{test_id}</td>',
        '<td class="col-duration">5 ms</td>',
        '<td class="col-links"></td>',
    ]
    cells = list(built)
    escape_test_id_cell(cells, test_id)
    assert cells[0] == built[0] and cells[2:] == built[2:]
    assert cells[1] == '<td class="col-testId">test_x.py::test_a[&lt;b&gt;&#34;x&#34;&amp;y&lt;/b&gt;]</td>'
    again = list(cells)
    escape_test_id_cell(again, test_id)  # a pytest-html that escapes the id itself: nothing is escaped twice
    assert again == cells
    linked = [f'<td class="col-testId"><a href="https://ci.example/{test_id}">{test_id}</a></td>']  # another plugin's own cell
    escape_test_id_cell(linked, test_id)
    assert linked == [f'<td class="col-testId"><a href="https://ci.example/{test_id}">{test_id}</a></td>']
