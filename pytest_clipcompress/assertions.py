"""Every ``assert_*`` a test calls on a result of ``clip_eval()``: accuracy floors
(:func:`assert_accuracy`), the regression gate against a stored baseline
(:func:`assert_no_regression`) and A/B between two models of one run (:func:`assert_not_worse`).

Each records its check on the result (the reports show every check, passed or failed) and fails
with a message a person can act on, never a traceback into the plugin.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .compare import Comparison, check_margin, compare_outcomes, detectable
from .engine.metrics import ACCURACY, DROP, FLOOR_METRICS
from .engine.result import EvalResult
from .errors import ClipCompressError, ConfigError
from .inputs import check_fraction, is_finite, real_number
from .render.format import flip_text
from .render.terminal import gate_lines
from .results.file import GateError, ResultsFile, load_results_file
from .results.per_image import Outcomes
from .results.schema import EvaluationRecord

#: What a floor's source is called in messages.
SOURCE_TEXT = {"test": "given in the test", "config": "configured: clip_{name} in the ini file or --clip-{flag}"}


def assert_accuracy(
    result: EvalResult, min_accuracy: float | None = None, max_drop: float | None = None, *, confidence: float | None = None, metric: str = "top1"
) -> None:
    """Fail when accuracy is below ``min_accuracy`` or fell by more than ``max_drop`` under compression.

    ``metric`` says which accuracy the floors are on: ``"top1"`` (the default, ``result.accuracy``),
    ``"top5"`` or ``"mean_per_class_recall"`` (CLIP_benchmark's definitions, docs/floors.md); the
    drop is that metric's, uncompressed minus compressed on the same images.

    For top-1, the floors a test gives apply, and so does every configured floor it does not name
    (``clip_min_accuracy`` / ``clip_max_drop`` in the ini file, ``--clip-min-accuracy`` /
    ``--clip-max-drop``): a test that adds ``min_accuracy`` keeps the team's ``max_drop``. The check
    records where each floor came from. The configured floors are top-1 floors: another metric needs
    its floors in the call. Floors are fractions: 0.8 means 80%. By default the floors apply to the
    measured values. With ``confidence`` (e.g. 0.95) they apply to the interval: a floor fails only
    when the whole interval is on the wrong side of it (Wilson for the accuracy, Newcombe's paired
    interval for the drop), i.e. only on significant evidence (docs/floors.md).
    """
    __tracebackhide__ = True
    if not isinstance(result, EvalResult):
        pytest.fail(f"assert_accuracy needs the result of clip_eval(), got {type(result).__name__}", pytrace=False)
    if metric != "top1":
        _assert_metric(result, metric, min_accuracy, max_drop, confidence)
        return
    sources = {name: "test" if given is not None else "config" for name, given in (("min_accuracy", min_accuracy), ("max_drop", max_drop))}
    min_accuracy = result.floors.min_accuracy if min_accuracy is None else min_accuracy
    max_drop = result.floors.max_drop if max_drop is None else max_drop
    if min_accuracy is None and max_drop is None:
        pytest.fail(
            "assert_accuracy has no floor: pass min_accuracy= or max_drop=, or set clip_min_accuracy / clip_max_drop in the ini file",
            pytrace=False,
        )
    try:
        # Plain floats from here on: numpy, Decimal or tensor floors must not reach the results file.
        min_accuracy = None if min_accuracy is None else check_fraction("min_accuracy", min_accuracy)
        max_drop = None if max_drop is None else check_fraction("max_drop", max_drop)
        if confidence is not None:
            number = real_number(confidence)
            if number is None or not is_finite(number) or not 0.0 < number < 1.0:
                raise ConfigError(f"confidence={confidence!r} is outside (0, 1); use e.g. 0.95, or leave it out to check the measured values")
            confidence = float(number)
        problem = None
    except ConfigError as error:
        problem = str(error)
    if problem:  # failed outside the except block, so no "During handling..." chain is printed
        pytest.fail(problem, pytrace=False)
    floors = ((ACCURACY, min_accuracy), (DROP, max_drop))
    sources = {name: source for name, source in sources.items() if (min_accuracy if name == "min_accuracy" else max_drop) is not None}

    level = 0.95 if confidence is None else float(confidence)
    accuracy_high = result.accuracy_interval(level)[1]
    drop_low = result.paired_drop(level).interval[0]
    # The measured values, or with a confidence level the interval's most favourable end: a floor then
    # fails only when the whole interval is on the wrong side of it.
    checked = (ACCURACY.value(result), DROP.value(result)) if confidence is None else (accuracy_high, drop_low)
    accuracy_ok, drop_ok = (floor is None or quantity.passes(value, floor) for (quantity, floor), value in zip(floors, checked, strict=True))
    extra: dict[str, Any] = {} if confidence is None else {"confidence": level}
    result.checks.append(result.check_record(accuracy_ok and drop_ok, min_accuracy, max_drop, floor_sources=sources, **extra))
    if not (accuracy_ok and drop_ok):
        raise AssertionError(failure_message(result, min_accuracy, max_drop, accuracy_ok, drop_ok, confidence, sources))


def _assert_metric(result: EvalResult, metric: str, min_accuracy: float | None, max_drop: float | None, confidence: float | None) -> None:
    """Floors on top-5 accuracy or mean per-class recall (and their drops)."""
    __tracebackhide__ = True
    problem = _metric_problem(result, metric, min_accuracy, max_drop, confidence)
    if problem:
        pytest.fail(problem, pytrace=False)
    value_metric, drop_metric = FLOOR_METRICS[metric]
    minimum = None if min_accuracy is None else check_fraction("min_accuracy", min_accuracy)
    most = None if max_drop is None else check_fraction("max_drop", max_drop)
    measured = (value_metric.value(result), drop_metric.value(result))
    if confidence is not None:  # top-5 only: Wilson's interval, and the paired one of the drop
        interval, paired = result.top5_interval(float(confidence)), result.paired_top5_drop(float(confidence))
        assert interval is not None and paired is not None  # _metric_problem refused fewer than 5 classes
        measured = (interval[1], paired.interval[0])
    value_ok = minimum is None or value_metric.passes(measured[0], minimum)
    drop_ok = most is None or drop_metric.passes(measured[1], most)
    extra: dict[str, Any] = {"metric": metric} | ({} if confidence is None else {"confidence": float(confidence)})
    given = {"min_accuracy": minimum, "max_drop": most}
    sources = {name: "test" for name, floor in given.items() if floor is not None}
    result.checks.append(result.check_record(value_ok and drop_ok, minimum, most, floor_sources=sources, **extra))
    if not (value_ok and drop_ok):
        raise AssertionError(_metric_message(result, metric, (minimum, value_ok), (most, drop_ok), confidence))


def _metric_message(
    result: EvalResult, metric: str, value_floor: tuple[float | None, bool], drop_floor: tuple[float | None, bool], confidence: float | None
) -> str:
    value_metric, drop_metric = FLOOR_METRICS[metric]
    applies = "" if confidence is None else f" on the {float(confidence):.0%} interval"

    def floor_text(name: str, shown: str, floor: tuple[float | None, bool]) -> str:
        return "" if floor[0] is None else f"   floor {name}={shown}{applies}: {'ok' if floor[1] else 'FAILED'}"

    value, drop = value_metric.value(result), drop_metric.value(result)
    where = f"{result.model}/{result.pretrained} on {result.dataset} under {result.compression.id}"
    return "\n".join(
        [
            f"zero-shot {METRIC_WORDS[metric]} of {where} is below its floor (n={result.n})",
            f"  {metric:<13} {value_metric.format(value):>7}" + floor_text("min_accuracy", value_metric.format(value_floor[0] or 0.0), value_floor),
            f"  uncompressed  {value_metric.format(value + drop):>7}  (same {result.n} images; top-1 under compression {result.accuracy:.2%})",
            f"  drop          {drop_metric.format(drop):>13}" + floor_text("max_drop", drop_metric.format(drop_floor[0] or 0.0), drop_floor),
            "If this compression is expected to hurt, lower the floor or mark the case xfail; otherwise the model regressed.",
        ]
    )


#: How failure messages name the metrics of ``assert_accuracy(metric=...)``.
METRIC_WORDS = {"top1": "accuracy", "top5": "top-5 accuracy", "mean_per_class_recall": "mean per-class recall"}


def _metric_problem(result: EvalResult, metric: str, min_accuracy: float | None, max_drop: float | None, confidence: float | None) -> str | None:
    """Why floors on ``metric`` cannot be checked, in one line, or None."""
    if metric not in FLOOR_METRICS:
        return f"metric={metric!r} is not supported by assert_accuracy; choose {', '.join(repr(name) for name in FLOOR_METRICS)}"
    if min_accuracy is None and max_drop is None:
        return f"assert_accuracy(metric={metric!r}) has no floor: pass min_accuracy= or max_drop= (the ini floors are top-1 floors)"
    if metric == "top5" and result.top5 is None:
        return f"top-5 accuracy is undefined on {result.dataset}: it has {len(result.classes)} classes, fewer than 5; use metric='top1'"
    if confidence is not None and metric != "top5":
        return "mean per-class recall has no interval here (docs/floors.md says why); leave confidence out to check the measured value"
    try:
        for name, floor in (("min_accuracy", min_accuracy), ("max_drop", max_drop)):
            if floor is not None:
                check_fraction(name, floor)
        number = None if confidence is None else real_number(confidence)
        if confidence is not None and (number is None or not is_finite(number) or not 0.0 < number < 1.0):
            return f"confidence={confidence!r} is outside (0, 1); use e.g. 0.95, or leave it out to check the measured values"
    except ConfigError as error:
        return str(error)
    return None


def failure_message(
    result: EvalResult,
    min_accuracy: float | None,
    max_drop: float | None,
    accuracy_ok: bool,
    drop_ok: bool,
    confidence: float | None = None,
    sources: dict[str, str] | None = None,
) -> str:
    def verdict(ok: bool) -> str:
        return "ok" if ok else "FAILED"

    def source(name: str) -> str:
        where = (sources or {}).get(name, "test")
        return f" ({SOURCE_TEXT[where].format(name=name, flag=name.replace('_', '-'))})" if where == "config" else ""

    level = 0.95 if confidence is None else confidence
    applies = "" if confidence is None else f" on the {level:.0%} interval"
    low, high = result.accuracy_interval(level)
    paired = result.paired_drop(level)
    drop_low, drop_high = paired.interval
    lines = [
        (f"zero-shot accuracy of {result.model}/{result.pretrained} on {result.dataset} under {result.compression.id} is below its floor (n={result.n})"),
        f"  {ACCURACY.name:<13} {ACCURACY.format(result.accuracy):>7}  ({level:.0%} CI {low:.1%} to {high:.1%})"
        + (
            ""
            if min_accuracy is None
            else f"   floor {ACCURACY.floor}={ACCURACY.format(min_accuracy)}{applies}{source('min_accuracy')}: {verdict(accuracy_ok)}"
        ),
        f"  uncompressed  {ACCURACY.format(result.baseline_accuracy):>7}  (same {result.n} images)",
        f"  {DROP.name:<13} {DROP.format(result.drop):>13}"
        + (f"   floor {DROP.floor}={DROP.format(max_drop)}{applies}{source('max_drop')}: {verdict(drop_ok)}" if max_drop is not None else ""),
        (
            f"  drop {level:.0%} CI   {drop_low * 100:.2f} to {drop_high * 100:.2f} points (paired: b={paired.b} right only uncompressed, "
            f"c={paired.c} right only compressed; exact McNemar p={paired.p_value:.3g})"
        ),
        "  worst classes " + ", ".join(f"{name} {acc:.1%}" for name, acc in result.worst_classes()),
        f"  flipped       {_images(len(result.flipped))} correct uncompressed and wrong compressed",
    ]
    flips = result.outcomes.flip_confusion()
    if flips:
        lines.append(f"  top flips     {flip_text(flips)}")
    if confidence is None and min_accuracy is not None and low <= min_accuracy <= high:
        lines.append("  note: the floor lies inside the 95% interval, so this may be sampling noise; raise --clip-samples")
    if confidence is None and not drop_ok and max_drop is not None and drop_low <= max_drop <= drop_high:
        lines.append("  note: max_drop lies inside the drop's 95% interval, so this may be sampling noise; raise --clip-samples")
    if not accuracy_ok and min_accuracy is not None and result.baseline_accuracy < min_accuracy:
        lines.append(
            f"The uncompressed images already score {ACCURACY.format(result.baseline_accuracy)}, below min_accuracy: compression is not the cause. "
            "The model (or the floor) is: check the weights, the prompts and the preprocessing, or lower the floor."
        )
    else:
        lines.append("If this compression is expected to hurt, lower the floor or mark the case xfail; otherwise the model regressed.")
    return "\n".join(lines)


def _images(count: int) -> str:
    return f"{count} image" + ("" if count == 1 else "s")


def assert_no_regression(
    result: EvalResult,
    max_regression: float = 0.01,
    *,
    alpha: float = 0.05,
    baseline: str | Path | None = None,
    baseline_model: str | None = None,
) -> None:
    """Fail when ``result`` regressed against the baseline on the same images, image by image.

    Three quantities are compared: the accuracy on the clean images, the accuracy under the
    compression, and the drop between them (docs/ci.md). Each gets a change (negative: this run is
    worse), its paired 95% interval and a verdict; the check fails when one of them ``regressed``:
    worse by more than ``max_regression`` with a significant test (``p < alpha``: exact McNemar for
    the accuracies, a paired t test for the drop). ``inconclusive`` (these images cannot rule out a
    regression beyond the margin) passes and is shown as such in every output.

    The baseline is ``--clip-baseline`` (or the ``baseline`` file given here); its entry is the one
    for the same model id (role or name; ``baseline_model`` picks another), dataset and compression.
    Different images, dataset files, classes or prompts, or a missing entry, fail with an error.
    """
    __tracebackhide__ = True
    if not isinstance(result, EvalResult):
        pytest.fail(f"assert_no_regression needs the result of clip_eval(), got {type(result).__name__}", pytrace=False)
    problem, stored, entry, comparison = None, None, None, None
    try:
        check_margin(float(max_regression), float(alpha))
        stored = load_results_file(Path(baseline), "--clip-baseline") if baseline is not None else result.baseline
        if stored is None:
            raise GateError("assert_no_regression has no baseline: pass --clip-baseline PATH (a results file saved with --clip-baseline-save) or baseline=PATH")
        entry = stored.entry_for(result.case._replace(role=baseline_model or result.model_id), result.fingerprint)
        comparison = _compare(Outcomes.from_record(entry), result, ("baseline", "this run"), float(max_regression), float(alpha))
    except ClipCompressError as error:
        problem = str(error)
    if problem or stored is None or entry is None or comparison is None:  # failed outside the except block: no chained traceback
        pytest.fail(problem or "assert_no_regression could not compare", pytrace=False)
    reference_label = _baseline_label(stored, entry)
    _record_gate_check(result, comparison, "baseline", float(max_regression), float(alpha), stored.path.name, reference_label)
    if comparison.regressed:
        where = f"{result.model_id} ({result.model}/{result.pretrained}) on {result.dataset} under {result.compression.id}"
        headline = f"{where} regressed against the baseline {stored.path}"
        raise AssertionError(
            _gate_message(comparison, headline, result, reference_label, float(max_regression), float(alpha))
            + "\nIf the change is intended, save a new baseline with --clip-baseline-save."
        )


def assert_not_worse(candidate: EvalResult, reference: EvalResult, max_regression: float = 0.01, *, alpha: float = 0.05) -> None:
    """A/B in one session: fail when ``candidate`` regressed against ``reference`` (two models, same dataset
    and compression), comparing the same three quantities as :func:`assert_no_regression`."""
    __tracebackhide__ = True
    if not isinstance(candidate, EvalResult) or not isinstance(reference, EvalResult):
        pytest.fail("assert_not_worse needs two results of clip_eval(), e.g. clip_eval(model='candidate') and clip_eval(model='release')", pytrace=False)
    problem, comparison = None, None
    try:
        check_margin(float(max_regression), float(alpha))
        if candidate.compression.id != reference.compression.id or candidate.dataset != reference.dataset:
            raise GateError(
                f"assert_not_worse compares two models on the same dataset and compression; got {candidate.dataset} {candidate.compression.id} "
                f"and {reference.dataset} {reference.compression.id}"
            )
        comparison = _compare(reference.outcomes, candidate, (reference.model_id, candidate.model_id), float(max_regression), float(alpha))
    except ClipCompressError as error:
        problem = str(error)
    if problem or comparison is None:  # failed outside the except block: no chained traceback
        pytest.fail(problem or "assert_not_worse could not compare", pytrace=False)
    reference_label = f"{reference.model}/{reference.pretrained}, weights {reference.weights[:12]}"
    _record_gate_check(candidate, comparison, "model", float(max_regression), float(alpha), reference.model_id, reference_label)
    if comparison.regressed:
        headline = f"{candidate.model_id} is worse than {reference.model_id} on {candidate.dataset} under {candidate.compression.id}"
        raise AssertionError(_gate_message(comparison, headline, candidate, reference_label, float(max_regression), float(alpha)))


def _compare(reference: Outcomes, result: EvalResult, names: tuple[str, str], margin: float, alpha: float) -> Comparison:
    return compare_outcomes(reference, result.outcomes, *names, uncompressed=result.compression.is_identity, margin=margin, alpha=alpha)


def _record_gate_check(result: EvalResult, comparison: Comparison, kind: str, margin: float, alpha: float, reference: str, reference_label: str) -> None:
    result.checks.append(
        result.check_record(
            not comparison.regressed,
            kind=kind,
            max_regression=margin,
            alpha=alpha,
            reference=reference,
            reference_label=reference_label,
            changes=comparison.changes,
            verdict=comparison.verdict,
        )
    )
    if comparison.regressed:
        result.lost = result.most_confident_first(comparison.lost)  # IG explains the images lost against the reference


def _baseline_label(stored: ResultsFile, entry: EvaluationRecord) -> str:
    """The baseline's model and weights as people read them: ``model/weights, weights <hash>`` where the file says."""
    label = f"{entry['model']}/{entry['pretrained']}"
    models = stored.run["models"] if stored.run else []
    hashes = [facts["weights_hash"][:12] for facts in models if facts["label"].split(" (")[0] == label]
    return f"{label}, weights {hashes[0]}" if len(hashes) == 1 else label


def _gate_message(comparison: Comparison, headline: str, result: EvalResult, reference_label: str, margin: float, alpha: float) -> str:
    """The headline, the gate's table (one row per quantity) and what the verdicts mean."""
    lines = [headline]
    candidate_label = f"{result.model}/{result.pretrained}, weights {result.weights[:12]}"
    lines += gate_lines(comparison.changes, result.compression.id, comparison.reference_name, comparison.candidate_name, reference_label, candidate_label)
    lines.append(f"  same {comparison.n} images; margin max_regression={margin * 100:.2f} points, alpha {alpha:g}")
    lines.append(f"  classes lost {comparison.classes_lost_text()}")
    for change in comparison.changes:
        if change["verdict"] == "inconclusive":
            lines.append(f"  {change['quantity']} is inconclusive: {detectable(change, comparison.n, margin)}")
    return "\n".join(lines)
