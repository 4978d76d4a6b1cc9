"""Where each model-input pixel comes from in the source image, read off the model's own preprocessing.

open_clip's val transforms resize and crop (``shortest``: shortest side, then centre crop),
stretch (``squash``: both sides to the input size) or fit and pad (``longest``), depending on the
pretrained tag. IG attributions live on the model-input grid; to mark JPEG 8x8 block boundaries and
to draw the pictures under them, each grid pixel is mapped back to the source pixel nearest its
centre. :meth:`InputGeometry.of_preprocess` measures that map by pushing coordinate ramps through
the preprocessing itself, so it holds for every resize mode and input size without knowing which.
Only numpy and Pillow here; torch arrives with the preprocess when one is given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

__all__ = ["AxisMap", "InputGeometry", "block_boundary_mask", "display_grid", "measured_geometry"]

_RAMP_LOW, _RAMP_HIGH = 16.0, 239.0  # headroom for interpolation overshoot near the image edges
#: Ramps pushed with their 8-bit levels shifted by j/16 of a level: averaging them cancels the
#: rounding of the 8-bit images, which alone would blur the scale by about 0.3% on a 24-pixel source.
_DITHER = 16


@dataclass(frozen=True)
class AxisMap:
    """One axis of a resize-then-crop: ``source`` pixels resized to ``resized``, model pixel d = resized pixel d + ``offset``.

    A negative offset (or a crop past the end) means padding: those model pixels have no source pixel.
    """

    source: int
    resized: int
    offset: int
    output: int

    def __post_init__(self) -> None:
        if min(self.source, self.resized, self.output) < 1:
            raise ValueError(f"sizes must be positive, got {self}")

    def indices(self) -> np.ndarray:
        """Source pixel nearest the centre of each model pixel, -1 where the model pixel is padding.

        The centre of resized pixel r sits at (r + 0.5) * source / resized in source coordinates, so
        the nearest source pixel is floor((r + 0.5) * source / resized). Integer arithmetic keeps this
        exact; a centre exactly on a source pixel edge takes the later pixel.
        """
        resized = np.arange(self.output) + self.offset
        inside = (resized >= 0) & (resized < self.resized)
        nearest = ((2 * resized + 1) * self.source) // (2 * self.resized)
        return np.where(inside, np.clip(nearest, 0, self.source - 1), -1)


@dataclass(frozen=True)
class InputGeometry:
    """How a source image of one size lands on the model's input grid, row axis and column axis."""

    rows: AxisMap
    cols: AxisMap

    @property
    def source_hw(self) -> tuple[int, int]:
        return self.rows.source, self.cols.source

    @property
    def output_hw(self) -> tuple[int, int]:
        return self.rows.output, self.cols.output

    @classmethod
    def centre_crop(cls, source_hw: tuple[int, int], input_size: int) -> InputGeometry:
        """torchvision ``Resize(input_size)`` (shortest side, long side truncated) then ``CenterCrop(input_size)``.

        open_clip's default val transform for square inputs; offsets are rounded as torchvision does.
        """
        height, width = source_hw
        if height < 1 or width < 1 or input_size < 1:
            raise ValueError(f"sizes must be positive, got source {source_hw} and input_size {input_size}")
        if width <= height:
            new_w, new_h = input_size, int(input_size * height / width)
        else:
            new_h, new_w = input_size, int(input_size * width / height)
        top = round((new_h - input_size) / 2.0)
        left = round((new_w - input_size) / 2.0)
        return cls(AxisMap(height, new_h, top, input_size), AxisMap(width, new_w, left, input_size))

    @classmethod
    def of_preprocess(cls, preprocess: Callable[[Image.Image], object], source_hw: tuple[int, int]) -> InputGeometry:
        """Measure the geometry of ``preprocess`` (PIL image to a (3, H, W) tensor) for sources of ``source_hw``.

        Black and white images calibrate the per-channel normalisation and show which model pixels
        are padding; an image whose red channel ramps with the row and green with the column then
        gives the source coordinate under every model pixel (averaged over ramps shifted by a
        fraction of an 8-bit level, to cancel rounding). A straight-line fit of coordinate
        against model pixel gives the scale and offset of each axis, snapped to the whole-pixel
        resize and crop that produced them and checked against every measured pixel. Raises
        ValueError for a preprocessing that does not resize and crop each axis on its own.
        """
        height, width = source_hw
        if height < 1 or width < 1:
            raise ValueError(f"source size must be positive, got {source_hw}")

        def push(pixels: np.ndarray) -> np.ndarray:
            out = preprocess(Image.fromarray(pixels.astype(np.uint8), "RGB"))
            array = np.asarray(out.detach().cpu().numpy() if hasattr(out, "detach") else out, dtype=np.float64)
            if array.ndim != 3 or array.shape[0] < 2:
                raise ValueError(f"the preprocessing returned shape {array.shape}; expected (channels, height, width)")
            return array

        black = push(np.zeros((height, width, 3)))
        white = push(np.full((height, width, 3), 255))
        span = white - black
        inside = np.abs(span[0]) > 0.5 * np.abs(span[0]).max()
        ramp = np.zeros((height, width, 3))
        ramp[..., 0] = _ramp(height)[:, None]
        ramp[..., 1] = _ramp(width)[None, :]
        pushed = sum(push(np.rint(ramp + shift / _DITHER)) for shift in range(_DITHER)) / _DITHER
        with np.errstate(divide="ignore", invalid="ignore"):
            values = 255.0 * (pushed - black) / span - (_DITHER - 1) / (2 * _DITHER)
        out_h, out_w = inside.shape
        rows = _fit_axis(values[0], inside, height, out_h, axis=0)
        cols = _fit_axis(values[1], inside, width, out_w, axis=1)
        return cls(rows, cols)


_MEASURED: dict[tuple[str, tuple[int, int]], InputGeometry] = {}


def measured_geometry(preprocess: Callable[[Image.Image], object], source_hw: tuple[int, int]) -> InputGeometry:
    """:meth:`InputGeometry.of_preprocess`, measured once per preprocessing (by its repr, which names every step) and size."""
    key = (repr(preprocess), (source_hw[0], source_hw[1]))
    if key not in _MEASURED:
        if len(_MEASURED) >= 256:  # image folders may hold many sizes; IG explains only a few images
            _MEASURED.clear()
        _MEASURED[key] = InputGeometry.of_preprocess(preprocess, source_hw)
    return _MEASURED[key]


def _ramp(length: int) -> np.ndarray:
    if length == 1:
        return np.full(1, _RAMP_LOW)
    return _RAMP_LOW + np.arange(length) * (_RAMP_HIGH - _RAMP_LOW) / (length - 1)


def _fit_axis(values: np.ndarray, inside: np.ndarray, source: int, output: int, axis: int) -> AxisMap:
    """The resize and crop of one axis from the ramp values measured along it (see ``of_preprocess``)."""
    # The line through the middle of the other axis: inside the image in every mode.
    middle = inside.shape[1 - axis] // 2
    profile = values[:, middle] if axis == 0 else values[middle, :]
    valid = inside[:, middle] if axis == 0 else inside[middle, :]
    positions = np.flatnonzero(valid)
    if len(positions) == 0:
        raise ValueError("the preprocessing shows no part of the image")
    if source == 1:  # one source pixel: it is under every model pixel inside the image
        return AxisMap(1, len(positions), -int(positions[0]), output)
    step = (_RAMP_HIGH - _RAMP_LOW) / (source - 1)
    coordinate = (profile - _RAMP_LOW) / step  # source pixel-centre coordinate under each model pixel
    # Away from the edges, where resampling filters clamp; small sources keep all points.
    margin = 3 if source > 12 else 0
    use = positions[(coordinate[positions] >= margin) & (coordinate[positions] <= source - 1 - margin)]
    if len(use) < 2:
        use = positions
    scale, intercept = np.polyfit(use.astype(np.float64), coordinate[use], 1)
    if scale <= 0:
        raise ValueError("the preprocessing flips or scrambles the image; cannot map its pixels back")
    # coordinate = (d + offset + 0.5) * source / resized - 0.5 for a resize to `resized` then a crop at `offset`.
    resized = max(1, int(np.rint(source / scale)))
    offset = int(np.rint((intercept + 0.5) * resized / source - 0.5))
    axis_map = AxisMap(source, resized, offset, output)
    expected = (np.arange(output) + offset + 0.5) * source / resized - 0.5
    tolerance = 0.75 + 0.25 / step  # what is left of 8-bit rounding, and the last half pixel
    error = np.abs(expected[use] - coordinate[use]).max()
    if error > tolerance:
        raise ValueError(f"the preprocessing is not a resize and crop of each axis (off by {error:.1f} source pixels)")
    return axis_map


def _as_geometry(source_hw: tuple[int, int], geometry: InputGeometry | int) -> InputGeometry:
    if isinstance(geometry, InputGeometry):
        if geometry.source_hw != tuple(source_hw):
            raise ValueError(f"the geometry was measured for {geometry.source_hw} images, not {tuple(source_hw)}")
        return geometry
    return InputGeometry.centre_crop(source_hw, geometry)


def block_boundary_mask(source_hw: tuple[int, int], geometry: InputGeometry | int, block: int = 8) -> np.ndarray:
    """Which model-input pixels are sampled from JPEG block-boundary pixels of the source.

    A source pixel lies on a block boundary when its row or column index modulo ``block`` is 0 or
    ``block - 1``. Each model pixel is mapped back to the source pixel nearest its centre through
    ``geometry`` (an :class:`InputGeometry`, or an input size for open_clip's default shortest-side
    resize and centre crop); padding is never on a boundary. Returns a boolean (H, W) array.
    """
    mapped = _as_geometry(source_hw, geometry)
    rows, cols = mapped.rows.indices(), mapped.cols.indices()
    on_row = (rows >= 0) & np.isin(rows % block, (0, block - 1))
    on_col = (cols >= 0) & np.isin(cols % block, (0, block - 1))
    inside = (rows >= 0)[:, None] & (cols >= 0)[None, :]
    return (on_row[:, None] | on_col[None, :]) & inside


def display_grid(image: Image.Image, geometry: InputGeometry | int) -> np.ndarray:
    """The image resized and cropped (or padded, black) like the model input, as float RGB in [0, 1]."""
    mapped = _as_geometry((image.height, image.width), geometry)
    rows, cols = mapped.rows, mapped.cols
    # NEAREST when enlarging shows the real (e.g. 32x32) pixels and their JPEG blocks.
    enlarging = rows.resized >= rows.source and cols.resized >= cols.source
    resample = Image.Resampling.NEAREST if enlarging else Image.Resampling.BICUBIC
    resized = image.convert("RGB").resize((cols.resized, rows.resized), resample)
    cropped = resized.crop((cols.offset, rows.offset, cols.offset + cols.output, rows.offset + rows.output))
    return np.asarray(cropped, dtype=np.float64) / 255.0
