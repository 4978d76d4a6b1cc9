"""Charts and HTML reports of the evaluation records, the floors the tests checked and the failures.

Everything here is pytest-free and works on the JSON-able data the plugin collects:

* ``records``: evaluation dicts as made by :meth:`EvalResult.to_record`;
* ``checks``: ``{"test", "model", "pretrained", "dataset", "compression_id", "min_accuracy",
  "max_drop", "passed"}`` dicts, one per floor a test asserted;
* ``failures``: ``{"test", "outcome", "attributions": {"items", "images", "table_html", "summary"}}``
  dicts, one per failed or xfailed test.

Charts are drawn with :class:`matplotlib.figure.Figure` and the Agg canvas only (never pyplot), so
they can be made from any thread without a display. All output is deterministic: the same input
gives the same file names and the same bytes (PNG files carry no software tag or timestamp and the
HTML carries no date).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import html
import io
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .compression import CODECS, milder_when_higher
from .reporting import group_records
from .results import atomic_write_bytes, atomic_write_text

__all__ = ["Chart", "accuracy_charts", "summary_table_html", "summary_html", "write_report_dir", "safe_name"]

_DPI = 100
_FIGSIZE = (9.0, 3.4)
_SERIES_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
_FLOOR_PASSED = "#555555"
_FLOOR_FAILED = "#d62728"

_SORT_SCRIPT = """(function () {
  var tables = document.querySelectorAll("table.cc-sortable:not([data-cc-ready])");
  Array.prototype.forEach.call(tables, function (table) {
    table.setAttribute("data-cc-ready", "1");
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, column) {
      th.tabIndex = 0;
      function sort() {
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        Array.prototype.forEach.call(heads, function (other) { other.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        var numeric = th.getAttribute("data-type") === "num";
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = a.cells[column].getAttribute("data-sort"), y = b.cells[column].getAttribute("data-sort");
          var order = numeric ? (parseFloat(x) - parseFloat(y)) || 0 : x.localeCompare(y, undefined, {numeric: true});
          return ascending ? order : -order;
        });
        rows.forEach(function (row) { body.appendChild(row); });
      }
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (event) { if (event.key === "Enter") { sort(); } });
    });
  });
})();"""

# Class names all start with ``cc-``: pytest-html's own script binds clicks to every ``.sortable``
# in the page and its stylesheet hides ``.hidden``, so generic names would clash when embedded.
_CSS = """
.cc-report { font-family: Helvetica, Arial, sans-serif; font-size: 13px; color: #222; }
.cc-report h2 { margin: 0.6em 0 0.3em; }
.cc-demo-note { border: 2px solid #e0a800; background: #fff6d6; color: #4d3b00; padding: 8px 12px;
  margin: 8px 0 12px; border-radius: 4px; font-size: 14px; font-weight: bold; }
.cc-counts { margin: 4px 0 10px; }
.cc-counts .cc-bad { color: #c62828; font-weight: bold; }
.cc-charts { display: flex; flex-wrap: wrap; gap: 10px; }
.cc-charts figure { margin: 0; }
.cc-charts img { width: 900px; max-width: 100%; height: auto; border: 1px solid #ddd; }
.cc-table-wrap { overflow-x: auto; margin: 8px 0 16px; }
table.cc-table { border-collapse: collapse; font-size: 12px; }
table.cc-table th, table.cc-table td { border: 1px solid #d0d0d0; padding: 3px 7px; text-align: left; white-space: nowrap; }
table.cc-table td.cc-num { text-align: right; font-variant-numeric: tabular-nums; }
table.cc-table thead th { background: #eef1f5; position: sticky; top: 0; }
table.cc-sortable thead th { cursor: pointer; user-select: none; }
table.cc-sortable thead th[aria-sort="ascending"]::after { content: " \\25B2"; font-size: 9px; }
table.cc-sortable thead th[aria-sort="descending"]::after { content: " \\25BC"; font-size: 9px; }
table.cc-table tbody tr:nth-child(even) { background: #f8f9fb; }
table.cc-table tr.cc-row-none td { color: #555; font-style: italic; }
table.cc-table td.cc-fail { color: #c62828; font-weight: bold; }
table.cc-table td.cc-pass { color: #2e7d32; }
"""

_PAGE_CSS = """
body { margin: 0 auto; max-width: 1400px; padding: 12px 24px 40px; background: #fff; }
.cc-report h1 { font-size: 22px; margin: 8px 0; }
.cc-report h3 { font-size: 15px; margin: 0 0 6px; word-break: break-all; }
.cc-report nav a { margin-right: 14px; }
.cc-failure { border: 1px solid #e4b4b4; border-left: 5px solid #c62828; border-radius: 4px; padding: 10px 14px; margin: 14px 0; }
.cc-failure.cc-xfailed { border-color: #e8d29a; border-left-color: #e0a800; }
.cc-badge { display: inline-block; padding: 1px 7px; border-radius: 9px; font-size: 11px; font-weight: bold;
  color: #fff; background: #c62828; vertical-align: middle; margin-right: 6px; }
.cc-xfailed .cc-badge { background: #b58900; }
.cc-images { display: flex; flex-wrap: wrap; gap: 12px; }
.cc-images figure { margin: 0; max-width: 760px; }
.cc-images img { max-width: 100%; height: auto; border: 1px solid #ddd; }
.cc-images figcaption { font-size: 12px; margin-top: 2px; }
.cc-images details { font-size: 11px; color: #444; }
table.clip-ig { border-collapse: collapse; font-size: 12px; margin: 6px 0 10px; }
table.clip-ig th, table.clip-ig td { border: 1px solid #d0d0d0; padding: 3px 6px; text-align: right; }
table.clip-ig th { background: #eef1f5; }
.cc-muted { color: #666; }
"""


@dataclass(frozen=True)
class Chart:
    """One rendered chart: its title, a safe deterministic file name and the PNG bytes."""

    title: str
    filename: str
    png: bytes


# --- names ------------------------------------------------------------------------------------


def safe_name(text: str, *, max_length: int = 80, lower: bool = True, underscores: bool = False) -> str:
    """A file-name-safe version of ``text``: ``[a-z0-9.-]`` runs joined by ``-``, never empty or hidden.

    ``underscores`` keeps ``_`` too (test ids read better); otherwise ``_`` is free to join name
    parts. Long names are cut and suffixed with a short hash of the full text so they stay distinct.
    """
    name = str(text).lower() if lower else str(text)
    name = re.sub(r"[^A-Za-z0-9._]+" if underscores else r"[^A-Za-z0-9.]+", "-", name).strip("-._")
    name = re.sub(r"\.{2,}", ".", name) or "x"
    if len(name) > max_length:
        name = f"{name[:max_length].rstrip('-.')}-{_short_hash(text)}"
    return name


def _short_hash(value: Any) -> str:
    return hashlib.sha1(repr(value).encode("utf-8")).hexdigest()[:8]


def _unique(name: str, key: Any, used: set[str]) -> str:
    """``name``, or ``name`` with a hash of ``key`` when another item already took it."""
    stem, dot, suffix = name.rpartition(".")
    candidate = name
    if candidate in used:
        candidate = f"{stem}-{_short_hash(key)}{dot}{suffix}" if dot else f"{name}-{_short_hash(key)}"
    counter = 2
    while candidate in used:  # pragma: no cover - a hash collision
        candidate = f"{stem}-{_short_hash(key)}-{counter}{dot}{suffix}"
        counter += 1
    used.add(candidate)
    return candidate


# --- formatting -------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _pct(value: Any, digits: int = 1) -> str:
    return f"{value * 100:.{digits}f}%" if _is_number(value) else "\u2014"


def _num(value: Any) -> str:
    """A compact, generic rendering of a number (or anything else) for tables."""
    if value is None:
        return "\u2014"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.4g}"
    return str(value)


def _sort_value(value: Any) -> str:
    """A ``data-sort`` value: numbers as plain decimal text (``parseFloat`` reads it), else text."""
    if _is_number(value):
        return repr(float(value))
    if isinstance(value, float):  # nan/inf sort last
        return "Infinity"
    return "" if value is None else str(value)


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _ci(record: dict[str, Any]) -> tuple[float, float] | None:
    ci = record.get("ci95")
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(_is_number(v) for v in ci):
        return float(ci[0]), float(ci[1])
    return None


def _compression_params(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in (record.get("compression") or {}).items() if k != "codec"}


def _codec(record: dict[str, Any]) -> str:
    return str((record.get("compression") or {}).get("codec", "none"))


# --- charts -----------------------------------------------------------------------------------


def _primary_param(codec: str, rows: Sequence[dict[str, Any]]) -> tuple[str | None, str]:
    """The parameter for the first panel: the codec's known one, else its first numeric parameter."""
    spec = CODECS.get(codec)
    if spec is not None and spec.primary_param is not None:
        return spec.primary_param, spec.axis_label(spec.primary_param)
    names = sorted({k for r in rows for k, v in _compression_params(r).items() if _is_number(v)})
    if names:
        return names[0], f"{codec} {names[0]}"
    return None, f"{codec} setting (harsher \u2192)"


def _series(rows: Sequence[dict[str, Any]], primary: str | None) -> list[tuple[str, list[dict[str, Any]]]]:
    """Rows split by everything but the primary parameter: other codec parameters, then n/seed/templates if they vary."""
    varying = [field for field in ("n", "seed", "templates") if len({json.dumps(r.get(field), sort_keys=True) for r in rows}) > 1]
    others = sorted({k for row in rows for k in _compression_params(row) if k != primary})
    series: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        params = _compression_params(row)
        parts = [f"{k}={params[k]}" if k in params else f"{k}=default" for k in others]
        parts += [f"{field}={row.get(field)}" for field in varying]
        series.setdefault(", ".join(parts), []).append(row)
    return sorted(series.items())


def _floors(rows: Sequence[dict[str, Any]], checks: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Distinct floor lines for one group: ``{"kind", "value", "label", "failed"}``, in a stable order."""
    model, pretrained, dataset = rows[0]["model"], rows[0]["pretrained"], rows[0]["dataset"]
    baseline_by_id: dict[str, float] = {}
    row_by_id: dict[str, dict[str, Any]] = {}
    for row in rows:
        baseline_by_id.setdefault(row["compression_id"], row.get("baseline_accuracy"))
        row_by_id.setdefault(row["compression_id"], row)
    lines: dict[tuple[str, float], dict[str, Any]] = {}
    for check in checks:
        if (check.get("model"), check.get("pretrained"), check.get("dataset")) != (model, pretrained, dataset):
            continue
        compression_id = check.get("compression_id")
        if compression_id not in baseline_by_id:
            continue
        failed = not check.get("passed", True)
        entries: list[tuple[str, float, str, bool]] = []
        minimum, max_drop = check.get("min_accuracy"), check.get("max_drop")
        row = row_by_id[compression_id]
        accuracy, drop = row.get("accuracy"), row.get("drop")
        if _is_number(minimum):
            violated = not (_is_number(accuracy) and accuracy >= minimum)
            entries.append(("min_accuracy", float(minimum), f"min accuracy {_pct(minimum)}", violated))
        baseline = baseline_by_id[compression_id]
        if _is_number(max_drop) and _is_number(baseline):
            value = float(baseline) - float(max_drop)
            violated = not (_is_number(drop) and drop <= max_drop)
            entries.append(("max_drop", value, f"max drop {max_drop * 100:.3g} pp (\u2265 {_pct(value)})", violated))
        # A failed check with both floors: blame the floor the record breaks (both if it is unclear).
        blame_all = not any(violated for *_, violated in entries)
        for kind, value, label, violated in entries:
            failed_here = failed and (violated or blame_all)
            line = lines.setdefault((kind, round(value, 9)), {"kind": kind, "value": value, "label": label, "failed": False})
            line["failed"] = line["failed"] or failed_here
    return [lines[key] for key in sorted(lines)]


def _failed_ids(rows: Sequence[dict[str, Any]], checks: Iterable[dict[str, Any]]) -> set[str]:
    model, pretrained, dataset = rows[0]["model"], rows[0]["pretrained"], rows[0]["dataset"]
    return {
        c.get("compression_id")
        for c in checks
        if (c.get("model"), c.get("pretrained"), c.get("dataset")) == (model, pretrained, dataset) and not c.get("passed", True)
    }


def _render_chart(
    key: tuple[str, str, str, str], rows: list[dict[str, Any]], checks: Sequence[dict[str, Any]], title: str, breaking_points: Sequence[dict[str, Any]] = ()
) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter, PercentFormatter

    codec = key[3]
    primary, primary_label = _primary_param(codec, rows)
    series = _series(rows, primary)
    floors = _floors(rows, checks)
    failed_ids = _failed_ids(rows, checks)
    # Categorical fallback for codecs without a numeric parameter: positions from mild to harsh.
    positions = {cid: i for i, cid in enumerate(dict.fromkeys(r["compression_id"] for r in rows))}

    def x_param(row: dict[str, Any]) -> float:
        value = _compression_params(row).get(primary) if primary else None
        return float(value) if _is_number(value) else float(positions[row["compression_id"]])

    fig = Figure(figsize=_FIGSIZE, dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax_param, ax_bpp = fig.subplots(1, 2, sharey=True)
    handles: dict[str, Any] = {}
    y_values: list[float] = []

    for index, (label, points) in enumerate(series):
        colour = _SERIES_COLOURS[index % len(_SERIES_COLOURS)]
        name = label or "accuracy"
        for ax, xs in ((ax_param, [x_param(p) for p in points]), (ax_bpp, [p.get("bits_per_pixel") for p in points])):
            pairs = sorted(
                ((float(x), p) for x, p in zip(xs, points) if _is_number(x) and (ax is ax_param or x > 0) and _is_number(p.get("accuracy"))),
                key=lambda pair: pair[0],
            )
            if not pairs:
                continue
            x = [pair[0] for pair in pairs]
            y = [float(pair[1]["accuracy"]) for pair in pairs]
            low = [max(0.0, acc - (_ci(p) or (acc, acc))[0]) for acc, (_, p) in zip(y, pairs)]
            high = [max(0.0, (_ci(p) or (acc, acc))[1] - acc) for acc, (_, p) in zip(y, pairs)]
            y_values += [v - d for v, d in zip(y, low)] + [v + d for v, d in zip(y, high)]
            container = ax.errorbar(
                x, y, yerr=[low, high], color=colour, marker="o", markersize=4.5, linewidth=1.6, capsize=3, elinewidth=1, label=name
            )
            handles.setdefault(name, container)
            bad = [(xv, yv) for xv, yv, (_, p) in zip(x, y, pairs) if p["compression_id"] in failed_ids]
            if bad:
                marker = ax.scatter(
                    [b[0] for b in bad], [b[1] for b in bad], s=110, facecolors="none", edgecolors=_FLOOR_FAILED, linewidths=1.8, zorder=5,
                    label="failed check",
                )
                handles.setdefault("failed check", marker)
            if ax is ax_bpp:
                for (xv, p), yv in zip(pairs, y):
                    value = _compression_params(p).get(primary) if primary else None
                    text = _point_label(primary, value) if _is_number(value) else p["compression_id"]
                    ax.annotate(text, (xv, yv), textcoords="offset points", xytext=(4, 2), ha="left", va="bottom", fontsize=6.5, color=colour)

    baselines = sorted({round(float(r["baseline_accuracy"]), 9) for r in rows if _is_number(r.get("baseline_accuracy"))})
    for value in baselines:
        label = f"uncompressed {_pct(value)}"
        for ax in (ax_param, ax_bpp):
            line = ax.axhline(value, color="#333333", linestyle="--", linewidth=1.1, label=label, zorder=1)
        handles.setdefault(label, line)
        y_values.append(value)
    for floor in floors:
        colour = _FLOOR_FAILED if floor["failed"] else _FLOOR_PASSED
        label = f"floor: {floor['label']}" + (" \u2014 FAILED" if floor["failed"] else "")
        style = ":" if floor["kind"] == "min_accuracy" else "-."
        for ax in (ax_param, ax_bpp):
            line = ax.axhline(floor["value"], color=colour, linestyle=style, linewidth=1.4 if floor["failed"] else 1.1, label=label, zorder=1)
        handles.setdefault(label, line)
        y_values.append(floor["value"])

    for point in breaking_points:
        if point.get("breaking_value") is None or point.get("param") != primary:
            continue
        label = f"breaking point {_point_label(primary, point['breaking_value'])} ({point['metric']} floor {point['floor']:g})"
        handles.setdefault(label, ax_param.axvline(float(point["breaking_value"]), color=_FLOOR_FAILED, linestyle="--", linewidth=1.2, label=label))

    # Axes: both read "harsher to the right".
    x_params = sorted({x_param(r) for r in rows})
    if primary is None:
        ax_param.xaxis.set_major_locator(FixedLocator(list(positions.values())))
        ax_param.xaxis.set_major_formatter(FuncFormatter(lambda v, _: next((c for c, i in positions.items() if i == round(v)), "")))
    else:
        harsher_when_lower = milder_when_higher(codec, primary)
        if not harsher_when_lower and x_params and min(x_params) > 0 and max(x_params) / min(x_params) >= 10:
            ax_param.set_xscale("log")
            ax_param.xaxis.set_minor_formatter(NullFormatter())
        if 0 < len(x_params) <= 12:
            ax_param.xaxis.set_major_locator(FixedLocator(x_params))
        ax_param.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        if harsher_when_lower:
            ax_param.invert_xaxis()
    ax_param.set_xlabel(primary_label, fontsize=8.5)

    ax_bpp.set_xscale("log")
    ax_bpp.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax_bpp.xaxis.set_minor_formatter(NullFormatter())
    ax_bpp.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax_bpp.invert_xaxis()
    ax_bpp.set_xlabel("bits per pixel (log; fewer bits \u2192)", fontsize=8.5)

    ax_param.set_ylabel("zero-shot accuracy", fontsize=8.5)
    ax_param.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    if y_values:
        low, high = min(y_values), max(y_values)
        pad = max(0.02, (high - low) * 0.12)
        ax_param.set_ylim(max(-0.02, low - pad), min(1.03, high + pad))
    for ax in (ax_param, ax_bpp):
        ax.grid(True, which="major", color="#e5e5e5", linewidth=0.8)
        ax.set_axisbelow(True)
        ax.tick_params(labelsize=7.5)
        ax.margins(x=0.08)
    fig.suptitle(title, fontsize=10)
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="outside right upper", fontsize=7, frameon=False)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI, metadata={"Software": None})
    return buffer.getvalue()


def _point_label(name: str | None, value: float) -> str:
    if name == "quality":
        return f"q{value:g}"
    if name == "rate":
        return f"{value:g}:1"
    return f"{name}={value:g}"


def _chart_title(key: tuple[str, str, str, str], rows: Sequence[dict[str, Any]]) -> str:
    model, pretrained, dataset, codec = key
    sizes = "/".join(str(n) for n in sorted({r.get("n") for r in rows}, key=lambda n: (not isinstance(n, int), str(n) if not isinstance(n, int) else n)))
    return f"{model}/{pretrained} \u00b7 {dataset} \u00b7 {codec} (n={sizes})"


def accuracy_charts(
    records: Iterable[dict[str, Any]], checks: Iterable[dict[str, Any]] = (), breaking_points: Iterable[dict[str, Any]] = ()
) -> list[Chart]:
    """One chart per model x pretrained x dataset x compressing codec, in a stable order.

    Each chart has two panels: accuracy against the codec's parameter (quality, drawn from high to
    low so harsher is to the right; the ratio for JPEG 2000) and accuracy against bits per pixel
    (log scale, fewer bits to the right). Error bars are the 95% intervals, the dashed line is the
    uncompressed accuracy and the floors the tests checked are drawn as horizontal lines, in red
    where a check failed (the failing points are ringed in red too). Records that differ in other
    parameters (e.g. JPEG subsampling) become separate, labelled series. ``none`` records (the
    uncompressed reference) get no chart of their own: they are each chart's dashed line. A
    breaking point found by ``clip_breaking_point`` is a dashed vertical line at its setting.
    """
    checks = list(checks)
    breaking_points = list(breaking_points)
    charts: list[Chart] = []
    used: set[str] = set()
    for key, rows in group_records(records).items():
        if key[3] == "none":
            continue
        title = _chart_title(key, rows)
        filename = _unique("_".join(safe_name(part, max_length=40) for part in key) + ".png", key, used)
        points = [p for p in breaking_points if (p.get("model"), p.get("pretrained"), p.get("dataset"), p.get("codec")) == key]
        charts.append(Chart(title=title, filename=filename, png=_render_chart(key, rows, checks, title, points)))
    return charts


# --- tables -----------------------------------------------------------------------------------

_COLUMNS: tuple[tuple[str, str], ...] = (
    ("model", "text"), ("pretrained", "text"), ("dataset", "text"), ("compression", "text"), ("n", "num"),
    ("accuracy", "num"), ("95% CI", "num"), ("uncompressed", "num"), ("drop", "num"), ("bits/px", "num"), ("flipped", "num"),
)


def _record_order(record: dict[str, Any]) -> tuple:
    """Model, dataset, then the uncompressed reference first and each codec from mild to harsh."""
    bpp = record.get("bits_per_pixel")
    return (
        str(record.get("model")), str(record.get("pretrained")), str(record.get("dataset")),
        _codec(record) != "none", _codec(record), -(bpp if _is_number(bpp) else 0.0), str(record.get("compression_id")),
        json.dumps([record.get("n"), record.get("seed"), record.get("templates")], sort_keys=True, default=str),
    )


def _cell(text: str, sort: Any, *, numeric: bool = False, extra: str = "") -> str:
    classes = " ".join(c for c in ("cc-num" if numeric else "", extra) if c)
    class_attr = f' class="{classes}"' if classes else ""
    return f'<td{class_attr} data-sort="{_esc(_sort_value(sort))}">{_esc(text)}</td>'


def summary_table_html(records: Iterable[dict[str, Any]]) -> str:
    """An HTML table of every evaluation, pre-sorted and sortable by clicking a header.

    Every cell carries a ``data-sort`` attribute (numbers as plain decimals, so numeric columns
    sort numerically) and every value is escaped. The small inline script that makes the headers
    clickable is idempotent; where scripts cannot run the table still reads well in its pre-sorted
    order (model, dataset, uncompressed first, then each codec from mild to harsh).
    """
    rows = sorted(records, key=_record_order)
    head = "".join(f'<th data-type="{kind}" scope="col">{_esc(name)}</th>' for name, kind in _COLUMNS)
    body: list[str] = []
    for r in rows:
        ci = _ci(r)
        drop = r.get("drop")
        bpp = r.get("bits_per_pixel")
        cells = [
            _cell(r.get("model", ""), r.get("model", "")),
            _cell(r.get("pretrained", ""), r.get("pretrained", "")),
            _cell(r.get("dataset", ""), r.get("dataset", "")),
            _cell(r.get("compression_id", ""), r.get("compression_id", "")),
            _cell(_num(r.get("n")), r.get("n"), numeric=True),
            _cell(_pct(r.get("accuracy")), r.get("accuracy"), numeric=True),
            _cell(f"{_pct(ci[0])} \u2013 {_pct(ci[1])}" if ci else "\u2014", ci[0] if ci else None, numeric=True),
            _cell(_pct(r.get("baseline_accuracy")), r.get("baseline_accuracy"), numeric=True),
            _cell(f"{drop * 100:+.1f} pp" if _is_number(drop) else "\u2014", drop, numeric=True),
            _cell(f"{bpp:.3g}" if _is_number(bpp) else "\u2014", bpp, numeric=True),
            _cell(_num(r.get("flipped")), r.get("flipped"), numeric=True),
        ]
        row_class = ' class="cc-row-none"' if _codec(r) == "none" else ""
        body.append(f"<tr{row_class}>{''.join(cells)}</tr>")
    if not body:
        body.append(f'<tr><td colspan="{len(_COLUMNS)}" class="cc-muted" data-sort="">no evaluations</td></tr>')
    return (
        '<div class="cc-table-wrap"><table class="cc-table cc-sortable" title="click a header to sort">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
        f"<script>{_SORT_SCRIPT}</script>"
    )


def _checks_table_html(checks: Sequence[dict[str, Any]]) -> str:
    head = "".join(
        f'<th data-type="{kind}" scope="col">{name}</th>'
        for name, kind in (("test", "text"), ("model", "text"), ("dataset", "text"), ("compression", "text"),
                           ("min accuracy", "num"), ("max drop", "num"), ("result", "text"))
    )
    rows = []
    for c in sorted(checks, key=lambda c: (str(c.get("test")), json.dumps(c, sort_keys=True, default=str))):
        passed = bool(c.get("passed", True))
        max_drop = c.get("max_drop")
        rows.append(
            "<tr>"
            + _cell(c.get("test", ""), c.get("test", ""))
            + _cell(f"{c.get('model', '')}/{c.get('pretrained', '')}", f"{c.get('model', '')}/{c.get('pretrained', '')}")
            + _cell(c.get("dataset", ""), c.get("dataset", ""))
            + _cell(c.get("compression_id", ""), c.get("compression_id", ""))
            + _cell(_pct(c.get("min_accuracy")), c.get("min_accuracy"), numeric=True)
            + _cell(f"{max_drop * 100:.3g} pp" if _is_number(max_drop) else "\u2014", max_drop, numeric=True)
            + _cell("passed" if passed else "FAILED", "1" if passed else "0", extra="cc-pass" if passed else "cc-fail")
            + "</tr>"
        )
    return f'<div class="cc-table-wrap"><table class="cc-table cc-sortable"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def _counts_html(records: Sequence[dict[str, Any]], checks: Sequence[dict[str, Any]]) -> str:
    failed = sum(1 for c in checks if not c.get("passed", True))
    models = len({(r.get("model"), r.get("pretrained")) for r in records})
    datasets = len({r.get("dataset") for r in records})
    parts = [f"{len(records)} evaluation{'s' * (len(records) != 1)} of {models} model{'s' * (models != 1)} on {datasets} dataset{'s' * (datasets != 1)}"]
    if checks:
        bad = f'<span class="cc-bad">{failed} failed</span>' if failed else "all passed"
        parts.append(f"{len(checks)} floor check{'s' * (len(checks) != 1)}, {bad}")
    return f'<p class="cc-counts">{"; ".join(parts)}.</p>'


def _demo_note_html(demo_note: str | None) -> str:
    return f'<div class="cc-demo-note" role="note">\u26a0 {_esc(demo_note)}</div>' if demo_note else ""


def summary_html(
    records: Iterable[dict[str, Any]],
    checks: Iterable[dict[str, Any]],
    charts: Sequence[Chart],
    *,
    demo_note: str | None = None,
) -> str:
    """The HTML fragment for pytest-html's summary section: heading, demo note, charts (inline PNG) and table.

    pytest-html 4 pastes the strings of ``pytest_html_results_summary`` into its page unescaped, so
    the fragment's ``<style>`` applies and its ``<script>`` (table sorting) runs when the page loads,
    unless the page is served with a Content-Security-Policy that forbids inline scripts (e.g.
    Jenkins' default); the table is pre-sorted for that case.
    """
    records = list(records)
    checks = list(checks)
    images = "".join(
        f'<figure><img alt="{_esc(chart.title)}" title="{_esc(chart.title)}" '
        f'src="data:image/png;base64,{base64.b64encode(chart.png).decode("ascii")}"></figure>'
        for chart in charts
    )
    return (
        f'<div class="cc-report"><style>{_CSS}</style>'
        "<h2>CLIP accuracy under compression</h2>"
        f"{_demo_note_html(demo_note)}{_counts_html(records, checks)}"
        f'<div class="cc-charts">{images}</div>'
        f"{summary_table_html(records)}</div>"
    )


# --- report directory ---------------------------------------------------------------------------


def _decode_png(data: Any) -> bytes | None:
    if isinstance(data, (bytes, bytearray)):
        return bytes(data)
    if not isinstance(data, str):
        return None
    if data.startswith("data:"):
        data = data.partition(",")[2]
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None


def _item_caption(item: dict[str, Any], k: int) -> str:
    index = item.get("index", k)
    true = item.get("true_name", item.get("label"))
    before = item.get("pred_uncompressed_name", item.get("pred_uncompressed"))
    after = item.get("pred_compressed_name", item.get("pred_compressed"))
    text = f"#{index}"
    if true is not None:
        text += f" \u00b7 true: {true}"
    if before is not None or after is not None:
        text += f" \u00b7 predicted {before} \u2192 {after} after compression"
    return _esc(text)


def _key_values_html(mapping: dict[str, Any]) -> str:
    rows = "".join(f"<tr><th>{_esc(str(k).replace('_', ' '))}</th><td>{_esc(_num(v))}</td></tr>" for k, v in mapping.items())
    return f'<table class="cc-table cc-kv"><tbody>{rows}</tbody></table>'


def _generic_items_table(items: Sequence[dict[str, Any]]) -> str:
    keys = list(dict.fromkeys(k for item in items for k in item))
    head = "".join(f"<th>{_esc(k)}</th>" for k in keys)
    body = "".join("<tr>" + "".join(f"<td>{_esc(_num(item.get(k)))}</td>" for k in keys) + "</tr>" for item in items)
    return f'<div class="cc-table-wrap"><table class="cc-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _failure_section(failure: dict[str, Any], anchor: str, image_links: list[str | None], checks: Sequence[dict[str, Any]]) -> str:
    test = str(failure.get("test", ""))
    outcome = str(failure.get("outcome", "failed"))
    attributions = failure.get("attributions") or {}
    items = [item for item in attributions.get("items") or [] if isinstance(item, dict)]
    parts = [
        f'<section class="cc-failure cc-{_esc(safe_name(outcome))}" id="{_esc(anchor)}">',
        f'<h3><span class="cc-badge">{_esc(outcome)}</span>{_esc(test)}</h3>',
    ]
    own = [c for c in checks if c.get("test") == test]
    if own:
        parts.append(_checks_table_html(own))
    summary = attributions.get("summary")
    if isinstance(summary, dict) and summary:
        parts.append("<h4>Integrated Gradients summary</h4>" + _key_values_html(summary))
    table_html = attributions.get("table_html")
    if isinstance(table_html, str) and table_html.strip():
        # Made by attribution.attribution_table_html, which escapes every cell.
        parts.append(f'<h4>Explained images</h4><div class="cc-table-wrap">{table_html}</div>')
    elif items:
        parts.append("<h4>Explained images</h4>" + _generic_items_table(items))
    figures = []
    for k, link in enumerate(image_links):
        item = items[k] if k < len(items) else {}
        details = f"<details><summary>all values</summary>{_key_values_html(item)}</details>" if item else ""
        if link is None:
            figures.append(f'<figure><p class="cc-muted">image {k} could not be decoded</p>{details}</figure>')
            continue
        caption = _item_caption(item, k) if item else f"image {k}"
        figures.append(
            f'<figure><a href="{_esc(link)}"><img src="{_esc(link)}" alt="{caption}" loading="lazy"></a>'
            f"<figcaption>{caption}</figcaption>{details}</figure>"
        )
    if figures:
        parts.append(f'<div class="cc-images">{"".join(figures)}</div>')
    if not attributions:
        parts.append('<p class="cc-muted">No attributions were computed for this test (Integrated Gradients disabled or nothing flipped).</p>')
    parts.append("</section>")
    return "".join(parts)


def attribution_stem(test: str) -> str:
    """The file-name stem of a test's attribution figures (made unique per report when two tests share it)."""
    return safe_name(test, lower=False, underscores=True)


def attribution_figure(stem: str, k: int) -> str:
    """Where the report folder puts the k-th attribution figure of a test, relative to the folder."""
    return f"attributions/{stem}_{k}.png"


def write_report_dir(
    directory: Path,
    records: Iterable[dict[str, Any]],
    checks: Iterable[dict[str, Any]],
    failures: Iterable[dict[str, Any]],
    *,
    demo_note: str | None = None,
    title: str = "pytest-clipcompress report",
    breaking_points: Iterable[dict[str, Any]] = (),
) -> Path:
    """Write a standalone report: ``index.html``, ``charts/*.png`` and ``attributions/*.png``.

    ``index.html`` has its own CSS and script and links the PNG files relatively, so the directory
    can be moved or archived as a whole. It shows the demo note, the charts, the sortable table of
    evaluations, the floor checks and one section per failed or xfailed test with its Integrated
    Gradients table, summary numbers and images. Every file is written atomically and file names
    and contents are deterministic for the same input. Returns the path of ``index.html``.
    """
    directory = Path(directory)
    records = list(records)
    checks = list(checks)
    failures = sorted(
        (f for f in failures if str(f.get("outcome", "failed")) in ("failed", "xfailed", "error")),
        key=lambda f: (str(f.get("test", "")), str(f.get("outcome", ""))),
    )
    charts = accuracy_charts(records, checks, breaking_points)
    for chart in charts:
        atomic_write_bytes(directory / "charts" / chart.filename, chart.png)

    used_ids: set[str] = set()
    sections = []
    toc = []
    for failure in failures:
        test = str(failure.get("test", ""))
        stem = _unique(attribution_stem(test), (test, failure.get("outcome")), used_ids)
        attributions = failure.get("attributions") or {}
        links: list[str | None] = []
        for k, encoded in enumerate(attributions.get("images") or []):
            png = _decode_png(encoded)
            if png is None:
                links.append(None)
                continue
            relative = attribution_figure(stem, k)
            atomic_write_bytes(directory / relative, png)
            links.append(relative)
        anchor = f"failure-{stem}"
        toc.append(f'<li><a href="#{_esc(anchor)}">{_esc(test)}</a> <span class="cc-muted">({_esc(failure.get("outcome", "failed"))})</span></li>')
        sections.append(_failure_section(failure, anchor, links, checks))

    chart_html = "".join(
        f'<figure><a href="charts/{_esc(c.filename)}"><img src="charts/{_esc(c.filename)}" alt="{_esc(c.title)}" title="{_esc(c.title)}"></a></figure>'
        for c in charts
    ) or '<p class="cc-muted">No compressed evaluations to chart.</p>'
    nav = ['<a href="#charts">Charts</a>', '<a href="#evaluations">Evaluations</a>']
    if checks:
        nav.append('<a href="#checks">Floor checks</a>')
    if failures:
        nav.append('<a href="#failures">Failures</a>')
    body = [
        f"<h1>{_esc(title)}</h1>",
        _demo_note_html(demo_note),
        _counts_html(records, checks),
        f"<nav>{''.join(nav)}</nav>",
        f'<h2 id="charts">Accuracy under compression</h2><div class="cc-charts">{chart_html}</div>',
        '<h2 id="evaluations">Evaluations</h2><p class="cc-muted">Click a column header to sort.</p>',
        summary_table_html(records),
    ]
    if checks:
        body.append(f'<h2 id="checks">Floor checks</h2>{_checks_table_html(checks)}<script>{_SORT_SCRIPT}</script>')
    if failures:
        body.append(f'<h2 id="failures">Failed and xfailed tests</h2><ul>{"".join(toc)}</ul>{"".join(sections)}')
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_esc(title)}</title>\n<style>{_CSS}{_PAGE_CSS}</style>\n</head>\n"
        f'<body class="cc-report">\n{"".join(body)}\n</body>\n</html>\n'
    )
    index = directory / "index.html"
    atomic_write_text(index, page)
    return index
