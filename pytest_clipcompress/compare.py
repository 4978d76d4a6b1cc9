"""Paired comparisons: a run against a stored baseline, two models of one run, or two results files,
image by image.

Records carry per-image outcomes (:mod:`.results.per_image`), so comparing needs no model
evaluation: the candidate's predictions on the same images are paired with the reference's. A
robustness gate compares three quantities (:func:`gate_changes`): the accuracy on the clean
images, the accuracy under the compression, and the drop between them. Each change is oriented
so that negative means the candidate is worse, and gets a paired 95% interval and one verdict of
:data:`~.results.schema.VERDICTS` at the margin (:func:`verdict`). The same numbers reach every
output as :class:`~.results.schema.QuantityChange` rows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import stdtr, stdtrit

from .engine.stats import PairedDifference
from .errors import ClipCompressError, ConfigError
from .render.format import flip_text
from .results.file import GateError, find_record
from .results.per_image import Outcomes, check_same_images
from .results.schema import VERDICTS, CaseKey, ComparisonRow, EvaluationRecord, QuantityChange, case_key, record_id

#: The margin of the verdicts on the pages and in ``compare`` when no check or option sets one: 1 point.
DEFAULT_MARGIN = 0.01
QUANTITY_NAMES = {"clean": "clean accuracy", "compressed": "accuracy", "drop": "drop"}


def describe(record: EvaluationRecord) -> str:
    return f"{record_id(record)} on {record['dataset']} under {record['compression_id']}"


def verdict(change: float, interval: Sequence[float], p_value: float, margin: float, alpha: float) -> str:
    """``regressed`` when the candidate is worse by more than ``margin`` and the test says so (``p < alpha``);
    ``improved`` when the whole interval is above zero; ``no change`` when the interval rules out a
    loss beyond the margin; otherwise ``inconclusive``: these images cannot tell."""
    low, _ = interval
    if change < -margin and p_value < alpha:
        return "regressed"
    if low > 0:
        return "improved"
    if low >= -margin:
        return "no change"
    return "inconclusive"


def worst(verdicts: Sequence[str]) -> str:
    """The overall verdict of several quantities: the first of :data:`VERDICTS` among them."""
    return next((name for name in VERDICTS if name in verdicts), "no change")


def accuracy_change(quantity: str, reference: np.ndarray, candidate: np.ndarray, margin: float, alpha: float) -> QuantityChange:
    """Candidate minus reference accuracy on the same images: Newcombe's paired interval, exact McNemar."""
    paired = PairedDifference.from_hits(reference, candidate)  # reference minus candidate
    low, high = paired.interval
    change, interval = 0.0 - paired.difference, [0.0 - high, 0.0 - low]  # 0.0 - x: no "-0.00" for no change
    return {
        "quantity": quantity,
        "reference": float(np.mean(reference)),
        "candidate": float(np.mean(candidate)),
        "change": change,
        "change_ci95": interval,
        "p_value": paired.p_value,
        "resolution": (high - low) / 2,
        "verdict": verdict(change, interval, paired.p_value, margin, alpha),
        "b": paired.b,
        "c": paired.c,
    }


def drop_change(reference: Outcomes, candidate: Outcomes, margin: float, alpha: float, confidence: float = 0.95) -> QuantityChange:
    """Reference drop minus candidate drop (negative: the candidate loses more to compression).

    Per image, a model's drop is ``right uncompressed - right compressed`` (-1, 0 or 1); the change is
    the mean of the per-image differences between the two models, with the paired t interval and
    the paired t test (Student's t from ``scipy.special``, as ``scipy.stats.ttest_rel`` computes it).
    """
    per_image = (reference.hits_uncompressed.astype(int) - reference.hits.astype(int)) - (candidate.hits_uncompressed.astype(int) - candidate.hits.astype(int))
    n = per_image.size
    change = float(per_image.mean())
    spread = float(per_image.std(ddof=1)) / math.sqrt(n) if n > 1 else 0.0
    if spread > 0:
        half = float(stdtrit(n - 1, 0.5 + confidence / 2)) * spread
        p_value = float(2 * stdtr(n - 1, -abs(change) / spread))
    else:  # every image differs by the same amount: no spread to test against
        half, p_value = 0.0, 1.0 if change == 0 else 0.0
    interval = [change - half, change + half]
    return {
        "quantity": "drop",
        "reference": float(np.mean(reference.hits_uncompressed) - np.mean(reference.hits)),
        "candidate": float(np.mean(candidate.hits_uncompressed) - np.mean(candidate.hits)),
        "change": change,
        "change_ci95": interval,
        "p_value": p_value,
        "resolution": half,
        "verdict": verdict(change, interval, p_value, margin, alpha),
    }


def gate_changes(reference: Outcomes, candidate: Outcomes, uncompressed: bool, margin: float, alpha: float) -> list[QuantityChange]:
    """Clean accuracy, accuracy under the compression and the drop, candidate against reference.

    An uncompressed evaluation has one quantity: its accuracy (``clean``).
    """
    changes = [accuracy_change("clean", reference.hits_uncompressed, candidate.hits_uncompressed, margin, alpha)]
    if not uncompressed:
        changes.append(accuracy_change("compressed", reference.hits, candidate.hits, margin, alpha))
        changes.append(drop_change(reference, candidate, margin, alpha))
    return changes


def detectable(change: QuantityChange, n: int, margin: float) -> str:
    """For an inconclusive quantity: the smallest change these images resolve, and how many would resolve the margin."""
    resolution = change["resolution"]
    needed = math.ceil(n * (resolution / margin) ** 2) if margin > 0 else None
    text = f"changes under {resolution * 100:.2f} points are noise at n={n}"
    return text + (f"; about {needed:,} images would resolve {margin * 100:.2f} points" if needed and needed > n else "")


@dataclass(frozen=True)
class Comparison:
    """A candidate against a reference on the same images: the gate's quantities and the classes that lost images."""

    reference_name: str
    candidate_name: str
    n: int
    changes: list[QuantityChange]
    class_changes: list[tuple[str, int, int]]  # (class, lost, gained) under compression, most net loss first
    lost: np.ndarray  # positions right in the reference and wrong in the candidate, under compression

    @property
    def verdict(self) -> str:
        return worst([change["verdict"] for change in self.changes])

    @property
    def regressed(self) -> list[QuantityChange]:
        return [change for change in self.changes if change["verdict"] == "regressed"]

    def classes_lost_text(self, count: int = 3) -> str:
        losing = [(name, lost - gained) for name, lost, gained in self.class_changes if lost > gained][:count]
        return ", ".join(f"{name} -{net}" for name, net in losing) or "none (the loss is spread over classes)"


def compare_outcomes(
    reference: Outcomes,
    candidate: Outcomes,
    reference_name: str,
    candidate_name: str,
    *,
    uncompressed: bool = False,
    margin: float = DEFAULT_MARGIN,
    alpha: float = 0.05,
) -> Comparison:
    """Pair two evaluations image by image (a clear :class:`GateError` when their images differ)."""
    try:
        check_same_images(reference, candidate, reference_name, candidate_name)
    except ClipCompressError as error:
        raise GateError(str(error)) from None
    lost = reference.hits & ~candidate.hits
    gained = ~reference.hits & candidate.hits
    changes = []
    for label, name in enumerate(candidate.classes):
        in_class = candidate.labels == label
        changes.append((name, int((lost & in_class).sum()), int((gained & in_class).sum())))
    changes.sort(key=lambda row: (-(row[1] - row[2]), row[0]))
    quantities = gate_changes(reference, candidate, uncompressed, margin, alpha)
    return Comparison(reference_name, candidate_name, candidate.n, quantities, changes, np.flatnonzero(lost))


def compare_records(
    reference: EvaluationRecord, candidate: EvaluationRecord, names: tuple[str, str], margin: float = DEFAULT_MARGIN, alpha: float = 0.05
) -> Comparison:
    try:
        return compare_outcomes(
            Outcomes.from_record(reference),
            Outcomes.from_record(candidate),
            *names,
            uncompressed=candidate["compression"].get("codec") == "none",
            margin=margin,
            alpha=alpha,
        )
    except GateError:
        raise
    except ClipCompressError as error:
        raise GateError(f"{describe(candidate)}: {error}") from None


def check_margin(max_regression: float, alpha: float, names: tuple[str, str] = ("max_regression=", "alpha=")) -> None:
    if not 0.0 <= max_regression <= 1.0:
        raise ConfigError(f"{names[0]}{max_regression} is outside [0, 1]; it is a fraction of accuracy (0.01 means 1 point)")
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"{names[1]}{alpha} is outside (0, 1); 0.05 is the usual significance level")


def comparison_row(
    reference: EvaluationRecord,
    candidate: EvaluationRecord,
    margin: float = DEFAULT_MARGIN,
    alpha: float = 0.05,
    names: tuple[str, str] | None = None,
) -> ComparisonRow:
    """``candidate`` against ``reference`` as one row, with its verdicts at ``margin``.

    ``names`` are what messages call the two sides (default: their model ids)."""
    row: ComparisonRow = {
        "reference_role": record_id(reference),
        "candidate_role": record_id(candidate),
        "dataset": candidate["dataset"],
        "compression_id": candidate["compression_id"],
    }
    try:
        outcome = compare_records(reference, candidate, names or (record_id(reference), record_id(candidate)), margin, alpha)
    except GateError as error:
        return {**row, "error": str(error)}
    return {
        **row,
        "n": outcome.n,
        "margin": margin,
        "changes": outcome.changes,
        "verdict": outcome.verdict,
        "classes_lost": outcome.classes_lost_text(),
        "flips": flip_text(candidate.get("flip_confusion") or []),
    }


@dataclass
class FileComparison:
    """Every record of NEW paired with OLD's record for the same model id, dataset and compression."""

    rows: list[ComparisonRow]
    only_old: list[EvaluationRecord]
    only_new: list[EvaluationRecord]


def compare_files(
    old: Sequence[EvaluationRecord],
    new: Sequence[EvaluationRecord],
    old_model: str | None = None,
    new_model: str | None = None,
    margin: float = DEFAULT_MARGIN,
    alpha: float = 0.05,
    margins: Mapping[CaseKey, float] | None = None,
) -> FileComparison:
    """Pair NEW's records with OLD's; ``old_model``/``new_model`` compare one id of each (A/B of two roles).

    ``margins`` give a case its own margin (a gate check's ``max_regression``), else ``margin``."""
    if new_model is not None:
        new = [record for record in new if record_id(record) == new_model]
    if old_model is not None:
        old = [record for record in old if record_id(record) == old_model]
    rows, matched, paired_new = [], set(), set()
    for record in new:
        key = case_key(record)
        if old_model is not None:
            key = key._replace(role=old_model)
        found = find_record(old, key, (record.get("data") or {}).get("fingerprint"))
        if found is None:
            continue
        matched.add(id(found))
        paired_new.add(id(record))
        rows.append(comparison_row(found, record, (margins or {}).get(case_key(record), margin), alpha, ("old", "new")))
    return FileComparison(rows, [r for r in old if id(r) not in matched], [r for r in new if id(r) not in paired_new])


def roles_side_by_side(
    records: Sequence[EvaluationRecord], order: Sequence[str] = (), margin: float = DEFAULT_MARGIN, margins: Mapping[CaseKey, float] | None = None
) -> list[ComparisonRow]:
    """Within one run: each model id paired with the first one (in ``order``, e.g. the --clip-model order)
    on the same dataset and compression; ``margins`` as in :func:`compare_files`."""
    present = [record_id(r) for r in records]
    ids = [model_id for model_id in order if model_id in present] + sorted(set(present) - set(order))
    if len(ids) < 2:
        return []
    first = [r for r in records if record_id(r) == ids[0]]
    rows = []
    for other in (r for r in records if record_id(r) != ids[0]):
        found = next((r for r in first if r["dataset"] == other["dataset"] and r["compression_id"] == other["compression_id"]), None)
        if found is not None:
            rows.append(comparison_row(found, other, (margins or {}).get(case_key(other), margin)))
    return rows
