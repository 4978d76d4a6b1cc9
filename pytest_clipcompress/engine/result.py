"""The result of one evaluation (:class:`EvalResult`): a model's zero-shot logits on a dataset subset
under one compression and uncompressed, and every number read from them (accuracy, drop, intervals,
flips); its record for the results file and the reports."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..codecs.compression import Compression
from ..config.settings import FloorOptions
from ..results.file import ResultsFile
from ..results.per_image import Outcomes
from ..results.schema import CaseKey, CheckRecord, EvalKey, EvaluationRecord, eval_key
from .stats import PairedDifference, wilson_interval


@dataclass
class EvalResult:
    """Zero-shot accuracy of one model on one dataset subset under one compression."""

    model: str
    pretrained: str
    dataset: str
    compression: Compression
    classes: tuple[str, ...]
    indices: np.ndarray
    labels: np.ndarray
    logits: np.ndarray
    baseline_logits: np.ndarray
    bits_per_pixel: float
    templates: str
    seed: int
    checks: list[CheckRecord] = field(default_factory=list)
    activation: str = "GELU"  # the built model's activation, QuickGELU for OpenAI's weights
    role: str = ""  # the --clip-model id (role, else model name): the comparison key
    fingerprint: str = ""
    templates_digest: str = ""
    weights: str = ""  # the weights hash of the model that made it
    # What the run checks results against; the plugin sets them on the copy a test receives.
    floors: FloorOptions = field(default=FloorOptions(None, None), repr=False)
    baseline: ResultsFile | None = field(default=None, repr=False)
    # Positions a failed gate check lost against its reference (under compression); IG explains these first.
    lost: np.ndarray | None = field(default=None, repr=False)

    @property
    def n(self) -> int:
        return len(self.labels)

    @property
    def model_id(self) -> str:
        """The id the evaluator knows this model by (its role, else its name)."""
        return self.role or self.model

    @property
    def min_accuracy_default(self) -> float | None:
        """The configured ``min_accuracy`` floor (``clip_min_accuracy``)."""
        return self.floors.min_accuracy

    @property
    def max_drop_default(self) -> float | None:
        """The configured ``max_drop`` floor (``clip_max_drop``)."""
        return self.floors.max_drop

    @property
    def stored_baseline(self) -> ResultsFile | None:
        """The ``--clip-baseline`` file, read once per run (the same as :attr:`baseline`)."""
        return self.baseline

    @property
    def predictions(self) -> np.ndarray:
        return self.logits.argmax(axis=1)

    @property
    def baseline_predictions(self) -> np.ndarray:
        return self.baseline_logits.argmax(axis=1)

    @property
    def correct(self) -> int:
        return int((self.predictions == self.labels).sum())

    @property
    def accuracy(self) -> float:
        return self.correct / self.n

    @property
    def baseline_accuracy(self) -> float:
        return int((self.baseline_predictions == self.labels).sum()) / self.n

    @property
    def drop(self) -> float:
        return self.baseline_accuracy - self.accuracy

    @property
    def ci_low(self) -> float:
        return wilson_interval(self.correct, self.n)[0]

    @property
    def ci_high(self) -> float:
        return wilson_interval(self.correct, self.n)[1]

    def accuracy_interval(self, confidence: float = 0.95) -> tuple[float, float]:
        return wilson_interval(self.correct, self.n, confidence)

    def paired_drop(self, confidence: float = 0.95) -> PairedDifference:
        """The drop as a paired difference: uncompressed minus compressed accuracy on the same images."""
        return PairedDifference.from_hits(self.baseline_predictions == self.labels, self.predictions == self.labels, confidence)

    @property
    def outcomes(self) -> Outcomes:
        return Outcomes(
            self.indices, self.labels, self.predictions, self.baseline_predictions, self.classes, self.fingerprint, self.templates_digest, self.seed
        )

    @property
    def per_class(self) -> dict[str, float]:
        """Accuracy per class name, for the classes present in the subset."""
        hits = self.predictions == self.labels
        return {name: float(hits[self.labels == c].mean()) for c, name in enumerate(self.classes) if (self.labels == c).any()}

    @property
    def flipped(self) -> np.ndarray:
        """Positions (into ``labels``) correct uncompressed and wrong compressed, most confident flips first."""
        return self.most_confident_first(np.flatnonzero((self.baseline_predictions == self.labels) & (self.predictions != self.labels)))

    def most_confident_first(self, positions: np.ndarray) -> np.ndarray:
        """``positions`` ordered by the confidence of the prediction under compression, highest first (ties by position)."""
        confidence = softmax(self.logits[positions]).max(axis=1) if len(positions) else np.empty(0)
        return positions[np.lexsort((positions, -confidence))]

    @property
    def key(self) -> EvalKey:
        return eval_key(self.model, self.pretrained, self.dataset, self.compression.to_dict(), self.n, self.seed, self.templates, self.model_id)

    @property
    def case(self) -> CaseKey:
        return CaseKey(self.model_id, self.dataset, self.compression.id)

    def worst_classes(self, count: int = 3) -> list[tuple[str, float]]:
        return sorted(self.per_class.items(), key=lambda item: (item[1], item[0]))[:count]

    def to_record(self) -> EvaluationRecord:
        """The evaluation's record for the results file and the reports."""
        outcomes = self.outcomes
        drop = self.paired_drop()
        fields = outcomes.record_fields()
        return {
            "model": self.model,
            "role": self.model_id,
            "pretrained": self.pretrained,
            "activation": self.activation,
            "dataset": self.dataset,
            "n": self.n,
            "seed": self.seed,
            "templates": self.templates,
            "compression": self.compression.to_dict(),
            "compression_id": self.compression.id,
            "accuracy": self.accuracy,
            "baseline_accuracy": self.baseline_accuracy,
            "drop": self.drop,
            "ci95": [self.ci_low, self.ci_high],
            "per_class": self.per_class,
            "bits_per_pixel": self.bits_per_pixel,
            "flipped": len(self.flipped),
            "drop_ci95": list(drop.interval),
            "drop_p_value": drop.p_value,
            "discordant": {"lost": drop.b, "gained": drop.c},
            "flip_confusion": outcomes.flip_confusion(),
            "data": fields["data"],
            "outcomes": fields["outcomes"],
        }

    def check_record(self, passed: bool, min_accuracy: float | None = None, max_drop: float | None = None, *, kind: str = "floor", **extra: Any) -> CheckRecord:
        """A check made on this evaluation: a floor, or (``kind`` ``baseline`` / ``model``) a gate check with
        ``max_regression``, ``reference`` and its ``changes``."""
        check: CheckRecord = {
            "kind": kind,
            "role": self.model_id,
            "model": self.model,
            "pretrained": self.pretrained,
            "weights": self.weights,
            "dataset": self.dataset,
            "compression_id": self.compression.id,
            # Plain floats, whatever number type the test passed (numpy scalars do not serialise).
            "min_accuracy": None if min_accuracy is None else float(min_accuracy),
            "max_drop": None if max_drop is None else float(max_drop),
            "passed": bool(passed),
        }
        check.update(extra)  # type: ignore[typeddict-item]
        return check


def unique_results(results: Iterable[EvalResult]) -> list[EvalResult]:
    """One result per evaluation key, last one wins (hypothesis repeats evaluations while shrinking)."""
    return list({result.key: result for result in results}.values())


def softmax(logits: np.ndarray) -> np.ndarray:
    """Class probabilities along the last axis (one image's logits, or a batch of them)."""
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)
