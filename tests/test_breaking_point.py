"""find_breaking_point against fake, monotone evaluations, checked by brute force."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_clipcompress.codecs.compression import Compression
from pytest_clipcompress.engine.breaking_point import find_breaking_point, max_evaluations, mildness_order
from pytest_clipcompress.errors import ConfigError
from pytest_clipcompress.results.schema import BreakingPoint

BASELINE = 0.9


@dataclass
class FakeResult:
    compression: Compression
    accuracy: float
    drop: float
    bits_per_pixel: float
    # The other built-in metrics read these; the search itself runs on accuracy or drop here.
    top5: float | None = None
    baseline_top5: float | None = None
    mean_per_class_recall: float = 0.5
    baseline_mean_per_class_recall: float = 0.5


class FakeEvaluator:
    """Accuracy as a function of the searched value; counts calls per setting."""

    def __init__(self, param: str, accuracy_at: Callable[[float], float]) -> None:
        self.param = param
        self.accuracy_at = accuracy_at
        self.calls: Counter[str] = Counter()

    def __call__(self, compression: Compression) -> FakeResult:
        self.calls[compression.id] += 1
        value = compression.param(self.param)
        accuracy = self.accuracy_at(value)
        return FakeResult(compression, accuracy, BASELINE - accuracy, bits_per_pixel=value / 10)


def jpeg_accuracy(quality: float) -> float:
    """Flat near the top, collapsing at low quality, like CLIP under JPEG."""
    return BASELINE * min(1.0, quality / 30)


def brute_force(evaluate: FakeEvaluator, codec: str, param: str, floor: float, metric: str = "accuracy") -> float | None:
    """The mildest failing value, found by evaluating every value from mild to harsh."""
    for value in mildness_order(codec, param):
        result = evaluate(Compression(codec, {param: value}))
        if (result.accuracy < floor) if metric == "accuracy" else (result.drop > floor):
            return result.compression.param(param)
    return None


def check_consistent(point: BreakingPoint, evaluate: FakeEvaluator) -> None:
    """Frontier ordered mild to harsh, each setting evaluated once, verdicts split at the breaking value."""
    order = list(mildness_order(point.codec, point.param))
    values = [probe["value"] for probe in point.frontier]
    assert [order.index(v) for v in values] == sorted(order.index(v) for v in values)
    assert point.evaluations == len(point.frontier) == len(evaluate.calls) == sum(evaluate.calls.values())
    passes = [probe["passes"] for probe in point.frontier]
    assert passes == sorted(passes, reverse=True)  # all passing probes before all failing ones
    failing = [probe["value"] for probe in point.frontier if not probe["passes"]]
    passing = [probe["value"] for probe in point.frontier if probe["passes"]]
    assert point.breaking_value == (failing[0] if failing else None)
    assert point.last_passing_value == (passing[-1] if passing else None)


@settings(max_examples=200, deadline=None)
@given(floor=st.floats(0, 1))
def test_matches_brute_force_for_any_floor(floor: float) -> None:
    evaluate = FakeEvaluator("quality", jpeg_accuracy)
    point = find_breaking_point(evaluate, "jpeg", "quality", floor=floor)
    check_consistent(point, evaluate)
    assert point.breaking_value == brute_force(FakeEvaluator("quality", jpeg_accuracy), "jpeg", "quality", floor)
    assert point.evaluations <= max_evaluations("jpeg", "quality") == 7


@settings(max_examples=200, deadline=None)
@given(
    curve=st.lists(st.floats(0, 1), min_size=100, max_size=100).map(sorted),
    floor=st.floats(0, 1),
    metric=st.sampled_from(["accuracy", "drop"]),
)
def test_matches_brute_force_for_any_monotone_curve(curve: list[float], floor: float, metric: str) -> None:
    # curve[q - 1] is the accuracy at quality q: non-decreasing in quality, ties and plateaus allowed.
    def accuracy_at(quality: float) -> float:
        return curve[int(quality) - 1]

    evaluate = FakeEvaluator("quality", accuracy_at)
    point = find_breaking_point(evaluate, "jpeg", "quality", floor=floor, metric=metric)
    check_consistent(point, evaluate)
    expected = brute_force(FakeEvaluator("quality", accuracy_at), "jpeg", "quality", floor, metric)
    assert point.breaking_value == expected
    if expected is None:
        assert point.last_passing_value == 1  # even the harshest quality passes
    else:
        assert point.last_passing_value == (None if expected == 100 else expected + 1)
    assert point.evaluations <= 7


def test_each_setting_is_evaluated_once() -> None:
    evaluate = FakeEvaluator("quality", jpeg_accuracy)
    point = find_breaking_point(evaluate, "jpeg", "quality", floor=0.5)
    assert point.breaking_value == 16 and point.last_passing_value == 17  # 0.9 * 16/30 = 0.48
    assert set(evaluate.calls.values()) == {1}
    assert [probe["setting"] for probe in point.frontier] == [f"jpeg-q{q}" for q in (51, 26, 20, 17, 16, 15, 13)]


def test_all_pass_reports_no_breaking_value() -> None:
    evaluate = FakeEvaluator("quality", jpeg_accuracy)
    point = find_breaking_point(evaluate, "jpeg", "quality", floor=0.0)
    assert point.breaking_value is None
    assert point.last_passing_value == 1  # the harshest was probed and passed
    assert point.frontier[-1]["setting"] == "jpeg-q1"
    check_consistent(point, evaluate)


def test_mildest_failing_is_the_breaking_value() -> None:
    evaluate = FakeEvaluator("quality", jpeg_accuracy)
    point = find_breaking_point(evaluate, "jpeg", "quality", floor=0.95)
    assert point.breaking_value == 100
    assert point.last_passing_value is None
    assert point.frontier[0]["setting"] == "jpeg-q100" and not point.frontier[0]["passes"]
    check_consistent(point, evaluate)


def test_drop_metric_fails_above_the_floor() -> None:
    evaluate = FakeEvaluator("quality", jpeg_accuracy)
    point = find_breaking_point(evaluate, "jpeg", "quality", floor=0.35, metric="drop")
    # drop = 0.9 - 0.03 q > 0.35  <=>  q < 18.3
    assert (point.breaking_value, point.last_passing_value) == (18, 19)
    assert point.metric == "drop"


def test_jpeg2000_searches_from_low_to_high_rate() -> None:
    assert list(mildness_order("jpeg2000", "rate", 10, 13)) == [10, 11, 12, 13]
    assert list(mildness_order("jpeg", "quality", 10, 13)) == [13, 12, 11, 10]
    evaluate = FakeEvaluator("rate", lambda rate: BASELINE * min(1.0, 50 / rate))
    point = find_breaking_point(evaluate, "jpeg2000", "rate", floor=0.5)
    # 0.9 * 50 / r < 0.5  <=>  r > 90
    assert (point.breaking_value, point.last_passing_value) == (91.0, 90.0)
    assert point.evaluations <= max_evaluations("jpeg2000", "rate") == 10
    rates = [probe["value"] for probe in point.frontier]
    assert rates == sorted(rates)
    check_consistent(point, evaluate)


def test_bounds_and_fixed_params_shape_the_probes() -> None:
    evaluate = FakeEvaluator("quality", jpeg_accuracy)
    point = find_breaking_point(evaluate, "JPEG", "quality", floor=0.5, low=10, high=40, fixed={"subsampling": "4:4:4"})
    assert point.codec == "jpeg" and point.breaking_value == 16
    assert all(probe["setting"].endswith("-s444") for probe in point.frontier)
    assert all(10 <= probe["value"] <= 40 for probe in point.frontier)
    assert point.evaluations <= max_evaluations("jpeg", "quality", 10, 40) == 5


def test_to_dict_is_json_ready() -> None:
    point = find_breaking_point(FakeEvaluator("quality", jpeg_accuracy), "jpeg", "quality", floor=0.5)
    record = json.loads(json.dumps(point.to_dict()))
    assert record["breaking_value"] == 16
    metrics = {"accuracy", "drop", "top5", "top5_drop", "mean_per_class_recall", "mean_per_class_recall_drop"}
    assert set(record["frontier"][0]) == {"setting", "value", "bits_per_pixel", "passes", *metrics}
    assert record["frontier"][0]["top5"] is None  # undefined (here: not given), null in strict JSON rather than NaN


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"codec": "none", "param": "quality"}, "cannot search none.quality"),
        ({"codec": "jpeg", "param": "subsampling"}, "cannot search jpeg.subsampling"),
        ({"codec": "webp", "param": "method"}, "cannot search webp.method"),
        ({"codec": "jpeg", "param": "quality", "metric": "f1"}, "metric='f1'"),
        ({"codec": "jpeg", "param": "quality", "low": 0}, "out of range"),
        ({"codec": "jpeg", "param": "quality", "low": 50, "high": 10}, "above high"),
        ({"codec": "jpeg2000", "param": "rate", "low": 1.5}, "whole number"),
        ({"codec": "jpeg", "param": "quality", "fixed": {"quality": 3}}, "searched parameter"),
    ],
)
def test_bad_searches_raise_config_errors(kwargs: dict, message: str) -> None:
    evaluate = FakeEvaluator("quality", jpeg_accuracy)
    with pytest.raises(ConfigError, match=message):
        find_breaking_point(evaluate, floor=0.5, **kwargs)
    assert not evaluate.calls
