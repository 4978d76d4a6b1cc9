"""The result of one evaluation (:class:`EvalResult`): a model's zero-shot logits on a dataset subset
under one compression and uncompressed, and every number read from them (top-1 accuracy, top-5
accuracy, mean per-class recall, drops, intervals, flips); its record for the results file and the
reports.

Top-5 and mean per-class recall are CLIP_benchmark's (``clip_benchmark/metrics/zeroshot_classification.py``):
top-5 is the share of images whose true class is among the 5 highest logits (undefined, NaN there
and None in our records, for fewer than 5 classes); mean per-class recall is scikit-learn's
``balanced_accuracy_score``: the recall of each class *present in the subset's labels*, averaged
with equal weight, so a class with no image in the subset counts for nothing (not as 0). Ties
between logits (measure zero with float scores) go to the lower class index, as ``argmax`` breaks
them for top-1, so top-1 hits are always top-5 hits.
"""

from __future__ import annotations

from collections import Counter
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
    source_format: str = "pixels"  # how the dataset stores its images: "uncompressed" is their decoded form
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
    def top5_hits(self) -> np.ndarray | None:
        """Per image: the true class is among the 5 highest logits (None for fewer than 5 classes)."""
        return top_k_hits(self.logits, self.labels, 5)

    @property
    def top5(self) -> float | None:
        """Top-5 accuracy under compression (None for fewer than 5 classes, where it is undefined)."""
        hits = self.top5_hits
        return None if hits is None else float(hits.mean())

    @property
    def baseline_top5(self) -> float | None:
        hits = top_k_hits(self.baseline_logits, self.labels, 5)
        return None if hits is None else float(hits.mean())

    def top5_interval(self, confidence: float = 0.95) -> tuple[float, float] | None:
        """Wilson's interval of top-5 accuracy, a proportion of images like top-1's."""
        hits = self.top5_hits
        return None if hits is None else wilson_interval(int(hits.sum()), self.n, confidence)

    def paired_top5_drop(self, confidence: float = 0.95) -> PairedDifference | None:
        """The top-5 drop as a paired difference on the same images (None for fewer than 5 classes)."""
        hits, baseline = self.top5_hits, top_k_hits(self.baseline_logits, self.labels, 5)
        return None if hits is None or baseline is None else PairedDifference.from_hits(baseline, hits, confidence)

    @property
    def mean_per_class_recall(self) -> float:
        """Balanced accuracy under compression: the mean recall of the classes present in the subset."""
        return mean_per_class_recall(self.labels, self.predictions)

    @property
    def baseline_mean_per_class_recall(self) -> float:
        return mean_per_class_recall(self.labels, self.baseline_predictions)

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
        """Accuracy (recall) per class name, for the classes present in the subset. A name two classes
        share (CLIP's ImageNet list has two "missile" and two "sunglasses") gets its label: ``missile #657``."""
        hits = self.predictions == self.labels
        repeated = {name for name, count in Counter(self.classes).items() if count > 1}
        names = [f"{name} #{c}" if name in repeated else name for c, name in enumerate(self.classes)]
        return {names[c]: float(hits[self.labels == c].mean()) for c in np.unique(self.labels).tolist()}

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
        top5_interval = self.top5_interval()
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
            "top5": self.top5,
            "top5_ci95": None if top5_interval is None else list(top5_interval),
            "baseline_top5": self.baseline_top5,
            "mean_per_class_recall": self.mean_per_class_recall,
            "baseline_mean_per_class_recall": self.baseline_mean_per_class_recall,
            "source_format": self.source_format,
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


TOP_K_ROWS = 4096


def top_k_hits(logits: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray | None:
    """Per image, whether the true class ranks among the ``k`` highest logits; None with fewer than ``k`` classes.

    A class ranks above the true one when its logit is higher, or equal with a lower index (argmax's
    tie rule), so no sort is needed: O(images x classes).
    """
    if logits.shape[1] < k:
        return None
    hits = np.empty(len(labels), dtype=bool)
    for start in range(0, len(labels), TOP_K_ROWS):  # in blocks: 50,000 x 1,000 comparisons at once would take 150 MB
        block, block_labels = logits[start : start + TOP_K_ROWS], labels[start : start + TOP_K_ROWS]
        true = block[np.arange(len(block_labels)), block_labels][:, None]
        lower_index = np.arange(block.shape[1])[None, :] < block_labels[:, None]
        hits[start : start + len(block_labels)] = ((block > true) | ((block == true) & lower_index)).sum(axis=1) < k
    return hits


def mean_per_class_recall(labels: np.ndarray, predictions: np.ndarray) -> float:
    """scikit-learn's ``balanced_accuracy_score``: per class present in ``labels``, the share of its images
    predicted as it, averaged over those classes (absent classes, even if predicted, do not count)."""
    present, counts = np.unique(labels, return_counts=True)
    hits = np.bincount(labels[predictions == labels], minlength=int(present.max()) + 1)[present]
    return float((hits / counts).mean())


def softmax(logits: np.ndarray) -> np.ndarray:
    """Class probabilities along the last axis (one image's logits, or a batch of them)."""
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)
