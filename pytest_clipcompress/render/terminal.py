"""Plain text: the terminal summary (an accuracy table per model x dataset x codec, breaking points,
comparisons with the baseline or between models) and the Integrated Gradients numbers of a test's
report section (terminal and JUnit)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..results.schema import AttributionItem, AttributionSet, AttributionSummary, BreakingPoint, ComparisonRow, EvaluationRecord, QuantityChange
from .format import CHANGE_SIGN, change_text, flip_text, group_records, quantity_label, quantity_value
from .view import source_note

__all__ = [
    "aggregate_text",
    "attribution_text",
    "breaking_point_lines",
    "breaking_point_verdict",
    "comparison_table",
    "gap_warning",
    "gate_lines",
    "terminal_table",
]

# A completeness gap above this share of |ΔF| makes an image's attributions unreliable (docs/attributions.md).
IG_GAP_FLAG = 0.05
IG_GAP_FLOOR = 1e-4  # below this absolute gap (auto's own floor) a tiny ΔF is not flagged


def terminal_table(records: Iterable[EvaluationRecord]) -> list[str]:
    """A compact accuracy table per model x dataset x codec."""
    lines: list[str] = []
    for (model, pretrained, dataset, codec), rows in group_records(records).items():
        first = rows[0]
        extra = "mean_per_class_recall" in first  # files written before top-5 and per-class recall have neither
        lines.append(f"{model}/{pretrained} on {dataset} ({codec}, n={first['n']}; uncompressed {first['baseline_accuracy']:.2%}{source_note(first)})")
        metrics = f" {'top-5':>7} {'per-class':>9}" if extra else ""
        lines.append(f"  {'compression':<18} {'accuracy':>9} {'95% CI':>17}{metrics} {'drop':>7} {'drop 95% CI':>15} {'bits/px':>8} {'flipped':>8}")
        for row in rows:
            low, high = row["ci95"]
            drop_low, drop_high = row.get("drop_ci95") or (float("nan"), float("nan"))
            top5 = row.get("top5")
            values = f" {'—' if top5 is None else f'{top5:.2%}':>7} {row.get('mean_per_class_recall', 0.0):>9.2%}" if extra else ""
            lines.append(
                f"  {row['compression_id']:<18} {row['accuracy']:>9.2%} {f'{low:.1%}-{high:.1%}':>17}{values} "
                f"{row['drop'] * 100:>7.2f} {f'{drop_low * 100:.1f} to {drop_high * 100:.1f}':>15} {row['bits_per_pixel']:>8.2f} {row['flipped']:>8}"
            )
        for row in rows:
            if row.get("flip_confusion"):
                lines.append(f"  flips under {row['compression_id']}: " + flip_text(row["flip_confusion"]))
    return lines


def breaking_point_verdict(point: BreakingPoint) -> str:
    """``breaks accuracy floor 0.85 at quality=57 (last passing 58)``, or that it holds everywhere."""
    if point.breaking_value is None:
        return f"holds {point.metric} floor {point.floor:g} at every setting"
    verdict = f"breaks {point.metric} floor {point.floor:g} at {point.param}={point.breaking_value:g}"
    if point.last_passing_value is not None:
        verdict += f" (last passing {point.last_passing_value:g})"
    return verdict


def breaking_point_lines(points: Iterable[BreakingPoint]) -> list[str]:
    """One line per breaking-point search, then its frontier from mild to harsh."""
    lines: list[str] = []
    for point in points:
        where = f"{point.model}/{point.pretrained} on {point.dataset}, {point.codec} {point.param}"
        lines.append(f"breaking point: {where} {breaking_point_verdict(point)}")
        for probe in point.frontier:
            lines.append(
                f"  {probe['setting']:<18} accuracy {probe['accuracy']:7.2%}  drop {probe['drop'] * 100:6.2f}  "
                f"bits/px {probe['bits_per_pixel']:6.2f}  {'passes' if probe['passes'] else 'FAILS'}"
            )
    return lines


def attribution_text(data: AttributionSet) -> str:
    """Plain-text IG numbers for a test's report section (terminal and JUnit)."""
    lines = [
        f"Integrated Gradients ({len(data['items'])} flipped images, {data['seconds']:.1f} s); "
        "F = cross-entropy of the true class; IG from the reference input to the compressed image"
    ]
    lines.append(
        f"{'index':>6} {'true':<12} {'before':<12} {'after':<12} {'F(in)-F(ref)':>13} {'sum IG':>9} {'gap':>9} {'+mass':>8} {'-mass':>8} {'on 8x8 edges':>12}"
    )
    for item in data["items"]:
        lines.append(
            f"{item['index']:>6} {item['true_name'][:12]:<12} {item['pred_uncompressed_name'][:12]:<12} {item['pred_compressed_name'][:12]:<12} "
            f"{item['delta_f']:>13.4f} {item['sum_attributions']:>9.4f} {item['completeness_gap']:>9.2e} {item['positive_mass']:>8.3f} "
            f"{item['negative_mass']:>8.3f} {item['boundary_share']:>5.0%} of |IG| on {item['boundary_area_share']:.0%} of pixels"
        )
    lines += [warning for warning in map(gap_warning, data["items"]) if warning]
    lines.append(aggregate_text(data["summary"]))
    return "\n".join(lines)


def gap_warning(item: AttributionItem) -> str | None:
    """``IG gap 7% of ΔF: ...`` when an image's quadrature error is too large to trust its attributions."""
    gap, delta = item["completeness_gap"], abs(item["delta_f"])
    if gap <= max(IG_GAP_FLAG * delta, IG_GAP_FLOOR):
        return None
    share = f"{gap / delta:.0%}" if delta > 0 else "more than all"
    return f"image {item['index']}: IG gap {share} of ΔF: raise --clip-ig-steps or use auto"


def aggregate_text(summary: AttributionSummary) -> str:
    """One line of per-test totals: how faithful the attributions are and where their mass sits."""
    return (
        f"all {summary['count']}: mean completeness gap {summary['mean_completeness_gap']:.2e} against mean |F(in)-F(ref)| "
        f"{summary['mean_abs_delta_f']:.3f}; +mass {summary['total_positive_mass']:.3f}, -mass {summary['total_negative_mass']:.3f}; "
        f"{summary['mean_boundary_share']:.0%} of |IG| on JPEG 8x8 block edges, which are {summary['mean_boundary_area_share']:.0%} of pixels"
    )


def gate_lines(
    changes: Sequence[QuantityChange], compression_id: str, reference: str, candidate: str, reference_label: str = "", candidate_label: str = ""
) -> list[str]:
    """A gate comparison as a text table: one row per quantity with both values, the change, its 95% interval, p and the verdict."""
    lines = [f"  {name}: {label}" for name, label in ((reference, reference_label), (candidate, candidate_label)) if label]
    lines.append(f"  {'quantity':<28} {reference[:16]:>16} {candidate[:16]:>16} {'change':>8} {'95% CI (points)':>18} {'p':>9}  verdict")
    for change in changes:
        value, interval = change_text(change)
        lines.append(
            f"  {quantity_label(change, compression_id):<28} {quantity_value(change, 'reference'):>16} {quantity_value(change, 'candidate'):>16} "
            f"{value:>8} {interval:>18} {change['p_value']:>9.3g}  {change['verdict']}"
        )
    lines.append(f"  {CHANGE_SIGN}")
    return lines


def comparison_table(rows: Sequence[ComparisonRow], old_label: str = "old", new_label: str = "new") -> list[str]:
    """Each pair's gate table (:func:`gate_lines`) under a line naming the model, dataset and compression, with the verdict."""
    lines: list[str] = []
    for row in rows:
        same = row["candidate_role"] == row["reference_role"]
        model = row["candidate_role"] if same else f"{row['reference_role']} -> {row['candidate_role']}"
        where = f"{model} on {row['dataset']} under {row['compression_id']}"
        if "error" in row:
            lines.append(f"{where}: not comparable: {row['error']}")
            continue
        lines.append(f"{where} (same {row['n']} images, margin {row['margin'] * 100:.2f} points): {row['verdict'].upper()}")
        lines += gate_lines(row["changes"], row["compression_id"], old_label, new_label)[:-1]
    if any("changes" in row for row in rows):
        lines.append(CHANGE_SIGN)
    return lines
