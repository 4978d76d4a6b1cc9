"""Batched preprocessing: ``exact`` is bit-identical to the model's own transform; ``fast`` agrees closely."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pytest_clipcompress.codecs.compression import Compression
from pytest_clipcompress.config.settings import build_settings
from pytest_clipcompress.data.base import ArrayDataset
from pytest_clipcompress.engine.evaluator import Evaluator
from pytest_clipcompress.engine.preprocess import batch_preprocess, check_fast_supported
from pytest_clipcompress.errors import ConfigError

from .conftest import TINY_CONFIG, TINY_MODEL


def open_clip_transform(size: int) -> object:
    """open_clip's own eval transform (Resize, CenterCrop, MaybeConvertMode, MaybeToTensor, Normalize)."""
    import open_clip

    return open_clip.image_transform(size, is_train=False)


def images(shape: tuple[int, int], count: int = 6, seed: int = 0, smooth: bool = False) -> list[Image.Image]:
    """Decoded JPEGs, as the pipeline feeds them: noise, or smooth like photographs (noise upscaled)."""
    rng = np.random.default_rng(seed)
    jpeg = Compression("jpeg", quality=60)
    made = []
    for _ in range(count):
        noise = Image.fromarray(rng.integers(0, 256, size=(8, 8, 3) if smooth else (*shape, 3), dtype=np.uint8))
        made.append(jpeg.apply(noise.resize(shape[::-1], Image.BILINEAR) if smooth else noise)[0])
    return made


@pytest.mark.parametrize(("size", "shape"), [(32, (32, 32)), (224, (32, 32)), (224, (40, 65)), (64, (300, 200))], ids=str)
def test_exact_batches_are_bit_identical_to_the_models_own_transform(size: int, shape: tuple[int, int]) -> None:
    import torch

    transform = open_clip_transform(size)
    plan = batch_preprocess(transform)
    assert plan is not None
    batch = images(shape)
    expected = torch.stack([transform(image) for image in batch])
    stacked = torch.from_numpy(np.stack([plan.pil_array(image) for image in batch])).permute(0, 3, 1, 2)
    actual = torch.from_numpy(plan.normalise_arrays([plan.pil_array(image) for image in batch]))
    assert torch.equal(plan.normalise(stacked), expected)  # the torch arithmetic of the fast path, too
    assert actual.dtype == expected.dtype and actual.is_contiguous()
    assert torch.equal(actual, expected)


def test_images_already_at_the_models_size_skip_the_pillow_steps() -> None:
    """A 32 px image into a 32 px model goes straight to the conversion to floats (no copy per Pillow step), with the same pixels."""
    from torchvision import transforms

    plan = batch_preprocess(open_clip_transform(32))
    assert plan is not None and plan.unchanged_size == (32, 32)
    at_size, other = images((32, 32))[0], images((40, 65))[0]
    assert np.array_equal(plan.pil_array(at_size), np.asarray(at_size))
    assert plan.pil_array(other).shape == (32, 32, 3)
    # A step the shortcut does not know (a flip changes pixels at any size): no shortcut.
    flipping = transforms.Compose([transforms.RandomHorizontalFlip(p=1.0), *open_clip_transform(32).transforms])
    flipped = batch_preprocess(flipping)
    assert flipped is not None and flipped.unchanged_size is None
    assert np.array_equal(flipped.pil_array(at_size), np.asarray(at_size)[:, ::-1])


def test_fast_batches_agree_with_pillow_and_equal_it_without_a_resize() -> None:
    import torch

    for size, shape, identical in ((32, (32, 32), True), (224, (32, 32), False)):
        transform = open_clip_transform(size)
        plan = batch_preprocess(transform)
        batch = images(shape, seed=size, smooth=True)
        expected = torch.stack([transform(image) for image in batch])
        actual = plan.fast([np.asarray(image) for image in batch], "cpu")
        assert actual.shape == expected.shape
        # In uint8 levels: torch's antialiased bicubic rounds differently from Pillow's fixed point
        # (and does not clip between its two passes), by up to 2 levels on photograph-like images.
        levels = float(((actual - expected) * torch.tensor(plan.std).view(1, 3, 1, 1) * 255).abs().max())
        assert (levels == 0.0) if identical else (0.0 < levels <= 2.01), levels


def test_mixed_sizes_go_through_the_fast_path_one_by_one() -> None:
    plan = batch_preprocess(open_clip_transform(48))
    arrays = [np.asarray(image) for image in images((30, 50), 2) + images((64, 64), 2)]
    assert tuple(plan.fast(arrays, "cpu").shape) == (4, 3, 48, 48)


def test_unsplittable_or_unknown_pipelines() -> None:
    from torchvision import transforms

    assert batch_preprocess(transforms.Compose([transforms.ToTensor()])) is None  # no Normalize: applied per image
    odd = transforms.Compose([transforms.Grayscale(3), transforms.ToTensor(), transforms.Normalize((0.5,) * 3, (0.5,) * 3)])
    plan = batch_preprocess(odd)
    assert plan is not None  # exact handles any Pillow steps: they are the model's own objects
    with pytest.raises(ConfigError, match=r"Grayscale.*--clip-preprocess exact"):
        check_fast_supported(plan, "odd/none")
    with pytest.raises(ConfigError, match="does not end in ToTensor"):
        check_fast_supported(None, "odd/none")


def test_a_normalisation_with_other_arithmetic_is_applied_per_image() -> None:
    """The batch arithmetic is checked against the model's own objects on every uint8 value at plan time."""
    import torch
    from torchvision import transforms

    class ReciprocalNormalize(transforms.Normalize):  # multiplies by 1/std: differs in the last bit for some values
        def forward(self, tensor: torch.Tensor) -> torch.Tensor:
            mean = torch.tensor(self.mean).view(-1, 1, 1)
            return (tensor - mean) * (1 / torch.tensor(self.std).view(-1, 1, 1))

    mean, std = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
    assert batch_preprocess(transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean, std)])) is not None
    assert batch_preprocess(transforms.Compose([transforms.ToTensor(), ReciprocalNormalize(mean, std)])) is None


def test_preprocess_option_is_validated() -> None:
    assert build_settings(lambda option: None).evaluation.preprocess == "exact"
    assert build_settings(lambda option: "fast" if option.name == "preprocess" else None).evaluation.preprocess == "fast"
    with pytest.raises(ConfigError, match=r"--clip-preprocess 'quick'.*exact"):
        build_settings(lambda option: "quick" if option.name == "preprocess" else None)


def tiny_evaluator(checkpoint: Path, mode: str, **extra: object) -> Evaluator:
    values = {"model": [TINY_MODEL], "model-config": [str(TINY_CONFIG)], "pretrained": str(checkpoint), "preprocess": mode, "workers": "1", **extra}
    return Evaluator.from_settings(build_settings(lambda option: values.get(option.name)))


def test_fast_path_is_part_of_the_cache_key_and_exact_keeps_the_old_key(tiny_checkpoint: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    dataset = ArrayDataset("toy", ("a", "b"), rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8), np.arange(8) % 2, "toy-3", ("{}",))
    indices = np.arange(8)
    keys = {}
    for mode in ("exact", "fast"):
        evaluator = tiny_evaluator(tiny_checkpoint, mode, **{"cache-dir": str(tmp_path)})
        keys[mode] = evaluator._cache_key(TINY_MODEL, dataset, indices, Compression("jpeg", quality=50))
    assert "preprocess_path" not in keys["exact"] and keys["fast"].pop("preprocess_path") == "fast"
    assert keys["fast"] == keys["exact"]


def test_fast_evaluation_agrees_with_exact(tiny_checkpoint: Path, cifar_sample_root: Path) -> None:
    """The tiny model's input is 32 px like CIFAR-10: no resize, so fast must equal exact to the bit."""
    from pytest_clipcompress.data.cifar10 import load_cifar10

    dataset = load_cifar10(cifar_sample_root, offline=True)
    for quality in (75, 25):
        exact = tiny_evaluator(tiny_checkpoint, "exact", **{"no-cache": True}).evaluate(TINY_MODEL, dataset, Compression("jpeg", quality=quality))
        fast = tiny_evaluator(tiny_checkpoint, "fast", **{"no-cache": True}).evaluate(TINY_MODEL, dataset, Compression("jpeg", quality=quality))
        assert np.array_equal(exact.logits, fast.logits) and np.array_equal(exact.baseline_logits, fast.baseline_logits)


def test_fast_option_in_a_pytest_run(pytester: pytest.Pytester, tiny_args: list[str], cifar_sample_root: Path) -> None:
    pytester.makepyfile(
        """
        import pytest
        from pytest_clipcompress import assert_accuracy

        @pytest.mark.clip_dataset("cifar10")
        @pytest.mark.compression("jpeg", quality=[50])
        def test_jpeg(clip_eval):
            assert_accuracy(clip_eval(), min_accuracy=0.0)
        """
    )
    accuracies = {}
    for mode in ("exact", "fast"):
        results = pytester.path / f"{mode}.json"
        outcome = pytester.runpytest(
            *tiny_args,
            f"--clip-data-root={cifar_sample_root}",
            "--clip-offline",
            "--clip-samples=60",
            f"--clip-preprocess={mode}",
            f"--clip-results={results}",
            "-p",
            "no:cacheprovider",
        )
        outcome.assert_outcomes(passed=1)
        accuracies[mode] = [(r["accuracy"], r["baseline_accuracy"]) for r in json.loads(results.read_text())["evaluations"]]
    assert accuracies["fast"] == accuracies["exact"] and len(accuracies["exact"]) == 1
    outcome = pytester.runpytest(*tiny_args, f"--clip-data-root={cifar_sample_root}", "--clip-preprocess=quick", "-p", "no:cacheprovider")
    assert outcome.ret == pytest.ExitCode.USAGE_ERROR
    outcome.stderr.fnmatch_lines(["*--clip-preprocess 'quick'*exact*"])
