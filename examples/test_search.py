"""Beyond fixed qualities: let hypothesis search JPEG settings, and find the breaking point.

Hypothesis shrinks a failure to the mildest compression that still breaks the floor; the
breaking-point search bisects the quality (each probe a cached evaluation) and reports the frontier
in the results file, the terminal summary and the report's charts.
"""

from hypothesis import given, settings

from pytest_clipcompress import assert_accuracy
from pytest_clipcompress import strategies as cs

FULL_CHROMA = cs.subsamplings().filter(lambda s: s == "4:4:4")


@settings(max_examples=10, deadline=None)
@given(compression=cs.jpeg(quality=cs.qualities(90, 100), subsampling=FULL_CHROMA))
def test_floor_holds_for_any_fine_jpeg(clip_eval, compression):
    assert_accuracy(clip_eval(dataset="demo", compression=compression), min_accuracy=0.85, max_drop=0.15)


def test_breaking_point_stays_below_quality_90(clip_breaking_point):
    point = clip_breaking_point("demo", "jpeg", "quality", floor=0.85, fixed={"subsampling": "4:4:4"})
    assert point.breaking_value is not None and point.breaking_value < 90, point.frontier
