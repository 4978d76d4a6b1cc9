"""``assert_accuracy``: accuracy floors with a failure message a person can act on."""

from __future__ import annotations

import pytest

from .errors import ConfigError
from .evaluation import EvalResult
from .values import check_fraction


def assert_accuracy(result: EvalResult, min_accuracy: float | None = None, max_drop: float | None = None) -> None:
    """Fail when accuracy is below ``min_accuracy`` or fell by more than ``max_drop`` under compression.

    Called without floors, it uses the ``clip_min_accuracy`` / ``clip_max_drop`` ini keys (or
    ``--clip-min-accuracy`` / ``--clip-max-drop``); floors given in the call replace both. Floors
    are fractions: 0.8 means 80%.
    """
    __tracebackhide__ = True
    if not isinstance(result, EvalResult):
        pytest.fail(f"assert_accuracy needs the result of clip_eval(), got {type(result).__name__}", pytrace=False)
    if min_accuracy is None and max_drop is None:
        min_accuracy, max_drop = result.min_accuracy_default, result.max_drop_default
    if min_accuracy is None and max_drop is None:
        pytest.fail(
            "assert_accuracy has no floor: pass min_accuracy= or max_drop=, or set clip_min_accuracy / "
            "clip_max_drop in the ini file",
            pytrace=False,
        )
    try:
        # Plain floats from here on: numpy, Decimal or tensor floors must not reach the results file.
        min_accuracy = None if min_accuracy is None else check_fraction("min_accuracy", min_accuracy)
        max_drop = None if max_drop is None else check_fraction("max_drop", max_drop)
        problem = None
    except ConfigError as error:
        problem = str(error)
    if problem:  # failed outside the except block, so no "During handling..." chain is printed
        pytest.fail(problem, pytrace=False)

    accuracy_ok = min_accuracy is None or result.accuracy >= min_accuracy
    drop_ok = max_drop is None or result.drop <= max_drop
    result.checks.append({"min_accuracy": min_accuracy, "max_drop": max_drop, "passed": accuracy_ok and drop_ok})
    if not (accuracy_ok and drop_ok):
        raise AssertionError(failure_message(result, min_accuracy, max_drop, accuracy_ok, drop_ok))


def failure_message(result: EvalResult, min_accuracy: float | None, max_drop: float | None, accuracy_ok: bool, drop_ok: bool) -> str:
    def verdict(ok: bool) -> str:
        return "ok" if ok else "FAILED"

    lines = [
        f"zero-shot accuracy of {result.model}/{result.pretrained} on {result.dataset} under {result.compression.id} "
        f"is below its floor (n={result.n})",
        f"  accuracy      {result.accuracy:7.2%}  (95% CI {result.ci_low:.1%} to {result.ci_high:.1%})"
        + (f"   floor min_accuracy={min_accuracy:.2%}: {verdict(accuracy_ok)}" if min_accuracy is not None else ""),
        f"  uncompressed  {result.baseline_accuracy:7.2%}  (same {result.n} images)",
        f"  drop          {result.drop * 100:6.2f} points"
        + (f"   floor max_drop={max_drop * 100:.2f} points: {verdict(drop_ok)}" if max_drop is not None else ""),
        "  worst classes " + ", ".join(f"{name} {acc:.1%}" for name, acc in result.worst_classes()),
        f"  flipped       {_images(len(result.flipped))} correct uncompressed and wrong compressed",
    ]
    if min_accuracy is not None and result.ci_low <= min_accuracy <= result.ci_high:
        lines.append("  note: the floor lies inside the 95% interval, so this may be sampling noise; raise --clip-samples")
    lines.append("If this compression is expected to hurt, lower the floor or mark the case xfail; otherwise the model regressed.")
    return "\n".join(lines)


def _images(count: int) -> str:
    return f"{count} image" + ("" if count == 1 else "s")
