"""Properties of the compression layer, checked with the package's own Hypothesis strategies,
and the shrinking direction of those strategies."""

from __future__ import annotations

import io
import pickle
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st
from PIL import Image

from pytest_clipcompress import strategies as cs
from pytest_clipcompress.codecs.compression import Compression
from pytest_clipcompress.codecs.registry import JPEG_SUBSAMPLING, available_codecs
from pytest_clipcompress.errors import ConfigError

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FIND = settings(database=None, max_examples=200)
PILLOW_CODECS = {"jpeg": "JPEG", "webp": "WEBP", "avif": "AVIF"}


def needs(codec: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(codec not in available_codecs(), reason=f"Pillow built without {codec}")


def pillow_round_trip(image: Image.Image, pil_format: str, **kwargs: object) -> tuple[Image.Image, int]:
    buffer = io.BytesIO()
    image.save(buffer, pil_format, **kwargs)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"), len(buffer.getvalue())


# --- properties of Compression ---------------------------------------------------------------


@FAST
@given(cs.compressions(), cs.rgb_images())
def test_round_trip_keeps_size_and_mode(compression: Compression, image: Image.Image) -> None:
    decoded, nbytes = compression.apply(image)
    assert decoded.mode == "RGB"
    assert decoded.size == image.size
    assert np.asarray(decoded).shape == np.asarray(image).shape
    assert nbytes > 0 or compression.is_identity


@FAST
@given(cs.rgb_images())
def test_none_is_exact(image: Image.Image) -> None:
    decoded, nbytes = Compression("none").apply(image)
    assert nbytes == 0
    assert np.array_equal(np.asarray(decoded), np.asarray(image))


@FAST
@given(cs.jpeg(subsampling=st.none() | cs.subsamplings()), cs.rgb_images())
def test_jpeg_matches_pillow(compression: Compression, image: Image.Image) -> None:
    kwargs = {"quality": compression.param("quality")}
    if compression.param("subsampling") is not None:
        kwargs["subsampling"] = JPEG_SUBSAMPLING[compression.param("subsampling")]
    decoded, nbytes = compression.apply(image)
    expected, expected_nbytes = pillow_round_trip(image, "JPEG", **kwargs)
    assert nbytes == expected_nbytes
    assert np.array_equal(np.asarray(decoded), np.asarray(expected))


def test_jpeg_matches_pillow_on_every_cifar_sample_image(cifar_sample_root: Path) -> None:
    # apply() calls Pillow's JPEG decoder without the file parser: the same pixels as Image.open, image by image.
    with open(cifar_sample_root / "cifar-10-batches-py" / "test_batch", "rb") as handle:
        data = pickle.load(handle, encoding="bytes")[b"data"]
    images = [Image.fromarray(np.ascontiguousarray(row.reshape(3, 32, 32).transpose(1, 2, 0))) for row in data]
    for quality in (1, 25, 75, 100):
        for subsampling in (None, *JPEG_SUBSAMPLING):
            compression = Compression("jpeg", quality=quality, subsampling=subsampling)
            kwargs = {"quality": quality} if subsampling is None else {"quality": quality, "subsampling": JPEG_SUBSAMPLING[subsampling]}
            for image in images:
                decoded, nbytes = compression.apply(image)
                expected, expected_nbytes = pillow_round_trip(image, "JPEG", **kwargs)
                assert nbytes == expected_nbytes and np.array_equal(np.asarray(decoded), np.asarray(expected)), (compression.id, nbytes)


@pytest.mark.parametrize("codec", [pytest.param(c, marks=needs(c)) for c in ("webp", "avif")])
def test_webp_and_avif_match_pillow(codec: str) -> None:
    # The strategies are built inside the test so a Pillow without the codec skips, not errors.
    @FAST
    @given(getattr(cs, codec)(), cs.rgb_images(max_side=32))
    def check(compression: Compression, image: Image.Image) -> None:
        decoded, nbytes = compression.apply(image)
        expected, expected_nbytes = pillow_round_trip(image, PILLOW_CODECS[codec], quality=compression.param("quality"))
        assert nbytes == expected_nbytes
        assert np.array_equal(np.asarray(decoded), np.asarray(expected))

    check()


@FAST
@given(cs.compressions(), cs.rgb_images())
def test_bits_per_pixel_match_encoded_size(compression: Compression, image: Image.Image) -> None:
    pixels = image.width * image.height
    _, nbytes = compression.apply(image)
    assert 8 * len(compression.encode(image)) / pixels == 8 * nbytes / pixels


def natural_batch() -> list[Image.Image]:
    """Eight 32x32 'photo-like' images: smooth colour gradients and waves plus mild sensor noise."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:32, 0:32] / 31
    images = []
    for i in range(8):
        a, b, c = rng.uniform(-1, 1, (3, 3, 1, 1))
        smooth = 128 + 60 * (a * x + b * y + c * np.sin(3 * x * y + i))
        noisy = smooth.transpose(1, 2, 0) + rng.normal(0, 4, (32, 32, 3))
        images.append(Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)))
    return images


def psnr(reference: Image.Image, decoded: Image.Image) -> float:
    mse = np.mean((np.asarray(reference, dtype=np.float64) - np.asarray(decoded, dtype=np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


@cache
def mean_jpeg_psnr(quality: int) -> float:
    compression = Compression("jpeg", quality=quality)
    return float(np.mean([psnr(image, compression.apply(image)[0]) for image in natural_batch()]))


def test_mean_psnr_falls_with_jpeg_quality() -> None:
    # PSNR is not monotone quality-by-quality (quantisation tables round; over 20 random batches
    # like this one, inversions span at most 6 quality steps), but the batch mean is monotone at
    # a 10-step gap. Checked for every such pair, not a sample.
    gap = 10
    for high in range(1 + gap, 101):
        for low in range(1, high - gap + 1):
            assert mean_jpeg_psnr(high) >= mean_jpeg_psnr(low), (high, low)
    assert mean_jpeg_psnr(100) - mean_jpeg_psnr(1) > 10


# --- shrinking direction ---------------------------------------------------------------------


def test_qualities_shrink_to_the_mildest_failing_quality() -> None:
    assert find(cs.jpeg(), lambda c: c.param("quality") <= 40, settings=FIND) == Compression("jpeg", quality=40)
    assert find(cs.qualities(10, 20), lambda q: True, settings=FIND) == 20


def test_subsampling_shrinks_to_the_mildest_failing_mode() -> None:
    strategy = cs.jpeg(subsampling=cs.subsamplings())
    assert find(strategy, lambda c: True, settings=FIND) == Compression("jpeg", quality=100, subsampling="4:4:4")
    found = find(strategy, lambda c: c.param("subsampling") != "4:4:4", settings=FIND)
    assert found == Compression("jpeg", quality=100, subsampling="4:2:2")


@needs("jpeg2000")
def test_jpeg2000_rate_shrinks_to_the_lowest_failing_ratio() -> None:
    assert find(cs.jpeg2000(), lambda c: c.param("rate") >= 40, settings=FIND) == Compression("jpeg2000", rate=40)
    assert find(cs.jpeg2000(cs.rates(5, 50)), lambda c: True, settings=FIND).param("rate") == 5.0


@pytest.mark.parametrize("codec", [pytest.param(c, marks=needs(c)) for c in ("webp", "avif")])
def test_webp_and_avif_shrink_to_the_mildest_failing_quality(codec: str) -> None:
    found = find(getattr(cs, codec)(), lambda c: c.param("quality") < 75, settings=FIND)
    assert found == Compression(codec, quality=74)


def test_compressions_shrink_to_the_first_codec() -> None:
    assert find(cs.compressions(), lambda c: True, settings=FIND) == Compression("none")
    found = find(cs.compressions(["jpeg", "none"]), lambda c: not c.is_identity, settings=FIND)
    assert found == Compression("jpeg", quality=100)


def test_images_shrink_to_a_small_flat_image() -> None:
    image = find(cs.rgb_images(min_side=3), lambda im: True, settings=FIND)
    assert image.size == (3, 3)
    assert len(np.unique(np.asarray(image).reshape(-1, 3), axis=0)) == 1


@FAST
@given(cs.rgb_images(min_side=2, max_side=5))
def test_images_respect_side_bounds(image: Image.Image) -> None:
    assert image.mode == "RGB"
    assert 2 <= image.width <= 5 and 2 <= image.height <= 5


def test_bad_arguments_raise_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown codec"):
        cs.compressions(["gif"])
    with pytest.raises(ConfigError, match="min_value"):
        cs.qualities(50, 10)
    with pytest.raises(ConfigError, match="min_side"):
        cs.rgb_images(min_side=0)
