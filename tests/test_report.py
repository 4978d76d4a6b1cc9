"""Charts and HTML reports from synthetic records, checks and failures (no model, no plugin fixtures)."""

from __future__ import annotations

import base64
import io
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from pytest_clipcompress.report import Chart, accuracy_charts, safe_name, summary_html, summary_table_html, write_report_dir

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
        "flipped": int(round((baseline - accuracy) * N)),
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
        {"test": "tests/test_x.py::test_floor[jpeg-q75]", **base, "compression_id": "jpeg-q75", "min_accuracy": 0.8, "max_drop": None, "passed": True},
        {"test": "tests/test_x.py::test_floor[jpeg-q25]", **base, "compression_id": "jpeg-q25", "min_accuracy": 0.8, "max_drop": None, "passed": False},
        {"test": "tests/test_x.py::test_drop[jpeg-q50]", **base, "compression_id": "jpeg-q50", "min_accuracy": None, "max_drop": 0.15, "passed": True},
        {"test": "tests/test_x.py::test_j2k[jpeg2000-r160]", **base, "compression_id": "jpeg2000-r160", "min_accuracy": 0.6, "max_drop": None, "passed": False},
    ]


def png_b64(colour: tuple[int, int, int]) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (24, 12), colour).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def make_failures() -> list[dict[str, Any]]:
    item = {
        "index": 7, "label": 3, "true_name": "cat", "pred_uncompressed_name": "cat", "pred_compressed_name": "<dog>",
        "prob_true_uncompressed": 0.81, "prob_true_compressed": 0.2, "delta_f": 1.4, "sum_attributions": 1.38,
        "completeness_gap": 0.01, "positive_mass": 2.0, "negative_mass": 0.6, "boundary_share": 0.4, "boundary_area_share": 0.23,
    }
    return [
        {
            "test": "tests/test_x.py::test_floor[jpeg-q25]",
            "outcome": "failed",
            "attributions": {
                "items": [item, {**item, "index": 9}],
                "images": [png_b64((200, 30, 30)), png_b64((30, 30, 200))],
                "table_html": '<table class="clip-ig"><thead><tr><th>index</th></tr></thead><tbody><tr><td>7</td></tr></tbody></table>',
                "summary": {"count": 2, "mean_completeness_gap": 0.01, "mean_boundary_share": 0.4},
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


@pytest.fixture(scope="module")
def charts() -> list[Chart]:
    return accuracy_charts(make_records(), make_checks())


def test_one_chart_per_model_dataset_codec(charts: list[Chart]) -> None:
    assert [c.filename for c in charts] == ["vit-b-32_openai_cifar10_jpeg.png", "vit-b-32_openai_cifar10_jpeg2000.png"]
    assert charts[0].title == "ViT-B/32/openai \u00b7 cifar10 \u00b7 jpeg (n=200)"
    for chart in charts:
        image = open_png(chart.png)
        assert image.size == (900, 340)


def test_charts_are_deterministic(charts: list[Chart]) -> None:
    again = accuracy_charts(make_records(), make_checks())
    assert [c.png for c in again] == [c.png for c in charts]
    # Without checks the picture changes (no floor lines) but stays valid.
    plain = accuracy_charts(make_records(), [])
    assert plain[0].png != charts[0].png
    open_png(plain[0].png)


def test_charts_split_models_and_datasets() -> None:
    records = make_records() + make_records("RN50") + [record("webp", 0.8, 1.0, dataset="stl10", quality=50)]
    names = [c.filename for c in accuracy_charts(records, [])]
    assert names == sorted(set(names))
    assert len(names) == 5  # RN50 x {jpeg, jpeg2000}, ViT x {jpeg, jpeg2000}, ViT x stl10 x webp


def test_chart_file_names_stay_unique() -> None:
    records = [record("jpeg", 0.8, 1.0, model="ViT-B/32", quality=50), record("jpeg", 0.7, 1.0, model="vit-b-32", quality=50)]
    names = [c.filename for c in accuracy_charts(records)]
    assert len(set(names)) == 2
    assert all(re.fullmatch(r"[a-z0-9._-]+\.png", name) for name in names)


def test_failed_floor_is_the_one_broken() -> None:
    from pytest_clipcompress.report import _floors

    rows = [record("jpeg", 0.8, 1.0, quality=50)]  # drop 10 pp
    check = {"model": MODEL, "pretrained": "openai", "dataset": "cifar10", "compression_id": "jpeg-q50", "passed": False}
    floors = _floors(rows, [{**check, "min_accuracy": 0.85, "max_drop": 0.2}])
    assert [(f["kind"], round(f["value"], 6), f["failed"]) for f in floors] == [("max_drop", 0.7, False), ("min_accuracy", 0.85, True)]
    floors = _floors(rows, [{**check, "min_accuracy": 0.5, "max_drop": 0.05}])
    assert [(f["kind"], f["failed"]) for f in floors] == [("max_drop", True), ("min_accuracy", False)]
    assert _floors(rows, [{**check, "compression_id": "jpeg-q10", "min_accuracy": 0.5, "max_drop": None}]) == []


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
    records = make_records() + [record("jpeg", 0.5, 0.5, model="<script>alert(1)</script>", quality=10)]
    table = summary_table_html(records)
    assert "<script>alert(1)" not in table
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in table
    body = table.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    assert body.count("<tr") == len(records)
    assert 'data-sort="0.88"' in body  # numeric sort value of jpeg-q75's accuracy
    assert 'data-type="num"' in table and 'class="cc-table cc-sortable"' in table
    # Pre-sorted: the uncompressed row comes first within a model, then each codec from mild to harsh.
    ordered = summary_table_html(make_records()).split("<tbody>", 1)[1]
    vit = [m.group(1) for m in re.finditer(r'<td data-sort="([^"]*)">', ordered)][3::4]
    assert vit[:5] == ["none", "jpeg-q100", "jpeg-q90-s444", "jpeg-q90-s420", "jpeg-q75"]


def test_summary_html_embeds_charts_and_note(charts: list[Chart]) -> None:
    fragment = summary_html(make_records(), make_checks(), charts, demo_note="bundled demo model; pass --clip-model <name>")
    assert fragment.count('src="data:image/png;base64,') == len(charts)
    assert "bundled demo model; pass --clip-model &lt;name&gt;" in fragment
    assert "2 failed" in fragment
    assert 'class="cc-demo-note"' not in summary_html([], [], [], demo_note=None)


def test_write_report_dir(tmp_path: Path) -> None:
    index = write_report_dir(tmp_path / "report", make_records(), make_checks(), make_failures(), demo_note="demo <model>")
    assert index == tmp_path / "report" / "index.html"
    page = index.read_text("utf-8")
    files = sorted(str(p.relative_to(index.parent)) for p in index.parent.rglob("*") if p.is_file())
    assert files == [
        "attributions/tests-test_x.py-test_floor-jpeg-q25_0.png",
        "attributions/tests-test_x.py-test_floor-jpeg-q25_1.png",
        "charts/vit-b-32_openai_cifar10_jpeg.png",
        "charts/vit-b-32_openai_cifar10_jpeg2000.png",
        "index.html",
    ]  # no temporary files left behind
    parser = Links()
    parser.feed(page)
    relative = [link for link in parser.links if not link.startswith("#")]
    assert relative and all((index.parent / link).is_file() for link in relative)
    anchors = {link[1:] for link in parser.links if link.startswith("#")}
    assert all(f'id="{anchor}"' in page for anchor in anchors)
    for link in relative:
        if link.endswith(".png"):
            open_png((index.parent / link).read_bytes())
    assert "demo &lt;model&gt;" in page
    assert page.count('class="cc-failure') == 2
    assert "&lt;dog&gt;" in page and "<dog>" not in page
    assert '<table class="clip-ig">' in page
    assert "mean completeness gap" in page

    again = write_report_dir(tmp_path / "again", make_records(), make_checks(), make_failures(), demo_note="demo <model>")
    for name in files:
        assert (again.parent / name).read_bytes() == (index.parent / name).read_bytes()


def test_failures_section_only_for_failures(tmp_path: Path) -> None:
    index = write_report_dir(tmp_path, make_records(), [], [], demo_note=None)
    page = index.read_text("utf-8")
    assert 'class="cc-failure' not in page and 'id="failures"' not in page and 'class="cc-demo-note"' not in page
    assert not (tmp_path / "attributions").exists()
    # Passed tests in the failures list are ignored.
    index = write_report_dir(tmp_path, make_records(), [], [{"test": "t::ok", "outcome": "passed"}], demo_note=None)
    assert 'class="cc-failure' not in index.read_text("utf-8")


def test_empty_input(tmp_path: Path) -> None:
    assert accuracy_charts([], []) == []
    index = write_report_dir(tmp_path, [], [], [], demo_note=None)
    assert "no evaluations" in index.read_text("utf-8")
