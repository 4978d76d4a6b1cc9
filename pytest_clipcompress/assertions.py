"""``assert_accuracy``: accuracy floors with a failure message a person can act on."""

from __future__ import annotations

import pytest

from .errors import ConfigError
from .evaluation import EvalResult
from .metrics import ACCURACY, DROP
from .outcomes import flip_text
from .records import check_record
from .values import check_fraction, is_finite, real_number


def assert_accuracy(result: EvalResult, min_accuracy: float | None = None, max_drop: float | None = None, *, confidence: float | None = None) -> None:
    """Fail when accuracy is below ``min_accuracy`` or fell by more than ``max_drop`` under compression.

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
    if min_accuracy is None and max_drop is None:
        min_accuracy, max_drop = result.min_accuracy_default, result.max_drop_default
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
    result.checks.append(check_record(result, min_accuracy, max_drop, accuracy_ok and drop_ok, None if confidence is None else level))
    if not (accuracy_ok and drop_ok):
        raise AssertionError(failure_message(result, min_accuracy, max_drop, accuracy_ok, drop_ok, confidence))


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
