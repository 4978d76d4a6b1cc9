"""Typed records: what crosses from an xdist worker to the controller, and what the results file
and the renderers read.

Each record is a :class:`~typing.TypedDict`, so its JSON form is the record itself (pytest-xdist
sends reports as JSON) and renderers that read dicts keep working. Each is made by ONE constructor
below. Records carry numbers, names and PNG bytes only: no HTML or text is rendered on a worker.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, TypedDict

if sys.version_info >= (3, 11):
    from typing import NotRequired
else:  # typing_extensions comes with torch
    from typing_extensions import NotRequired

if TYPE_CHECKING:
    from .breaking_point import BreakingPoint
    from .evaluation import EvalResult


class EvalKey(NamedTuple):
    """What makes two evaluations the same one; also the results file's sort order."""

    model: str
    pretrained: str
    dataset: str
    codec: str
    compression: str  # the codec parameters as canonical JSON
    n: int
    seed: int
    templates: str
    role: str  # the --clip-model id: two roles may share a model name and a weights label


def eval_key(model: str, pretrained: str, dataset: str, compression: Mapping[str, Any], n: int, seed: int, templates: str, role: str) -> EvalKey:
    """The one evaluation key, from an evaluation's identifying fields (``compression`` as in its record)."""
    return EvalKey(model, pretrained, dataset, str(compression["codec"]), json.dumps(dict(compression), sort_keys=True), n, seed, templates, role or model)


def record_key(record: EvaluationRecord) -> EvalKey:
    return eval_key(
        record["model"],
        record["pretrained"],
        record["dataset"],
        record["compression"],
        record["n"],
        record["seed"],
        record["templates"],
        record.get("role", ""),
    )


class EvaluationRecord(TypedDict):
    """One evaluation: a model on a dataset subset under one compression, with its per-image outcomes."""

    model: str
    role: str
    pretrained: str
    activation: str
    dataset: str
    n: int
    seed: int
    templates: str
    compression: dict[str, Any]  # {"codec": ..., **params}
    compression_id: str
    accuracy: float
    baseline_accuracy: float
    drop: float
    ci95: list[float]
    per_class: dict[str, float]
    bits_per_pixel: float
    flipped: int
    drop_ci95: list[float]
    drop_p_value: float
    discordant: dict[str, int]  # {"lost": ..., "gained": ...}
    flip_confusion: list[dict[str, Any]]
    data: dict[str, Any]  # outcomes.Outcomes.record_fields
    outcomes: dict[str, Any]


def evaluation_record(result: EvalResult) -> EvaluationRecord:
    outcomes = result.outcomes
    drop = result.paired_drop()
    fields = outcomes.record_fields()
    return {
        "model": result.model,
        "role": result.model_id,
        "pretrained": result.pretrained,
        "activation": result.activation,
        "dataset": result.dataset,
        "n": result.n,
        "seed": result.seed,
        "templates": result.templates,
        "compression": result.compression.to_dict(),
        "compression_id": result.compression.id,
        "accuracy": result.accuracy,
        "baseline_accuracy": result.baseline_accuracy,
        "drop": result.drop,
        "ci95": [result.ci_low, result.ci_high],
        "per_class": result.per_class,
        "bits_per_pixel": result.bits_per_pixel,
        "flipped": len(result.flipped),
        "drop_ci95": list(drop.interval),
        "drop_p_value": drop.p_value,
        "discordant": {"lost": drop.b, "gained": drop.c},
        "flip_confusion": outcomes.flip_confusion(),
        "data": fields["data"],
        "outcomes": fields["outcomes"],
    }


class CheckRecord(TypedDict):
    """One floor check made by ``assert_accuracy``, or one gate check (``assert_no_regression``, ``assert_not_worse``)."""

    model: NotRequired[str]  # these four: floor checks only (check_record)
    pretrained: NotRequired[str]
    dataset: NotRequired[str]
    compression_id: NotRequired[str]
    min_accuracy: float | None
    max_drop: float | None
    passed: bool
    confidence: NotRequired[float]  # the floors apply to this interval (assert_accuracy(confidence=...))
    max_regression: NotRequired[float]  # gate checks only
    reference: NotRequired[str]  # assert_not_worse's reference model id
    test: NotRequired[str]  # the test's node id, added on the controller
    outcome: NotRequired[str | None]  # the test's outcome (e.g. xfailed), None where the report had none


def check_record(result: EvalResult, min_accuracy: float | None, max_drop: float | None, passed: bool, confidence: float | None = None) -> CheckRecord:
    check: CheckRecord = {
        "model": result.model,
        "pretrained": result.pretrained,
        "dataset": result.dataset,
        "compression_id": result.compression.id,
        # Plain floats, whatever number type the test passed (numpy scalars do not serialise).
        "min_accuracy": None if min_accuracy is None else float(min_accuracy),
        "max_drop": None if max_drop is None else float(max_drop),
        "passed": bool(passed),
    }
    if confidence is not None:
        check["confidence"] = confidence
    return check


class FrontierProbe(TypedDict):
    setting: str
    value: float
    accuracy: float
    drop: float
    bits_per_pixel: float
    passes: bool


class BreakingPointRecord(TypedDict):
    """One ``clip_breaking_point`` search and the settings it probed, mild to harsh."""

    model: str
    pretrained: str
    dataset: str
    codec: str
    param: str
    floor: float
    metric: str
    breaking_value: float | None
    last_passing_value: float | None
    frontier: list[FrontierProbe]
    evaluations: int
    test: NotRequired[str]  # added on the controller


def breaking_point_record(model: str, pretrained: str, dataset: str, point: BreakingPoint) -> BreakingPointRecord:
    return {
        "model": model,
        "pretrained": pretrained,
        "dataset": dataset,
        "codec": point.codec,
        "param": point.param,
        "floor": float(point.floor),
        "metric": point.metric,
        "breaking_value": point.breaking_value,
        "last_passing_value": point.last_passing_value,
        "frontier": [FrontierProbe(**probe) for probe in point.frontier],  # type: ignore[typeddict-item]
        "evaluations": point.evaluations,
    }


class AttributionItem(TypedDict):
    """Integrated Gradients numbers for one flipped image, with the names a renderer shows."""

    index: int
    label: int
    pred_uncompressed: int
    pred_compressed: int
    prob_true_uncompressed: float
    prob_true_compressed: float
    steps: int
    method: str
    f_input: float
    f_baseline: float
    delta_f: float
    sum_attributions: float
    completeness_gap: float
    positive_mass: float
    negative_mass: float
    boundary_share: float
    boundary_area_share: float
    seconds: float
    model: str
    dataset: str
    compression_id: str
    baseline: str
    true_name: str
    pred_uncompressed_name: str
    pred_compressed_name: str


def attribution_item(numbers: Mapping[str, Any], *, model: str, dataset: str, compression_id: str, baseline: str, classes: Sequence[str]) -> AttributionItem:
    """``numbers`` are :class:`~.attribution.ImageAttribution`'s fields; class names come from ``classes``."""
    return {
        **numbers,  # type: ignore[typeddict-item]
        "model": model,
        "dataset": dataset,
        "compression_id": compression_id,
        "baseline": baseline,
        "true_name": classes[numbers["label"]],
        "pred_uncompressed_name": classes[numbers["pred_uncompressed"]],
        "pred_compressed_name": classes[numbers["pred_compressed"]],
    }


class AttributionSet(TypedDict):
    """A test's explained images: their numbers, their pictures (PNG as base64 text) and totals."""

    items: list[AttributionItem]
    images: list[str]
    summary: dict[str, float | int | None]  # attribution.aggregate's totals
    seconds: float


def attribution_set(items: list[AttributionItem], pngs: Iterable[bytes], summary: dict[str, float | int | None], seconds: float) -> AttributionSet:
    import base64

    return {"items": items, "images": [base64.b64encode(png).decode("ascii") for png in pngs], "summary": summary, "seconds": seconds}


class ReportData(TypedDict):
    """Everything one test report carries for the plugin (``report.clipcompress``)."""

    evaluations: list[EvaluationRecord]
    checks: list[CheckRecord]
    breaking_points: list[BreakingPointRecord]
    attributions: NotRequired[AttributionSet]
    note: NotRequired[str]  # why attributions are missing or partial, one line
    search: NotRequired[bool]  # a hypothesis test: its evaluations are probes, apart from the grid
    models: NotRequired[list[dict[str, str]]]  # facts of the models that made the evaluations (metadata.model_facts)


def report_data(results: Sequence[EvalResult], breaking_points: list[BreakingPointRecord], attributions: AttributionSet | None, note: str | None) -> ReportData:
    """The data of one test: its distinct evaluations, every floor it checked, searches, attributions."""
    data: ReportData = {
        "evaluations": [evaluation_record(result) for result in unique_results(results)],
        "checks": [check for result in results for check in result.checks],
        "breaking_points": breaking_points,
    }
    if attributions is not None:
        data["attributions"] = attributions
    if note:
        data["note"] = note
    return data


def record_id(record: Mapping[str, Any]) -> str:
    """The comparison key of a record's model: its role, else its model name (older files have no role)."""
    return str(record.get("role") or record["model"])


def unique_results(results: Iterable[EvalResult]) -> list[EvalResult]:
    """One result per evaluation key, last one wins (hypothesis repeats evaluations while shrinking)."""
    return list({result.key: result for result in results}.values())


class FailureRecord(TypedDict):
    """A test whose attributions the reports show (controller side)."""

    test: str
    outcome: str  # failed | xfailed
    attributions: AttributionSet | None  # None when IG was off or skipped for the test
