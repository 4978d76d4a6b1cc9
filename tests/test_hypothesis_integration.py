"""Hypothesis with clip_eval, and the breaking-point search, end to end in a user's run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

SUITE = """
import json
from hypothesis import given, settings
from pytest_clipcompress import strategies as cs, assert_accuracy

FLOOR = {floor}

@settings(max_examples=12, deadline=None)
@given(compression=cs.jpeg(quality=cs.qualities(10, 100)))
def test_floor_holds_for_any_jpeg(clip_eval, compression):
    assert_accuracy(clip_eval(dataset="{dataset}", compression=compression), min_accuracy=FLOOR)

def test_breaking_point(clip_breaking_point):
    point = clip_breaking_point("{dataset}", "jpeg", "quality", floor=FLOOR, low=10, high=100)
    with open("breaking_point.json", "w") as handle:
        json.dump(point.to_dict(), handle)
"""


def run_suite(pytester: pytest.Pytester, args: list[str], dataset: str, floor: float) -> tuple[pytest.RunResult, int, dict]:
    pytester.makepyfile(SUITE.format(dataset=dataset, floor=floor))
    results = pytester.path / "results.json"
    outcome = pytester.runpytest(*args, "--clip-ig-samples=0", f"--clip-results={results}")
    # Hypothesis replays the shrunk example last; its failure message names the compression.
    failures = re.findall(r"under jpeg-q(\d+) is below its floor", outcome.stdout.str())
    assert failures, outcome.stdout.str()
    return outcome, int(failures[-1]), json.loads((pytester.path / "breaking_point.json").read_text())


def test_shrunk_failure_is_the_breaking_point_on_the_cifar_sample(pytester: pytest.Pytester, tiny_args: list[str], cifar_sample_root: Path) -> None:
    args = [*tiny_args, f"--clip-data-root={cifar_sample_root}", "--clip-offline", "--clip-samples=100"]
    outcome, shrunk, point = run_suite(pytester, args, "cifar10", floor=0.9)
    outcome.assert_outcomes(failed=1, passed=1)
    # The floor fails at every quality, so the mildest failing setting is the mildest of the range.
    assert shrunk == point["breaking_value"] == 100
    outcome.stdout.fnmatch_lines(["breaking point: tiny-clip/tiny-clip.pt on cifar10, jpeg quality breaks accuracy floor 0.9 at quality=100"])


def test_shrunk_failure_matches_bisection_on_the_demo(pytester: pytest.Pytester) -> None:
    """The demo model loses accuracy as JPEG quality falls, so the breaking point is inside the range."""
    outcome, shrunk, point = run_suite(pytester, ["--clip-no-cache", "--clip-device=cpu"], "demo", floor=0.8)
    outcome.assert_outcomes(failed=1, passed=1)
    assert 10 < point["breaking_value"] < 100
    assert abs(shrunk - point["breaking_value"]) <= 1
    records = json.loads((pytester.path / "results.json").read_text())
    assert records["breaking_points"][0]["breaking_value"] == point["breaking_value"]
    assert [p["setting"] for p in point["frontier"]] == sorted({p["setting"] for p in point["frontier"]}, key=lambda s: -int(s.split("q")[1]))
