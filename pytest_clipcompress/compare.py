"""Paired comparisons: a run against a stored baseline, two models of one run, or two results files,
image by image.

Records carry per-image outcomes (:mod:`.results.per_image`), so comparing needs no model
evaluation: the candidate's predictions on the same images are paired with the reference's, and a
regression counts only when it exceeds the margin *and* the exact McNemar test rejects "no
difference" (:mod:`.engine.stats`). Each comparison becomes a :class:`~.results.schema.ComparisonRow`
that every output renders.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .engine.stats import PairedDifference
from .errors import ClipCompressError, ConfigError
from .render.format import flip_text
from .results.file import GateError, find_record
from .results.per_image import Outcomes, check_same_images
from .results.schema import ComparisonRow, EvaluationRecord, case_key, record_id


def describe(record: EvaluationRecord) -> str:
    return f"{record_id(record)} on {record['dataset']} under {record['compression_id']}"


@dataclass(frozen=True)
class Comparison:
    """A candidate's accuracy against a reference's on the same images (compressed predictions)."""

    reference_name: str
    candidate_name: str
    paired: PairedDifference  # reference minus candidate: b = lost, c = gained
    class_changes: list[tuple[str, int, int]]  # (class, lost, gained), most net loss first

    @property
    def reference_accuracy(self) -> float:
        return (self.paired.both + self.paired.b) / self.paired.n

    @property
    def accuracy(self) -> float:
        return (self.paired.both + self.paired.c) / self.paired.n

    @property
    def regression(self) -> float:
        """Reference accuracy minus candidate accuracy (positive: the candidate is worse)."""
        return self.paired.difference

    @property
    def change(self) -> float:
        """Candidate accuracy minus reference accuracy (negative: the candidate is worse)."""
        return (self.paired.c - self.paired.b) / self.paired.n if self.paired.n else 0.0

    @property
    def change_interval(self) -> tuple[float, float]:
        """The paired 95% interval of :attr:`change`."""
        low, high = self.paired.interval
        return -high, -low

    def regressed(self, max_regression: float, alpha: float = 0.05) -> bool:
        return self.regression > max_regression and self.paired.p_value < alpha

    def classes_lost_text(self, count: int = 3) -> str:
        losing = [(name, lost - gained) for name, lost, gained in self.class_changes if lost > gained][:count]
        return ", ".join(f"{name} -{net}" for name, net in losing) or "none (the loss is spread over classes)"

    def message(self, max_regression: float, alpha: float, headline: str) -> str:
        low, high = self.change_interval
        p = self.paired.p_value
        significant = p < alpha
        return "\n".join(
            [
                headline,
                f"  {self.reference_name:<12} {self.reference_accuracy:7.2%}",
                f"  {self.candidate_name:<12} {self.accuracy:7.2%}  (same {self.paired.n} images)",
                (
                    f"  change       {self.change * 100:+7.2f} points  (95% CI {low * 100:+.2f} to {high * 100:+.2f})"
                    f"   margin max_regression={max_regression * 100:.2f} points: {'exceeded' if self.regression > max_regression else 'ok'}"
                ),
                (
                    f"  discordant   b={self.paired.b} images right in {self.reference_name} and wrong in {self.candidate_name}, "
                    f"c={self.paired.c} the other way round; exact McNemar p={p:.3g} {'<' if significant else '>='} alpha {alpha:g}"
                ),
                f"  classes lost {self.classes_lost_text()}",
            ]
        )


def compare_outcomes(reference: Outcomes, candidate: Outcomes, reference_name: str, candidate_name: str, confidence: float = 0.95) -> Comparison:
    """Pair two evaluations image by image (a clear :class:`GateError` when their images differ)."""
    try:
        check_same_images(reference, candidate, reference_name, candidate_name)
    except ClipCompressError as error:
        raise GateError(str(error)) from None
    paired = PairedDifference.from_hits(reference.hits, candidate.hits, confidence)
    lost = reference.hits & ~candidate.hits
    gained = ~reference.hits & candidate.hits
    changes = []
    for label, name in enumerate(candidate.classes):
        in_class = candidate.labels == label
        changes.append((name, int((lost & in_class).sum()), int((gained & in_class).sum())))
    changes.sort(key=lambda row: (-(row[1] - row[2]), row[0]))
    return Comparison(reference_name, candidate_name, paired, changes)


def compare_records(reference: EvaluationRecord, candidate: EvaluationRecord, reference_name: str, candidate_name: str) -> Comparison:
    try:
        return compare_outcomes(Outcomes.from_record(reference), Outcomes.from_record(candidate), reference_name, candidate_name)
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
    reference: EvaluationRecord, candidate: EvaluationRecord, margin: float | None = None, alpha: float = 0.05, names: tuple[str, str] | None = None
) -> ComparisonRow:
    """``candidate`` against ``reference`` as one row, with its verdict at ``margin`` (None: no margin given).

    ``names`` are what messages call the two sides (default: their model ids)."""
    row: ComparisonRow = {
        "reference_role": record_id(reference),
        "candidate_role": record_id(candidate),
        "dataset": candidate["dataset"],
        "compression_id": candidate["compression_id"],
    }
    try:
        outcome = compare_records(reference, candidate, *(names or (record_id(reference), record_id(candidate))))
    except GateError as error:
        return {**row, "error": str(error)}
    significant = outcome.paired.p_value < alpha
    regressed = margin is not None and outcome.regressed(margin, alpha)
    return {
        **row,
        "n": outcome.paired.n,
        "reference_accuracy": outcome.reference_accuracy,
        "accuracy": outcome.accuracy,
        "change": outcome.change,
        "change_ci95": list(outcome.change_interval),
        "b": outcome.paired.b,
        "c": outcome.paired.c,
        "p_value": outcome.paired.p_value,
        "classes_lost": outcome.classes_lost_text(),
        "flips": flip_text(candidate.get("flip_confusion") or []),
        "direction": "worse" if outcome.change < 0 and significant else ("better" if outcome.change > 0 and significant else ""),
        "regressed": regressed,
        "verdict": "REGRESSED" if regressed else ("significant" if significant else "no significant change"),
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
    margin: float | None = None,
    alpha: float = 0.05,
) -> FileComparison:
    """Pair NEW's records with OLD's; ``old_model``/``new_model`` compare one id of each (A/B of two roles)."""
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
        rows.append(comparison_row(found, record, margin, alpha, ("old", "new")))
    return FileComparison(rows, [r for r in old if id(r) not in matched], [r for r in new if id(r) not in paired_new])


def roles_side_by_side(records: Sequence[EvaluationRecord], order: Sequence[str] = ()) -> list[ComparisonRow]:
    """Within one run: each model id paired with the first one (in ``order``, e.g. the --clip-model order)
    on the same dataset and compression."""
    present = [record_id(r) for r in records]
    ids = [model_id for model_id in order if model_id in present] + sorted(set(present) - set(order))
    if len(ids) < 2:
        return []
    first = [r for r in records if record_id(r) == ids[0]]
    rows = []
    for other in (r for r in records if record_id(r) != ids[0]):
        found = next((r for r in first if r["dataset"] == other["dataset"] and r["compression_id"] == other["compression_id"]), None)
        if found is not None:
            rows.append(comparison_row(found, other))
    return rows
