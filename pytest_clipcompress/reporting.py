"""What a test report carries about its evaluations (rendering lives in :mod:`.render`).

Everything here is JSON-able, so pytest-xdist workers send it to the controller with the report.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
    }
    if failed and evaluator.settings.ig_samples > 0:
        from .explain import explain_failures

        payload["attributions"] = explain_failures(results, evaluator)
    return payload
