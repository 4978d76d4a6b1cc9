"""The offline demo: dataset determinism, the bundled weights, and their accuracy targets.

The accuracy is computed here from scratch (PIL -> optional Pillow JPEG round
trip -> open_clip preprocess -> encode), independently of the plugin's code,
so these tests pin what the shipped model actually does.
"""

from __future__ import annotations

import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch

from pytest_clipcompress.demo import (
    DEMO_CLASSES,
    DEMO_IMAGE_SIZE,
    DEMO_MODEL_CONFIG,
    DEMO_MODEL_NAME,
    DEMO_SEED,
    DEMO_TEMPLATES,
    DEMO_TEST_PER_CLASS,
    DEMO_WEIGHTS,
)
from pytest_clipcompress.demo.images import generate_demo_images

from .reference import zero_shot_predictions

REPO_ROOT = Path(__file__).resolve().parents[1]
QUALITIES = (100, 75, 50, 25)


# --- dataset ---------------------------------------------------------------


def test_shapes_and_dtypes() -> None:
    images, labels = generate_demo_images("test", 3, seed=5)
    n = 3 * len(DEMO_CLASSES)
    assert images.shape == (n, DEMO_IMAGE_SIZE, DEMO_IMAGE_SIZE, 3)
    assert images.dtype == np.uint8
    assert labels.shape == (n,)
    assert labels.dtype == np.int64
    assert np.array_equal(np.bincount(labels), np.full(len(DEMO_CLASSES), 3))


def test_same_arguments_give_identical_arrays() -> None:
    first = generate_demo_images("train", 4, seed=7)
    second = generate_demo_images("train", 4, seed=7)
    assert first[0].tobytes() == second[0].tobytes()
    assert np.array_equal(first[1], second[1])


def test_splits_and_seeds_differ() -> None:
    train, _ = generate_demo_images("train", 4, seed=0)
    test, _ = generate_demo_images("test", 4, seed=0)
    other_seed, _ = generate_demo_images("train", 4, seed=1)
    assert not np.array_equal(train, test)
    assert not np.array_equal(train, other_seed)


def test_images_vary_within_a_class() -> None:
    images, labels = generate_demo_images("test", 5)
    same_class = images[labels == 0]
    assert len({img.tobytes() for img in same_class}) == len(same_class)


@pytest.mark.parametrize(("split", "n_per_class"), [("val", 1), ("", 1), ("train", 0), ("test", -3), ("train", 2.5)])
def test_bad_arguments_raise(split: str, n_per_class: int) -> None:
    with pytest.raises(ValueError, match=r"split must be one of|n_per_class must be"):
        generate_demo_images(split, n_per_class)


def test_class_names_and_templates_read_as_prompts() -> None:
    assert len(DEMO_CLASSES) == 10 and len(set(DEMO_CLASSES)) == 10
    assert all(t.count("{}") == 1 for t in DEMO_TEMPLATES)


# --- bundled model ---------------------------------------------------------


@pytest.fixture(scope="module")
def demo_model() -> tuple[torch.nn.Module, object, object]:
    """The shipped weights, loaded exactly as a user would load any local checkpoint."""
    open_clip.add_model_config(DEMO_MODEL_CONFIG)
    model, _, preprocess = open_clip.create_model_and_transforms(DEMO_MODEL_NAME, pretrained=str(DEMO_WEIGHTS))
    model.eval()
    return model, preprocess, open_clip.get_tokenizer(DEMO_MODEL_NAME)


def test_weights_load_strictly_and_are_small(demo_model: tuple[torch.nn.Module, object, object]) -> None:
    model, _, _ = demo_model
    state = torch.load(DEMO_WEIGHTS, map_location="cpu", weights_only=True)
    assert state.keys() == model.state_dict().keys()
    assert DEMO_WEIGHTS.stat().st_size < 10 * 2**20
    assert open_clip.get_model_preprocess_cfg(model)["size"] in (DEMO_IMAGE_SIZE, (DEMO_IMAGE_SIZE,) * 2)


def _accuracy(model: torch.nn.Module, preprocess: object, tokenizer: object, quality: int | None) -> float:
    images, labels = generate_demo_images("test", DEMO_TEST_PER_CLASS, seed=DEMO_SEED)
    return float((zero_shot_predictions(model, preprocess, tokenizer, images, DEMO_CLASSES, DEMO_TEMPLATES, quality) == labels).mean())


@pytest.fixture(scope="module")
def accuracies(demo_model: tuple[torch.nn.Module, object, object]) -> dict[int | None, float]:
    torch.set_num_threads(min(2, torch.get_num_threads()))
    result = {q: _accuracy(*demo_model, q) for q in (None, *QUALITIES)}
    print("demo zero-shot accuracy:", {("none" if q is None else f"jpeg{q}"): a for q, a in result.items()})
    return result


def test_uncompressed_accuracy_is_high(accuracies: dict[int | None, float]) -> None:
    assert accuracies[None] >= 0.90


def test_harsh_jpeg_clearly_hurts(accuracies: dict[int | None, float]) -> None:
    assert accuracies[25] <= accuracies[None] - 0.15


def test_accuracy_falls_with_quality(accuracies: dict[int | None, float]) -> None:
    # Small wiggles between neighbouring qualities are tolerated; the trend is not.
    ordered = [accuracies[None], *(accuracies[q] for q in QUALITIES)]
    assert all(later <= earlier + 0.02 for earlier, later in pairwise(ordered))


# --- training reproduces the shipped weights -------------------------------


@pytest.mark.slow
def test_training_script_reproduces_shipped_accuracy(tmp_path: Path, accuracies: dict[int | None, float]) -> None:
    output = tmp_path / "retrained.pt"
    subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "train_demo_model.py"), "--output", str(output)],
        check=True,
        cwd=REPO_ROOT,
        timeout=1800,
    )
    model, _, preprocess = open_clip.create_model_and_transforms(DEMO_MODEL_NAME, pretrained=str(output))
    model.eval()
    tokenizer = open_clip.get_tokenizer(DEMO_MODEL_NAME)
    for quality in (None, 25):
        assert abs(_accuracy(model, preprocess, tokenizer, quality) - accuracies[quality]) <= 0.02
