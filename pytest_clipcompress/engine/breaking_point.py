"""Find the mildest compression at which a model's accuracy breaks a floor, by bisection.

Each evaluation of a CLIP model over a dataset is expensive, so instead of sweeping every
quality we assume the metric is monotone in the parameter and bisect: ``ceil(log2(n + 1))``
evaluations for ``n`` candidate values (7 for JPEG quality 1..100). This module knows nothing
about pytest; ``evaluate`` is any callable mapping a :class:`Compression` to a result with
``accuracy``, ``drop`` and ``bits_per_pixel`` (an :class:`~.result.EvalResult` in practice). It returns
the schema's :class:`~..results.schema.BreakingPoint`; the caller adds which model and dataset.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Protocol, cast

from ..codecs.compression import Compression
from ..codecs.registry import CODECS, searchable_params
from ..errors import ConfigError
from ..inputs import check_fraction, is_finite, real_number
from ..results.schema import BreakingPoint, FrontierProbe
from .metrics import ACCURACY, DROP, METRICS, metric_named

__all__ = ["BreakingPoint", "MetricResult", "find_breaking_point", "max_evaluations", "mildness_order"]


class MetricResult(Protocol):
    """What :func:`find_breaking_point` reads from an evaluation."""

    @property
    def accuracy(self) -> float: ...

    @property
    def drop(self) -> float: ...

    @property
    def bits_per_pixel(self) -> float: ...


def mildness_order(codec: str, param: str, low: float | None = None, high: float | None = None) -> range:
    """The whole-number values of ``codec``'s ``param`` from ``low`` to ``high``, mildest first.

    ``low``/``high`` are numeric bounds (``low <= high``) and default to the parameter's range in
    :data:`~.compression.CODECS`.
    """
    key = (codec.lower(), param)
    if key not in searchable_params():
        searchable = ", ".join(f"{c}.{p}" for c, p in searchable_params())
        raise ConfigError(f"cannot search {codec}.{param}; searchable parameters: {searchable}")
    spec = CODECS[key[0]].params[param]
    bounds = {}
    for name, bound in (("low", spec.bounds[0] if low is None else low), ("high", spec.bounds[1] if high is None else high)):
        bounds[name] = spec.check(key[0], param, bound)  # plain numbers from here on
        if bounds[name] != int(bounds[name]):
            raise ConfigError(f"{codec} {param} {name}={bounds[name]!r} must be a whole number: the search steps by 1")
    low, high = bounds["low"], bounds["high"]
    if low > high:
        raise ConfigError(f"{codec} {param}: low={low:g} is above high={high:g}")
    low, high = int(low), int(high)
    return range(high, low - 1, -1) if spec.milder == "higher" else range(low, high + 1)


def find_breaking_point(
    evaluate: Callable[[Compression], MetricResult],
    codec: str,
    param: str,
    *,
    floor: float,
    metric: str = "accuracy",
    low: float | None = None,
    high: float | None = None,
    fixed: Mapping[str, Any] | None = None,
) -> BreakingPoint:
    """Bisect ``param`` for the mildest setting at which ``metric`` crosses ``floor``.

    A setting fails when its metric is on the wrong side of ``floor`` (:data:`~.metrics.METRICS`:
    ``accuracy < floor`` for ``"accuracy"``, ``drop > floor`` for ``"drop"``). The metric is assumed monotone in the parameter: once a setting fails,
    every harsher one fails too. ``fixed`` holds the codec's other parameters (e.g.
    ``{"subsampling": "4:4:4"}``). Each probed setting is evaluated exactly once.
    """
    measure = metric_named(metric)
    if measure in (ACCURACY, DROP):
        floor = check_fraction("floor", floor)  # accuracy and drop are both fractions
    else:  # a registered metric has its own scale: any finite real number
        number = real_number(floor)
        if number is None or not is_finite(number):
            raise ConfigError(f"floor={floor!r} is not a finite number")
        floor = float(number)
    codec = codec.lower()
    fixed = dict(fixed or {})
    if param in fixed:
        raise ConfigError(f"{param} is the searched parameter; remove it from fixed={fixed!r}")
    order = mildness_order(codec, param, low, high)
    probes: dict[int, tuple[Compression, MetricResult, bool]] = {}

    def passes(index: int) -> bool:
        if index not in probes:
            compression = Compression(codec, {**fixed, param: order[index]})
            result = evaluate(compression)
            ok = measure.passes(measure.value(result), floor)
            probes[index] = (compression, result, ok)
        return probes[index][2]

    # Invariant: every index <= passing passes, every index >= failing fails. The sentinels -1 and
    # len(order) are never evaluated, so "all pass" and "mildest fails" cost no extra probes.
    passing, failing = -1, len(order)
    while failing - passing > 1:
        middle = (passing + failing) // 2
        if passes(middle):
            passing = middle
        else:
            failing = middle

    # Every registered metric of each probe (a user's metrics too), beside the probe's setting.
    frontier = [
        cast(
            "FrontierProbe",
            {
                "setting": compression.id,
                "value": compression.param(param),
                **{name: _defined(METRICS[name].value(result)) for name in METRICS},
                "bits_per_pixel": result.bits_per_pixel,
                "passes": ok,
            },
        )
        for _, (compression, result, ok) in sorted(probes.items())
    ]
    return BreakingPoint(
        codec=codec,
        param=param,
        floor=floor,
        metric=metric,
        # A bound that moved off its sentinel was probed.
        breaking_value=probes[failing][0].param(param) if failing in probes else None,
        last_passing_value=probes[passing][0].param(param) if passing in probes else None,
        frontier=frontier,
        evaluations=len(probes),
    )


def max_evaluations(codec: str, param: str, low: float | None = None, high: float | None = None) -> int:
    """Upper bound on the evaluations :func:`find_breaking_point` makes over this range."""
    return math.ceil(math.log2(len(mildness_order(codec, param, low, high)) + 1))


def _defined(value: float) -> float | None:
    """A metric's value for the results file, None where it is undefined (NaN: strict JSON has none)."""
    return None if math.isnan(value) else value
