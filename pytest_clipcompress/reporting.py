"""Text renderings of the records, made on the controller: the terminal table, breaking points and
the attribution numbers (text for a test's report section, an escaped HTML table for pytest-html
and the report folder).
"""

from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from .outcomes import flip_text
from .records import AttributionItem, AttributionSet


def group_records(records: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str, str, str], list[Mapping[str, Any]]]:
    """Records by (model, pretrained, dataset, codec), each group ordered from mild to harsh compression."""
    groups: dict[tuple[str, str, str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for record in records:
        groups[(record["model"], record["pretrained"], record["dataset"], record["compression"]["codec"])].append(record)
    return {key: sorted(rows, key=lambda r: -r["bits_per_pixel"]) for key, rows in sorted(groups.items())}


def terminal_table(records: Iterable[Mapping[str, Any]]) -> list[str]:
    """A compact accuracy table per model x dataset x codec."""
    lines: list[str] = []
    for (model, pretrained, dataset, codec), rows in group_records(records).items():
        first = rows[0]
        lines.append(f"{model}/{pretrained} on {dataset} ({codec}, n={first['n']}; uncompressed {first['baseline_accuracy']:.2%})")
        lines.append(f"  {'compression':<18} {'accuracy':>9} {'95% CI':>17} {'drop':>7} {'drop 95% CI':>15} {'bits/px':>8} {'flipped':>8}")
        for row in rows:
            low, high = row["ci95"]
            drop_low, drop_high = row.get("drop_ci95") or (float("nan"), float("nan"))
            lines.append(
                f"  {row['compression_id']:<18} {row['accuracy']:>9.2%} {f'{low:.1%}-{high:.1%}':>17} "
                f"{row['drop'] * 100:>7.2f} {f'{drop_low * 100:.1f} to {drop_high * 100:.1f}':>15} {row['bits_per_pixel']:>8.2f} {row['flipped']:>8}"
            )
        for row in rows:
            if row.get("flip_confusion"):
                lines.append(f"  flips under {row['compression_id']}: " + flip_text(row["flip_confusion"]))
    return lines


def breaking_point_lines(points: Iterable[Mapping[str, Any]]) -> list[str]:
    """One line per breaking-point search, then its frontier from mild to harsh."""
    lines: list[str] = []
    for point in points:
        where = f"{point['model']}/{point['pretrained']} on {point['dataset']}, {point['codec']} {point['param']}"
        if point["breaking_value"] is None:
            verdict = f"holds {point['metric']} floor {point['floor']:g} at every setting"
        else:
            verdict = f"breaks {point['metric']} floor {point['floor']:g} at {point['param']}={point['breaking_value']:g}"
            if point["last_passing_value"] is not None:
                verdict += f" (last passing {point['last_passing_value']:g})"
        lines.append(f"breaking point: {where} {verdict}")
        for probe in point["frontier"]:
            lines.append(
                f"  {probe['setting']:<18} accuracy {probe['accuracy']:7.2%}  drop {probe['drop'] * 100:6.2f}  "
                f"bits/px {probe['bits_per_pixel']:6.2f}  {'passes' if probe['passes'] else 'FAILS'}"
            )
    return lines


def attribution_text(data: AttributionSet) -> str:
    """Plain-text IG numbers for a test's report section (terminal and JUnit)."""
    lines = [
        f"Integrated Gradients ({len(data['items'])} flipped images, {data['seconds']:.1f} s); "
        "F = cross-entropy of the true class; IG from baseline to compressed input"
    ]
    lines.append(f"{'index':>6} {'true':<12} {'before':<12} {'after':<12} {'F(in)-F(base)':>13} {'sum IG':>9} {'gap':>9} {'+mass':>8} {'-mass':>8} {'on 8x8 edges':>12}")
    for item in data["items"]:
        lines.append(
            f"{item['index']:>6} {item['true_name'][:12]:<12} {item['pred_uncompressed_name'][:12]:<12} {item['pred_compressed_name'][:12]:<12} "
            f"{item['delta_f']:>13.4f} {item['sum_attributions']:>9.4f} {item['completeness_gap']:>9.2e} {item['positive_mass']:>8.3f} "
            f"{item['negative_mass']:>8.3f} {item['boundary_share']:>5.0%} of |IG| on {item['boundary_area_share']:.0%} of pixels"
        )
    lines.append(aggregate_text(data["summary"]))
    return "\n".join(lines)


def aggregate_text(summary: Mapping[str, Any]) -> str:
    """One line of per-test totals: how faithful the attributions are and where their mass sits."""
    return (
        f"all {summary['count']}: mean completeness gap {summary['mean_completeness_gap']:.2e} against mean |F(in)-F(base)| "
        f"{summary['mean_abs_delta_f']:.3f}; +mass {summary['total_positive_mass']:.3f}, -mass {summary['total_negative_mass']:.3f}; "
        f"{summary['mean_boundary_share']:.0%} of |IG| on JPEG 8x8 block edges, which are {summary['mean_boundary_area_share']:.0%} of pixels"
    )


_TABLE_COLUMNS = (
    "index", "true", "pred before", "pred after", "P(true) before", "P(true) after",
    "F(input)-F(baseline)", "sum IG", "completeness gap", "+mass", "-mass", "boundary share / area",
)


def attribution_table_html(items: Iterable[AttributionItem]) -> str:
    """A compact HTML table with one row per explained image; every cell is escaped."""

    def cells(item: AttributionItem) -> list[str]:
        return [
            str(item["index"]),
            item["true_name"],
            item["pred_uncompressed_name"],
            item["pred_compressed_name"],
            f"{item['prob_true_uncompressed']:.3f}",
            f"{item['prob_true_compressed']:.3f}",
            f"{item['delta_f']:+.4g}",
            f"{item['sum_attributions']:+.4g}",
            f"{item['completeness_gap']:.2g}",
            f"{item['positive_mass']:.4g}",
            f"{item['negative_mass']:.4g}",
            f"{item['boundary_share']:.2f} / {item['boundary_area_share']:.2f}",
        ]

    header = "".join(f"<th>{html.escape(name)}</th>" for name in _TABLE_COLUMNS)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in cells(item)) + "</tr>" for item in items)
    return f'<table class="clip-ig"><thead><tr>{header}</tr></thead><tbody>{rows}</tbody></table>'
