"""Timing several ways of doing the same work alternately, so that a load drifting over the benchmark hits each alike."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

Way = TypeVar("Way")


def alternated(ways: Sequence[Way], repetition: int) -> list[Way]:
    """The ways in their order on even repetitions, reversed on odd ones."""
    return list(ways) if repetition % 2 == 0 else list(ways)[::-1]


def time_alternately(
    runs: dict[str, tuple[Callable[[Any], object], list[float]]],
    repeats: int,
    log: Callable[[str], None],
    label: str,
    before: Callable[[], Any] = lambda: None,
) -> None:
    """Each run ``repeats`` times, alternated, appending its seconds to its list; ``before()`` runs outside the timing
    before each run and what it returns is the run's argument (a fresh object to work on, say)."""
    for repetition in range(repeats):
        for name in alternated(list(runs), repetition):
            run, times = runs[name]
            argument = before()
            started = time.perf_counter()
            run(argument)
            times.append(time.perf_counter() - started)
            log(f"  {label} rep {repetition + 1}/{repeats} {name}: {times[-1]:.2f} s")
