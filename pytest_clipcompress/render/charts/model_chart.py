"""One model on one dataset: the rate-accuracy chart (every codec on one bits-per-pixel axis) and the
per-setting chart of one codec, with intervals, the uncompressed accuracy, the floors the tests
checked, search probes and breaking points."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ...results.schema import BreakingPoint, CheckRecord, EvaluationRecord
from ..format import ci, codec, codec_name, is_number, params, pct, primary_axis, setting_label
from ..view import check_status
from .drawing import RATE_SIZE, SETTING_SIZE, Marks, accuracy_axis, finish, new_axes, rate_axis, series_label, varying_fields

_CODEC_COLOURS = {"jpeg": "#1f77b4", "webp": "#ff7f0e", "avif": "#2ca02c", "jpeg2000": "#9467bd"}
_OTHER_COLOURS = ("#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f")
_SERIES_STYLES = (("o", "-"), ("s", "--"), ("^", ":"), ("D", "-."))
_STATUS_COLOURS = {"failed": "#d62728", "xfailed": "#d99a00", "held": "#555555"}
_FLOOR_STYLES = {"min_accuracy": ":", "max_drop": "-."}


@dataclass
class _Plot:
    """One chart being drawn: its axes, what x is, the status of each setting and what was drawn so far."""

    ax: Any
    rate: bool  # x is bits per pixel (else the codec's primary parameter)
    x_of: Callable[[EvaluationRecord], float | None]
    statuses: dict[str, str]
    marks: Marks = field(default_factory=Marks)
    grid_x: list[float] = field(default_factory=list)
    ring_labels: set[str] = field(default_factory=set)
    probe_handle: Any = None


def render_model_chart(
    rows: list[EvaluationRecord], checks: Sequence[CheckRecord], breaking_points: Sequence[BreakingPoint], title: str, only_codec: str | None
) -> bytes:
    """The rate-accuracy chart (``only_codec`` None: x is bits per pixel) or one codec's per-setting chart."""
    rate = only_codec is None
    primary, x_label, harsher_when_lower = primary_axis(only_codec or "") or (None, "", False)
    fig, ax = new_axes(RATE_SIZE if rate else SETTING_SIZE)

    def x_of(row: EvaluationRecord) -> float | None:
        value = row.get("bits_per_pixel") if rate else params(row).get(primary or "")
        return float(value) if is_number(value) and (not rate or value > 0) else None

    plot = _Plot(ax, rate, x_of, _point_statuses(rows, checks))
    compressed = [r for r in rows if codec(r) != "none"]
    codecs = sorted({codec(r) for r in compressed})
    other_colours = iter(_OTHER_COLOURS * 4)
    colours = {c: _CODEC_COLOURS.get(c) or next(other_colours) for c in codecs}
    varying = varying_fields(compressed)
    for codec_key in codecs:
        _draw_codec(plot, codec_key, [r for r in compressed if codec(r) == codec_key], colours[codec_key], varying)
    _draw_reference_lines(plot, rows, compressed, checks, breaking_points, primary)
    accuracy_axis(ax, plot.marks.y_values)
    if rate:
        rate_axis(ax, plot.marks.x_values)
    else:
        _setting_axis(ax, plot.marks.x_values, plot.grid_x, harsher_when_lower, x_label)
    return finish(fig, ax, title, plot.marks)


def _draw_codec(plot: _Plot, codec_key: str, rows: list[EvaluationRecord], colour: str, varying: Sequence[str]) -> None:
    """One codec's lines (one per variant of its other settings), with rings on broken floors, then its search probes."""
    searched_param = (primary_axis(codec_key) or ("",))[0]
    others = sorted({k for r in rows for k in params(r) if k != searched_param})
    series: dict[str, list[EvaluationRecord]] = {}
    searched: list[EvaluationRecord] = []
    for row in rows:
        if row.get("probe"):
            searched.append(row)
        else:
            series.setdefault(series_label(codec_key, row, others, varying, plot.rate), []).append(row)
    for index, (label, members) in enumerate(sorted(series.items())):
        _draw_series(plot, codec_key, searched_param, label, members, colour, _SERIES_STYLES[index % len(_SERIES_STYLES)])
    pairs = [(x, r) for r in searched if (x := plot.x_of(r)) is not None and is_number(r.get("accuracy"))]
    if pairs:
        accuracies = [float(p[1]["accuracy"]) for p in pairs]
        plot.probe_handle = plot.ax.scatter(
            [p[0] for p in pairs],
            accuracies,
            marker="x",
            s=28,
            color=colour,
            linewidths=1.2,
            zorder=4,
            label=f"{codec_name(codec_key)} search probes" if plot.rate or plot.probe_handle is None else "_nolegend_",
        )
        plot.marks.y_values += accuracies
        plot.marks.x_values += [p[0] for p in pairs]
        plot.marks.occupied += [(p[0], y, y, y) for p, y in zip(pairs, accuracies, strict=True)]


def _draw_series(plot: _Plot, codec_key: str, searched_param: str, label: str, members: list[EvaluationRecord], colour: str, style: tuple[str, str]) -> None:
    """One line with 95% error bars; a ring where a floor broke; each point's setting (or bits per pixel) as its label."""
    pairs = sorted(((x, r) for r in members if (x := plot.x_of(r)) is not None and is_number(r.get("accuracy"))), key=lambda p: p[0])
    if not pairs:
        return
    xs = [p[0] for p in pairs]
    ys = [float(p[1]["accuracy"]) for p in pairs]
    bounds = [ci(p[1]) or (y, y) for y, p in zip(ys, pairs, strict=True)]
    low = [max(0.0, y - b[0]) for y, b in zip(ys, bounds, strict=True)]
    high = [max(0.0, b[1] - y) for y, b in zip(ys, bounds, strict=True)]
    marker, line = style
    plot.ax.errorbar(
        xs, ys, yerr=[low, high], color=colour, marker=marker, markersize=4.5, linestyle=line, linewidth=1.6, capsize=3, elinewidth=1, label=label, zorder=3
    )
    marks = plot.marks
    marks.y_values += [b[0] for b in bounds] + [b[1] for b in bounds]
    marks.x_values += xs
    plot.grid_x += xs
    for x, y, (_, row), (bar_low, bar_high) in zip(xs, ys, pairs, bounds, strict=True):
        marks.occupied.append((x, y, bar_low, bar_high))
        status = plot.statuses.get(str(row.get("compression_id")))
        if status:
            ring = "broken floor, unexpected" if status == "failed" else "broken floor, expected (xfail)"
            plot.ax.scatter(
                [x],
                [y],
                s=120,
                facecolors="none",
                edgecolors=_STATUS_COLOURS[status],
                linewidths=1.8,
                zorder=5,
                label=ring if ring not in plot.ring_labels else "_nolegend_",
            )
            plot.ring_labels.add(ring)
        if plot.rate:
            value = params(row).get(searched_param)
            text = setting_label(searched_param, value) if is_number(value) else str(row.get("compression_id"))
            marks.labels.append((x, y, text, colour))
        elif is_number(row.get("bits_per_pixel")):
            marks.labels.append((x, y, f"{row['bits_per_pixel']:.2g} bpp", colour))


def _draw_reference_lines(
    plot: _Plot,
    rows: Sequence[EvaluationRecord],
    compressed: Sequence[EvaluationRecord],
    checks: Sequence[CheckRecord],
    breaking_points: Sequence[BreakingPoint],
    primary: str | None,
) -> None:
    """The uncompressed accuracy (dashed), the floors the tests checked, and breaking points."""
    ax, marks = plot.ax, plot.marks
    baselines = sorted({round(float(r["baseline_accuracy"]), 9) for r in rows if is_number(r.get("baseline_accuracy"))})
    for value in baselines:
        ax.axhline(value, color="#333333", linestyle="--", linewidth=1.1, label=f"uncompressed {pct(value)}", zorder=1)
        marks.y_values.append(value)
    kinds: list[str] = []
    for floor in _floors(compressed, checks):
        # Each floor is labelled on its line (value and status); the legend names each kind once.
        style = _FLOOR_STYLES[floor["kind"]]
        ax.axhline(floor["value"], color=_STATUS_COLOURS[floor["status"]], linestyle=style, linewidth=1.4 if floor["status"] != "held" else 1.1, zorder=1)
        suffix = {"failed": " \u2014 FAILED", "xfailed": " \u2014 xfailed (expected)", "held": ""}[floor["status"]]
        ax.annotate(
            floor["label"] + suffix,
            xy=(1.0, floor["value"]),
            xycoords=("axes fraction", "data"),
            xytext=(-4, 2),
            textcoords="offset points",
            ha="right",
            va="bottom",
            fontsize=7,
            color=_STATUS_COLOURS[floor["status"]],
            bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.8},
            zorder=2,  # under the points and lines, over the grid
        )
        marks.y_values.append(floor["value"])
        if floor["kind"] not in kinds:
            kinds.append(floor["kind"])
    for kind in sorted(kinds):
        ax.plot(
            [], [], color=_STATUS_COLOURS["held"], linestyle=_FLOOR_STYLES[kind], linewidth=1.1, label=f"floor: {kind.replace('_', ' ')} (value on the line)"
        )
    for point in breaking_points:
        if is_number(point.breaking_value):
            label = "breaking point"
            if is_number(point.floor):
                label += f" {setting_label(primary, point.breaking_value)} ({point.metric} floor {point.floor:g})"
            ax.axvline(float(point.breaking_value), color="#d62728", linestyle="--", linewidth=1.1, zorder=1, label=label)
            marks.x_values.append(float(point.breaking_value))


def _setting_axis(ax: Any, x_values: Sequence[float], grid_x: Sequence[float], harsher_when_lower: bool, x_label: str) -> None:
    """The codec parameter's axis: ticks at the declared settings only (search probes fall between them), harsher to the right."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator

    values = sorted(set(x_values))
    if values:
        ticks = sorted(set(grid_x)) or values
        ax.xaxis.set_major_locator(FixedLocator(ticks) if len(ticks) <= 12 else MaxNLocator(10, integer=True))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        span = (values[-1] - values[0]) or 1.0
        ax.set_xlim(values[0] - 0.06 * span, values[-1] + 0.06 * span)
    if harsher_when_lower:
        ax.invert_xaxis()
    ax.set_xlabel(x_label, fontsize=9)


def _floors(rows: Sequence[EvaluationRecord], checks: Iterable[CheckRecord]) -> list[dict[str, Any]]:
    """Distinct floor lines for the rows' evaluations: ``{"kind", "value", "label", "status"}``, in a stable order.

    ``status`` is ``failed`` when an unexpectedly failing check broke this floor, ``xfailed`` when
    only expected failures did, else ``held``; a check with both floors blames the one its record
    breaks (both if it is unclear).
    """
    by_id: dict[str, EvaluationRecord] = {}
    for each in rows:
        by_id.setdefault(str(each.get("compression_id")), each)
    rank = {"held": 0, "xfailed": 1, "failed": 2}
    lines: dict[tuple[str, float], dict[str, Any]] = {}
    for check in _floor_checks(checks):
        row = by_id.get(str(check.get("compression_id")))
        if row is None:
            continue
        status = check_status(check)
        entries: list[tuple[str, float, str, bool]] = []
        minimum, max_drop = check.get("min_accuracy"), check.get("max_drop")
        accuracy, drop, baseline = row.get("accuracy"), row.get("drop"), row.get("baseline_accuracy")
        if is_number(minimum):
            entries.append(("min_accuracy", float(minimum), f"min accuracy {pct(minimum)}", not (is_number(accuracy) and accuracy >= minimum)))
        # A drop floor at or beyond the uncompressed accuracy cannot break: its line would sit below 0%.
        if is_number(max_drop) and is_number(baseline) and float(baseline) - float(max_drop) >= 0.0:
            value = float(baseline) - float(max_drop)
            entries.append(("max_drop", value, f"max drop {max_drop * 100:.3g} pp (\u2265 {pct(value)})", not (is_number(drop) and drop <= max_drop)))
        blame_all = not any(violated for *_, violated in entries)
        for kind, value, label, violated in entries:
            here = status if status in ("failed", "xfailed") and (violated or blame_all) else "held"
            line = lines.setdefault((kind, round(value, 9)), {"kind": kind, "value": value, "label": label, "status": "held"})
            if rank[here] > rank[line["status"]]:
                line["status"] = here
    return [lines[key] for key in sorted(lines)]


def _point_statuses(rows: Sequence[EvaluationRecord], checks: Iterable[CheckRecord]) -> dict[str, str]:
    """Compression id -> the worst status of a broken floor there (``failed`` over ``xfailed``)."""
    ids = {str(r.get("compression_id")) for r in rows}
    statuses: dict[str, str] = {}
    for check in _floor_checks(checks):
        cid = str(check.get("compression_id"))
        status = check_status(check)
        if cid in ids and status in ("failed", "xfailed") and statuses.get(cid) != "failed":
            statuses[cid] = status
    return statuses


def _floor_checks(checks: Iterable[CheckRecord]) -> list[CheckRecord]:
    """The checks a chart marks: floors (a gate check compares with another run, which this chart does not show)."""
    return [check for check in checks if "max_regression" not in check]
