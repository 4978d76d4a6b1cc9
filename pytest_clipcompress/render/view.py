"""What every report shows, computed once from plain records: statuses, counts, the triage list, skips.

Renderers (terminal, HTML, report folder) read these instead of re-deriving them, so "failed"
means the same thing everywhere: a floor check counts as failed only when its test failed
unexpectedly. The input rows are the JSON-form dicts of the results file: ``checks`` rows carry the
``outcome`` of their test (``passed``, ``failed``, ``xfailed``, ``xpassed``; missing in files
written before it existed, which reads as an ordinary pass or fail).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..results.schema import VERDICTS, CaseKey, CheckRecord, EvaluationRecord, FailureRecord, QuantityChange, SkipRecord, case_key
from .format import change_text, ci, is_number, pct, quantity_label, safe_name, unique

#: Display order and wording of a floor check's status.
STATUS_TEXT: dict[str, str] = {
    "failed": "FAILED",
    "xpassed": "XPASS (passed unexpectedly)",
    "xfailed": "xfailed (expected)",
    "passed": "passed",
}


def source_note(record: EvaluationRecord) -> str:
    """``; uncompressed = the decoded JPEG files`` for a dataset stored as image files, else nothing:
    its "uncompressed" images are those files decoded, which for JPEG (and lossy WebP) were compressed once already."""
    stored = record.get("source_format", "pixels")
    return "" if stored == "pixels" else f"; uncompressed = the decoded {stored} files"


def check_status(check: CheckRecord) -> str:
    """``failed`` only for a broken floor in a test that failed unexpectedly; ``xfailed`` for a broken
    floor the test expected (an xfail mark, or the test caught the failure); ``xpassed`` for a floor
    that held in an xfail test; else ``passed``."""
    outcome = check.get("outcome")
    if not check.get("passed", True):
        return "failed" if outcome in (None, "failed", "error") else "xfailed"
    return "xpassed" if outcome == "xpassed" else "passed"


def is_gate(check: CheckRecord) -> bool:
    """A comparison with a reference (``assert_no_regression``, ``assert_not_worse``), not a floor."""
    return check.get("kind", "floor") != "floor" or "max_regression" in check


def distinct_checks(checks: Iterable[CheckRecord]) -> list[CheckRecord]:
    """Each check once: a gate check that several tests made (an A/B test runs once per model) counts once."""
    seen: dict[str, CheckRecord] = {}
    for check in checks:
        identity = {key: value for key, value in check.items() if key != "test" and not (key == "outcome" and is_gate(check))}
        key = json.dumps(identity, sort_keys=True, default=str) if is_gate(check) else json.dumps(check, sort_keys=True, default=str)
        if key not in seen or check_status(check) == "failed":
            seen[key] = check
    return list(seen.values())


@dataclass(frozen=True)
class Counts:
    evaluations: int
    models: int
    datasets: int
    floors: dict[str, int]  # status -> floor checks
    gates: dict[str, int]  # verdict -> gate checks
    unexpected: int  # checks (floor or gate) that failed unexpectedly
    skipped: int  # clip cases that skipped

    @property
    def checks(self) -> int:
        return sum(self.floors.values()) + sum(self.gates.values())

    def sentence(self) -> str:
        """``28 evaluations of 1 model on 1 dataset; 19 floor checks: 15 passed, 4 xfailed (expected); 2 gate checks: 1 regressed,
        1 no change; 3 clip cases skipped.``"""
        parts = [f"{_plural(self.evaluations, 'evaluation')} of {_plural(self.models, 'model')} on {_plural(self.datasets, 'dataset')}"]
        if self.floors:
            shown = ", ".join(f"{self.floors[s]} {STATUS_TEXT[s]}" for s in ("passed", "failed", "xfailed", "xpassed") if self.floors.get(s))
            parts.append(f"{_plural(sum(self.floors.values()), 'floor check')}: {shown}")
        if self.gates:
            shown = ", ".join(f"{self.gates[v]} {v}" for v in VERDICTS if self.gates.get(v))
            parts.append(f"{_plural(sum(self.gates.values()), 'gate check')}: {shown}")
        if self.skipped:
            parts.append(f"{_plural(self.skipped, 'clip case')} skipped")
        return "; ".join(parts) + "."


def counts(records: Sequence[EvaluationRecord], checks: Sequence[CheckRecord], skips: Sequence[SkipRecord] = ()) -> Counts:
    floors: dict[str, int] = {}
    gates: dict[str, int] = {}
    unexpected = 0
    for check in distinct_checks(checks):
        status = check_status(check)
        unexpected += status == "failed"
        if is_gate(check):
            verdict = str(check.get("verdict") or ("no change" if check["passed"] else "regressed"))
            gates[verdict] = gates.get(verdict, 0) + 1
        else:
            floors[status] = floors.get(status, 0) + 1
    return Counts(
        evaluations=len(records),
        models=len({(r.get("model"), r.get("pretrained")) for r in records}),
        datasets=len({r.get("dataset") for r in records}),
        floors=floors,
        gates=gates,
        unexpected=unexpected,
        skipped=sum(1 for skip in skips if skip.get("clip", True)),
    )


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'s' * (count != 1)}"


@dataclass(frozen=True)
class TriageRow:
    """One broken floor (or one failing test whose floors held), with what was measured."""

    test: str
    outcome: str
    status: str
    model: str
    dataset: str
    compression_id: str
    accuracy: Any = None
    ci95: tuple[float, float] | None = None
    baseline_accuracy: Any = None
    drop: Any = None
    drop_ci95: tuple[float, float] | None = None
    min_accuracy: Any = None
    max_drop: Any = None
    max_regression: Any = None
    reference: str = ""
    broken: tuple[str, ...] = ()
    images: int = 0
    changes: tuple[QuantityChange, ...] = ()  # a gate check's quantities
    metric: str = "top1"  # what accuracy, ci95, baseline_accuracy and drop measure (assert_accuracy(metric=...))

    @property
    def why(self) -> str:
        """``accuracy 61.3% < floor 85.0%; drop 33.0 pp > max 5.0 pp``, a gate check's verdicts, or why there is no number."""
        if not self.compression_id:
            return "no check failed: the test failed for another reason (see its report)"
        parts = []
        name = "accuracy" if self.metric == "top1" else self.metric
        if "min_accuracy" in self.broken:
            parts.append(f"{name} {pct(self.accuracy)} < floor {pct(self.min_accuracy)}")
        if "max_drop" in self.broken:
            parts.append(f"{'' if self.metric == 'top1' else name + ' '}drop {_pp(self.drop)} > max {_pp(self.max_drop)}")
        if self.changes:
            shown = ", ".join(f"{quantity_label(c, self.compression_id)} {change_text(c)[0]} pts {c['verdict']}" for c in self.changes)
            parts.append(f"against {self.reference or 'the baseline'}: {shown}")
        elif is_number(self.max_regression):
            parts.append(f"regressed by more than {_pp(self.max_regression)} against {self.reference or 'the baseline'}")
        return "; ".join(parts) or "checks held; the test failed for another reason (see its report)"


def _pp(value: Any) -> str:
    return f"{value * 100:.1f} pp" if is_number(value) else "\u2014"


@dataclass(frozen=True)
class Triage:
    """Failing tests first (unexpected failures, then expected ones), each with its broken floors."""

    unexpected: list[TriageRow] = field(default_factory=list)
    expected: list[TriageRow] = field(default_factory=list)
    anchors: dict[str, str] = field(default_factory=dict)


def record_index(records: Iterable[EvaluationRecord]) -> dict[CaseKey, EvaluationRecord]:
    """Each evaluation by the key its checks carry (:func:`~..results.schema.case_key`); the first wins."""
    index: dict[CaseKey, EvaluationRecord] = {}
    for record in records:
        index.setdefault(case_key(record), record)
    return index


#: The record fields of each metric ``assert_accuracy(metric=...)`` sets floors on: its value and its uncompressed value.
METRIC_FIELDS = {
    "top1": ("accuracy", "baseline_accuracy"),
    "top5": ("top5", "baseline_top5"),
    "mean_per_class_recall": ("mean_per_class_recall", "baseline_mean_per_class_recall"),
}


def checked_values(record: EvaluationRecord | None, check: CheckRecord) -> tuple[Any, Any, Any]:
    """The measured value, uncompressed value and drop of the metric a check's floors are on (top-1 unless it names another)."""
    if record is None:
        return None, None, None
    value_field, baseline_field = METRIC_FIELDS.get(check.get("metric", "top1"), METRIC_FIELDS["top1"])
    value, baseline = record.get(value_field), record.get(baseline_field)
    if value_field == "accuracy":
        return value, baseline, record.get("drop")
    return value, baseline, baseline - value if is_number(value) and is_number(baseline) else None


def _broken(record: EvaluationRecord | None, check: CheckRecord) -> tuple[str, ...]:
    """Which of the check's floors the measurement breaks."""
    if record is None:
        return ()
    accuracy, _, drop = checked_values(record, check)
    broken = []
    minimum, max_drop = check.get("min_accuracy"), check.get("max_drop")
    if is_number(minimum) and not (is_number(accuracy) and accuracy >= minimum):
        broken.append("min_accuracy")
    if is_number(max_drop) and not (is_number(drop) and drop <= max_drop):
        broken.append("max_drop")
    return tuple(broken)


def failure_anchors(tests: Iterable[str]) -> dict[str, str]:
    """A stable, unique, safe HTML id for each test (the report folder's failure sections)."""
    used: set[str] = set()
    return {test: "failure-" + unique(safe_name(test, lower=False, underscores=True), test, used) for test in sorted(set(tests))}


def triage(records: Sequence[EvaluationRecord], checks: Sequence[CheckRecord], failures: Sequence[FailureRecord] = ()) -> Triage:
    """The failing and xfailed tests with their broken floors, in test-id order.

    ``failures`` (``{"test", "outcome", "attributions"}``) adds tests that failed without a broken
    floor and tells how many images were explained; broken floors come from ``checks`` alone, so the
    list is complete without attributions (``--clip-ig-samples 0``).
    """
    outcome_of: dict[str, str] = {}
    for failure in failures:
        outcome_of[str(failure.get("test", ""))] = str(failure.get("outcome", "failed"))
    images = {f["test"]: len(attributions["items"]) if (attributions := f.get("attributions")) else 0 for f in failures}
    for check in checks:
        if check.get("outcome") in ("failed", "xfailed", "error"):
            outcome_of.setdefault(str(check.get("test", "")), str(check["outcome"]))
        elif check.get("outcome") is None and not check.get("passed", True):
            outcome_of.setdefault(str(check.get("test", "")), "failed")
    outcome_of = {test: outcome for test, outcome in outcome_of.items() if outcome in ("failed", "xfailed", "error")}
    anchors = failure_anchors(outcome_of)
    measured = record_index(records)
    unexpected: list[TriageRow] = []
    expected: list[TriageRow] = []
    for test in sorted(outcome_of):
        outcome = outcome_of[test]
        own = [c for c in checks if str(c.get("test", "")) == test]
        rows = []
        for check in own:
            if check.get("passed", True):
                continue
            record = measured.get(case_key(check))
            numbers: dict[str, Any] = dict(record) if record is not None else {}
            value, baseline, drop = checked_values(record, check)
            rows.append(
                TriageRow(
                    test=test,
                    outcome=outcome,
                    status=check_status({**check, "outcome": outcome}),
                    model=f"{check.get('model')}/{check.get('pretrained')}",
                    dataset=str(check.get("dataset")),
                    compression_id=str(check.get("compression_id")),
                    accuracy=value,
                    ci95=_ci(record) if "metric" not in check else _pair(numbers.get("top5_ci95") if check["metric"] == "top5" else None),
                    baseline_accuracy=baseline,
                    drop=drop,
                    drop_ci95=_pair(numbers.get("drop_ci95")) if "metric" not in check else None,
                    metric=str(check.get("metric", "top1")),
                    min_accuracy=check.get("min_accuracy"),
                    max_drop=check.get("max_drop"),
                    max_regression=check.get("max_regression"),
                    reference=str(check.get("reference") or ""),
                    broken=_broken(record, check),
                    images=images.get(test, 0),
                    changes=tuple(check.get("changes") or ()),
                )
            )
        if not rows:
            status = "xfailed" if outcome == "xfailed" else "failed"
            rows.append(TriageRow(test=test, outcome=outcome, status=status, model="", dataset="", compression_id="", images=images.get(test, 0)))
        (expected if outcome == "xfailed" else unexpected).extend(rows)
    return Triage(unexpected=unexpected, expected=expected, anchors=anchors)


def _pair(value: Any) -> tuple[float, float] | None:
    """An interval as records carry it (a two-number list), else None."""
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(is_number(v) for v in value):
        return float(value[0]), float(value[1])
    return None


def _ci(record: EvaluationRecord | None) -> tuple[float, float] | None:
    return ci(record) if record is not None else None


@dataclass(frozen=True)
class SkipLine:
    count: int
    first_reason: str
    reasons: list[tuple[str, str]]

    def sentence(self) -> str:
        """One line: the count and the first reason's first line, cut at 160 characters."""
        reason = self.first_reason.strip().splitlines()[0] if self.first_reason.strip() else "no reason given"
        if len(reason) > 160:
            reason = reason[:159].rstrip() + "\u2026"
        return f"{_plural(self.count, 'clip case')} skipped, first reason: {reason}"


def skip_line(skips: Sequence[SkipRecord]) -> SkipLine | None:
    """The skipped clip cases as one line: the count and the first reason (in test-id order)."""
    rows = sorted((skip["test"], skip["reason"]) for skip in skips if skip.get("clip", True))
    if not rows:
        return None
    return SkipLine(count=len(rows), first_reason=rows[0][1], reasons=rows)
