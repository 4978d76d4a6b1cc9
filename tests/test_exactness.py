"""The plugin's accuracies equal a straightforward computation written independently of it.

The reference below uses only Pillow, open_clip and torch: unpickle the official file, JPEG round
trip with ``Image.save``/``Image.open``, the model's own preprocess, ``encode_image`` /
``encode_text``, 100 x cosine similarity, argmax.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pytest_clipcompress.data.cifar10 import CIFAR10_TEMPLATES

from .helpers import TINY_CONFIG, TINY_MODEL
from .reference import reference_predictions

QUALITIES = [100, 75, 50, 25]

SUITE = """
import json
import numpy as np
import pytest
from pytest_clipcompress import assert_accuracy

@pytest.mark.clip_dataset("cifar10")
@pytest.mark.compression("none")
@pytest.mark.compression("jpeg", quality=[100, 75, 50, 25])
def test_zero_shot_under_jpeg(clip_eval, compression, request):
    result = clip_eval()
    np.save(f"predictions-{compression.id}.npy", result.predictions)
    np.save(f"baseline-{compression.id}.npy", result.baseline_predictions)
    assert_accuracy(result, min_accuracy=0.0, max_drop=1.0)
"""


def test_results_equal_an_independent_computation(pytester: pytest.Pytester, tiny_args: list[str], tiny_checkpoint: Path, cifar_sample_root: Path) -> None:
    pytester.makepyfile(SUITE)
    results_path = pytester.path / "results.json"
    outcome = pytester.runpytest(
        *tiny_args,
        f"--clip-data-root={cifar_sample_root}",
        "--clip-offline",
        "--clip-batch-size=200",
        f"--clip-results={results_path}",
        "-p",
        "no:cacheprovider",
    )
    outcome.assert_outcomes(passed=5)
    records = {r["compression_id"]: r for r in json.loads(results_path.read_text())["evaluations"]}

    def reference(quality: int | None) -> tuple[np.ndarray, np.ndarray]:
        return reference_predictions(TINY_CONFIG, TINY_MODEL, tiny_checkpoint, cifar_sample_root, quality, CIFAR10_TEMPLATES)

    baseline, labels = reference(None)
    baseline_accuracy = float(np.mean(baseline == labels))
    distinct_outcomes = set()
    for quality in QUALITIES:
        predictions, _ = reference(quality)
        record = records[f"jpeg-q{quality}"]
        assert np.array_equal(np.load(pytester.path / f"predictions-jpeg-q{quality}.npy"), predictions)
        assert record["accuracy"] == float(np.mean(predictions == labels))  # exactly, not approximately
        assert record["baseline_accuracy"] == baseline_accuracy
        distinct_outcomes.add(tuple(predictions))
    assert np.array_equal(np.load(pytester.path / "predictions-none.npy"), baseline)
    assert records["none"]["accuracy"] == baseline_accuracy
    # The comparison has teeth: compression changes some predictions of this model.
    assert len(distinct_outcomes) > 1 and any(not np.array_equal(np.array(o), baseline) for o in distinct_outcomes)
