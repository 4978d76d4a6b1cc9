"""Hypothesis strategies for codec settings and small test images.

Every compression strategy shrinks toward the *mildest* setting: when a property fails,
Hypothesis reports the gentlest compression that still breaks it, which is the most useful
counterexample (a failure at JPEG quality 90 says far more than one at quality 1).

Hypothesis shrinks bounded integers toward their lower bound (more exactly: toward 0, clamped
into the range) and ``sampled_from`` toward its first element. So "mild = high" parameters such as
quality are drawn as a distance ``d`` below the top of the range, and "mild = low" parameters such
as the JPEG 2000 compression ratio are drawn directly.

Example::

    from hypothesis import given
    from pytest_clipcompress import strategies as cs

    @given(cs.jpeg(subsampling=cs.subsamplings()), cs.rgb_images())
    def test_size_kept(compression, image):
        assert compression.apply(image)[0].size == image.size
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from hypothesis import strategies as st
from PIL import Image

from .compression import CODECS, JPEG_SUBSAMPLING, Compression, available_codecs
from .errors import ConfigError

__all__ = [
    "avif",
    "compressions",
    "jpeg",
    "jpeg2000",
    "qualities",
    "rates",
    "rgb_images",
    "subsamplings",
    "webp",
]


def qualities(min_value: int = 1, max_value: int = 100) -> st.SearchStrategy[int]:
    """Integer qualities in ``[min_value, max_value]`` that shrink toward ``max_value``.

    Higher quality is milder compression, so the minimal failing example is the highest
    quality that still fails.
    """
    if min_value > max_value:
        raise ConfigError(f"qualities(min_value={min_value}, max_value={max_value}): min_value exceeds max_value")
    # d shrinks to 0, i.e. to max_value.
    return st.integers(0, max_value - min_value).map(lambda d: max_value - d)


def rates(min_value: int = 1, max_value: int = 1000) -> st.SearchStrategy[float]:
    """Whole JPEG 2000 compression ratios in ``[min_value, max_value]`` that shrink toward ``min_value``.

    A lower ratio is milder compression, so the minimal failing example is the lowest ratio that
    still fails.
    """
    if min_value > max_value:
        raise ConfigError(f"rates(min_value={min_value}, max_value={max_value}): min_value exceeds max_value")
    # Offset from min_value so shrinking ends at min_value even for ranges that exclude 0.
    return st.integers(0, max_value - min_value).map(lambda d: float(min_value + d))


def subsamplings() -> st.SearchStrategy[str]:
    """JPEG chroma subsampling modes, shrinking toward the mildest, ``"4:4:4"``."""
    return st.sampled_from(list(JPEG_SUBSAMPLING))  # ordered mildest first


def jpeg(
    quality: st.SearchStrategy[int] | None = None,
    subsampling: st.SearchStrategy[str] | None = None,
) -> st.SearchStrategy[Compression]:
    """JPEG compressions; ``quality`` defaults to :func:`qualities` over 1..100.

    With ``subsampling=None`` (or when the strategy draws ``None``) the parameter is left out, so
    Pillow's default (4:2:0) applies; pass e.g. :func:`subsamplings` to vary it.
    """
    # builds(Compression, ...) makes hypothesis print failures as Compression('jpeg', quality=40).
    quality = _default_quality("jpeg", quality)
    if subsampling is None:
        return st.builds(Compression, st.just("jpeg"), quality=quality)
    return st.builds(Compression, st.just("jpeg"), quality=quality, subsampling=subsampling)


def webp(quality: st.SearchStrategy[int] | None = None) -> st.SearchStrategy[Compression]:
    """WebP compressions; ``quality`` defaults to :func:`qualities` over 0..100."""
    return st.builds(Compression, st.just("webp"), quality=_default_quality("webp", quality))


def avif(quality: st.SearchStrategy[int] | None = None) -> st.SearchStrategy[Compression]:
    """AVIF compressions; ``quality`` defaults to :func:`qualities` over 0..100."""
    return st.builds(Compression, st.just("avif"), quality=_default_quality("avif", quality))


def jpeg2000(rate: st.SearchStrategy[float] | None = None) -> st.SearchStrategy[Compression]:
    """JPEG 2000 compressions; ``rate`` (compression ratio) defaults to :func:`rates` over 1..1000."""
    _require("jpeg2000")
    spec = CODECS["jpeg2000"].params["rate"]
    rate = rates(int(spec.low), int(spec.high)) if rate is None else rate
    return st.builds(Compression, st.just("jpeg2000"), rate=rate)


# Each codec's default strategy; "none" has no parameters, so it is a single example.
_FACTORIES = {
    "none": lambda: st.just(Compression("none")),
    "jpeg": jpeg,
    "webp": webp,
    "avif": avif,
    "jpeg2000": jpeg2000,
}


def compressions(codecs: Iterable[str] | None = None) -> st.SearchStrategy[Compression]:
    """Compressions across ``codecs`` (default: every codec the installed Pillow supports).

    Codecs are tried in the given order (default: ``none`` first, then ``compression.CODECS``
    order); a failure shrinks toward the earliest failing codec at its mildest setting.
    """
    names = available_codecs() if codecs is None else [name.lower() for name in codecs]
    if not names:
        raise ConfigError("compressions(codecs=[]) needs at least one codec")
    for name in names:
        _require(name)
    return st.one_of([_FACTORIES[name]() for name in names])


def rgb_images(min_side: int = 1, max_side: int = 64) -> st.SearchStrategy[Image.Image]:
    """Small RGB images: flat colour, linear gradient, or uniform noise over a drawn base colour.

    Width and height are drawn independently from ``[min_side, max_side]``. Shrinks toward small,
    flat images. Noise comes from a NumPy generator seeded by a drawn integer, so examples replay
    exactly while staying cheap to generate at 64x64.
    """
    if not 1 <= min_side <= max_side:
        raise ConfigError(f"rgb_images(min_side={min_side}, max_side={max_side}) needs 1 <= min_side <= max_side")
    return _rgb_images(min_side, max_side)


@st.composite
def _rgb_images(draw: st.DrawFn, min_side: int, max_side: int) -> Image.Image:
    side = st.integers(min_side, max_side)
    width, height = draw(side), draw(side)
    colour = st.tuples(*[st.integers(0, 255)] * 3).map(lambda c: np.array(c, dtype=np.float64))
    start = draw(colour)
    kind = draw(st.sampled_from(["flat", "gradient", "noise"]))
    if kind == "flat":
        pixels = np.broadcast_to(start, (height, width, 3))
    elif kind == "gradient":
        end = draw(colour)
        y, x = np.mgrid[0:height, 0:width]
        weight_x, weight_y = draw(st.sampled_from([(1, 0), (0, 1), (0.5, 0.5)]))
        # Position along the gradient in [0, 1]; max(..., 1) keeps 1-pixel sides defined.
        t = weight_x * x / max(width - 1, 1) + weight_y * y / max(height - 1, 1)
        pixels = start + t[..., None] * (end - start)
    else:
        amplitude = draw(st.integers(1, 255))
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        pixels = start + rng.uniform(-amplitude, amplitude, size=(height, width, 3))
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))


def _default_quality(codec: str, quality: st.SearchStrategy[int] | None) -> st.SearchStrategy[int]:
    _require(codec)
    if quality is not None:
        return quality
    spec = CODECS[codec].params["quality"]
    return qualities(int(spec.low), int(spec.high))


def _require(codec: str) -> None:
    # Fail when the strategy is built, not deep inside a draw, with the fix in the message.
    if codec not in CODECS:
        raise ConfigError(f"unknown codec {codec!r}; choose one of {', '.join(CODECS)}")
    if codec not in available_codecs():
        raise ConfigError(
            f"codec {codec!r} is not supported by the installed Pillow; available: {', '.join(available_codecs())}. "
            f"Guard the test with pytest.mark.skipif({codec!r} not in available_codecs(), ...)"
        )
