"""The overlay chart: with several model ids in the records (``--clip-model`` roles), every model's
accuracy-vs-rate curve on one dataset under one codec, overlaid."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ...results.schema import EvaluationRecord, record_id
from ..format import ci, codec, codec_name, is_number, params, pct, primary_axis, setting_label
from .drawing import RATE_SIZE, Marks, accuracy_axis, finish, new_axes, rate_axis, series_label, sizes, varying_fields

# One colour and marker per model (no red: it marks failures on the other charts).
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


def model_overlays(records: Iterable[EvaluationRecord]) -> list[Overlay]:
    """With two or more model ids in the records: per (dataset, codec), every model's accuracy-vs-rate curve, overlaid.

    One chart per codec keeps it to one line per model (and per variant of the codec's other
    settings, e.g. JPEG chroma subsampling). Search probes are left out (they stay on each model's
    own chart), as are floors, which belong to one model's checks. Curves are in model-id order.
    """
    records = list(records)
    if len({record_id(r) for r in records}) < 2:
        return []
    grid = [r for r in records if codec(r) != "none" and not r.get("probe")]
    overlays = []
    for dataset, codec_key in sorted({(str(r.get("dataset")), codec(r)) for r in grid}):
        rows = [r for r in grid if str(r.get("dataset")) == dataset and codec(r) == codec_key]
        curves = tuple(_curves(codec_key, rows))
        if len({curve.model_id for curve in curves}) < 2:
            continue  # one model only: its own chart says it all
        title = f"{dataset} \u00b7 {codec_name(codec_key)}: models compared, accuracy vs bits per pixel ({sizes(rows)})"
        overlays.append(Overlay(dataset, codec_key, curves, title))
    return overlays


def _curves(codec_key: str, rows: Sequence[EvaluationRecord]) -> list[Curve]:
    """The curves of one dataset's ``rows`` under one codec, by model id, then variant."""
    searched = (primary_axis(codec_key) or ("",))[0]
    others = sorted({k for r in rows for k in params(r) if k != searched})
    varying = varying_fields(rows)
    series: dict[tuple[str, str, str, str], list[EvaluationRecord]] = {}
    for row in rows:
        variant = series_label(codec_key, row, others, varying, False) if others or varying else ""
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


def render_overlay(overlay: Overlay) -> bytes:
    """Every model's curves on one bits-per-pixel axis: a colour and marker per model, a line style per variant,
    its uncompressed accuracy as a dashed line in its colour; the settings are labelled once, on the first curve."""
    fig, ax = new_axes(RATE_SIZE)
    model_ids = list(dict.fromkeys(curve.model_id for curve in overlay.curves))
    styles = {model_id: _MODEL_STYLES[index % len(_MODEL_STYLES)] for index, model_id in enumerate(model_ids)}
    variants = list(dict.fromkeys(curve.variant for curve in sorted(overlay.curves, key=lambda c: c.variant)))
    marks = Marks()
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
        marks.x_values += xs
        marks.y_values += [p[2] for p in curve.points] + [p[3] for p in curve.points]
        for x, y, low, high, setting in curve.points:
            marks.occupied.append((x, y, low, high))
            if x not in labelled:  # the same images give every model the same bits per pixel
                labelled.add(x)
                marks.labels.append((x, y, setting, "#444444"))
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
            marks.y_values.append(value)
    accuracy_axis(ax, marks.y_values)
    rate_axis(ax, marks.x_values)
    return finish(fig, ax, overlay.title, marks, rank.__getitem__)
