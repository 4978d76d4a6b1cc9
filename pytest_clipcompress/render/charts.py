"""Accuracy charts as PNG bytes: one rate-accuracy chart per (model, dataset), one per-setting chart per codec with 3+ settings,
and, when the records hold several models (``--clip-model`` roles), their curves overlaid per dataset.

Drawn on a bare :class:`matplotlib.figure.Figure` with the Agg canvas (never pyplot), so charts
can be made from any thread without a display. The same input gives the same bytes: PNGs carry
no software tag or timestamp, and every text is drawn literally (no mathtext, no TeX), so a ``$``
in a model, dataset or class name is just a dollar sign.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..records import record_id
from .format import (
    Record,
    ci,
    codec,
    codec_name,
    group_key,
    group_records,
    is_number,
    param_label,
    params,
    pct,
    primary_axis,
    safe_name,
    setting_label,
    unique,
)
from .view import check_status, probe_keys

__all__ = ["Chart", "Curve", "Overlay", "accuracy_charts", "model_overlays"]

_DPI = 100
_RATE_SIZE = (9.0, 4.2)
_SETTING_SIZE = (9.0, 3.6)
_CODEC_COLOURS = {"jpeg": "#1f77b4", "webp": "#ff7f0e", "avif": "#2ca02c", "jpeg2000": "#9467bd"}
_OTHER_COLOURS = ("#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f")
_SERIES_STYLES = (("o", "-"), ("s", "--"), ("^", ":"), ("D", "-."))
_STATUS_COLOURS = {"failed": "#d62728", "xfailed": "#d99a00", "held": "#555555"}
_LABEL_OFFSETS = ((7, 3, "left", "bottom"), (7, -3, "left", "top"), (-7, 3, "right", "bottom"), (-7, -3, "right", "top"))
# One colour and marker per model on the overlays (no red: it marks failures on the other charts).
_MODEL_STYLES = (
    ("#1f77b4", "o"),
    ("#ff7f0e", "s"),
    ("#2ca02c", "^"),
    ("#9467bd", "D"),
    ("#8c564b", "v"),
    ("#e377c2", "P"),
    ("#17becf", "X"),
    ("#bcbd22", "*"),
)
_VARIANT_LINES = ("-", "--", ":", "-.")


@dataclass(frozen=True)
class Chart:
    """One rendered chart: its title, a safe deterministic file name and the PNG bytes."""

    title: str
    filename: str
    png: bytes


@dataclass(frozen=True)
class Curve:
    """One model's accuracy against bits per pixel on an overlay chart (one codec, one variant of its other settings)."""

    model_id: str  # the --clip-model role, else the model name
    label: str  # the legend text: the role, with the model and weights it ran
    variant: str  # the codec's other settings (e.g. 4:4:4) where they vary, else ""
    points: tuple[tuple[float, float, float, float, str], ...]  # (bpp, accuracy, 95% low, 95% high, setting), by bpp
    uncompressed: tuple[float, ...]  # the model's uncompressed accuracy on the same images


@dataclass(frozen=True)
class Overlay:
    """An overlay chart: every model's curves on one dataset under one codec."""

    dataset: str
    codec: str
    curves: tuple[Curve, ...]
    title: str


def model_overlays(records: Iterable[Record], checks: Iterable[Mapping[str, Any]] = (), breaking_points: Iterable[Mapping[str, Any]] = ()) -> list[Overlay]:
    """With two or more model ids in the records: per (dataset, codec), every model's accuracy-vs-rate curve, overlaid.

    One chart per codec keeps it to one line per model (and per variant of the codec's other
    settings, e.g. JPEG chroma subsampling). Search probes are left out (they stay on each model's
    own chart), as are floors, which belong to one model's checks. Curves are in model-id order.
    """
    records = list(records)
    if len({record_id(r) for r in records}) < 2:
        return []
    probes = probe_keys(list(checks), list(breaking_points))
    grid = [r for r in records if codec(r) != "none" and (*group_key(r), r.get("compression_id")) not in probes]
    overlays = []
    for dataset, codec_key in sorted({(str(r.get("dataset")), codec(r)) for r in grid}):
        rows = [r for r in grid if str(r.get("dataset")) == dataset and codec(r) == codec_key]
        curves = tuple(_curves(codec_key, rows))
        if len({curve.model_id for curve in curves}) < 2:
            continue  # one model only: its own chart says it all
        title = f"{dataset} \u00b7 {codec_name(codec_key)}: models compared, accuracy vs bits per pixel ({_sizes(rows)})"
        overlays.append(Overlay(dataset, codec_key, curves, title))
    return overlays


def _curves(codec_key: str, rows: Sequence[Record]) -> list[Curve]:
    """The curves of one dataset's ``rows`` under one codec, by model id, then variant."""
    searched = (primary_axis(codec_key) or ("",))[0]
    others = sorted({k for r in rows for k in params(r) if k != searched})
    varying = [f for f in ("n", "seed", "templates") if len({json.dumps(r.get(f), sort_keys=True, default=str) for r in rows}) > 1]
    series: dict[tuple[str, str, str, str], list[Record]] = {}
    for row in rows:
        variant = _series_label(codec_key, row, others, varying, False) if others or varying else ""
        series.setdefault((record_id(row), str(row.get("model")), str(row.get("pretrained")), variant), []).append(row)
    curves = []
    for (model_id, model, pretrained, variant), members in sorted(series.items()):
        points = []
        for row in members:
            bpp, accuracy, value = row.get("bits_per_pixel"), row.get("accuracy"), params(row).get(searched)
            if is_number(bpp) and bpp > 0 and is_number(accuracy):
                low, high = ci(row) or (float(accuracy), float(accuracy))
                points.append((float(bpp), float(accuracy), low, high, setting_label(searched, value) if is_number(value) else str(row.get("compression_id"))))
        if not points:
            continue
        label = f"{model}/{pretrained}" if model_id == model else f"{model_id} ({model}/{pretrained})"
        # The uncompressed accuracy on the same images, as each compressed record carries it.
        uncompressed = sorted({round(float(r["baseline_accuracy"]), 9) for r in members if is_number(r.get("baseline_accuracy"))})
        curves.append(Curve(model_id, label, variant, tuple(sorted(points)), tuple(uncompressed)))
    return curves


def accuracy_charts(records: Iterable[Record], checks: Iterable[Mapping[str, Any]] = (), breaking_points: Iterable[Mapping[str, Any]] = ()) -> list[Chart]:
    """With several models, first their overlays (:func:`model_overlays`); then per (model, pretrained, dataset)
    the rate-accuracy chart and a per-setting chart for each codec with 3+ settings.

    The rate-accuracy chart puts every codec on one bits-per-pixel axis (log scale), so codecs are
    compared at the size they produce; each codec is a colour and each of its other settings (e.g.
    JPEG chroma subsampling) a line style. Error bars are 95% intervals, the dashed line is the
    uncompressed accuracy and the floors the tests checked are horizontal lines: red where a check
    failed unexpectedly, amber where it failed as expected (xfail). Evaluations made by a search
    (``clip_breaking_point`` probes, hypothesis examples) are separate markers, never part of a line.
    ``none`` records (the uncompressed reference) are the dashed line, not points.
    """
    records = list(records)
    checks = list(checks)
    breaking_points = list(breaking_points)
    probes = probe_keys(checks, breaking_points)
    by_model: dict[tuple[str, str, str], list[Record]] = {}
    for record in records:
        by_model.setdefault(group_key(record), []).append(record)
    charts: list[Chart] = []
    used: set[str] = set()
    for overlay in model_overlays(records, checks, breaking_points):
        stem = f"models_{safe_name(overlay.dataset, max_length=40)}_{safe_name(overlay.codec)}"
        charts.append(Chart(title=overlay.title, filename=unique(f"{stem}.png", (overlay.dataset, overlay.codec), used), png=_render_overlay(overlay)))
    for key in sorted(by_model):
        rows = by_model[key]
        if all(codec(r) == "none" for r in rows):
            continue
        stem = "_".join(safe_name(part, max_length=40) for part in key)
        own_checks = [c for c in checks if (str(c.get("model")), str(c.get("pretrained")), str(c.get("dataset"))) == key]
        own_points = [p for p in breaking_points if (str(p.get("model")), str(p.get("pretrained")), str(p.get("dataset"))) == key]
        title = f"{key[0]}/{key[1]} \u00b7 {key[2]}: accuracy vs bits per pixel ({_sizes(rows)})"
        png = _render(rows, own_checks, [], probes, title, None)
        charts.append(Chart(title=title, filename=unique(f"{stem}_rate.png", key, used), png=png))
        for (*_, codec_key), codec_rows in group_records(rows).items():
            primary = primary_axis(codec_key)
            grid = [r for r in codec_rows if (*key, r.get("compression_id")) not in probes]
            if primary is None or len({params(r).get(primary[0]) for r in grid}) < 3:
                continue
            title = f"{key[0]}/{key[1]} \u00b7 {key[2]}: {codec_name(codec_key)} settings ({_sizes(codec_rows)})"
            points = [p for p in own_points if p.get("codec") == codec_key and p.get("param") == primary[0]]
            baseline = [r for r in rows if codec(r) == "none"]
            png = _render(codec_rows + baseline, own_checks, points, probes, title, codec_key)
            charts.append(Chart(title=title, filename=unique(f"{stem}_{safe_name(codec_key)}.png", (key, codec_key), used), png=png))
    return charts


def _sizes(rows: Sequence[Record]) -> str:
    sizes = sorted({r.get("n") for r in rows}, key=lambda n: (not isinstance(n, int), str(n) if not isinstance(n, int) else n))
    return "n=" + "/".join(str(n) for n in sizes)


def _series_label(codec_key: str, row: Record, others: Sequence[str], varying: Sequence[str], with_codec: bool) -> str:
    given = params(row)
    parts = [param_label(codec_key, name, given.get(name)) for name in others]
    parts += [f"{field}={row.get(field)}" for field in varying]
    return ", ".join(([codec_name(codec_key)] if with_codec else []) + parts) or codec_name(codec_key)


def _floors(rows: Sequence[Record], checks: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Distinct floor lines for the rows' evaluations: ``{"kind", "value", "label", "status"}``, in a stable order.

    ``status`` is ``failed`` when an unexpectedly failing check broke this floor, ``xfailed`` when
    only expected failures did, else ``held``; a check with both floors blames the one its record
    breaks (both if it is unclear).
    """
    by_id: dict[str, Record] = {}
    for each in rows:
        by_id.setdefault(str(each.get("compression_id")), each)
    rank = {"held": 0, "xfailed": 1, "failed": 2}
    lines: dict[tuple[str, float], dict[str, Any]] = {}
    for check in checks:
        row = by_id.get(str(check.get("compression_id")))
        if row is None:
            continue
        status = check_status(check)
        entries: list[tuple[str, float, str, bool]] = []
        minimum, max_drop = check.get("min_accuracy"), check.get("max_drop")
        accuracy, drop, baseline = row.get("accuracy"), row.get("drop"), row.get("baseline_accuracy")
        if is_number(minimum):
            entries.append(("min_accuracy", float(minimum), f"min accuracy {pct(minimum)}", not (is_number(accuracy) and accuracy >= minimum)))
        if is_number(max_drop) and is_number(baseline):
            value = float(baseline) - float(max_drop)
            entries.append(("max_drop", value, f"max drop {max_drop * 100:.3g} pp (\u2265 {pct(value)})", not (is_number(drop) and drop <= max_drop)))
        blame_all = not any(violated for *_, violated in entries)
        for kind, value, label, violated in entries:
            here = status if status in ("failed", "xfailed") and (violated or blame_all) else "held"
            line = lines.setdefault((kind, round(value, 9)), {"kind": kind, "value": value, "label": label, "status": "held"})
            if rank[here] > rank[line["status"]]:
                line["status"] = here
    return [lines[key] for key in sorted(lines)]


def _point_statuses(rows: Sequence[Record], checks: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Compression id -> the worst status of a broken floor there (``failed`` over ``xfailed``)."""
    ids = {str(r.get("compression_id")) for r in rows}
    statuses: dict[str, str] = {}
    for check in checks:
        cid = str(check.get("compression_id"))
        status = check_status(check)
        if cid in ids and status in ("failed", "xfailed") and statuses.get(cid) != "failed":
            statuses[cid] = status
    return statuses


def _render(
    rows: list[Record],
    checks: Sequence[Mapping[str, Any]],
    breaking_points: Sequence[Mapping[str, Any]],
    probes: set[tuple[str, str, str, str]],
    title: str,
    only_codec: str | None,
) -> bytes:
    """The rate-accuracy chart (``only_codec`` None: x is bits per pixel) or one codec's per-setting chart."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator

    rate = only_codec is None
    primary, x_label, harsher_when_lower = primary_axis(only_codec or "") or (None, "", False)
    fig = Figure(figsize=_RATE_SIZE if rate else _SETTING_SIZE, dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    statuses = _point_statuses(rows, checks)
    key = group_key(rows[0])
    compressed = [r for r in rows if codec(r) != "none"]
    codecs = sorted({codec(r) for r in compressed})
    other_colours = iter(_OTHER_COLOURS * 4)
    colours = {c: _CODEC_COLOURS.get(c) or next(other_colours) for c in codecs}
    varying = [f for f in ("n", "seed", "templates") if len({json.dumps(r.get(f), sort_keys=True, default=str) for r in compressed}) > 1]
    y_values: list[float] = []
    x_values: list[float] = []
    grid_x: list[float] = []
    labels: list[tuple[float, float, str, str]] = []
    occupied: list[tuple[float, float, float, float]] = []  # x, y and the error bar's ends
    ring_labels: set[str] = set()

    def x_of(row: Record) -> float | None:
        value = row.get("bits_per_pixel") if rate else params(row).get(primary or "")
        return float(value) if is_number(value) and (not rate or value > 0) else None

    probe_handle = None
    for codec_key in codecs:
        codec_rows = [r for r in compressed if codec(r) == codec_key]
        searched_param = (primary_axis(codec_key) or ("",))[0]
        others = sorted({k for r in codec_rows for k in params(r) if k != searched_param})
        series: dict[str, list[Record]] = {}
        searched: list[Record] = []
        for row in codec_rows:
            if (*key, row.get("compression_id")) in probes:
                searched.append(row)
            else:
                series.setdefault(_series_label(codec_key, row, others, varying, rate), []).append(row)
        for index, (label, members) in enumerate(sorted(series.items())):
            marker, style = _SERIES_STYLES[index % len(_SERIES_STYLES)]
            pairs = sorted(((x, r) for r in members if (x := x_of(r)) is not None and is_number(r.get("accuracy"))), key=lambda p: p[0])
            if not pairs:
                continue
            xs = [p[0] for p in pairs]
            ys = [float(p[1]["accuracy"]) for p in pairs]
            bounds = [ci(p[1]) or (y, y) for y, p in zip(ys, pairs, strict=True)]
            low = [max(0.0, y - b[0]) for y, b in zip(ys, bounds, strict=True)]
            high = [max(0.0, b[1] - y) for y, b in zip(ys, bounds, strict=True)]
            ax.errorbar(
                xs,
                ys,
                yerr=[low, high],
                color=colours[codec_key],
                marker=marker,
                markersize=4.5,
                linestyle=style,
                linewidth=1.6,
                capsize=3,
                elinewidth=1,
                label=label,
                zorder=3,
            )
            y_values += [b[0] for b in bounds] + [b[1] for b in bounds]
            x_values += xs
            grid_x += xs
            for x, y, (_, row), (bar_low, bar_high) in zip(xs, ys, pairs, bounds, strict=True):
                occupied.append((x, y, bar_low, bar_high))
                status = statuses.get(str(row.get("compression_id")))
                if status:
                    ring = "broken floor, unexpected" if status == "failed" else "broken floor, expected (xfail)"
                    ax.scatter(
                        [x],
                        [y],
                        s=120,
                        facecolors="none",
                        edgecolors=_STATUS_COLOURS[status],
                        linewidths=1.8,
                        zorder=5,
                        label=ring if ring not in ring_labels else "_nolegend_",
                    )
                    ring_labels.add(ring)
                if rate:
                    value = params(row).get(searched_param)
                    text = setting_label(searched_param, value) if is_number(value) else str(row.get("compression_id"))
                    labels.append((x, y, text, colours[codec_key]))
                elif is_number(row.get("bits_per_pixel")):
                    labels.append((x, y, f"{row['bits_per_pixel']:.2g} bpp", colours[codec_key]))
        pairs = [(x, r) for r in searched if (x := x_of(r)) is not None and is_number(r.get("accuracy"))]
        if pairs:
            probe_handle = ax.scatter(
                [p[0] for p in pairs],
                [float(p[1]["accuracy"]) for p in pairs],
                marker="x",
                s=28,
                color=colours[codec_key],
                linewidths=1.2,
                zorder=4,
                label=f"{codec_name(codec_key)} search probes" if rate or probe_handle is None else "_nolegend_",
            )
            y_values += [float(p[1]["accuracy"]) for p in pairs]
            x_values += [p[0] for p in pairs]
            occupied += [(p[0], float(p[1]["accuracy"]), float(p[1]["accuracy"]), float(p[1]["accuracy"])) for p in pairs]

    baselines = sorted({round(float(r["baseline_accuracy"]), 9) for r in rows if is_number(r.get("baseline_accuracy"))})
    for value in baselines:
        ax.axhline(value, color="#333333", linestyle="--", linewidth=1.1, label=f"uncompressed {pct(value)}", zorder=1)
        y_values.append(value)
    for floor in _floors(compressed, checks):
        suffix = {"failed": " \u2014 FAILED", "xfailed": " \u2014 xfailed (expected)", "held": ""}[floor["status"]]
        ax.axhline(
            floor["value"],
            color=_STATUS_COLOURS[floor["status"]],
            linestyle=":" if floor["kind"] == "min_accuracy" else "-.",
            linewidth=1.4 if floor["status"] != "held" else 1.1,
            label=f"floor: {floor['label']}{suffix}",
            zorder=1,
        )
        y_values.append(floor["value"])
    for point in breaking_points:
        if is_number(point.get("breaking_value")):
            searched_floor = point.get("floor")
            ax.axvline(
                float(point["breaking_value"]),
                color="#d62728",
                linestyle="--",
                linewidth=1.1,
                zorder=1,
                label=f"breaking point {setting_label(primary, point['breaking_value'])} ({point.get('metric')} floor {searched_floor:g})"
                if is_number(searched_floor)
                else "breaking point",
            )
            x_values.append(float(point["breaking_value"]))

    # Axes: labels with units; bits per pixel on a log axis with at least three labelled ticks.
    _accuracy_axis(ax, y_values)
    if rate:
        _rate_axis(ax, x_values)
    else:
        values = sorted(set(x_values))
        if values:
            # Ticks at the declared settings only; search probes fall between them.
            ticks = sorted(set(grid_x)) or values
            ax.xaxis.set_major_locator(FixedLocator(ticks) if len(ticks) <= 12 else MaxNLocator(10, integer=True))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            span = (values[-1] - values[0]) or 1.0
            ax.set_xlim(values[0] - 0.06 * span, values[-1] + 0.06 * span)
        if harsher_when_lower:
            ax.invert_xaxis()
        ax.set_xlabel(x_label, fontsize=9)
    return _finish(fig, ax, title, labels, occupied)


def _render_overlay(overlay: Overlay) -> bytes:
    """Every model's curves on one bits-per-pixel axis: a colour and marker per model, a line style per variant,
    its uncompressed accuracy as a dashed line in its colour; the settings are labelled once, on the first curve."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=_RATE_SIZE, dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    model_ids = list(dict.fromkeys(curve.model_id for curve in overlay.curves))
    styles = {model_id: _MODEL_STYLES[index % len(_MODEL_STYLES)] for index, model_id in enumerate(model_ids)}
    variants = list(dict.fromkeys(curve.variant for curve in sorted(overlay.curves, key=lambda c: c.variant)))
    x_values: list[float] = []
    y_values: list[float] = []
    labels: list[tuple[float, float, str, str]] = []
    occupied: list[tuple[float, float, float, float]] = []
    labelled: set[float] = set()
    for curve in overlay.curves:
        colour, marker = styles[curve.model_id]
        xs = [p[0] for p in curve.points]
        ys = [p[1] for p in curve.points]
        ax.errorbar(
            xs,
            ys,
            yerr=[[max(0.0, p[1] - p[2]) for p in curve.points], [max(0.0, p[3] - p[1]) for p in curve.points]],
            color=colour,
            marker=marker,
            markersize=5,
            linestyle=_VARIANT_LINES[variants.index(curve.variant) % len(_VARIANT_LINES)],
            linewidth=1.6,
            capsize=3,
            elinewidth=1,
            label=", ".join(part for part in (curve.label, curve.variant) if part),
            zorder=3,
        )
        x_values += xs
        y_values += [p[2] for p in curve.points] + [p[3] for p in curve.points]
        for x, y, low, high, setting in curve.points:
            occupied.append((x, y, low, high))
            if x not in labelled:  # the same images give every model the same bits per pixel
                labelled.add(x)
                labels.append((x, y, setting, "#444444"))
    rank: dict[str, tuple[int, int]] = {}  # legend text -> (model, entry): each model's curves, then its uncompressed line
    for curve in overlay.curves:
        rank[", ".join(part for part in (curve.label, curve.variant) if part)] = (model_ids.index(curve.model_id), len(rank))
    for curve in overlay.curves:
        for value in curve.uncompressed:
            text = f"{curve.model_id} uncompressed {pct(value)}"
            if text in rank:
                continue
            rank[text] = (model_ids.index(curve.model_id), len(rank))
            ax.axhline(value, color=styles[curve.model_id][0], linestyle="--", linewidth=1.0, alpha=0.8, label=text, zorder=1)
            y_values.append(value)
    _accuracy_axis(ax, y_values)
    _rate_axis(ax, x_values)
    return _finish(fig, ax, overlay.title, labels, occupied, rank.__getitem__)


def _accuracy_axis(ax: Any, y_values: Sequence[float]) -> None:
    from matplotlib.ticker import PercentFormatter

    ax.set_ylabel("zero-shot accuracy (%)", fontsize=9)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    if y_values:
        bottom, top = min(y_values), max(y_values)
        pad = max(0.02, (top - bottom) * 0.1)
        ax.set_ylim(max(-0.02, bottom - pad), min(1.04, top + pad))


def _rate_axis(ax: Any, x_values: Sequence[float]) -> None:
    """Bits per pixel on a log axis with at least three labelled ticks."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator

    ax.set_xscale("log")
    ax.set_xlabel("bits per pixel (bpp, log scale; fewer bits \u2190)", fontsize=9)
    if x_values:
        lo, hi = min(x_values) / 1.3, max(x_values) * 1.3
        ax.set_xlim(lo, hi)
        ax.xaxis.set_major_locator(FixedLocator(_log_ticks(lo, hi)))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))


def _finish(
    fig: Any,
    ax: Any,
    title: str,
    labels: Sequence[tuple[float, float, str, str]],
    occupied: Sequence[tuple[float, float, float, float]],
    legend_rank: Callable[[str], Any] | None = None,
) -> bytes:
    """Grid, title, the legend outside the plot (ordered by ``legend_rank`` of the entries' text, else as
    matplotlib lists them), literal text and point labels; the PNG bytes."""
    ax.grid(True, which="major", color="#e5e5e5", linewidth=0.8)
    ax.set_axisbelow(True)
    ax.tick_params(labelsize=8)
    ax.set_title(title, fontsize=10, loc="left")
    handles, names = ax.get_legend_handles_labels()
    if legend_rank is not None and handles:
        ranked = sorted(zip(handles, names, strict=True), key=lambda entry: legend_rank(entry[1]))
        handles, names = [entry[0] for entry in ranked], [entry[1] for entry in ranked]
    if handles:
        ax.legend(handles, names, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize=7.5, frameon=False)
    _literal_text(fig)
    _place_labels(fig, ax, labels, occupied)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI, metadata={"Software": None})
    return buffer.getvalue()


def _log_ticks(low: float, high: float) -> list[float]:
    """1-2-5 ticks inside [low, high]; finer steps when that gives fewer than three."""
    for steps in ((1.0, 2.0, 5.0), (1.0, 1.5, 2.0, 3.0, 5.0, 7.0), tuple(float(m) for m in range(1, 10))):
        ticks = [m * 10.0**e for e in range(math.floor(math.log10(low)) - 1, math.ceil(math.log10(high)) + 1) for m in steps]
        inside = sorted(float(f"{t:.6g}") for t in ticks if low <= t <= high)
        if len(inside) >= 3:
            return inside
    return [float(f"{v:.2g}") for v in (low * 1.1, math.sqrt(low * high), high / 1.1)]


def _literal_text(fig: Any) -> None:
    """Draw every text as written: user text (model, dataset, class names) is never mathtext or TeX."""
    from matplotlib.text import Text

    for text in fig.findobj(Text):
        text.set_usetex(False)
        text.set_parse_math(False)


def _place_labels(fig: Any, ax: Any, labels: Sequence[tuple[float, float, str, str]], occupied: Sequence[tuple[float, float, float, float]]) -> None:
    """Annotate points only where the label overlaps no other label, point or error bar (tried at four offsets), else not at all.

    The layout is fixed first (one draw, then no layout engine) so the boxes measured here are the
    ones saved.
    """
    fig.canvas.draw()
    fig.set_layout_engine("none")
    renderer = fig.canvas.get_renderer()
    area = ax.get_window_extent(renderer)
    to_display = ax.transData.transform
    taken = []
    from matplotlib.transforms import Bbox

    for x, y, bar_low, bar_high in occupied:
        px, py = to_display((x, y))
        taken.append(Bbox.from_extents(px - 7, py - 7, px + 7, py + 7))  # a marker with its ring
        _, low = to_display((x, bar_low))
        _, high = to_display((x, bar_high))
        taken.append(Bbox.from_extents(px - 5, min(low, high) - 1, px + 5, max(low, high) + 1))  # its error bar and caps
    for x, y, text, colour in labels:
        for dx, dy, ha, va in _LABEL_OFFSETS:
            note = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va, fontsize=7, color=colour, zorder=6)
            note.set_parse_math(False)
            note.set_usetex(False)
            box = note.get_window_extent(renderer)
            inside = area.containsx(box.x0) and area.containsx(box.x1) and area.containsy(box.y0) and area.containsy(box.y1)
            if inside and not any(box.overlaps(t) for t in taken):
                taken.append(box.padded(2))
                break
            note.remove()
