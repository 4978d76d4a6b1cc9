"""The render package on synthetic records, checks and failures (no model, no plugin fixtures)."""

from __future__ import annotations

import base64
import io
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from pytest_clipcompress.render import Chart, accuracy_charts, safe_name, summary_html, summary_table_html, write_report_dir
from pytest_clipcompress.render.view import check_status, skip_line, triage
from pytest_clipcompress.results.collector import ResultsCollector

from .helpers import attribution_info

MODEL = "ViT-B/32"
N = 200


def record(codec: str, accuracy: float, bpp: float, *, model: str = MODEL, dataset: str = "cifar10", baseline: float = 0.9, **params: Any) -> dict[str, Any]:
    parts = [codec] + [f"{'q' if k == 'quality' else 'r' if k == 'rate' else 's'}{str(v).replace(':', '')}" for k, v in sorted(params.items())]
    half = 0.03
    return {
        "model": model,
        "pretrained": "openai",
        "dataset": dataset,
        "n": N,
        "seed": 0,
        "templates": "default",
        "compression": {"codec": codec, **params},
        "compression_id": "-".join(parts) if params else codec,
        "accuracy": accuracy,
        "baseline_accuracy": baseline,
        "drop": baseline - accuracy,
        "ci95": [max(0.0, accuracy - half), min(1.0, accuracy + half)],
        "per_class": {"cat": accuracy, "dog": accuracy},
        "bits_per_pixel": bpp,
        "flipped": round((baseline - accuracy) * N),
    }


def make_records(model: str = MODEL) -> list[dict[str, Any]]:
    rows = [record("none", 0.9, 24.0, model=model)]
    rows += [record("jpeg", acc, bpp, model=model, quality=q) for q, acc, bpp in ((100, 0.9, 6.1), (75, 0.88, 1.9), (50, 0.84, 1.3), (25, 0.71, 0.8))]
    rows += [
        record("jpeg", acc, bpp, model=model, quality=q, subsampling=s)
        for s, shift in (("4:4:4", 0.0), ("4:2:0", -0.03))
        for q, acc, bpp in ((90, 0.89 + shift, 3.0 + shift), (50, 0.83 + shift, 1.5 + shift), (10, 0.55 + shift, 0.4 + shift))
    ]
    rows += [record("jpeg2000", acc, 24.0 / rate, model=model, rate=rate) for rate, acc in ((10, 0.89), (40, 0.8), (160, 0.5))]
    return rows


def make_checks() -> list[dict[str, Any]]:
    base = {"model": MODEL, "pretrained": "openai", "dataset": "cifar10"}
    return [
        {
            "test": "tests/test_x.py::test_floor[jpeg-q75]",
            **base,
            "compression_id": "jpeg-q75",
            "min_accuracy": 0.8,
            "max_drop": None,
            "passed": True,
            "outcome": "passed",
        },
        {
            "test": "tests/test_x.py::test_floor[jpeg-q25]",
            **base,
            "compression_id": "jpeg-q25",
            "min_accuracy": 0.8,
            "max_drop": None,
            "passed": False,
            "outcome": "failed",
        },
        {
            "test": "tests/test_x.py::test_drop[jpeg-q50]",
            **base,
            "compression_id": "jpeg-q50",
            "min_accuracy": None,
            "max_drop": 0.15,
            "passed": True,
            "outcome": "passed",
        },
        {
            "test": "tests/test_x.py::test_j2k[jpeg2000-r160]",
            **base,
            "compression_id": "jpeg2000-r160",
            "min_accuracy": 0.6,
            "max_drop": None,
            "passed": False,
            "outcome": "xfailed",
        },
    ]


def png_b64(colour: tuple[int, int, int]) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (24, 12), colour).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def make_failures() -> list[dict[str, Any]]:
    item = {
        "index": 7,
        "label": 3,
        "true_name": "cat",
        "pred_uncompressed_name": "cat",
        "pred_compressed_name": "<dog>",
        "prob_true_uncompressed": 0.81,
        "prob_true_compressed": 0.2,
        "delta_f": 1.4,
        "sum_attributions": 1.38,
        "completeness_gap": 0.01,
        "positive_mass": 2.0,
        "negative_mass": 0.6,
        "boundary_share": 0.4,
        "boundary_area_share": 0.23,
        "seconds": 3.2,
        "compression_id": "jpeg-q25",
        "chosen_as": "compression flip",
    }
    return [
        {
            "test": "tests/test_x.py::test_floor[jpeg-q25]",
            "outcome": "failed",
            "attributions": {
                "items": [item, {**item, "index": 9}],
                "images": [png_b64((200, 30, 30)), png_b64((30, 30, 200))],
                # HTML made elsewhere (e.g. on a worker) is never pasted into a page: tables come from the items.
                "table_html": "<script>alert('worker')</script>",
                "summary": {"count": 2, "mean_completeness_gap": 0.01, "mean_boundary_share": 0.4, "total_seconds": 6.4},
                "seconds": 6.5,
            },
        },
        {"test": "tests/test_x.py::test_j2k[jpeg2000-r160]", "outcome": "xfailed", "attributions": None},
    ]


def open_png(data: bytes) -> Image.Image:
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.links.append(value)


RATE, JPEG, J2K = "vit-b-32_openai_cifar10_rate.png", "vit-b-32_openai_cifar10_jpeg.png", "vit-b-32_openai_cifar10_jpeg2000.png"


@pytest.fixture(scope="module")
def charts() -> list[Chart]:
    return accuracy_charts(make_records(), make_checks())


def test_one_rate_chart_per_model_dataset_then_codecs_with_three_settings(charts: list[Chart]) -> None:
    assert [c.filename for c in charts] == [RATE, JPEG, J2K]
    assert charts[0].title == "ViT-B/32/openai \u00b7 cifar10: accuracy vs bits per pixel (n=200)"
    assert charts[1].title == "ViT-B/32/openai \u00b7 cifar10: JPEG settings (n=200)"
    assert open_png(charts[0].png).size == (900, 420)
    assert open_png(charts[1].png).size == (900, 360)
    # A codec with fewer than three settings is only on the rate chart.
    two = make_records()[:1] + [record("webp", 0.8, 1.0, quality=q) for q in (80, 40)]
    assert [c.filename for c in accuracy_charts(two, [])] == [RATE]


def test_charts_are_deterministic_and_carry_no_software_tag(charts: list[Chart]) -> None:
    again = accuracy_charts(make_records(), make_checks())
    assert [c.png for c in again] == [c.png for c in charts]
    assert all(b"matplotlib" not in c.png for c in charts)
    plain = accuracy_charts(make_records(), [])
    assert plain[0].png != charts[0].png  # no floor lines
    # An expected failure is drawn differently from an unexpected one.
    xfail = [{**c, "outcome": "xfailed"} if not c["passed"] else c for c in make_checks()]
    assert accuracy_charts(make_records(), xfail)[0].png != charts[0].png


def test_charts_split_models_and_datasets() -> None:
    records = make_records() + make_records("RN50") + [record("webp", 0.8, 1.0, dataset="stl10", quality=50)]
    names = [c.filename for c in accuracy_charts(records, [])]
    # Both models overlaid per codec first; then per model: rate, jpeg, jpeg2000; ViT on stl10: rate only.
    assert names[:2] == ["models_cifar10_jpeg.png", "models_cifar10_jpeg2000.png"]
    assert len(names) == len(set(names)) == 9
    assert "vit-b-32_openai_stl10_rate.png" in names and "vit-b-32_openai_stl10_webp.png" not in names


def role_records(role: str, pretrained: str, shift: float) -> list[dict[str, Any]]:
    """make_records() as run by one --clip-model role, ``shift`` points more accurate."""
    rows = []
    for r in make_records():
        low, high = r["ci95"]
        rows.append({**r, "role": role, "pretrained": pretrained, "accuracy": r["accuracy"] + shift, "ci95": [low + shift, high + shift]})
    return rows


def test_several_models_get_their_curves_overlaid_per_dataset_and_codec() -> None:
    from pytest_clipcompress.render.charts import model_overlays

    records = role_records("release", "openai", 0.0) + role_records("candidate", "epoch13.pt", -0.04)
    probe = {**record("jpeg", 0.7, 1.1, quality=60), "role": "release", "probe": True}  # a clip_breaking_point probe
    overlays = model_overlays([*records, probe])
    assert [(o.dataset, o.codec) for o in overlays] == [("cifar10", "jpeg"), ("cifar10", "jpeg2000")]
    jpeg, j2k = overlays
    assert jpeg.title == "cifar10 \u00b7 JPEG: models compared, accuracy vs bits per pixel (n=200)"
    # One curve per role (and per chroma subsampling, which varies), each holding exactly that role's grid records.
    for overlay in overlays:
        for role in ("candidate", "release"):
            mine = [r for r in records if r["role"] == role and r["compression"]["codec"] == overlay.codec]
            curves = [c for c in overlay.curves if c.model_id == role]
            expected = sorted((r["bits_per_pixel"], r["accuracy"], r["ci95"][0], r["ci95"][1]) for r in mine)
            assert sorted(p[:4] for c in curves for p in c.points) == expected
            pretrained = "openai" if role == "release" else "epoch13.pt"
            assert all(c.label == f"{role} ({MODEL}/{pretrained})" for c in curves)
            assert {u for c in curves for u in c.uncompressed} == {0.9}
    assert [c.model_id for c in j2k.curves] == ["candidate", "release"] and j2k.curves[0].variant == ""
    assert [p[4] for p in j2k.curves[0].points] == ["160:1", "40:1", "10:1"]  # by bits per pixel, labelled by setting
    assert sorted({c.variant for c in jpeg.curves}) == ["4:2:0", "4:2:0 (Pillow default)", "4:4:4"]
    assert all(1.1 not in [p[0] for p in c.points] for c in jpeg.curves)  # the probe stays on its model's own chart
    # One model (or a single role in a dataset): no overlay, and the charts are exactly as before.
    assert model_overlays(role_records("release", "openai", 0.0)) == []
    assert [c.filename for c in accuracy_charts(role_records("release", "openai", 0.0))] == [RATE, JPEG, J2K]
    charts = accuracy_charts(records)
    assert [c.filename for c in charts][:2] == ["models_cifar10_jpeg.png", "models_cifar10_jpeg2000.png"]
    assert charts[0].title == jpeg.title and open_png(charts[0].png).size == (900, 420)
    assert [c.png for c in accuracy_charts(records)] == [c.png for c in charts]  # deterministic


def test_log_axis_gets_three_labelled_ticks() -> None:
    from pytest_clipcompress.render.charts.drawing import _log_ticks

    assert _log_ticks(0.3, 30) == [0.5, 1.0, 2.0, 5.0, 10.0, 20.0]
    narrow = _log_ticks(5.5 / 1.3, 6.5 * 1.3)  # the demo's JPEG points all lie between 5.5 and 6.5 bpp
    assert len(narrow) >= 3 and all(5.5 / 1.3 <= t <= 6.5 * 1.3 for t in narrow)


def test_chart_file_names_stay_unique() -> None:
    records = [record("jpeg", 0.8, 1.0, model="ViT-B/32", quality=50), record("jpeg", 0.7, 1.0, model="vit-b-32", quality=50)]
    names = [c.filename for c in accuracy_charts(records)]
    assert len(set(names)) == len(names) == 3  # the two models overlaid, then one chart each
    assert all(re.fullmatch(r"[a-z0-9._-]+\.png", name) for name in names)


def test_floor_lines_follow_the_check_status() -> None:
    from pytest_clipcompress.render.charts.model_chart import _floors

    rows = [record("jpeg", 0.8, 1.0, quality=50)]  # drop 10 pp
    check = {"model": MODEL, "pretrained": "openai", "dataset": "cifar10", "compression_id": "jpeg-q50", "passed": False, "outcome": "failed"}
    floors = _floors(rows, [{**check, "min_accuracy": 0.85, "max_drop": 0.2}])
    assert [(f["kind"], round(f["value"], 6), f["status"]) for f in floors] == [("max_drop", 0.7, "held"), ("min_accuracy", 0.85, "failed")]
    floors = _floors(rows, [{**check, "min_accuracy": 0.5, "max_drop": 0.05, "outcome": "xfailed"}])
    assert [(f["kind"], f["status"]) for f in floors] == [("max_drop", "xfailed"), ("min_accuracy", "held")]
    assert _floors(rows, [{**check, "compression_id": "jpeg-q10", "min_accuracy": 0.5, "max_drop": None}]) == []


def test_a_drop_floor_that_cannot_break_draws_no_line(recwarn: pytest.WarningsRecorder) -> None:
    """max_drop=1.0 would put its line at uncompressed - 100%, below the axis: no line, and the layout holds."""
    from pytest_clipcompress.render.charts.model_chart import _floors

    rows = [record("none", 0.1, 24.0, baseline=0.1), *(record("jpeg", 0.1, bpp, quality=q, baseline=0.1) for q, bpp in ((90, 3.0), (40, 1.2), (10, 0.4)))]
    checks = [
        {
            "model": MODEL,
            "pretrained": "openai",
            "dataset": "cifar10",
            "compression_id": r["compression_id"],
            "passed": True,
            "outcome": "passed",
            "min_accuracy": 0.0,
            "max_drop": 1.0,
        }
        for r in rows
    ]
    assert [f["kind"] for f in _floors(rows, checks)] == ["min_accuracy"]
    assert accuracy_charts(rows, checks)
    assert not [str(w.message) for w in recwarn.list]


@pytest.mark.parametrize(
    ("passed", "outcome", "status"),
    [
        (True, "passed", "passed"),
        (False, "failed", "failed"),
        (False, "xfailed", "xfailed"),
        (True, "xpassed", "xpassed"),
        (False, None, "failed"),  # a results file from before outcomes were recorded
        (False, "passed", "xfailed"),  # the test caught the failure: expected
        (True, "failed", "passed"),  # the floor held; the test failed for another reason
    ],
)
def test_check_status(passed: bool, outcome: str | None, status: str) -> None:
    assert check_status({"passed": passed, "outcome": outcome}) == status


def test_an_evaluation_is_a_probe_only_when_searches_alone_made_it() -> None:
    """The results file stores which evaluations only a search made (hypothesis examples, bisection probes)."""
    grid, searched, both = (record("jpeg", 0.8, 1.0, quality=q) for q in (75, 60, 90))
    collector = ResultsCollector()
    collector.add("t.py::test_grid[cifar10-jpeg-q75]", {"evaluations": [grid, both], "checks": [], "breaking_points": []})
    collector.add("t.py::test_hypothesis", {"evaluations": [searched, both], "checks": [], "breaking_points": [], "search": True})
    point = {
        "codec": "jpeg",
        "param": "quality",
        "floor": 0.5,
        "metric": "accuracy",
        "breaking_value": None,
        "last_passing_value": 60,
        "frontier": [],
        "evaluations": 1,
    }
    collector.add("t.py::test_bisect", {"evaluations": [record("jpeg", 0.7, 0.9, quality=50)], "checks": [], "breaking_points": [point]})
    assert {r["compression_id"]: r["probe"] for r in collector.sorted_records()} == {"jpeg-q75": False, "jpeg-q60": True, "jpeg-q90": False, "jpeg-q50": True}


def test_charts_from_threads_match(charts: list[Chart]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: [c.png for c in accuracy_charts(make_records(), make_checks())], range(2)))
    assert all(result == [c.png for c in charts] for result in results)


def test_safe_name() -> None:
    assert safe_name("ViT-B/32") == "vit-b-32"
    assert safe_name("../..") == "x"
    long = safe_name("a" * 300)
    assert len(long) <= 90 and long != safe_name("a" * 301)


def test_summary_table_escapes_and_sorts() -> None:
    records = [*make_records(), record("jpeg", 0.5, 0.5, model="<script>alert(1)</script>", quality=10)]
    table = summary_table_html(records)
    assert "<script>alert(1)" not in table
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in table
    body = table.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    assert body.count("<tr") == len(records)
    assert 'data-sort="0.88"' in body  # numeric sort value of jpeg-q75's accuracy
    assert 'data-type="num"' in table and 'class="cc-table cc-sortable"' in table
    # Pre-sorted: the uncompressed row comes first within a model, then each codec from mild to harsh.
    ordered = summary_table_html(make_records()).split("<tbody>", 1)[1]
    vit = [m.group(1) for m in re.finditer(r'<td data-sort="([^"]*)">', ordered)][3::5]  # model, pretrained, dataset, compression, source
    assert vit[:5] == ["none", "jpeg-q100", "jpeg-q90-s444", "jpeg-q90-s420", "jpeg-q75"]


def test_triage_lists_broken_floors_with_measurements() -> None:
    view = triage(make_records(), make_checks(), make_failures())
    assert [(r.test, r.status, r.compression_id) for r in view.unexpected] == [("tests/test_x.py::test_floor[jpeg-q25]", "failed", "jpeg-q25")]
    row = view.unexpected[0]
    assert (row.accuracy, row.min_accuracy, row.broken, row.images) == (0.71, 0.8, ("min_accuracy",), 2)
    assert row.why == "accuracy 71.0% < floor 80.0%"
    assert [(r.test, r.status) for r in view.expected] == [("tests/test_x.py::test_j2k[jpeg2000-r160]", "xfailed")]
    # Without attributions (--clip-ig-samples 0) the same floors are listed.
    assert [r.compression_id for r in triage(make_records(), make_checks(), []).unexpected] == ["jpeg-q25"]
    # The drop's paired interval, where the record has one, and a regression margin from the gate.
    records = [{**r, "drop_ci95": [0.15, 0.23]} if r["compression_id"] == "jpeg-q25" else r for r in make_records()]
    gate = {**make_checks()[1], "min_accuracy": None, "max_regression": 0.01, "reference": "RN50/openai"}
    row = triage(records, [gate], []).unexpected[0]
    assert row.drop_ci95 == (0.15, 0.23) and row.why == "regressed by more than 1.0 pp against RN50/openai"
    assert "19.0 pp (15.0 to 23.0)" in summary_html(records, [gate], [], failures=[])
    # A test that failed with every floor holding is listed, and says so.
    other = triage(make_records(), [], [{"test": "t.py::test_other", "outcome": "failed", "attributions": None}])
    assert other.unexpected[0].why.startswith("no check failed")


def test_skips_collapse_into_one_line() -> None:
    line = skip_line([{"test": "b::t", "reason": "second"}, {"test": "a::t", "reason": "first reason\nmore detail " + "x" * 300}])
    assert line is not None and line.sentence() == "2 clip cases skipped, first reason: first reason"
    assert skip_line([]) is None


def test_summary_html_opens_with_what_failed(charts: list[Chart]) -> None:
    fragment = summary_html(
        make_records(),
        make_checks(),
        charts,
        demo_note="bundled demo model; pass --clip-model <name>",
        failures=make_failures(),
        skips=[{"test": "a::t", "reason": "no data"}],
    )
    assert fragment.count('src="data:image/png;base64,') == len(charts)
    assert "bundled demo model; pass --clip-model &lt;name&gt;" in fragment
    assert "1 check failed" in fragment and "2 passed, 1 FAILED, 1 xfailed (expected)" in fragment
    failed_row = fragment.index("tests/test_x.py::test_floor[jpeg-q25]")
    assert failed_row < fragment.index("accuracy 71.0% &lt; floor 80.0%") < fragment.index("<img")
    assert fragment.index("Expected failures (xfail)") < fragment.index("<img")
    assert "1 clip case skipped, first reason: no data" in fragment
    assert 'href="#results-table"' in fragment
    assert 'class="cc-demo-note"' not in summary_html([], [], [], demo_note=None)
    # The two halves the plugin places around pytest-html's counts.
    triage_part = summary_html(make_records(), make_checks(), charts, part="triage")
    details = summary_html(make_records(), make_checks(), charts, part="details")
    assert "test_floor[jpeg-q25]" in triage_part and "<img" not in triage_part
    assert "<img" in details and "Expected failures" not in details


def test_green_run_does_not_look_red() -> None:
    checks = [{**c, "outcome": "xfailed"} if not c["passed"] else c for c in make_checks()]
    fragment = re.sub(r"<style>.*?</style>", "", summary_html(make_records(), checks, []), flags=re.S)
    assert "No unexpected failures." in fragment and "FAILED" not in fragment and "cc-red" not in fragment
    assert "2 passed, 2 xfailed (expected)" in fragment


def test_write_report_dir(tmp_path: Path) -> None:
    index = write_report_dir(tmp_path / "report", make_records(), make_checks(), make_failures(), demo_note="demo <model>")
    assert index == tmp_path / "report" / "index.html"
    page = index.read_text("utf-8")
    files = sorted(str(p.relative_to(index.parent)) for p in index.parent.rglob("*") if p.is_file())
    assert files == [
        "attributions/tests-test_x.py-test_floor-jpeg-q25_0.png",
        "attributions/tests-test_x.py-test_floor-jpeg-q25_1.png",
        f"charts/{JPEG}",
        f"charts/{J2K}",
        f"charts/{RATE}",
        "index.html",
        "report.css",
        "sort.js",
    ]  # no temporary files left behind
    parser = Links()
    parser.feed(page)
    relative = [link for link in parser.links if not link.startswith("#")]
    assert relative and all((index.parent / link).is_file() for link in relative)
    anchors = {link[1:] for link in parser.links if link.startswith("#")}
    assert anchors and all(f'id="{anchor}"' in page for anchor in anchors)
    for link in relative:
        if link.endswith(".png"):
            open_png((index.parent / link).read_bytes())
    assert "demo &lt;model&gt;" in page
    assert page.count('class="cc-failure') == 2
    assert "&lt;dog&gt;" in page and "<dog>" not in page
    assert "alert('worker')" not in page  # table HTML from the records is ignored
    assert '<table class="clip-ig">' in page and "mean completeness gap" in page
    assert "seconds" not in page  # timings differ run to run
    # Triage first: the failing test and its numbers come before the first chart.
    assert page.index('href="#failure-tests-test_x.py-test_floor-jpeg-q25"') < page.index("<img")
    assert page.index("accuracy 71.0% &lt; floor 80.0%") < page.index("<img")

    again = write_report_dir(tmp_path / "again", make_records(), make_checks(), make_failures(), demo_note="demo <model>")
    for name in files:
        assert (again.parent / name).read_bytes() == (index.parent / name).read_bytes()


def test_report_dir_shows_one_run(tmp_path: Path) -> None:
    write_report_dir(tmp_path, make_records(), make_checks(), make_failures())
    index = write_report_dir(tmp_path, make_records()[:3], [], [], demo_note=None)  # a later run: no failures, two JPEG settings
    page = index.read_text("utf-8")
    assert 'class="cc-failure' not in page and 'id="failures"' not in page and 'class="cc-demo-note"' not in page
    assert sorted(p.name for p in tmp_path.rglob("*.png")) == [RATE]  # the earlier run's pictures are gone
    # Passed tests in the failures list are ignored.
    index = write_report_dir(tmp_path, make_records(), [], [{"test": "t::ok", "outcome": "passed"}], demo_note=None)
    assert 'class="cc-failure' not in index.read_text("utf-8")


def test_report_dir_without_attributions_still_triages(tmp_path: Path) -> None:
    index = write_report_dir(tmp_path, make_records(), make_checks(), [])
    page = index.read_text("utf-8")
    assert page.index("test_floor[jpeg-q25]") < page.index("<img")
    assert "No attributions were computed for this test" in page


def test_empty_input(tmp_path: Path) -> None:
    assert accuracy_charts([], []) == []
    index = write_report_dir(tmp_path, [], [], [], demo_note=None)
    assert "no evaluations" in index.read_text("utf-8")


MARKUP = "<img src=x onerror=alert(1)>"
MATH = "$\\frac{1}{$"  # invalid mathtext: matplotlib raises if it ever parses it


def test_user_text_is_escaped_and_never_mathtext(tmp_path: Path) -> None:
    records = [{**r, "model": f"{MARKUP}{MATH}", "dataset": f"imagefolder:/data/{MARKUP}$x$"} for r in make_records()]
    checks = [
        {**c, "model": f"{MARKUP}{MATH}", "dataset": f"imagefolder:/data/{MARKUP}$x$", "test": f"t.py::test[{MARKUP}{MATH}-{c['compression_id']}]"}
        for c in make_checks()
    ]
    failures = [{**f, "test": f"t.py::test[{MARKUP}{MATH}-jpeg-q25]"} for f in make_failures()[:1]]
    failures[0]["attributions"]["items"][0] = {**failures[0]["attributions"]["items"][0], "true_name": MARKUP + MATH}
    skips = [{"test": f"t.py::{MARKUP}", "reason": MARKUP}]
    charts = accuracy_charts(records, checks)
    assert len(charts) == 3 and all(open_png(c.png) for c in charts)
    assert all(re.fullmatch(r"[a-z0-9._-]+\.png", c.filename) for c in charts)
    index = write_report_dir(tmp_path, records, checks, failures, skips=skips)
    for text in (index.read_text("utf-8"), summary_html(records, checks, charts, failures=failures, skips=skips), summary_table_html(records)):
        assert "<img src=x" not in text and "onerror=alert(1)>" not in text
        assert "&lt;img src=x onerror=alert(1)&gt;" in text
    assert all(re.fullmatch(r"[A-Za-z0-9._/-]+", str(p.relative_to(tmp_path))) for p in tmp_path.rglob("*"))


def test_attribution_figure_draws_class_names_literally() -> None:
    import numpy as np

    from pytest_clipcompress.ig.geometry import display_grid
    from pytest_clipcompress.render.attribution_figure import render_attribution_png
    from pytest_clipcompress.render.html import ig_table_html

    info = attribution_info(0, true_name=MATH, pred_uncompressed_name=MATH, pred_compressed_name=MARKUP, compression_id=MATH)
    picture = display_grid(Image.new("RGB", (32, 32), (120, 60, 30)), 32)
    png = render_attribution_png(picture, picture, np.ones((3, 32, 32)), info)
    assert png == render_attribution_png(picture, picture, np.ones((3, 32, 32)), info)
    assert b"matplotlib" not in png
    open_png(png)
    table = ig_table_html([info])
    assert "<img src=x" not in table and "&lt;img src=x onerror=alert(1)&gt;" in table
