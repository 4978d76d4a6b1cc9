"""HTML through Jinja2 templates (package data in ``templates/``) with autoescape on, and a static CSS file.

Like pytest-html, the data is rendered late: the functions here take the plain JSON-form records
and build the page from ``templates/*.html.j2``; every value a user controls (model, dataset, class,
test and folder names) is escaped by the template engine. Only our own package files (the CSS and
the table-sorting script) are inserted as they are.
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup, escape

from ..results.schema import AttributionItem, CheckRecord, EvaluationRecord, FailureRecord, SkipRecord, case_key
from .charts import Chart
from .format import CHANGE_SIGN, DASH, change_text, ci, codec, is_number, num, pct, quantity_label, quantity_value, record_order, sort_value
from .view import (
    STATUS_TEXT,
    Counts,
    SkipLine,
    Triage,
    TriageRow,
    check_status,
    checked_values,
    counts,
    distinct_checks,
    is_gate,
    record_index,
    skip_line,
    triage,
)

__all__ = ["ReportView", "escape_test_id_cell", "render", "report_view", "summary_html", "summary_table_html"]

#: Columns of the evaluations table: (header, "num" or "text").
COLUMNS: tuple[tuple[str, str], ...] = (
    ("model", "text"),
    ("pretrained", "text"),
    ("dataset", "text"),
    ("compression", "text"),
    ("n", "num"),
    ("accuracy", "num"),
    ("95% CI", "num"),
    ("top-5", "num"),
    ("per-class recall", "num"),
    ("uncompressed", "num"),
    ("drop", "num"),
    ("bits/px", "num"),
    ("flipped", "num"),
    ("source", "text"),
)
IG_COLUMNS = (
    "index",
    "true",
    "pred before",
    "pred after",
    "P(true) before",
    "P(true) after",
    "F(input)-F(reference)",
    "sum IG",
    "completeness gap",
    "+mass",
    "-mass",
    "boundary share / area",
)


def _pp(value: Any, sign: bool = True) -> str:
    """A change (``+12.5 pp``) or, unsigned, a drop or floor (``12.5 pp``) in percentage points."""
    if not is_number(value):
        return DASH
    return f"{value * 100:{'+' if sign else ''}.1f} pp"


@functools.cache
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("pytest_clipcompress.render", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(pct=pct, pp=_pp, num=num, sortv=sort_value, b64=lambda data: base64.b64encode(data).decode("ascii"))
    env.globals.update(columns=COLUMNS, ig_columns=IG_COLUMNS, change_sign=CHANGE_SIGN)
    return env


def static_text(name: str) -> str:
    """A file of ``static/`` (package data), e.g. ``report.css``."""
    return resources.files(__package__).joinpath("static").joinpath(name).read_text("utf-8")


def render(template: str, **context: Any) -> str:
    return _environment().get_template(template).render(**context)


@dataclass(frozen=True)
class ReportView:
    """Everything a report page shows, computed once from the records."""

    counts: Counts
    triage: Triage
    skips: SkipLine | None
    evaluations: list[dict[str, Any]]
    checks: list[dict[str, Any]]  # floor checks
    gates: list[dict[str, Any]]  # gate checks, one row per quantity


def report_view(
    records: Iterable[EvaluationRecord], checks: Iterable[CheckRecord], failures: Iterable[FailureRecord] = (), skips: Iterable[SkipRecord] = ()
) -> ReportView:
    records = sorted(records, key=record_order)
    checks = list(checks)
    skips = list(skips)
    return ReportView(
        counts=counts(records, checks, skips),
        triage=triage(records, checks, list(failures)),
        skips=skip_line(skips),
        evaluations=[_evaluation_row(r) for r in records],
        checks=check_rows(records, checks),
        gates=gate_rows(checks),
    )


def _cell(text: str, sort: Any, numeric: bool = False) -> dict[str, Any]:
    return {"text": text, "sort": sort_value(sort), "numeric": numeric}


def _evaluation_row(r: EvaluationRecord) -> dict[str, Any]:
    bounds = ci(r)
    drop, bpp = r.get("drop"), r.get("bits_per_pixel")
    return {
        "codec": codec(r),
        "cells": [
            _cell(str(r.get("model", "")), r.get("model", "")),
            _cell(str(r.get("pretrained", "")), r.get("pretrained", "")),
            _cell(str(r.get("dataset", "")), r.get("dataset", "")),
            _cell(str(r.get("compression_id", "")), r.get("compression_id", "")),
            _cell(num(r.get("n")), r.get("n"), True),
            _cell(pct(r.get("accuracy")), r.get("accuracy"), True),
            _cell(f"{pct(bounds[0])} \u2013 {pct(bounds[1])}" if bounds else DASH, bounds[0] if bounds else None, True),
            _cell(pct(r.get("top5")), r.get("top5"), True),
            _cell(pct(r.get("mean_per_class_recall")), r.get("mean_per_class_recall"), True),
            _cell(pct(r.get("baseline_accuracy")), r.get("baseline_accuracy"), True),
            _cell(_pp(drop, sign=False), drop, True),
            _cell(f"{bpp:.3g}" if is_number(bpp) else DASH, bpp, True),
            _cell(num(r.get("flipped")), r.get("flipped"), True),
            _cell(_source(r), _source(r)),
        ],
    }


def _source(record: EvaluationRecord) -> str:
    """What "uncompressed" is for this record: the pixels as stored, or the decoded files of a format
    (a dash for files written before records said)."""
    stored = record.get("source_format")
    return DASH if stored is None else "pixels" if stored == "pixels" else f"decoded {stored}"


def _in_test_order(checks: Iterable[CheckRecord]) -> list[CheckRecord]:
    return sorted(checks, key=lambda c: (str(c.get("test")), json.dumps(c, sort_keys=True, default=str)))


def check_rows(records: Sequence[EvaluationRecord], checks: Iterable[CheckRecord]) -> list[dict[str, Any]]:
    """Floor checks in test-id order with the measured accuracy and drop and an xfail-aware status."""
    measured = record_index(records)
    rows = []
    for c in _in_test_order(check for check in checks if not is_gate(check)):
        value, _, drop = checked_values(measured.get(case_key(c)), c)
        status = check_status(c)
        rows.append(
            {
                "test": str(c.get("test", "")),
                "model": f"{c.get('model', '')}/{c.get('pretrained', '')}",
                "dataset": str(c.get("dataset", "")),
                "compression_id": str(c.get("compression_id", "")),
                "accuracy": value,
                "drop": drop,
                "metric": str(c.get("metric", "top1")),
                "min_accuracy": c.get("min_accuracy"),
                "max_drop": c.get("max_drop"),
                "status": status,
                "status_text": STATUS_TEXT[status],
            }
        )
    return rows


def gate_rows(checks: Iterable[CheckRecord]) -> list[dict[str, Any]]:
    """Gate checks in test-id order (each once), one row per quantity: both values, the change, its interval, p and the verdict."""
    rows = []
    for c in _in_test_order(distinct_checks(check for check in checks if is_gate(check))):
        changes = c.get("changes") or []
        for index, change in enumerate(changes):
            value, interval = change_text(change)
            rows.append(
                {
                    "first": index == 0,
                    "span": len(changes),
                    "test": str(c.get("test", "")),
                    "model": f"{c['role']} ({c['model']}/{c['pretrained']})" if c["role"] != c["model"] else f"{c['model']}/{c['pretrained']}",
                    "dataset": c["dataset"],
                    "compression_id": c["compression_id"],
                    "reference": f"{c.get('reference', '')}" + (f" ({c['reference_label']})" if c.get("reference_label") else ""),
                    "margin": c.get("max_regression"),
                    "quantity": quantity_label(change, c["compression_id"]),
                    "reference_value": quantity_value(change, "reference"),
                    "candidate_value": quantity_value(change, "candidate"),
                    "change": value,
                    "change_sort": change["change"],
                    "interval": interval,
                    "p": f"{change['p_value']:.3g}",
                    "verdict": change["verdict"],
                    "status": check_status(c),
                }
            )
    return rows


def summary_table_html(records: Iterable[EvaluationRecord]) -> str:
    """An HTML table of every evaluation, pre-sorted and sortable by clicking a header.

    Every cell carries a ``data-sort`` attribute (numbers as plain decimals, so numeric columns
    sort numerically) and every value is escaped. The small inline script that makes the headers
    clickable is idempotent; where scripts cannot run the table still reads well in its pre-sorted
    order (model, dataset, uncompressed first, then each codec from mild to harsh).
    """
    rows = [_evaluation_row(r) for r in sorted(records, key=record_order)]
    return render("table.html.j2", rows=rows, script=Markup(static_text("sort.js")))


def _summary_link_text(row: TriageRow) -> str:
    return f"{row.images} IG image{'s' * (row.images != 1)} on its row in Results" if row.images else "its row in Results"


def summary_html(
    records: Iterable[EvaluationRecord],
    checks: Iterable[CheckRecord],
    charts: Sequence[Chart],
    *,
    demo_note: str | None = None,
    failures: Iterable[FailureRecord] = (),
    skips: Iterable[SkipRecord] = (),
    part: Literal["all", "triage", "details"] = "all",
) -> str:
    """The HTML fragment for pytest-html's summary section: what failed and why, then the charts, then the tables.

    ``part`` picks the triage half (heading, demo note, verdict, failed and xfailed floors, skips)
    or the details half (charts and tables), so the plugin can put the triage before pytest-html's
    own counts and the charts after them.

    pytest-html 4 pastes the strings of ``pytest_html_results_summary`` into its page unescaped, so
    the fragment's ``<style>`` applies and its ``<script>`` (table sorting) runs when the page loads,
    unless the page is served with a Content-Security-Policy that forbids inline scripts; the tables
    are pre-sorted for that case. Attributions are on the failing rows of pytest-html's results
    table (``#results-table``), where the triage rows link.
    """
    view = report_view(records, checks, failures, skips)
    return render(
        "summary.html.j2",
        view=view,
        charts=list(charts),
        demo_note=demo_note,
        show_triage=part != "details",
        show_details=part != "triage",
        link_for=lambda row: "#results-table",
        link_text=_summary_link_text,
        css=Markup(static_text("report.css")),
        script=Markup(static_text("sort.js")),
    )


def ig_rows(items: Iterable[AttributionItem]) -> list[list[str]]:
    """The cells of the Integrated Gradients table, one row per explained image (from its record)."""

    def name(item: AttributionItem, key: str, index: str) -> str:
        return str(item.get(key, item.get(index, DASH)))

    def fmt(value: Any, spec: str) -> str:
        return format(value, spec) if is_number(value) else DASH

    return [
        [
            str(item.get("index", DASH)),
            name(item, "true_name", "label"),
            name(item, "pred_uncompressed_name", "pred_uncompressed"),
            name(item, "pred_compressed_name", "pred_compressed"),
            fmt(item.get("prob_true_uncompressed"), ".3f"),
            fmt(item.get("prob_true_compressed"), ".3f"),
            fmt(item.get("delta_f"), "+.4g"),
            fmt(item.get("sum_attributions"), "+.4g"),
            fmt(item.get("completeness_gap"), ".2g"),
            fmt(item.get("positive_mass"), ".4g"),
            fmt(item.get("negative_mass"), ".4g"),
            f"{fmt(item.get('boundary_share'), '.2f')} / {fmt(item.get('boundary_area_share'), '.2f')}",
        ]
        for item in items
    ]


def ig_table_html(items: Iterable[AttributionItem]) -> str:
    """The Integrated Gradients table of a failing test (escaped)."""
    return render("ig_table.html.j2", rows=ig_rows(items))


def attribution_extra_html(items: Iterable[AttributionItem], summary: str) -> str:
    """The extra on a failing test's pytest-html row: its IG table and one line of totals, all escaped."""
    return render("ig_extra.html.j2", rows=ig_rows(items), summary=summary)


#: The Test cell of pytest-html 4's results table; pytest-html fills in the test id as it is.
PYTEST_HTML_TEST_ID_CELL = '<td class="col-testId">{}</td>'


def escape_test_id_cell(cells: list[Any], test_id: str) -> None:
    """Escape the test id in pytest-html's Test cell, in place, if that cell is still as pytest-html built it.

    pytest-html 4.2 writes the id (a user's parametrize values included) into the cell unescaped
    and its page inserts each cell as HTML, so markup in an id would become live markup. A cell
    another plugin already changed, or one a later pytest-html escapes itself, is left alone, so
    nothing is escaped twice. pytest-html sorts the column by the cell's text, which stays as it was
    wherever the id holds no markup characters.
    """
    raw = PYTEST_HTML_TEST_ID_CELL.format(test_id)
    cells[:] = [PYTEST_HTML_TEST_ID_CELL.format(escape(test_id)) if cell == raw else cell for cell in cells]


def link_functions(anchor_of: Callable[[TriageRow], str]) -> dict[str, Any]:
    """``link_for`` / ``link_text`` for the report folder, whose failure sections have anchors."""

    def text(row: TriageRow) -> str:
        return f"{row.images} IG image{'s' * (row.images != 1)}" if row.images else "details"

    return {"link_for": anchor_of, "link_text": text}
