"""What a test report carries about its evaluations, and the terminal summary table.

Everything here is JSON-able, so pytest-xdist workers send it to the controller with the report.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .outcomes import flip_text

if TYPE_CHECKING:
    from .evaluation import EvalResult, Evaluator


def report_payload(results: list[EvalResult], breaking_points: list[dict[str, Any]], evaluator: Evaluator, failed: bool) -> dict[str, Any]:
    """Records of the evaluations a test used, the floors it checked, breaking points and, on failure, attributions."""
    payload: dict[str, Any] = {
        "evaluations": [result.to_record() for result in {r.key: r for r in results}.values()],
        "checks": [
            {"model": r.model, "pretrained": r.pretrained, "dataset": r.dataset, "compression_id": r.compression.id, **check}
            for r in results
            for check in r.checks
        ],
        "breaking_points": breaking_points,
        "models": _model_facts(results, evaluator),
    }
    if failed and evaluator.settings.ig_samples > 0:
        from .explain import explain_failures

        payload["attributions"] = explain_failures(results, evaluator)
    return payload


def _model_facts(results: list[EvalResult], evaluator: Evaluator) -> list[dict[str, str]]:
    """Facts of the models these results came from; they are loaded already, in this process."""
    from .metadata import model_facts

    return [model_facts(evaluator.model(name)) for name in sorted({result.model_id for result in results})]


def group_records(records: Iterable[dict[str, Any]]) -> dict[tuple[str, str, str, str], list[dict[str, Any]]]:
    """Records by (model, pretrained, dataset, codec), each group ordered from mild to harsh compression."""
    groups: dict[tuple[str, str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        groups[(record["model"], record["pretrained"], record["dataset"], record["compression"]["codec"])].append(record)
    return {key: sorted(rows, key=lambda r: -r["bits_per_pixel"]) for key, rows in sorted(groups.items())}


def terminal_table(records: Iterable[dict[str, Any]]) -> list[str]:
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


def breaking_point_verdict(point: dict[str, Any]) -> str:
    """``breaks accuracy floor 0.85 at quality=57 (last passing 58)``, or that it holds everywhere."""
    if point["breaking_value"] is None:
        return f"holds {point['metric']} floor {point['floor']:g} at every setting"
    verdict = f"breaks {point['metric']} floor {point['floor']:g} at {point['param']}={point['breaking_value']:g}"
    if point["last_passing_value"] is not None:
        verdict += f" (last passing {point['last_passing_value']:g})"
    return verdict


def breaking_point_lines(points: Iterable[dict[str, Any]]) -> list[str]:
    """One line per breaking-point search, then its frontier from mild to harsh."""
    lines: list[str] = []
    for point in points:
        where = f"{point['model']}/{point['pretrained']} on {point['dataset']}, {point['codec']} {point['param']}"
        lines.append(f"breaking point: {where} {breaking_point_verdict(point)}")
        for probe in point["frontier"]:
            lines.append(
                f"  {probe['setting']:<18} accuracy {probe['accuracy']:7.2%}  drop {probe['drop'] * 100:6.2f}  "
                f"bits/px {probe['bits_per_pixel']:6.2f}  {'passes' if probe['passes'] else 'FAILS'}"
            )
    return lines
