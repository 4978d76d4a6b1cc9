"""The model's Pillow preprocessing on batched tensors: equal, bit for bit, to the transform applied image by image."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import pytest
import torch
from open_clip.transform import CenterCropOrPad, MaybeConvertMode, MaybeToTensor, ResizeKeepRatio
from PIL import Image
from torchvision import transforms
from torchvision.transforms import InterpolationMode

from pytest_clipcompress.engine.device_transform import Method, pillow_resize, pillow_vertical_first, plan_device_transform

Resampling = Image.Resampling
pytestmark = pytest.mark.usefixtures("one_torch_thread")  # many small torch operations

FILTERS = [Resampling.NEAREST, Resampling.BOX, Resampling.BILINEAR, Resampling.HAMMING, Resampling.BICUBIC, Resampling.LANCZOS]
METHODS: list[Method] = ["banded", "dense"]
MEAN, STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


def per_image(preprocess: Callable[[Image.Image], torch.Tensor], arrays: np.ndarray) -> torch.Tensor:
    return torch.stack([preprocess(Image.fromarray(array, "RGB")) for array in arrays])


def mismatch(expected: torch.Tensor, actual: torch.Tensor) -> str:
    if expected.shape != actual.shape or expected.dtype != actual.dtype:
        return f"{tuple(actual.shape)} {actual.dtype} instead of {tuple(expected.shape)} {expected.dtype}"
    return f"{int((expected != actual).sum())} values differ, by up to {float((expected - actual).abs().max())}"


def assert_bit_exact(preprocess: Any, arrays: np.ndarray, methods: list[Method]) -> None:
    expected = per_image(preprocess, arrays)
    for method in methods:
        plan = plan_device_transform(preprocess, method)
        assert plan is not None
        actual = plan(torch.from_numpy(arrays))
        assert torch.equal(actual, expected), f"{method}: {mismatch(expected, actual)}"
        assert plan.output_size(*arrays.shape[1:3]) == tuple(expected.shape[-2:])


def noise(count: int, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, size=(count, height, width, 3), dtype=np.uint8)


def random_side(rng: np.random.Generator, largest: int = 1000) -> int:
    """1 to ``largest`` pixels, log-uniform: every scale is tried, and most images stay small enough to be quick."""
    return int(np.exp(rng.uniform(0, np.log(largest + 1))))


@pytest.fixture(scope="module")
def cifar_images(cifar_sample_root: Path) -> np.ndarray:
    with (cifar_sample_root / "cifar-10-batches-py" / "test_batch").open("rb") as handle:
        batch = pickle.load(handle, encoding="bytes")
    return np.ascontiguousarray(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))


@pytest.fixture(scope="module")
def folder_images(image_folder_sample: Path) -> np.ndarray:
    def decoded(path: Path) -> np.ndarray:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))

    return np.stack([decoded(path) for path in sorted(image_folder_sample.glob("*/*.jpg"))])


# -- the raw resample against Image.resize ---------------------------------------------------------------------------------


def random_resizes(seed: int, count: int) -> list[tuple[int, int, int, int]]:
    """(source height, width, output height, width): log-uniform sizes, extremes, and the edge of Pillow 13's pass order."""
    rng = np.random.default_rng(seed)
    cases = [(1, 1, 1, 1), (1, 1, 300, 200), (1000, 1000, 1, 1), (1, 1000, 1000, 1), (1000, 1, 1, 1000), (2, 3, 997, 5), (999, 998, 3, 2), (7, 7, 7, 7)]
    while len(cases) < count:
        if len(cases) % 3:
            cases.append((random_side(rng), random_side(rng), random_side(rng), random_side(rng)))
        else:  # where the height loses 2x the width's loss, give or take a pixel: the two pass orders round differently there
            source_height, source_width = random_side(rng, 400), random_side(rng, 400)
            width = int(rng.integers(max(1, source_width // 2), source_width + 20))
            height = source_height - 2 * (source_width - width) + int(rng.integers(-1, 2))
            if height >= 1:
                cases.append((source_height, source_width, height, width))
    return cases


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("resample", FILTERS, ids=lambda resample: resample.name)
def test_resample_equals_pillow_resize(resample: Resampling, method: Method) -> None:
    rng = np.random.default_rng(int(resample))
    failures = []
    for source_height, source_width, height, width in random_resizes(int(resample), 100):
        arrays = noise(2, source_height, source_width, rng)
        expected = np.stack([np.asarray(Image.fromarray(array, "RGB").resize((width, height), resample)) for array in arrays])
        actual = pillow_resize(torch.from_numpy(arrays), (height, width), resample, method).numpy()
        if not np.array_equal(actual, expected):
            failures.append((source_height, source_width, height, width))
    assert not failures, f"{resample.name} {method} differs from Pillow for (source h, w, h, w) in {failures}"


def test_the_installed_pillows_pass_order_is_known() -> None:
    # plan_device_transform gives None on a Pillow whose order is unknown: the suite would then test nothing
    assert pillow_vertical_first() is not None


# -- the real samples, through open_clip's eval transforms -----------------------------------------------------------------


@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear"])
@pytest.mark.parametrize("resize_mode", ["shortest", "squash", "longest"])
@pytest.mark.parametrize("size", [224, 32, 96, 336, 17])
def test_every_cifar_sample_image(cifar_images: np.ndarray, size: int, resize_mode: str, interpolation: str) -> None:
    preprocess = open_clip.image_transform(size, is_train=False, resize_mode=resize_mode, interpolation=interpolation, fill_color=0)
    assert_bit_exact(preprocess, cifar_images, ["banded"])


@pytest.mark.parametrize(
    ("size", "resize_mode", "interpolation", "fill_color", "mean", "std"),
    [
        pytest.param(224, "shortest", "bicubic", 0, MEAN, STD, id="224-shortest-bicubic"),
        pytest.param(96, "squash", "bilinear", 0, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), id="96-squash-bilinear"),
        pytest.param(224, "longest", "bicubic", 255, MEAN, STD, id="224-longest-bicubic-white"),
        pytest.param(17, "longest", "bilinear", 128, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), id="17-longest-bilinear-grey"),
    ],
)
def test_every_image_folder_sample_image(
    folder_images: np.ndarray, size: int, resize_mode: str, interpolation: str, fill_color: int, mean: tuple[float, ...], std: tuple[float, ...]
) -> None:
    preprocess = open_clip.image_transform(
        size, is_train=False, mean=mean, std=std, resize_mode=resize_mode, interpolation=interpolation, fill_color=fill_color
    )
    assert_bit_exact(preprocess, folder_images, ["banded"])


def test_dense_products_on_the_real_samples(cifar_images: np.ndarray, folder_images: np.ndarray) -> None:
    # the CUDA default, run here on the CPU: the same float64 arithmetic
    for resize_mode in ("shortest", "longest"):
        preprocess = open_clip.image_transform(224, is_train=False, resize_mode=resize_mode, fill_color=64)
        assert_bit_exact(preprocess, np.concatenate([cifar_images[:40], folder_images[:40]]), ["dense"])


# -- thousands of random sizes ----------------------------------------------------------------------------------------------


def model_transforms() -> list[Any]:
    """open_clip's eval transforms in every resize mode and interpolation, and torchvision compositions like them."""
    made: list[Any] = [
        open_clip.image_transform(size, is_train=False, resize_mode=mode, interpolation=interpolation, fill_color=fill)
        for size, mode, interpolation, fill in [
            (224, "shortest", "bicubic", 0),
            (224, "squash", "bicubic", 0),
            (224, "longest", "bicubic", 0),
            (64, "shortest", "bilinear", 0),
            (48, "squash", "bilinear", 0),
            (40, "longest", "bilinear", 200),
            ((30, 50), "shortest", "bicubic", 0),
            ((50, 30), "longest", "bicubic", 9),
        ]
    ]
    for interpolation in InterpolationMode:
        made.append(transforms.Compose([transforms.Resize(40, interpolation=interpolation), transforms.CenterCrop(40), transforms.ToTensor()]))
        made.append(transforms.Compose([transforms.Resize((33, 45), interpolation=interpolation), transforms.ToTensor(), transforms.Normalize(MEAN, STD)]))
    made.append(transforms.Compose([transforms.Resize(50, max_size=70), transforms.CenterCrop((60, 40)), transforms.ToTensor()]))
    return made


@pytest.mark.parametrize("chunk", range(4))
def test_random_sizes_through_model_transforms(chunk: int) -> None:
    rng = np.random.default_rng(100 + chunk)
    preprocesses = model_transforms()
    plans = [plan_device_transform(preprocess) for preprocess in preprocesses]
    failures = []
    for case in range(500):
        index = case % len(preprocesses)
        preprocess, plan = preprocesses[index], plans[index]
        assert plan is not None
        arrays = noise(2, random_side(rng), random_side(rng), rng)
        try:
            expected = per_image(preprocess, arrays)
        except ValueError:  # Pillow refuses a side rounded to 0 pixels (e.g. 1000x1 into 'longest'): so must the plan
            with pytest.raises(ValueError, match="> 0"):
                plan(torch.from_numpy(arrays))
            continue
        actual = plan(torch.from_numpy(arrays))
        if not torch.equal(actual, expected):
            failures.append((index, arrays.shape[1:3], mismatch(expected, actual)))
    assert not failures, f"(transform, source size, difference): {failures}"


# -- the geometry of each step ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    "preprocess",
    [
        pytest.param(transforms.Compose([transforms.Resize(20), transforms.CenterCrop((41, 30)), transforms.ToTensor()]), id="crop larger than the image"),
        pytest.param(transforms.Compose([CenterCropOrPad((60, 20), fill=(255, 0, 128)), MaybeToTensor()]), id="pad with a fill per channel"),
        pytest.param(transforms.Compose([transforms.CenterCrop(24), transforms.Resize(50), transforms.ToTensor()]), id="crop then resize"),
        pytest.param(
            transforms.Compose([transforms.Resize(64), transforms.Resize((30, 50), interpolation=InterpolationMode.LANCZOS), transforms.ToTensor()]),
            id="two resizes",
        ),
        pytest.param(
            transforms.Compose([ResizeKeepRatio((40, 30), longest=0.3), CenterCropOrPad(35, fill=3.7), MaybeConvertMode(), MaybeToTensor()]),
            id="keep ratio between shortest and longest",
        ),
        pytest.param(
            transforms.Compose([transforms.Compose([transforms.Resize(30, interpolation=Resampling.HAMMING)]), transforms.ToTensor()]),
            id="nested compose, Pillow constant",
        ),
    ],
)
def test_compositions(preprocess: Any, method: Method) -> None:
    rng = np.random.default_rng(5)
    for height, width in [(32, 32), (17, 90), (120, 45), (1, 3), (200, 200)]:
        assert_bit_exact(preprocess, noise(3, height, width, rng), [method])


def test_default_float_dtype_is_followed() -> None:
    # ToTensor converts to torch's default float dtype, whatever it is when called
    preprocess = open_clip.image_transform(40, is_train=False)
    arrays = noise(2, 50, 70, np.random.default_rng(0))
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        assert_bit_exact(preprocess, arrays, METHODS)
    finally:
        torch.set_default_dtype(previous)


def test_out_receives_the_batch() -> None:
    preprocess = open_clip.image_transform(24, is_train=False)
    plan = plan_device_transform(preprocess)
    assert plan is not None
    arrays = noise(5, 30, 20, np.random.default_rng(1))
    out = torch.empty(5, 3, 24, 24)
    assert plan(torch.from_numpy(arrays), out=out) is out
    assert torch.equal(out, per_image(preprocess, arrays))
    with pytest.raises(ValueError, match="out must be"):
        plan(torch.from_numpy(arrays), out=torch.empty(5, 3, 24, 23))


def test_sizes_beyond_the_cache_are_planned_again() -> None:
    preprocess = open_clip.image_transform(24, is_train=False)
    plan = plan_device_transform(preprocess)
    assert plan is not None
    plan.cached_sizes = 2
    rng = np.random.default_rng(3)
    for height, width in [(30, 20), (20, 30), (40, 40), (30, 20), (40, 40)]:
        arrays = noise(2, height, width, rng)
        assert torch.equal(plan(torch.from_numpy(arrays)), per_image(preprocess, arrays))


def test_bad_arguments_are_refused() -> None:
    plan = plan_device_transform(open_clip.image_transform(24, is_train=False))
    assert plan is not None
    with pytest.raises(ValueError, match="uint8 RGB"):
        plan(torch.zeros(2, 30, 30, 4, dtype=torch.uint8))
    with pytest.raises(ValueError, match="uint8 RGB"):
        plan(torch.zeros(2, 30, 30, 3))
    with pytest.raises(ValueError, match="unsupported Pillow filter"):
        pillow_resize(torch.zeros(2, 30, 30, 3, dtype=torch.uint8), (20, 20), 99)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("method", ["auto", "banded", "dense"])
def test_cuda_equals_pillow(method: Method) -> None:
    rng = np.random.default_rng(2)
    for preprocess in model_transforms():
        plan = plan_device_transform(preprocess, method)
        assert plan is not None
        for height, width in [(32, 32), (375, 500), (7, 300)]:
            arrays = noise(4, height, width, rng)
            actual = plan(torch.from_numpy(arrays).cuda())
            assert actual.is_cuda
            expected = per_image(preprocess, arrays)
            assert torch.equal(actual.cpu(), expected), mismatch(expected, actual.cpu())


# -- what the plan does not take ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "preprocess",
    [
        pytest.param(transforms.Compose([transforms.Lambda(lambda image: image), transforms.ToTensor()]), id="Lambda"),
        pytest.param(transforms.Compose([transforms.Resize(32), transforms.ColorJitter(0.4), transforms.ToTensor()]), id="ColorJitter"),
        pytest.param(open_clip.image_transform(32, is_train=True), id="train transform"),
        pytest.param(transforms.Compose([transforms.Grayscale(3), transforms.ToTensor()]), id="Grayscale"),
        pytest.param(transforms.Compose([MaybeConvertMode("L"), transforms.ToTensor()]), id="convert to L"),
        pytest.param(transforms.Compose([ResizeKeepRatio(32, random_scale_prob=0.5), transforms.ToTensor()]), id="random scale"),
        pytest.param(transforms.Compose([transforms.Resize((32, 32), max_size=40), transforms.ToTensor()]), id="max_size with (h, w)"),
        pytest.param(transforms.Compose([transforms.Resize(32, max_size=32), transforms.ToTensor()]), id="max_size not above size"),
        pytest.param(transforms.Compose([type("MyResize", (transforms.Resize,), {})(32), transforms.ToTensor()]), id="Resize subclass"),
        pytest.param(transforms.Compose([CenterCropOrPad(32, fill="red"), transforms.ToTensor()]), id="fill torchvision refuses"),
        pytest.param(transforms.Compose([transforms.Resize(32)]), id="no ToTensor"),
        pytest.param(transforms.Compose([transforms.ToTensor(), transforms.Normalize(MEAN, (0.2, 0.0, 0.2))]), id="zero std"),
        pytest.param(transforms.Compose([transforms.ToTensor(), transforms.Normalize("mean", STD)]), id="mean torch cannot read"),
        pytest.param(transforms.Compose([transforms.ToTensor(), transforms.Normalize(MEAN, STD), transforms.Normalize(MEAN, STD)]), id="two Normalize"),
        pytest.param(transforms.Compose([transforms.ToTensor(), transforms.ConvertImageDtype(torch.float16)]), id="after ToTensor"),
        pytest.param(transforms.Resize(32), id="not a Compose"),
    ],
)
def test_anything_not_reproduced_exactly_gives_none(preprocess: Any) -> None:
    assert plan_device_transform(preprocess) is None
