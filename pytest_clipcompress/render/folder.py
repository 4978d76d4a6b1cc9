"""The ``--clip-report DIR`` folder: ``index.html``, ``report.css``, ``sort.js``, ``charts/*.png`` and ``attributions/*.png``,
and the comparison pages of :mod:`.comparison` (``models.html``, ``baseline.html``), which index.html links.

The page links its files relatively, so the folder can be moved or archived as a whole. Every file
is written atomically, the pictures before the page that links them, and pictures a previous run
left in ``charts/`` or ``attributions/`` are removed afterwards, so the folder always shows one run.
Names and bytes depend only on the records (no times, no absolute paths): the same run gives the
same folder, serial or under pytest-xdist.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from ..files import atomic_write_bytes, atomic_write_text
from ..results.schema import AttributionItem, BreakingPoint, CheckRecord, EvaluationRecord, FailureRecord, SkipRecord
from .charts import accuracy_charts
from .comparison import COMPARISON_PAGES
from .format import num
from .html import check_rows, gate_rows, ig_rows, link_functions, render, report_view, static_text
from .view import failure_anchors

__all__ = ["write_report_dir"]

#: Numbers that depend on the machine's speed; they stay out of the page so it is reproducible.
_TIMINGS = frozenset({"seconds", "total_seconds"})
_PICTURE_FOLDERS = ("charts", "attributions")


def _decode_png(data: Any) -> bytes | None:
    """PNG bytes as records carry them: raw bytes, or base64 text in the JSON form."""
    if isinstance(data, (bytes, bytearray)):
        png = bytes(data)
    elif isinstance(data, str):
        try:
            png = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            return None
    else:
        return None
    return png if png.startswith(b"\x89PNG\r\n\x1a\n") else None


def _caption(item: AttributionItem | None, k: int) -> str:
    if item is None:
        return f"#{k}"
    text = f"#{item['index']} \u00b7 true: {item['true_name']} \u00b7 predicted {item['pred_uncompressed_name']} \u2192 {item['pred_compressed_name']}"
    return text + (f" under {item['compression_id']}" if item["compression_id"] else "") + f" ({item['chosen_as']})"


def _values(mapping: Mapping[str, object]) -> list[tuple[str, str]]:
    return [(str(k).replace("_", " "), num(v)) for k, v in mapping.items() if k not in _TIMINGS]


def figure_path(stem: str, k: int) -> str:
    """Where the folder puts the k-th attribution figure of the test whose anchor stem is ``stem``."""
    return f"attributions/{stem}_{k}.png"


def attribution_figures(test: str, count: int) -> list[str]:
    """A test's attribution figures in the report folder (relative paths), e.g. for JUnit attachment lines."""
    stem = failure_anchors([test])[test].removeprefix("failure-")
    return [figure_path(stem, k) for k in range(count)]


def write_report_dir(
    directory: Path,
    records: Iterable[EvaluationRecord],
    checks: Iterable[CheckRecord],
    failures: Iterable[FailureRecord],
    *,
    demo_note: str | None = None,
    title: str = "pytest-clipcompress report",
    breaking_points: Iterable[BreakingPoint] = (),
    skips: Iterable[SkipRecord] = (),
    comparison_pages: Mapping[str, str] | None = None,
    references: Iterable[EvaluationRecord] = (),
) -> Path:
    """Write the report folder and return the path of its ``index.html``.

    The page opens with what failed and why (one row per broken floor: test, model, dataset,
    compression, measured accuracy and drop against the floor, and a link to the test's section),
    then the charts, then the full tables, then one section per failed or xfailed test with its
    floor checks and Integrated Gradients numbers and pictures. ``failures`` are
    ``{"test", "outcome", "attributions"}`` dicts; ``skips`` are ``{"test", "reason"}`` dicts.
    ``comparison_pages`` are the pages of :func:`.comparison.comparison_pages` (name: HTML), written
    beside the page, which its "Compare:" line links; a comparison page of an earlier run is removed.
    ``references`` (the baseline's evaluations of the same cases) are overlaid on the charts.
    """
    directory = Path(directory)
    records = list(records)
    checks = list(checks)
    failures = [f for f in failures if str(f.get("outcome", "failed")) in ("failed", "xfailed", "error")]
    view = report_view(records, checks, failures, skips)
    written: set[Path] = set()

    def write(relative: str, data: bytes) -> None:
        atomic_write_bytes(directory / relative, data)
        written.add(directory / relative)

    charts = accuracy_charts(records, checks, breaking_points, references)
    for chart in charts:
        write(f"charts/{chart.filename}", chart.png)
    by_test = {f["test"]: f for f in sorted(failures, key=lambda f: (f["test"], f["outcome"]))}
    anchors = failure_anchors(set(view.triage.anchors) | set(by_test))
    sections = _failure_sections(anchors, by_test, check_rows(records, checks), gate_rows(checks), write)
    pages = dict(comparison_pages or {})
    for name in COMPARISON_PAGES:  # before index.html, which links them
        if name in pages:
            atomic_write_text(directory / name, pages[name])
        else:
            (directory / name).unlink(missing_ok=True)
    atomic_write_text(directory / "report.css", static_text("report.css"))
    atomic_write_text(directory / "sort.js", static_text("sort.js"))
    page = render(
        "index.html.j2",
        title=title,
        demo_note=demo_note,
        view=view,
        charts=charts,
        failures=sections,
        comparisons=[(name, text) for name, text in COMPARISON_PAGES.items() if name in pages],
        **link_functions(lambda row: "#" + anchors.get(row.test, "")),
    )
    index = directory / "index.html"
    atomic_write_text(index, page)
    for folder in _PICTURE_FOLDERS:  # pictures of an earlier run that this page no longer shows
        for stale in sorted((directory / folder).glob("*.png")) if (directory / folder).is_dir() else ():
            if stale not in written:
                stale.unlink(missing_ok=True)
    return index


def _failure_sections(
    anchors: dict[str, str],
    by_test: dict[str, FailureRecord],
    all_checks: list[dict[str, Any]],
    all_gates: list[dict[str, Any]],
    write: Callable[[str, bytes], None],
) -> list[dict[str, Any]]:
    """One section per failed or xfailed test: its checks, IG numbers and pictures (written as files)."""
    sections = []
    for test in sorted(anchors):
        failure = by_test.get(test)
        attributions = failure["attributions"] if failure is not None else None
        items = attributions["items"] if attributions else []
        stem = anchors[test].removeprefix("failure-")
        images = []
        for k, encoded in enumerate(attributions["images"] if attributions else []):
            item = items[k] if k < len(items) else None
            png = _decode_png(encoded)
            link = None
            if png is not None:
                link = figure_path(stem, k)
                write(link, png)
            images.append({"link": link, "caption": _caption(item, k), "details": _values(item or {})})
        summary = attributions["summary"] if attributions else None
        statuses = [c["status"] for c in [*all_checks, *all_gates] if c["test"] == test and c["status"] != "passed"]
        outcome = failure["outcome"] if failure else next(iter(statuses), "failed")
        sections.append(
            {
                "test": test,
                "anchor": anchors[test],
                "outcome": "xfailed" if outcome == "xfailed" else "failed",
                "checks": [c for c in all_checks if c["test"] == test],
                "gates": [g for g in all_gates if g["test"] == test],
                "summary": _values(summary) if isinstance(summary, Mapping) else [],
                "ig_rows": ig_rows(items),
                "images": images,
                "has_attributions": bool(items or images),
            }
        )
    return sections
