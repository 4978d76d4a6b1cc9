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
from typing import Any

import numpy as np
from hypothesis import strategies as st
from PIL import Image

from .codecs.compression import Compression
from .codecs.registry import CODECS, ParamSpec, available_codecs
from .errors import ConfigError

__all__ = [
    "avif",
    "codec",
    "compressions",
    "jpeg",
    "jpeg2000",
    "parameter",
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
    return _mild_first(min_value, max_value, "higher", int)


def rates(min_value: int = 1, max_value: int = 1000) -> st.SearchStrategy[float]:
    """Whole JPEG 2000 compression ratios in ``[min_value, max_value]`` that shrink toward ``min_value``.

    A lower ratio is milder compression, so the minimal failing example is the lowest ratio that
    still fails.
    """
    if min_value > max_value:
        raise ConfigError(f"rates(min_value={min_value}, max_value={max_value}): min_value exceeds max_value")
    return _mild_first(min_value, max_value, "lower", float)


def subsamplings() -> st.SearchStrategy[str]:
    """JPEG chroma subsampling modes, shrinking toward the mildest, ``"4:4:4"``."""
    return parameter("jpeg", "subsampling")


def _mild_first(low: float, high: float, milder: str, kind: type) -> st.SearchStrategy[Any]:
    # A whole-number distance d from the mild end shrinks to 0, i.e. to the mildest value, even for
    # ranges that exclude 0.
    if milder == "higher":
        return st.integers(0, int(high - low)).map(lambda d: kind(high - d))
    return st.integers(0, int(high - low)).map(lambda d: kind(low + d))


def parameter(codec_name: str, param: str) -> st.SearchStrategy[Any]:
    """Values of one codec parameter from the registry, shrinking toward the mildest.

    Choices shrink toward the first (mildest) one; numeric parameters with a milder direction step
    by whole numbers from their mild end; others (e.g. WebP ``method``) shrink toward their low end.
    """
    if codec_name not in CODECS:
        raise ConfigError(f"unknown codec {codec_name!r}; choose one of {', '.join(CODECS)}")
    spec: ParamSpec | None = CODECS[codec_name].params.get(param)
    if spec is None:
        raise ConfigError(f"{codec_name} has no parameter {param!r}; parameters: {', '.join(CODECS[codec_name].params) or 'none'}")
    if spec.choices:
        return st.sampled_from(list(spec.choices))  # ordered mildest first
    return _mild_first(*spec.bounds, spec.milder or "lower", spec.kind)


def codec(name: str, **params: st.SearchStrategy[Any] | None) -> st.SearchStrategy[Compression]:
    """Compressions of any registered codec: each required parameter is drawn mildest-first unless a
    strategy is given; optional parameters are drawn only when given (``None`` leaves them out)."""
    _require(name)
    spec = CODECS[name]
    unknown = sorted(set(params) - set(spec.params))
    if unknown:
        raise ConfigError(f"unknown {name} parameter(s) {', '.join(unknown)}; allowed: {', '.join(spec.params) or 'none'}")
    # In the registry's parameter order, so examples are drawn (and shrunk) in a stable order.
    drawn: dict[str, st.SearchStrategy[Any]] = {}
    for param in spec.params:
        given = params.get(param)
        if given is not None or param in spec.required:
            drawn[param] = given if given is not None else parameter(name, param)
    if not drawn:
        return st.just(Compression(name))  # no parameters: a single example
    # builds(Compression, ...) makes hypothesis print failures as Compression('jpeg', quality=40).
    return st.builds(Compression, st.just(name), **drawn)


def jpeg(
    quality: st.SearchStrategy[int] | None = None,
    subsampling: st.SearchStrategy[str] | None = None,
) -> st.SearchStrategy[Compression]:
    """JPEG compressions; ``quality`` defaults to :func:`qualities` over 1..100.

    With ``subsampling=None`` (or when the strategy draws ``None``) the parameter is left out, so
    Pillow's default (4:2:0) applies; pass e.g. :func:`subsamplings` to vary it.
    """
    return codec("jpeg", quality=quality, subsampling=subsampling)


def webp(quality: st.SearchStrategy[int] | None = None) -> st.SearchStrategy[Compression]:
    """WebP compressions; ``quality`` defaults to :func:`qualities` over 0..100."""
    return codec("webp", quality=quality)


def avif(quality: st.SearchStrategy[int] | None = None) -> st.SearchStrategy[Compression]:
    """AVIF compressions; ``quality`` defaults to :func:`qualities` over 0..100."""
    return codec("avif", quality=quality)


def jpeg2000(rate: st.SearchStrategy[float] | None = None) -> st.SearchStrategy[Compression]:
    """JPEG 2000 compressions; ``rate`` (compression ratio) defaults to :func:`rates` over 1..1000."""
    return codec("jpeg2000", rate=rate)


def compressions(codecs: Iterable[str] | None = None) -> st.SearchStrategy[Compression]:
    """Compressions across ``codecs`` (default: every codec the installed Pillow supports).

    Codecs are tried in the given order (default: ``none`` first, then ``compression.CODECS``
    order); a failure shrinks toward the earliest failing codec at its mildest setting.
    """
    names = available_codecs() if codecs is None else [name.lower() for name in codecs]
    if not names:
        raise ConfigError("compressions(codecs=[]) needs at least one codec")
    return st.one_of([codec(name) for name in names])


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


def _require(codec: str) -> None:
    # Fail when the strategy is built, not deep inside a draw, with the fix in the message.
    if codec not in CODECS:
        raise ConfigError(f"unknown codec {codec!r}; choose one of {', '.join(CODECS)}")
    if codec not in available_codecs():
        raise ConfigError(
            f"codec {codec!r} is not supported by the installed Pillow; available: {', '.join(available_codecs())}. "
            f"Guard the test with pytest.mark.skipif({codec!r} not in available_codecs(), ...)"
        )
