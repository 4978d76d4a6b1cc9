"""Evaluation: each expensive step done once, and the numbers a result reports."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pytest_clipcompress.codecs.compression import Compression
from pytest_clipcompress.config.settings import build_settings
from pytest_clipcompress.data.base import ArrayDataset
from pytest_clipcompress.engine import evaluator as evaluation
from pytest_clipcompress.engine.evaluator import Evaluator
from pytest_clipcompress.engine.result import EvalResult, softmax
from pytest_clipcompress.engine.stats import wilson_interval

from . import reference
from .helpers import TINY_CONFIG, TINY_MODEL


def toy_dataset() -> ArrayDataset:
    images = np.random.default_rng(5).integers(0, 256, size=(30, 32, 32, 3), dtype=np.uint8)
    return ArrayDataset("toy", ("cat", "dog", "ship"), images, np.arange(30) % 3, "toy-5", ("a photo of a {}.",))


def test_models_text_and_uncompressed_predictions_are_computed_once(tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    values = {"model": [TINY_MODEL], "model-config": [str(TINY_CONFIG)], "pretrained": str(tiny_checkpoint), "no-cache": True}
    evaluator = Evaluator.from_settings(build_settings(lambda option: values.get(option.name)))
    calls = {"load": 0, "text": 0, "compute": []}
    real_load, real_text, real_compute = evaluation.load_model, evaluation.class_text_features, Evaluator._compute

    def load(*args: object, **kwargs: object) -> object:
        calls["load"] += 1
        return real_load(*args, **kwargs)

    def text(*args: object, **kwargs: object) -> object:
        calls["text"] += 1
        return real_text(*args, **kwargs)

    def compute(self: Evaluator, model_name: str, dataset: ArrayDataset, indices: np.ndarray, compressions: tuple[Compression, ...]) -> object:
        calls["compute"].append("+".join(compression.id for compression in compressions))
        return real_compute(self, model_name, dataset, indices, compressions)

    monkeypatch.setattr(evaluation, "load_model", load)
    monkeypatch.setattr(evaluation, "class_text_features", text)
    monkeypatch.setattr(Evaluator, "_compute", compute)
    dataset = toy_dataset()
    for quality in (90, 50, 90, 50, 90):  # several tests asking for the same evaluations
        result = evaluator.evaluate(TINY_MODEL, dataset, Compression("jpeg", quality=quality))
    evaluator.evaluate(TINY_MODEL, dataset, Compression("none"))
    assert calls == {"load": 1, "text": 1, "compute": ["none+jpeg-q90", "jpeg-q50"]}  # the first pass shares its decodes with the uncompressed one
    assert result.checks == [] and result is not evaluator.evaluate(TINY_MODEL, dataset, Compression("jpeg", quality=90))


def test_wilson_interval_matches_published_values() -> None:
    # Values from the Wilson (1927) score interval, z = 1.96: 8/10 -> (0.490, 0.943); 0/10 -> (0, 0.278).
    low, high = wilson_interval(8, 10)
    assert round(low, 3) == 0.490 and round(high, 3) == 0.943
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and round(high, 3) == 0.278
    assert wilson_interval(0, 0) == (0.0, 1.0)


def make_result(labels: list[int], baseline: list[list[float]], compressed: list[list[float]]) -> EvalResult:
    return EvalResult(
        model="m",
        pretrained="p",
        dataset="d",
        compression=Compression("jpeg", quality=10),
        classes=("a", "b", "c"),
        indices=np.arange(len(labels)) + 100,
        labels=np.array(labels),
        logits=np.array(compressed, dtype=np.float32),
        baseline_logits=np.array(baseline, dtype=np.float32),
        bits_per_pixel=1.0,
        templates="clip",
        seed=0,
    )


def test_result_numbers_and_flips() -> None:
    labels = [0, 1, 2, 0]
    baseline = [[5, 0, 0], [0, 5, 0], [0, 0, 5], [0, 5, 0]]  # 3 of 4 right
    compressed = [[0, 1, 0], [0, 0, 9], [0, 0, 5], [5, 0, 0]]  # 0 and 1 flip; 3 recovers
    result = make_result(labels, baseline, compressed)
    assert (result.accuracy, result.baseline_accuracy, result.drop, result.n) == (0.5, 0.75, 0.25, 4)
    assert result.per_class == {"a": 0.5, "b": 0.0, "c": 1.0}
    assert result.flipped.tolist() == [1, 0]  # the more confident wrong prediction first
    assert result.worst_classes(2) == [("b", 0.0), ("a", 0.5)]
    record = result.to_record()
    assert record["flipped"] == 2 and record["ci95"] == list(wilson_interval(2, 4)) and record["compression"] == {"codec": "jpeg", "quality": 10}


def test_one_softmax_for_an_image_and_a_batch() -> None:
    logits = np.random.default_rng(3).normal(scale=30.0, size=(4, 10)).astype(np.float32)
    batch = softmax(logits.astype(np.float64))
    for row, probabilities in zip(logits, batch, strict=True):
        expected = reference.softmax([float(value) for value in row])
        assert probabilities == pytest.approx(expected, rel=1e-12, abs=1e-300)
        assert np.array_equal(softmax(row.astype(np.float64)), probabilities)  # one image = its row of the batch
