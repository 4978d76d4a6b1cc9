"""Accuracy charts as PNG bytes: one rate-accuracy chart per (model, dataset), one per-setting chart per
codec with 3+ settings (:mod:`.model_chart`), and, when the records hold several models
(``--clip-model`` roles), their curves overlaid per dataset and codec (:mod:`.overlay`).

Drawn on a bare :class:`matplotlib.figure.Figure` with the Agg canvas (never pyplot), so charts
can be made from any thread without a display. The same input gives the same bytes: PNGs carry
no software tag or timestamp, and every text is drawn literally (no mathtext, no TeX), so a ``$``
in a model, dataset or class name is just a dollar sign. A new chart kind is one module here and
one call in :func:`accuracy_charts`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ...results.schema import BreakingPoint, CheckRecord, EvaluationRecord
from ..format import codec, codec_name, group_key, group_records, params, primary_axis, safe_name, unique
from .drawing import sizes
from .model_chart import render_model_chart
from .overlay import Curve, Overlay, model_overlays, render_overlay

__all__ = ["Chart", "Curve", "Overlay", "accuracy_charts", "model_overlays"]


@dataclass(frozen=True)
class Chart:
    """One rendered chart: its title, a safe deterministic file name and the PNG bytes."""

    title: str
    filename: str
    png: bytes


def accuracy_charts(
    records: Iterable[EvaluationRecord],
    checks: Iterable[CheckRecord] = (),
    breaking_points: Iterable[BreakingPoint] = (),
    references: Iterable[EvaluationRecord] = (),
) -> list[Chart]:
    """With several models, first their overlays (:func:`model_overlays`); then per (model, pretrained, dataset)
    the rate-accuracy chart and a per-setting chart for each codec with 3+ settings. ``references``
    (e.g. the baseline's evaluations of the same cases, under a role of their own) join the overlays only.

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
    by_model: dict[tuple[str, str, str], list[EvaluationRecord]] = {}
    for record in records:
        by_model.setdefault(group_key(record), []).append(record)
    charts: list[Chart] = []
    used: set[str] = set()
    for overlay in model_overlays([*records, *references]):
        stem = f"models_{safe_name(overlay.dataset, max_length=40)}_{safe_name(overlay.codec)}"
        charts.append(Chart(title=overlay.title, filename=unique(f"{stem}.png", (overlay.dataset, overlay.codec), used), png=render_overlay(overlay)))
    for key in sorted(by_model):
        rows = by_model[key]
        if all(codec(r) == "none" for r in rows):
            continue
        stem = "_".join(safe_name(part, max_length=40) for part in key)
        own_checks = [c for c in checks if (str(c.get("model")), str(c.get("pretrained")), str(c.get("dataset"))) == key]
        own_points = [p for p in breaking_points if (p.model, p.pretrained, p.dataset) == key]
        title = f"{key[0]}/{key[1]} \u00b7 {key[2]}: accuracy vs bits per pixel ({sizes(rows)})"
        charts.append(Chart(title=title, filename=unique(f"{stem}_rate.png", key, used), png=render_model_chart(rows, own_checks, [], title, None)))
        for (*_, codec_key), codec_rows in group_records(rows).items():
            primary = primary_axis(codec_key)
            grid = [r for r in codec_rows if not r.get("probe")]
            if primary is None or len({params(r).get(primary[0]) for r in grid}) < 3:
                continue
            title = f"{key[0]}/{key[1]} \u00b7 {key[2]}: {codec_name(codec_key)} settings ({sizes(codec_rows)})"
            points = [p for p in own_points if p.codec == codec_key and p.param == primary[0]]
            baseline = [r for r in rows if codec(r) == "none"]
            png = render_model_chart(codec_rows + baseline, own_checks, points, title, codec_key)
            charts.append(Chart(title=title, filename=unique(f"{stem}_{safe_name(codec_key)}.png", (key, codec_key), used), png=png))
    return charts
