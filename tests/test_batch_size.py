"""Batch size changes the logits by float rounding only: predictions equal, logits within 1e-4 (docs/reference.md)."""

from __future__ import annotations

import numpy as np

from pytest_clipcompress.codecs.compression import Compression
from pytest_clipcompress.config.settings import build_settings
from pytest_clipcompress.engine.evaluator import Evaluator


def test_batch_size_keeps_predictions_and_logits_within_rounding() -> None:
    runs = {}
    for batch_size in ("7", "64"):
        values = {"batch-size": batch_size, "samples": "120", "no-cache": True, "device": "cpu"}
        evaluator = Evaluator.from_settings(build_settings(lambda option, values=values: values.get(option.name)))
        runs[batch_size] = evaluator.evaluate("clipcompress-demo", "demo", Compression("jpeg", quality=50))
    small, large = runs["7"], runs["64"]
    assert np.array_equal(small.predictions, large.predictions)
    assert np.array_equal(small.baseline_predictions, large.baseline_predictions)
    assert float(np.abs(small.logits - large.logits).max()) <= 1e-4
    assert float(np.abs(small.baseline_logits - large.baseline_logits).max()) <= 1e-4
