"""The metrics a floor can be set on: what each measures, which way is better, how it is shown.

One :class:`Metric` per entry of :data:`METRICS`. ``assert_accuracy`` checks floors with them,
``clip_breaking_point(metric=...)`` bisects on them, and the JUnit properties are named after them.
A new metric (recall of one class, say) is one more entry, made with :func:`register_metric`: its
``value`` reads anything the evaluation result holds (``logits``, ``labels``, ``baseline_logits``,
...). The built-in ones are top-1 accuracy (``accuracy``), top-5 accuracy (``top5``) and mean
per-class recall (``mean_per_class_recall``), each with its drop from the uncompressed images
(``drop``, ``top5_drop``, ``mean_per_class_recall_drop``), as CLIP_benchmark defines them (see
:mod:`.result`); :data:`FLOOR_METRICS` pairs each with its drop for ``assert_accuracy(metric=...)``.
A value that is undefined (top-5 with fewer than 5 classes) is NaN, which passes no floor.
Pytest-free and numpy-free.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

__all__ = [
    "ACCURACY",
    "DROP",
    "FLOOR_METRICS",
    "MEAN_PER_CLASS_RECALL",
    "MEAN_PER_CLASS_RECALL_DROP",
    "METRICS",
    "TOP5",
    "TOP5_DROP",
    "Metric",
    "metric_named",
    "register_metric",
]


@dataclass(frozen=True)
class Metric:
    """One metric of an evaluation result.

    ``value(result)`` computes it; ``higher_is_better`` says which side of a floor passes;
    ``floor`` is the keyword that sets the floor (``min_accuracy``); ``percent`` shows values as
    percentages (``35.75%``), otherwise as percentage points (``63.75 points``).
    """

    name: str
    value: Callable[[Any], float]
    higher_is_better: bool
    floor: str
    percent: bool = True

    def passes(self, value: float, floor: float) -> bool:
        """Whether ``value`` is on the good side of ``floor`` (equal passes)."""
        return value >= floor if self.higher_is_better else value <= floor

    def format(self, value: float) -> str:
        """``35.75%`` for fractions, ``63.75 points`` for differences of fractions."""
        return f"{value:.2%}" if self.percent else f"{value * 100:.2f} points"

    @property
    def junit_property(self) -> str:
        """The suffix of the JUnit property holding this metric, ``clip[<case>].<suffix>``."""
        return self.name


METRICS: dict[str, Metric] = {}
_BUILTIN_METRICS: set[str] = set()


def register_metric(metric: Metric) -> Metric:
    """Add a metric; registering a name again replaces the entry, except for the built-in metrics."""
    if metric.name in _BUILTIN_METRICS and METRICS[metric.name] != metric:
        raise ConfigError(f"metric {metric.name!r} is built in; give yours another name")
    METRICS[metric.name] = metric
    return metric


def metric_named(name: Any) -> Metric:
    """The registered metric called ``name``, or a :class:`ConfigError` listing the choices."""
    if not isinstance(name, str) or name not in METRICS:
        raise ConfigError(f"metric={name!r} is not supported; choose {' or '.join(repr(known) for known in METRICS)}")
    return METRICS[name]


def _accuracy(result: Any) -> float:
    # Share of images classified correctly under compression.
    return result.accuracy


def _drop(result: Any) -> float:
    # Uncompressed accuracy minus compressed accuracy, on the same images.
    return result.drop


def _defined(value: float | None) -> float:
    return math.nan if value is None else value


def _top5(result: Any) -> float:
    # Share of images whose true class is among the 5 highest logits; NaN for fewer than 5 classes.
    return _defined(result.top5)


def _top5_drop(result: Any) -> float:
    return _defined(result.baseline_top5) - _defined(result.top5)


def _mean_per_class_recall(result: Any) -> float:
    # The recall of each class present in the subset, averaged with equal weight (balanced accuracy).
    return result.mean_per_class_recall


def _mean_per_class_recall_drop(result: Any) -> float:
    return result.baseline_mean_per_class_recall - result.mean_per_class_recall


ACCURACY = register_metric(Metric("accuracy", _accuracy, higher_is_better=True, floor="min_accuracy"))
DROP = register_metric(Metric("drop", _drop, higher_is_better=False, floor="max_drop", percent=False))
TOP5 = register_metric(Metric("top5", _top5, higher_is_better=True, floor="min_accuracy"))
TOP5_DROP = register_metric(Metric("top5_drop", _top5_drop, higher_is_better=False, floor="max_drop", percent=False))
MEAN_PER_CLASS_RECALL = register_metric(Metric("mean_per_class_recall", _mean_per_class_recall, higher_is_better=True, floor="min_accuracy"))
MEAN_PER_CLASS_RECALL_DROP = register_metric(
    Metric("mean_per_class_recall_drop", _mean_per_class_recall_drop, higher_is_better=False, floor="max_drop", percent=False)
)
_BUILTIN_METRICS.update(METRICS)

#: What ``assert_accuracy(metric=...)`` accepts: the metric ``min_accuracy`` applies to and the one ``max_drop`` applies to.
FLOOR_METRICS: dict[str, tuple[Metric, Metric]] = {
    "top1": (ACCURACY, DROP),
    "top5": (TOP5, TOP5_DROP),
    "mean_per_class_recall": (MEAN_PER_CLASS_RECALL, MEAN_PER_CLASS_RECALL_DROP),
}
