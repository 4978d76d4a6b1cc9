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

from .compare import check_margin, compare_outcomes
from .engine.metrics import ACCURACY, DROP, FLOOR_METRICS
from .engine.result import EvalResult
from .errors import ClipCompressError, ConfigError
from .inputs import check_fraction, is_finite, real_number
from .render.format import flip_text
from .results.file import GateError, load_results_file
from .results.per_image import Outcomes


def assert_accuracy(
    result: EvalResult, min_accuracy: float | None = None, max_drop: float | None = None, *, confidence: float | None = None, metric: str = "top1"
) -> None:
    """Fail when accuracy is below ``min_accuracy`` or fell by more than ``max_drop`` under compression.

    ``metric`` says which accuracy the floors are on: ``"top1"`` (the default, ``result.accuracy``),
    ``"top5"`` or ``"mean_per_class_recall"`` (CLIP_benchmark's definitions, docs/floors.md); the
    drop is that metric's, uncompressed minus compressed on the same images. The ini floors are
    top-1 floors: another metric needs its floors in the call.

    Called without floors, it uses the ``clip_min_accuracy`` / ``clip_max_drop`` ini keys (or
    ``--clip-min-accuracy`` / ``--clip-max-drop``); floors given in the call replace both. Floors
    are fractions: 0.8 means 80%. By default the floors apply to the measured values. With
    ``confidence`` (e.g. 0.95) they apply to the interval: a floor fails only when the whole interval
    is on the wrong side of it (Wilson for the accuracy, Newcombe's paired interval for the drop),
    i.e. only on significant evidence (docs/floors.md).
    """
    __tracebackhide__ = True
    if not isinstance(result, EvalResult):
        pytest.fail(f"assert_accuracy needs the result of clip_eval(), got {type(result).__name__}", pytrace=False)
    if metric != "top1":
        _assert_metric(result, metric, min_accuracy, max_drop, confidence)
        return
    if min_accuracy is None and max_drop is None:
        min_accuracy, max_drop = result.floors.min_accuracy, result.floors.max_drop
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

    level = 0.95 if confidence is None else float(confidence)
    accuracy_high = result.accuracy_interval(level)[1]
    drop_low = result.paired_drop(level).interval[0]
    # The measured values, or with a confidence level the interval's most favourable end: a floor then
    # fails only when the whole interval is on the wrong side of it.
    checked = (ACCURACY.value(result), DROP.value(result)) if confidence is None else (accuracy_high, drop_low)
    accuracy_ok, drop_ok = (floor is None or metric.passes(value, floor) for (metric, floor), value in zip(floors, checked, strict=True))
    extra = {} if confidence is None else {"confidence": level}
    result.checks.append(result.check_record(accuracy_ok and drop_ok, min_accuracy, max_drop, **extra))
    if not (accuracy_ok and drop_ok):
        raise AssertionError(failure_message(result, min_accuracy, max_drop, accuracy_ok, drop_ok, confidence))


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
    result.checks.append(result.check_record(value_ok and drop_ok, minimum, most, **extra))
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
    result: EvalResult, min_accuracy: float | None, max_drop: float | None, accuracy_ok: bool, drop_ok: bool, confidence: float | None = None
) -> str:
    def verdict(ok: bool) -> str:
        return "ok" if ok else "FAILED"

    level = 0.95 if confidence is None else confidence
    applies = "" if confidence is None else f" on the {level:.0%} interval"
    low, high = result.accuracy_interval(level)
    paired = result.paired_drop(level)
    drop_low, drop_high = paired.interval
    lines = [
        (f"zero-shot accuracy of {result.model}/{result.pretrained} on {result.dataset} under {result.compression.id} is below its floor (n={result.n})"),
        f"  {ACCURACY.name:<13} {ACCURACY.format(result.accuracy):>7}  ({level:.0%} CI {low:.1%} to {high:.1%})"
        + (f"   floor {ACCURACY.floor}={ACCURACY.format(min_accuracy)}{applies}: {verdict(accuracy_ok)}" if min_accuracy is not None else ""),
        f"  uncompressed  {ACCURACY.format(result.baseline_accuracy):>7}  (same {result.n} images)",
        f"  {DROP.name:<13} {DROP.format(result.drop):>13}"
        + (f"   floor {DROP.floor}={DROP.format(max_drop)}{applies}: {verdict(drop_ok)}" if max_drop is not None else ""),
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
    """Fail when ``result`` is worse than the baseline on the same images by more than ``max_regression``
    and the exact McNemar test says the difference is real (``p < alpha``).

    The baseline is ``--clip-baseline`` (or the ``baseline`` file given here); its entry is the one
    for the same model id (role or name; ``baseline_model`` picks another), dataset and compression.
    Different images, dataset files, classes or prompts, or a missing entry, fail with an error.
    """
    __tracebackhide__ = True
    if not isinstance(result, EvalResult):
        pytest.fail(f"assert_no_regression needs the result of clip_eval(), got {type(result).__name__}", pytrace=False)
    try:
        check_margin(float(max_regression), float(alpha))
        stored = load_results_file(Path(baseline), "--clip-baseline") if baseline is not None else result.baseline
        if stored is None:
            raise GateError("assert_no_regression has no baseline: pass --clip-baseline PATH (a results file saved with --clip-baseline-save) or baseline=PATH")
        entry = stored.entry_for(result.case._replace(role=baseline_model or result.model_id), result.fingerprint)
        comparison = compare_outcomes(Outcomes.from_record(entry), result.outcomes, "baseline", "this run")
    except ClipCompressError as error:
        pytest.fail(str(error), pytrace=False)
    failed = comparison.regressed(max_regression, alpha)
    result.checks.append(result.check_record(not failed, max_regression=float(max_regression)))
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
    candidate.checks.append(candidate.check_record(not failed, max_regression=float(max_regression), reference=reference_name))
    if failed:
        headline = f"{candidate_name} is worse than {reference_name} on {candidate.dataset} under {candidate.compression.id}"
        raise AssertionError(comparison.message(max_regression, alpha, headline))
