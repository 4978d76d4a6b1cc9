"""The statistics benchmark (e) prints beside its ratio of medians: per-repetition ratios and their interval."""

from __future__ import annotations

import importlib.util
import statistics
import sys
from pathlib import Path
from types import ModuleType

import pytest

LIMITS = Path(__file__).resolve().parent.parent / "benchmarks" / "limits.py"


@pytest.fixture(scope="module")
def limits() -> ModuleType:
    spec = importlib.util.spec_from_file_location("benchmark_limits", LIMITS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(LIMITS.parent))  # its sibling modules, as when bench.py runs it
        spec.loader.exec_module(module)
    return module


def test_each_session_is_divided_by_the_loop_of_its_own_repetition(limits: ModuleType) -> None:
    figures = limits.SessionFigures(reported_s=[9.0, 8.0, 12.0], loop_s=[10.0, 8.0, 6.0])
    assert figures.paired_ratios == [0.9, 1.0, 2.0]
    assert figures.ratio == statistics.median([9.0, 8.0, 12.0]) / statistics.median([10.0, 8.0, 6.0])
    with pytest.raises(ValueError, match="shorter"):  # a repetition without its partner is a bug in the benchmark
        limits.SessionFigures(reported_s=[9.0, 8.0], loop_s=[10.0]).paired_ratios  # noqa: B018


def test_the_interval_holds_the_median_and_needs_three_repetitions(limits: ModuleType) -> None:
    sessions = [11.60, 7.98, 8.75, 8.57, 8.84, 8.26, 8.21, 8.92, 10.08]
    loops = [8.99, 7.55, 7.74, 8.29, 7.74, 6.79, 8.22, 8.99, 8.46]
    figures = limits.SessionFigures(reported_s=sessions, loop_s=loops)
    low, high = figures.paired_interval()
    paired_median = statistics.median(s / loop for s, loop in zip(sessions, loops, strict=True))
    assert low < paired_median < high
    assert min(figures.paired_ratios) <= low and high <= max(figures.paired_ratios)
    narrower = figures.paired_interval(confidence=0.5)
    assert low <= narrower[0] and narrower[1] <= high
    assert limits.SessionFigures(reported_s=[9.0, 8.0], loop_s=[10.0, 8.0]).paired_interval() is None
