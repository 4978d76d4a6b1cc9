"""The regression gate: is this checkpoint less robust than the last release?

Record a baseline on the release, then gate every candidate against it (docs/ci.md):

    pytest examples/test_regression_gate.py --clip-baseline-save=baseline.json
    pytest examples/test_regression_gate.py --clip-model clipcompress-demo:/ckpt/new.pt --clip-baseline=baseline.json

Without --clip-baseline the gate skips, so the same suite records the baseline.
"""

import pytest

from pytest_clipcompress import assert_accuracy, assert_no_regression


@pytest.mark.clip_dataset("demo")
@pytest.mark.compression("jpeg", quality=[100, 90])
def test_not_less_robust_than_the_baseline(clip_eval, pytestconfig):
    result = clip_eval()
    assert_accuracy(result, min_accuracy=0.5, max_drop=0.5)  # loose absolute floors (replacing the ini's) still catch a broken model
    if pytestconfig.getoption("clip_baseline") is None:
        pytest.skip("no --clip-baseline: this run only records a baseline")
    assert_no_regression(result, max_regression=0.01)
