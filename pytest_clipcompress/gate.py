"""The regression gate: compare a run with a stored baseline, or two models, image by image.

A baseline is an ordinary results file (``--clip-results`` or ``--clip-baseline-save``). Its
records carry per-image outcomes (:mod:`.outcomes`), so comparing with it needs no model
evaluation: the candidate's predictions on the same images are paired with the baseline's, and a
regression counts only when it exceeds the margin *and* the exact McNemar test rejects "no
difference" (:mod:`.stats`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ClipCompressError, ConfigError
from .outcomes import Outcomes, check_same_images
from .records import record_id
from .stats import PairedDifference

if TYPE_CHECKING:
    from .evaluation import EvalResult

PLUGIN_NAME = "pytest-clipcompress"


class GateError(ClipCompressError):
    """A comparison that cannot be made: no matching entry, or different images."""


def load_results_file(path: Path, what: str = "results file") -> dict[str, Any]:
    """Read a results file written by this plugin; a clear :class:`ConfigError` for anything else."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{what} {path} does not exist; write one with --clip-results or --clip-baseline-save")
    if not path.is_file():
        raise ConfigError(f"{what} {path} is not a file; give the path of a results JSON file")
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"{what} {path} cannot be read ({error.strerror or error})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"{what} {path} is not JSON ({error}); give a file written by --clip-results or --clip-baseline-save") from None
    if not isinstance(payload, dict) or payload.get("plugin") != PLUGIN_NAME or not isinstance(payload.get("evaluations"), list):
        raise ConfigError(f'{what} {path} is JSON but not a pytest-clipcompress results file (no "plugin": "{PLUGIN_NAME}" with "evaluations")')
    if not all(isinstance(record, dict) and {"model", "dataset", "compression_id", "n"} <= record.keys() for record in payload["evaluations"]):
        raise ConfigError(f"{what} {path} has malformed evaluation records; write it again with --clip-results")
    return payload


def describe(record: Mapping[str, Any]) -> str:
    return f"{record_id(record)} on {record['dataset']} under {record['compression_id']}"


def find_record(records: Iterable[Mapping[str, Any]], model_id: str, dataset: str, fingerprint: str | None, compression_id: str) -> Mapping[str, Any] | None:
    """The record for (model id, dataset, compression); the dataset matches by name or by its files' fingerprint.

    Matching by fingerprint lets an ``imagefolder:`` dataset be found from another checkout path.
    """
    for record in records:
        if record_id(record) != model_id or record["compression_id"] != compression_id:
            continue
        data = record.get("data") or {}
        if record["dataset"] == dataset or (fingerprint and data.get("fingerprint") == fingerprint):
            return record
    return None


@dataclass
class BaselineFile:
    """A stored results file used as the baseline of the gate."""

    path: Path
    records: list[Mapping[str, Any]] = field(repr=False)

    @classmethod
    def load(cls, path: Path) -> BaselineFile:
        return cls(Path(path), load_results_file(path, "--clip-baseline")["evaluations"])

    def entry_for(self, model_id: str, dataset: str, fingerprint: str, compression_id: str) -> Mapping[str, Any]:
        record = find_record(self.records, model_id, dataset, fingerprint, compression_id)
        if record is None:
            held = sorted({f"{record_id(r)} on {r['dataset']} ({r['compression_id']})" for r in self.records})
            listing = "; ".join(held[:8]) + (f"; and {len(held) - 8} more" if len(held) > 8 else "") if held else "nothing"
            raise GateError(
                f"baseline {self.path} has no entry for {model_id} on {dataset} under {compression_id}; it holds: {listing}. "
                "Save a baseline that evaluates this case (--clip-baseline-save), or name the baseline's model with baseline_model=..."
            )
        return record


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

    def regressed(self, max_regression: float, alpha: float = 0.05) -> bool:
        return self.regression > max_regression and self.paired.p_value < alpha

    def classes_lost_text(self, count: int = 3) -> str:
        losing = [(name, lost - gained) for name, lost, gained in self.class_changes if lost > gained][:count]
        return ", ".join(f"{name} -{net}" for name, net in losing) or "none (the loss is spread over classes)"

    def message(self, max_regression: float, alpha: float, headline: str) -> str:
        low, high = self.paired.interval
        p = self.paired.p_value
        significant = p < alpha
        return "\n".join(
            [
                headline,
                f"  {self.reference_name:<12} {self.reference_accuracy:7.2%}",
                f"  {self.candidate_name:<12} {self.accuracy:7.2%}  (same {self.paired.n} images)",
                (
                    f"  change       {self.change * 100:+7.2f} points  (95% CI {-high * 100:+.2f} to {-low * 100:+.2f})"
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


def compare_records(reference: Mapping[str, Any], candidate: Mapping[str, Any], reference_name: str, candidate_name: str) -> Comparison:
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


# --- assertions ---------------------------------------------------------------------------------


def assert_no_regression(
    result: EvalResult,
    max_regression: float = 0.01,
    *,
    alpha: float = 0.05,
    baseline: str | Path | None = None,
    baseline_model: str | None = None,
) -> None:
    """Fail when ``result`` is worse than the baseline on the same images by more than ``max_regression``
    and the exact McNemar test says the difference is real (``p < alpha``).

    The baseline is ``--clip-baseline`` (or the ``baseline`` file given here); its entry is the one
    for the same model id (role or name; ``baseline_model`` picks another), dataset and compression.
    Different images, dataset files, classes or prompts, or a missing entry, fail with an error.
    """
    __tracebackhide__ = True
    import pytest

    from .evaluation import EvalResult

    if not isinstance(result, EvalResult):
        pytest.fail(f"assert_no_regression needs the result of clip_eval(), got {type(result).__name__}", pytrace=False)
    try:
        check_margin(float(max_regression), float(alpha))
        stored = BaselineFile.load(Path(baseline)) if baseline is not None else result.stored_baseline
        if stored is None:
            raise GateError("assert_no_regression has no baseline: pass --clip-baseline PATH (a results file saved with --clip-baseline-save) or baseline=PATH")
        entry = stored.entry_for(baseline_model or result.model_id, result.dataset, result.fingerprint, result.compression.id)
        comparison = compare_outcomes(Outcomes.from_record(entry), result.outcomes, "baseline", "this run")
    except ClipCompressError as error:
        pytest.fail(str(error), pytrace=False)
    failed = comparison.regressed(max_regression, alpha)
    result.checks.append({"min_accuracy": None, "max_drop": None, "max_regression": max_regression, "passed": not failed})
    if failed:
        headline = (
            f"{result.model_id} ({result.model}/{result.pretrained}) on {result.dataset} under {result.compression.id} "
            f"regressed against the baseline {stored.path}"
        )
        raise AssertionError(
            comparison.message(max_regression, alpha, headline) + "\nIf the change is intended, save a new baseline with --clip-baseline-save."
        )


def assert_not_worse(candidate: EvalResult, reference: EvalResult, max_regression: float = 0.01, *, alpha: float = 0.05) -> None:
    """A/B in one session: fail when ``candidate`` is worse than ``reference`` (two models, same dataset
    and compression) by more than ``max_regression`` and the exact McNemar test says so."""
    __tracebackhide__ = True
    import pytest

    from .evaluation import EvalResult

    if not isinstance(candidate, EvalResult) or not isinstance(reference, EvalResult):
        pytest.fail("assert_not_worse needs two results of clip_eval(), e.g. clip_eval(model='candidate') and clip_eval(model='release')", pytrace=False)
    candidate_name, reference_name = candidate.model_id, reference.model_id
    try:
        check_margin(float(max_regression), float(alpha))
        if candidate.compression.id != reference.compression.id or candidate.dataset != reference.dataset:
            raise GateError(
                f"assert_not_worse compares two models on the same dataset and compression; got {candidate.dataset} {candidate.compression.id} "
                f"and {reference.dataset} {reference.compression.id}"
            )
        comparison = compare_outcomes(reference.outcomes, candidate.outcomes, reference_name, candidate_name)
    except ClipCompressError as error:
        pytest.fail(str(error), pytrace=False)
    failed = comparison.regressed(max_regression, alpha)
    candidate.checks.append({"min_accuracy": None, "max_drop": None, "max_regression": max_regression, "reference": reference_name, "passed": not failed})
    if failed:
        headline = f"{candidate_name} is worse than {reference_name} on {candidate.dataset} under {candidate.compression.id}"
        raise AssertionError(comparison.message(max_regression, alpha, headline))


# --- comparing two files ------------------------------------------------------------------------


@dataclass
class FileComparison:
    """Every record of NEW paired with OLD's record for the same model id, dataset and compression."""

    rows: list[tuple[Mapping[str, Any], Mapping[str, Any], Comparison | GateError]]
    only_old: list[Mapping[str, Any]]
    only_new: list[Mapping[str, Any]]


def compare_files(
    old: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]], old_model: str | None = None, new_model: str | None = None
) -> FileComparison:
    """Pair NEW's records with OLD's; ``old_model``/``new_model`` compare one id of each (A/B of two roles)."""
    if new_model is not None:
        new = [record for record in new if record_id(record) == new_model]
    if old_model is not None:
        old = [record for record in old if record_id(record) == old_model]
    rows, matched = [], set()
    for record in new:
        model_id = old_model if old_model is not None else record_id(record)
        found = find_record(old, model_id, record["dataset"], (record.get("data") or {}).get("fingerprint"), record["compression_id"])
        if found is None:
            continue
        matched.add(id(found))
        try:
            outcome: Comparison | GateError = compare_records(found, record, "old", "new")
        except GateError as error:
            outcome = error
        rows.append((found, record, outcome))
    paired_new = {id(new_record) for _, new_record, _ in rows}
    return FileComparison(rows, [r for r in old if id(r) not in matched], [r for r in new if id(r) not in paired_new])


def roles_side_by_side(
    records: Sequence[Mapping[str, Any]], order: Sequence[str] = ()
) -> list[tuple[Mapping[str, Any], Mapping[str, Any], Comparison | GateError]]:
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
        if found is None:
            continue
        try:
            outcome: Comparison | GateError = compare_records(found, other, record_id(found), record_id(other))
        except GateError as error:
            outcome = error
        rows.append((found, other, outcome))
    return rows


def summary_lines(records: Sequence[Mapping[str, Any]], model_order: Sequence[str], baseline: Path | None) -> list[str]:
    """Terminal summary: the models of the run side by side, and the run against ``--clip-baseline``."""
    lines = []
    side_by_side = roles_side_by_side(records, model_order)
    if side_by_side:
        lines.append("models side by side (change = second minus first, same images):")
        lines += ["  " + line for line in comparison_table(side_by_side, "first", "second")]
    if baseline is not None:
        try:
            rows = compare_files(BaselineFile.load(baseline).records, records).rows
        except ClipCompressError as error:  # the file changed during the run; the tests said the rest
            rows, lines = [], [*lines, f"baseline {baseline}: {error}"]
        if rows:
            lines.append(f"against the baseline {baseline} (change = this run minus baseline, same images):")
            lines += ["  " + line for line in comparison_table(rows, "baseline", "now")]
    return lines


def comparison_table(
    rows: list[tuple[Mapping[str, Any], Mapping[str, Any], Comparison | GateError]], old_label: str = "old", new_label: str = "new"
) -> list[str]:
    """A text table: accuracies side by side, the paired change with its 95% interval, b/c and McNemar's p."""
    header = (
        f"{'model':<20} {'dataset':<12} {'compression':<16} {'n':>6} {old_label:>8} {new_label:>8} {'change':>8} "
        f"{'95% CI (points)':>17} {'b':>5} {'c':>5} {'p':>8}"
    )
    lines = [header]
    for reference, candidate, outcome in rows:
        model = record_id(candidate) if record_id(candidate) == record_id(reference) else f"{record_id(reference)}->{record_id(candidate)}"
        start = f"{model:<20} {_short(candidate['dataset'], 12):<12} {candidate['compression_id']:<16}"
        if isinstance(outcome, GateError):
            lines.append(f"{start} not comparable: {outcome}")
            continue
        low, high = outcome.paired.interval
        lines.append(
            f"{start} {outcome.paired.n:>6} {outcome.reference_accuracy:>8.2%} {outcome.accuracy:>8.2%} {outcome.change * 100:>+8.2f} "
            f"{f'{-high * 100:+.2f} to {-low * 100:+.2f}':>17} {outcome.paired.b:>5} {outcome.paired.c:>5} {outcome.paired.p_value:>8.3g}"
        )
    return lines


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else "\u2026" + text[-(width - 1) :]
