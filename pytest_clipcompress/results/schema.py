"""The record types: what crosses from an xdist worker to the controller, what the results file holds
and what every renderer reads. Declared once, here; the engine, IG and the comparisons return them.

Records are :class:`~typing.TypedDict` s, so a record's JSON form is the record itself (pytest-xdist
sends reports as JSON, the results file is JSON). The one exception is :class:`BreakingPoint`,
which tests also read by attribute (``point.breaking_value``): a frozen dataclass with
``to_dict``/``from_dict``. Records carry numbers, names and PNG bytes (as base64 text) only: no
HTML or text is rendered on a worker. Pure Python: no numpy, torch or pytest.

Two keys join records: :func:`record_key` (an :class:`EvalKey`) is what makes two evaluations the
same one, and the results file's order; :func:`case_key` (model id, dataset, compression) is what
a floor check, a gate check, a search probe and a baseline entry share with the evaluation they
are about.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, NamedTuple, TypedDict

if sys.version_info >= (3, 11):
    from typing import NotRequired
else:  # typing_extensions comes with torch
    from typing_extensions import NotRequired

PLUGIN_NAME = "pytest-clipcompress"  # the results file's "plugin" marker


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


def eval_key(model: str, pretrained: str, dataset: str, compression: Mapping[str, object], n: int, seed: int, templates: str, role: str) -> EvalKey:
    """The one evaluation key, from an evaluation's identifying fields (``compression`` as in its record)."""
    return EvalKey(model, pretrained, dataset, str(compression["codec"]), json.dumps(dict(compression), sort_keys=True), n, seed, templates, role or model)


class CaseKey(NamedTuple):
    """What a check, a probe and a baseline entry share with their evaluation: model id, dataset, compression."""

    role: str
    dataset: str
    compression_id: str


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
    top5: NotRequired[float | None]  # top-5 accuracy (None: fewer than 5 classes); absent in files written before it
    top5_ci95: NotRequired[list[float] | None]  # its Wilson interval
    baseline_top5: NotRequired[float | None]
    mean_per_class_recall: NotRequired[float]  # CLIP_benchmark's balanced accuracy over the classes present
    baseline_mean_per_class_recall: NotRequired[float]
    source_format: NotRequired[str]  # how the dataset stores its images ("JPEG", "pixels"): what "uncompressed" decodes
    per_class: dict[str, float]
    bits_per_pixel: float
    flipped: int
    drop_ci95: list[float]
    drop_p_value: float
    discordant: dict[str, int]  # {"lost": ..., "gained": ...}
    flip_confusion: list[dict[str, Any]]
    data: dict[str, Any]  # results.per_image.Outcomes.record_fields
    outcomes: dict[str, Any]
    probe: NotRequired[bool]  # made only by a search (hypothesis examples, breaking-point probes), apart from the grid


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


def record_id(record: Mapping[str, object]) -> str:
    """The model id of a record: its role, else its model name (files from before roles have none)."""
    return str(record.get("role") or record.get("model"))


def case_key(record: Mapping[str, object]) -> CaseKey:
    """The join key of any record about one evaluation (evaluation, check, probe, baseline entry)."""
    return CaseKey(record_id(record), str(record.get("dataset")), str(record.get("compression_id")))


#: The verdicts of a gate comparison, worst first: every output uses these words.
VERDICTS = ("regressed", "inconclusive", "no change", "improved")


class QuantityChange(TypedDict):
    """One quantity a gate compares, the candidate against the reference on the same images.

    ``quantity`` is ``clean`` (accuracy uncompressed), ``compressed`` (accuracy under the
    compression) or ``drop`` (clean minus compressed). ``change`` is oriented so that negative
    means the candidate is worse: candidate minus reference for the accuracies, reference minus
    candidate for the drop (a larger drop is worse); ``change_ci95`` is its paired 95% interval
    and ``resolution`` the interval's half-width, the smallest change these images can tell from
    noise. ``b``/``c`` (accuracies only) count the images right only in the reference / only in the
    candidate.
    """

    quantity: str
    reference: float
    candidate: float
    change: float
    change_ci95: list[float]
    p_value: float
    resolution: float
    verdict: str
    b: NotRequired[int]
    c: NotRequired[int]


class CheckRecord(TypedDict):
    """One check a test made on an evaluation.

    ``kind`` is ``floor`` (``assert_accuracy``), ``baseline`` (``assert_no_regression`` against the
    stored baseline) or ``model`` (``assert_not_worse`` against another model of the run). Every
    check names the evaluation it was made on (model id, model, weights, dataset, compression).
    Floor checks carry the floors and where each came from (``floor_sources``: ``test`` or
    ``config``); gate checks the margin, the reference and one :class:`QuantityChange` per quantity
    with the overall ``verdict`` (the worst of theirs).
    """

    kind: str
    role: str
    model: str
    pretrained: str
    weights: str  # the weights hash (LoadedModel.weights_hash), "" where unknown
    dataset: str
    compression_id: str
    min_accuracy: float | None
    max_drop: float | None
    passed: bool
    floor_sources: NotRequired[dict[str, str]]  # floor name -> test | config
    confidence: NotRequired[float]  # the floors apply to this interval (assert_accuracy(confidence=...))
    metric: NotRequired[str]  # the floors are on top5 or mean_per_class_recall (assert_accuracy(metric=...)); absent: top-1
    max_regression: NotRequired[float]  # gate checks only
    alpha: NotRequired[float]
    reference: NotRequired[str]  # the reference: the baseline file's name, or the other model's id
    reference_label: NotRequired[str]  # the reference's model and weights, as people read it
    changes: NotRequired[list[QuantityChange]]
    verdict: NotRequired[str]
    test: NotRequired[str]  # the test's node id, added on the controller
    outcome: NotRequired[str | None]  # the test's outcome (e.g. xfailed), None where the report had none


class FrontierProbe(TypedDict):
    setting: str
    value: float
    accuracy: float
    drop: float
    bits_per_pixel: float
    passes: bool


@dataclass(frozen=True)
class BreakingPoint:
    """One ``clip_breaking_point`` search: where the metric crosses ``floor``, and every setting probed on the way.

    ``breaking_value`` is the mildest value that fails (``None`` if even the harshest passes);
    ``last_passing_value`` is the next milder value, which passes (``None`` if the mildest fails).
    ``frontier`` lists the probes from mild to harsh. The search fills these; the fixture adds the
    model and dataset it ran on, the controller the test that ran it.
    """

    codec: str
    param: str
    floor: float
    metric: str
    breaking_value: float | None
    last_passing_value: float | None
    frontier: list[FrontierProbe]
    evaluations: int
    model: str = ""
    pretrained: str = ""
    dataset: str = ""
    role: str = ""
    test: str = field(default="", compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, as the results file holds it (``test`` only once the controller set it)."""
        data = asdict(self)
        if not self.test:
            del data["test"]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BreakingPoint:
        known = {f.name for f in fields(cls)}
        return cls(**{name: value for name, value in data.items() if name in known})


class AttributionItem(TypedDict):
    """Integrated Gradients numbers for one flipped image, with the names a renderer shows.

    ``f_input`` / ``f_reference`` are the cross-entropy losses of the compressed image and of IG's
    reference input (``reference_input``: ``--clip-ig-baseline``, what captum calls the baseline; not
    the ``--clip-baseline`` file); ``chosen_as`` says why the image was explained (``compression
    flip``, or ``lost against <reference>`` on a failed gate check); ``positive_mass`` and ``negative_mass`` are the sums
    of the positive and of the absolute negative attributions; ``boundary_share`` is the share of
    ``sum |IG|`` on pixels sampled from JPEG 8x8 block-boundary pixels and ``boundary_area_share``
    the share of such pixels, so a ratio above one means attributions concentrate on block edges.
    """

    index: int
    label: int
    pred_uncompressed: int
    pred_compressed: int
    prob_true_uncompressed: float
    prob_true_compressed: float
    steps: int
    method: str
    f_input: float
    f_reference: float
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
    reference_input: str
    chosen_as: str
    true_name: str
    pred_uncompressed_name: str
    pred_compressed_name: str


class AttributionSummary(TypedDict):
    """A test's totals over its explained images (means are None when there are none)."""

    count: int
    mean_completeness_gap: float | None
    mean_abs_delta_f: float | None
    total_positive_mass: float
    total_negative_mass: float
    mean_boundary_share: float | None
    mean_boundary_area_share: float | None
    total_seconds: float


class AttributionSet(TypedDict):
    """A test's explained images: their numbers, their pictures (PNG as base64 text) and totals."""

    items: list[AttributionItem]
    images: list[str]
    summary: AttributionSummary
    seconds: float


class ModelFacts(TypedDict):
    """What identifies a loaded model's numbers (results.metadata.model_facts)."""

    label: str
    weights_hash: str
    device: str
    precision: str


class GitState(TypedDict):
    commit: str
    dirty: bool | None


class RunBlock(TypedDict):
    """What produced a results file: models (with weights hashes), device, libraries, commit, start time."""

    models: list[ModelFacts]
    device: str
    precision: str
    versions: dict[str, str]
    git: GitState | None
    started_utc: str
    settings: NotRequired[dict[str, Any]]  # the settings that change the numbers (samples, seed, prompts, ...): shards of one run share them
    shards: NotRequired[int]  # how many results files ``merge`` joined into this one


class ReportData(TypedDict):
    """Everything one test report carries for the plugin (``report.clipcompress``), in JSON form."""

    evaluations: list[EvaluationRecord]
    checks: list[CheckRecord]
    breaking_points: list[dict[str, Any]]  # BreakingPoint.to_dict()
    attributions: NotRequired[AttributionSet]
    note: NotRequired[str]  # why attributions are missing or partial, one line
    search: NotRequired[bool]  # a hypothesis test: its evaluations are probes, apart from the grid
    models: NotRequired[list[ModelFacts]]  # facts of the models that made the evaluations


class FailureRecord(TypedDict):
    """A test whose attributions the reports show (controller side)."""

    test: str
    outcome: str  # failed | xfailed
    attributions: AttributionSet | None  # None when IG was off or skipped for the test


class SkipRecord(TypedDict):
    """A skipped test and pytest's reason; ``clip`` when the test is a clip case (it uses the plugin's fixtures)."""

    test: str
    reason: str
    clip: NotRequired[bool]


class ComparisonRow(TypedDict):
    """One evaluation paired with its reference (the baseline's, or another model's) on the same images:
    one :class:`QuantityChange` per quantity, and the overall ``verdict`` (:mod:`..compare` decides
    them at ``margin``). ``error`` says why the two could not be compared (the numbers are then absent).
    """

    reference_role: str
    candidate_role: str
    dataset: str
    compression_id: str
    error: NotRequired[str]
    n: NotRequired[int]
    margin: NotRequired[float]
    changes: NotRequired[list[QuantityChange]]
    verdict: NotRequired[str]
    classes_lost: NotRequired[str]
    flips: NotRequired[str]
