"""A model's Pillow eval preprocessing, reproduced bit for bit on batches of torch tensors.

open_clip's eval transform (and torchvision compositions like it) resizes and crops each image with
Pillow, then converts it to float and normalises it. :func:`plan_device_transform` reads those steps
off the ``Compose`` and returns a :class:`DeviceTransform` that applies them to a batch of equal-sized
uint8 images on the images' own device, with results ``torch.equal`` to the per-image transform.

Pillow's resize (``ImagingResample`` in ``src/libImaging/Resample.c``), as reproduced here:

- separable: one pass per axis whose size changes; an axis that keeps its size gets no pass at all;
- output pixel i of a pass is a weighted sum over the source pixels in a window around its centre
  ``(i + 0.5) * scale``; the weights are the filter (box, triangle, bicubic with a = -0.5, hamming,
  lanczos-3) evaluated in double precision, stretched by the scale when downscaling, normalised to
  sum 1 and rounded to fixed point with 22 fractional bits;
- the sum is an integer accumulated from 2^21 (the rounding offset), shifted right by 22 and clipped
  to 0..255 after each pass, so the image between the passes is uint8 again;
- which pass comes first depends on the Pillow version (see :func:`pillow_vertical_first`);
- NEAREST is no filter but an affine scale: source pixel ``int(x)``, x stepping from ``scale / 2``
  by ``scale`` in double precision.

The weights are computed once per (source size, output size, filter) with numpy, in Pillow's own
operations and order, and applied as exact integer arithmetic on tensors: either a gather, multiply
and add per filter tap in int32 ("banded", on the CPU in cache-sized slices of the batch) or a
float64 matrix product ("dense"; with the weights scaled by 2^-22, every product and partial sum is
a multiple of 2^-22 below 2^10 in magnitude, which float64 holds exactly in any order of summation). A crop after a resize only computes the pixels it
keeps. The float conversion is torchvision's arithmetic (``x / 255``, then ``(x - mean) / std`` in
the default float dtype), with its divisors as tensors on the images' device: CUDA turns a division
by a Python scalar into a multiplication by its reciprocal, which rounds differently.
"""

from __future__ import annotations

import math
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, TypeAlias

import numpy as np
import torch
from PIL import Image

__all__ = ["AxisWeights", "DeviceTransform", "Method", "axis_weights", "nearest_indices", "pillow_resize", "pillow_vertical_first", "plan_device_transform"]

Method: TypeAlias = Literal["auto", "banded", "dense"]

PRECISION_BITS = 22  # Resample.c: 32 bits less 8 for the pixel and 2 for the filters' overshoot
_ROUNDING = 1 << (PRECISION_BITS - 1)
#: Elements of the largest int32 intermediate per slice of the batch on the CPU: about 2 MiB, so a
#: pass's operands stay in cache across its taps (measured: 2.3x to 3.4x the throughput of whole batches of 64).
_CPU_SLICE_ELEMENTS = 1 << 19

Resampling = Image.Resampling


def _box(x: np.ndarray) -> np.ndarray:
    return ((x > -0.5) & (x <= 0.5)).astype(np.float64)


def _bilinear(x: np.ndarray) -> np.ndarray:
    x = np.abs(x)
    return np.where(x < 1.0, 1.0 - x, 0.0)


def _bicubic(x: np.ndarray) -> np.ndarray:
    # a = -0.5 folded into the constants (a + 2 = 1.5, a + 3 = 2.5), in Pillow's order of operations
    x = np.abs(x)
    near = (1.5 * x - 2.5) * x * x + 1
    far = (((x - 5) * x + 8) * x - 4) * -0.5
    return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))


# Pillow writes these as float literals (0.54f, 0.46f) inside double arithmetic.
_HAMMING_A = float(np.float32(0.54))
_HAMMING_B = float(np.float32(0.46))


def _hamming_at(x: float) -> float:
    x = abs(x)
    if x == 0.0:
        return 1.0
    if x >= 1.0:
        return 0.0
    x *= math.pi
    return math.sin(x) / x * (_HAMMING_A + _HAMMING_B * math.cos(x))


def _sinc(x: float) -> float:
    if x == 0.0:
        return 1.0
    x *= math.pi
    return math.sin(x) / x


def _lanczos_at(x: float) -> float:
    return _sinc(x) * _sinc(x / 3) if -3.0 <= x < 3.0 else 0.0


def _each(function: Callable[[float], float]) -> Callable[[np.ndarray], np.ndarray]:
    """Elementwise through ``math``: the C library's sin and cos, as Pillow calls them (numpy's own may differ in the last bit)."""
    return lambda x: np.array([function(value) for value in x.tolist()], dtype=np.float64)


#: Pillow's filters and their support (radius at scale 1).
_FILTERS: dict[int, tuple[Callable[[np.ndarray], np.ndarray], float]] = {
    Resampling.BOX: (_box, 0.5),
    Resampling.BILINEAR: (_bilinear, 1.0),
    Resampling.HAMMING: (_each(_hamming_at), 1.0),
    Resampling.BICUBIC: (_bicubic, 2.0),
    Resampling.LANCZOS: (_each(_lanczos_at), 3.0),
}
#: Pillow's filter for each torchvision interpolation on Pillow images (NEAREST_EXACT is Pillow's NEAREST there).
_PILLOW_FILTER = {
    "nearest": Resampling.NEAREST,
    "nearest-exact": Resampling.NEAREST,
    "bilinear": Resampling.BILINEAR,
    "bicubic": Resampling.BICUBIC,
    "box": Resampling.BOX,
    "hamming": Resampling.HAMMING,
    "lanczos": Resampling.LANCZOS,
}


@dataclass(frozen=True)
class AxisWeights:
    """One axis of a Pillow resample: output pixel i = clip8((2^21 + sum_j weights[i, j] * source[index[i, j]]) >> 22).

    Taps whose weight is zero for every output pixel are left out; a window shorter than the others
    repeats its first source pixel with weight zero.
    """

    index: np.ndarray  # (outputs, taps) int64
    weights: np.ndarray  # (outputs, taps) int64, fixed point with PRECISION_BITS fractional bits


@lru_cache(maxsize=256)
def axis_weights(source: int, output: int, resample: int) -> AxisWeights:
    """Pillow's fixed-point weights for resizing one axis from ``source`` to ``output`` pixels (``precompute_coeffs``)."""
    function, support = _FILTERS[resample]
    scale = source / output
    filterscale = max(scale, 1.0)
    support *= filterscale
    taps = math.ceil(support) * 2 + 1
    center = (np.arange(output) + 0.5) * scale
    first = np.maximum(np.trunc(center - support + 0.5), 0).astype(np.int64)  # C's (int) truncates toward zero
    stop = np.minimum(np.trunc(center + support + 0.5), source).astype(np.int64)
    offsets = np.arange(taps)
    inside = offsets < (stop - first)[:, None]
    positions = ((first[:, None] + offsets).astype(np.float64) - center[:, None] + 0.5) * (1.0 / filterscale)
    values = np.zeros((output, taps))
    values[inside] = function(positions[inside])
    total = np.zeros(output)
    for tap in range(taps):  # Pillow sums the window left to right; numpy's sum would pair terms up
        total += values[:, tap]
    nonzero = total != 0.0
    values[nonzero] /= total[nonzero, None]
    scaled = values * (1 << PRECISION_BITS)
    fixed = np.trunc(np.where(values < 0, -0.5 + scaled, 0.5 + scaled)).astype(np.int64)
    used = (fixed != 0).any(axis=0)
    index = np.where(inside, first[:, None] + offsets, first[:, None])[:, used]
    return AxisWeights(_frozen(index), _frozen(fixed[:, used]))


@lru_cache(maxsize=256)
def nearest_indices(source: int, output: int) -> np.ndarray:
    """Source pixel of each output pixel under Pillow's NEAREST (``ImagingScaleAffine``): x accumulates in double."""
    step = source / output
    positions = np.cumsum(np.concatenate([[step * 0.5], np.full(output - 1, step)]))  # cumsum adds in sequence, as the C loop does
    index = positions.astype(np.int64)
    # Pillow leaves a pixel whose position falls outside the source black; the rounding of the sum is far too small for that.
    assert index[-1] < source, (source, output)
    return _frozen(index)


def _frozen(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)  # shared through the caches
    return array


def _vertical_first_never(source_height: int, source_width: int, height: int, width: int) -> bool:
    return False


def _vertical_first_when_height_shrinks_more(source_height: int, source_width: int, height: int, width: int) -> bool:
    return height < source_height and source_height - height > 2 * (source_width - width)


#: Probes (source height, width, output height, width) on which the two known orders differ.
_ORDER_PROBES = ((50, 60, 9, 40), (50, 60, 10, 40), (40, 30, 20, 50))


@lru_cache(maxsize=1)
def pillow_vertical_first() -> Callable[[int, int, int, int], bool] | None:
    """Whether the installed Pillow resamples the vertical axis first, as a function of the sizes; None when unknown.

    Pillow up to 12 always runs the horizontal pass first. Pillow 13.0.0 runs the vertical pass first
    when the height shrinks and loses more than twice as many pixels as the width does: a rule read
    off its output (its published sources, still 13.0.0.dev0, go horizontal first), which held on
    every one of several thousand sizes tried. The two orders round differently in between, so the
    rule in effect is told apart by resizing a few noise images with the installed Pillow.
    """
    rules = [_vertical_first_never, _vertical_first_when_height_shrinks_more]
    rng = np.random.default_rng(0)
    for source_height, source_width, height, width in _ORDER_PROBES:
        noise = rng.integers(0, 256, size=(source_height, source_width, 3), dtype=np.uint8)
        expected = torch.from_numpy(np.array(Image.fromarray(noise, "RGB").resize((width, height), Resampling.BILINEAR)))
        batch = torch.from_numpy(noise)[None]
        matches = {first: torch.equal(_resize_hwc(batch, (height, width), Resampling.BILINEAR, first, "banded")[0], expected) for first in (False, True)}
        rules = [rule for rule in rules if matches[rule(source_height, source_width, height, width)]]
    return rules[0] if rules else None


# -- geometry: what each supported step does to the image size, in the library's own arithmetic --------------------------


@dataclass(frozen=True)
class _ShortestSide:
    """torchvision ``Resize(int)``: the shorter side to ``size``, the longer one scaled and truncated, capped by ``max_size``."""

    resample: int
    size: int
    max_size: int | None

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = self.size, int(self.size * long / short)
        if self.max_size is not None and new_long > self.max_size:
            new_short, new_long = int(self.max_size * new_short / new_long), self.max_size
        return (new_long, new_short) if width <= height else (new_short, new_long)


@dataclass(frozen=True)
class _FixedSize:
    """torchvision ``Resize((h, w))``: both sides to the given size."""

    resample: int
    height: int
    width: int

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        return self.height, self.width


@dataclass(frozen=True)
class _KeepRatio:
    """open_clip ``ResizeKeepRatio`` without its random factors: both sides divided by one ratio, rounded half to even."""

    resample: int
    height: int
    width: int
    longest: float

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        ratio_h, ratio_w = height / self.height, width / self.width
        ratio = max(ratio_h, ratio_w) * self.longest + min(ratio_h, ratio_w) * (1.0 - self.longest)
        return round(height * 1.0 / ratio), round(width * 1.0 / ratio)


@dataclass(frozen=True)
class _CenterCrop:
    """torchvision ``CenterCrop`` (fill black) and open_clip ``CenterCropOrPad`` (fill per channel)."""

    height: int
    width: int
    fill: tuple[int, int, int]


_Resize: TypeAlias = _ShortestSide | _FixedSize | _KeepRatio
_Step: TypeAlias = _Resize | _CenterCrop


# -- per source size: stages of resample, keep, pad ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Axis:
    """One axis of a stage: ``source`` pixels, resampled to ``output`` (or not, when ``resample`` is None),
    of which ``keep`` = [start, stop) stay, with ``pad`` pixels of fill before and after."""

    source: int
    resample: int | None
    output: int
    keep: tuple[int, int]
    pad: tuple[int, int] = (0, 0)

    @property
    def size(self) -> int:
        return self.pad[0] + self.keep[1] - self.keep[0] + self.pad[1]

    def center_crop(self, size: int) -> _Axis:
        """torchvision's center crop on this axis: pad (half before, rounded down) or keep from round((length - size) / 2)."""
        length = self.keep[1] - self.keep[0]
        if size > length:
            return _Axis(self.source, self.resample, self.output, self.keep, ((size - length) // 2, (size - length + 1) // 2))
        start = self.keep[0] + round((length - size) / 2.0)  # half to even, as torchvision's int(round(...))
        return _Axis(self.source, self.resample, self.output, (start, start + size))


@dataclass(frozen=True)
class _Stage:
    rows: _Axis
    cols: _Axis
    vertical_first: bool
    fill: tuple[int, int, int] = (0, 0, 0)


def _stages(steps: Sequence[_Step], height: int, width: int, vertical_first: Callable[[int, int, int, int], bool]) -> tuple[_Stage, ...]:
    stages: list[_Stage] = []
    for step in steps:
        if isinstance(step, _CenterCrop):
            last = stages[-1] if stages and stages[-1].rows.pad == stages[-1].cols.pad == (0, 0) else None
            if last is None:  # nothing to fuse with: a stage that only crops
                last = _Stage(_Axis(height, None, height, (0, height)), _Axis(width, None, width, (0, width)), False)
                stages.append(last)
            stages[-1] = _Stage(last.rows.center_crop(step.height), last.cols.center_crop(step.width), last.vertical_first, step.fill)
        else:
            new_height, new_width = step.output_size(height, width)
            if new_height < 1 or new_width < 1:
                raise ValueError(f"{step} resizes {width}x{height} images to {new_width}x{new_height}: Pillow needs a height and width > 0")
            if (new_height, new_width) == (height, width):
                continue  # torchvision hands the image back as it is
            nearest = step.resample == Resampling.NEAREST
            rows = _Axis(height, step.resample if nearest or new_height != height else None, new_height, (0, new_height))
            cols = _Axis(width, step.resample if nearest or new_width != width else None, new_width, (0, new_width))
            stages.append(_Stage(rows, cols, not nearest and vertical_first(height, width, new_height, new_width)))
        height, width = stages[-1].rows.size, stages[-1].cols.size
    return tuple(stages)


# -- running stages on tensors --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Pass:
    """One axis of a compiled stage: the source pixels [start, stop) it reads, then one of
    a gather (``index`` alone: NEAREST), a banded sum (``index`` (taps, outputs) and ``weights``) or a dense product (``matrix``)."""

    start: int
    stop: int
    index: torch.Tensor | None = None
    weights: torch.Tensor | None = None
    matrix: torch.Tensor | None = None


def _compile_axis(axis: _Axis, device: torch.device, dense: bool) -> _Pass:
    start, stop = axis.keep
    if axis.resample is None:
        return _Pass(start, stop)
    if axis.resample == Resampling.NEAREST:
        index = nearest_indices(axis.source, axis.output)[start:stop]
        low = int(index.min())
        return _Pass(low, int(index.max()) + 1, index=torch.from_numpy(index - low).to(device))
    weights = axis_weights(axis.source, axis.output, axis.resample)
    index, fixed = weights.index[start:stop], weights.weights[start:stop]
    low, high = int(index.min()), int(index.max()) + 1
    if dense:
        matrix = np.zeros((stop - start, high - low))
        np.add.at(matrix, (np.arange(stop - start)[:, None], index - low), fixed)  # repeated padding taps add weight zero
        return _Pass(low, high, matrix=torch.from_numpy(matrix * 2.0**-PRECISION_BITS).to(device))
    return _Pass(low, high, index=torch.tensor((index - low).T, device=device), weights=torch.tensor(fixed.T, dtype=torch.int32, device=device))


def _run_pass(pixels: torch.Tensor, step: _Pass, dim: int) -> torch.Tensor:
    """Resample ``pixels`` (N, 3, H, W), already cut to the pass's source pixels, along ``dim`` (2: rows, 3: columns)."""
    if step.matrix is not None:
        # (S * 2^-22 + 0.5) floored is Pillow's (2^21 + S) >> 22, exactly: see the module docstring
        out = step.matrix @ pixels if dim == 2 else pixels @ step.matrix.T
        return out.add_(0.5).clamp_(0, 255).floor_()
    if step.index is None:
        return pixels
    if step.weights is None:
        return pixels.index_select(dim, step.index)
    if dim == 3:  # on a transposed copy: gathering whole rows is ~7x faster than gathering single elements along the last dimension
        return _banded_rows(pixels.transpose(2, 3).contiguous(), step).transpose(2, 3)
    return _banded_rows(pixels.contiguous(), step)


def _banded_rows(pixels: torch.Tensor, step: _Pass) -> torch.Tensor:
    """Pillow's integer sums along dim 2: a gather, multiply and add per tap, then the shift and the clip to 0..255."""
    assert step.index is not None and step.weights is not None
    total = torch.full((*pixels.shape[:2], step.index.shape[1], pixels.shape[3]), _ROUNDING, dtype=torch.int32, device=pixels.device)
    gathered = torch.empty_like(total)  # one buffer for all taps
    for index, weights in zip(step.index, step.weights, strict=True):
        total.addcmul_(torch.index_select(pixels, 2, index, out=gathered), weights.view(-1, 1))
    return total.bitwise_right_shift_(PRECISION_BITS).clamp_(0, 255)


@dataclass(frozen=True)
class _CompiledStage:
    rows: _Pass
    cols: _Pass
    vertical_first: bool
    pad: tuple[int, int, int, int]  # top, bottom, left, right
    fill: torch.Tensor  # (3, 1, 1), the pixels' dtype


def _compile(stage: _Stage, device: torch.device, dense: bool) -> _CompiledStage:
    dtype = torch.float64 if dense else torch.int32
    return _CompiledStage(
        _compile_axis(stage.rows, device, dense),
        _compile_axis(stage.cols, device, dense),
        stage.vertical_first,
        (*stage.rows.pad, *stage.cols.pad),
        torch.tensor(stage.fill, dtype=dtype, device=device).view(3, 1, 1),
    )


def _run_stage(pixels: torch.Tensor, stage: _CompiledStage) -> torch.Tensor:
    pixels = pixels[:, :, stage.rows.start : stage.rows.stop, stage.cols.start : stage.cols.stop]
    passes = ((stage.rows, 2), (stage.cols, 3)) if stage.vertical_first else ((stage.cols, 3), (stage.rows, 2))
    for step, dim in passes:
        pixels = _run_pass(pixels, step, dim)
    top, bottom, left, right = stage.pad
    if not any(stage.pad):
        return pixels
    count, channels, height, width = pixels.shape
    padded = stage.fill.expand(count, channels, top + height + bottom, left + width + right).clone()
    padded[:, :, top : top + height, left : left + width] = pixels
    return padded


def _use_dense(method: Method, device: torch.device) -> bool:
    """Float64 products on CUDA (matrix products are what GPUs do best; torch has no integer matmul there), banded sums elsewhere:
    on the CPU they measured 2x to 6x faster, and some devices (MPS) have no float64."""
    if method == "auto":
        return device.type == "cuda"
    return method == "dense"


def _check_images(images: torch.Tensor) -> None:
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected (batch, height, width, 3) uint8 RGB images, got {tuple(images.shape)} {images.dtype}")


def _resize_hwc(images: torch.Tensor, size: tuple[int, int], resample: int, vertical_first: bool, method: Method) -> torch.Tensor:
    height, width = images.shape[1:3]
    stages = _stages([_FixedSize(resample, *size)], height, width, lambda *_: vertical_first)
    dense = _use_dense(method, images.device)
    pixels = images.permute(0, 3, 1, 2).to(torch.float64 if dense else torch.int32)
    for stage in stages:
        pixels = _run_stage(pixels, _compile(stage, images.device, dense))
    return pixels.to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def pillow_resize(images: torch.Tensor, size: tuple[int, int], resample: int, method: Method = "auto") -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, h, w, 3) uint8 for ``size`` = (h, w), equal to ``Image.resize((w, h), resample)`` on each image."""
    _check_images(images)
    if resample != Resampling.NEAREST and resample not in _FILTERS:
        raise ValueError(f"unsupported Pillow filter {resample}")
    vertical_first = pillow_vertical_first()
    if vertical_first is None:
        raise RuntimeError("the installed Pillow orders its resize passes in a way this module does not know")
    height, width = images.shape[1:3]
    return _resize_hwc(images, size, resample, vertical_first(height, width, *size), method)


@dataclass(frozen=True)
class _SizePlan:
    """What a DeviceTransform does to images of one size on one device."""

    stages: tuple[_CompiledStage, ...]
    output: tuple[int, int]
    per_slice: int  # images per slice of the batch: all of them, except for the banded sums on the CPU (cache-sized slices)


class DeviceTransform:
    """The geometry of a model's eval transform, then ToTensor and Normalize, on batches of equal-sized images."""

    #: Source sizes whose weights stay on the device (an image folder may hold thousands of sizes).
    cached_sizes = 64

    def __init__(self, steps: Sequence[_Step], mean: torch.Tensor | None, std: torch.Tensor | None, method: Method = "auto") -> None:
        vertical_first = pillow_vertical_first()
        if vertical_first is None:
            raise RuntimeError("the installed Pillow orders its resize passes in a way this module does not know")
        self._vertical_first = vertical_first
        self._steps = tuple(steps)
        self._mean, self._std = mean, std
        self.method: Method = method
        self._plans: dict[tuple[int, int, torch.device, bool], _SizePlan] = {}
        self._plans_lock = threading.Lock()

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) of the model input made from an image of ``height`` x ``width`` pixels."""
        stages = _stages(self._steps, height, width, self._vertical_first)
        return (stages[-1].rows.size, stages[-1].cols.size) if stages else (height, width)

    def __call__(self, images: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """(B, H, W, 3) uint8 RGB images on any device -> (B, 3, h, w) in the default float dtype on that device.

        ``out``, when given, receives the result: reusing one saves the page faults of a fresh tensor
        (on the CPU, up to 40% of the time for 224 px outputs).
        """
        _check_images(images)
        height, width = images.shape[1:3]
        dense = _use_dense(self.method, images.device)
        plan = self._plan(height, width, images.device, dense)
        shape = (images.shape[0], 3, *plan.output)
        dtype = torch.get_default_dtype()  # what ToTensor converts to
        if out is None:
            out = torch.empty(shape, dtype=dtype, device=images.device)
        elif out.shape != shape or out.dtype != dtype or out.device != images.device or not out.is_contiguous():
            raise ValueError(f"out must be a contiguous {shape} tensor of {dtype} on {images.device}, got {tuple(out.shape)} {out.dtype} on {out.device}")
        divisor = torch.tensor(255, dtype=dtype, device=images.device)
        mean = None if self._mean is None else self._mean.to(images.device, dtype).view(-1, 1, 1)
        std = None if self._std is None else self._std.to(images.device, dtype).view(-1, 1, 1)
        for part, target in zip(images.split(plan.per_slice), out.split(plan.per_slice), strict=True):
            pixels = part.permute(0, 3, 1, 2).to(torch.float64 if dense else torch.int32, memory_format=torch.contiguous_format)
            for stage in plan.stages:
                pixels = _run_stage(pixels, stage)
            floats = target.copy_(pixels).div_(divisor)
            if mean is not None and std is not None:
                floats.sub_(mean).div_(std)
        return out

    def _plan(self, height: int, width: int, device: torch.device, dense: bool) -> _SizePlan:
        key = (height, width, device, dense)
        with self._plans_lock:
            plan = self._plans.get(key)
            if plan is None:
                plan = self._plans[key] = self._new_plan(height, width, device, dense)
                if len(self._plans) > self.cached_sizes:
                    del self._plans[next(iter(self._plans))]  # the oldest
        return plan

    def _new_plan(self, height: int, width: int, device: torch.device, dense: bool) -> _SizePlan:
        stages = _stages(self._steps, height, width, self._vertical_first)
        output = (stages[-1].rows.size, stages[-1].cols.size) if stages else (height, width)
        # a bound on the largest intermediate per image: each stage's larger rows by its larger columns
        largest = max([height * width] + [max(s.rows.source, s.rows.size) * max(s.cols.source, s.cols.size) for s in stages])
        per_slice = max(1, _CPU_SLICE_ELEMENTS // (3 * largest)) if device.type == "cpu" and not dense else sys.maxsize
        return _SizePlan(tuple(_compile(stage, device, dense) for stage in stages), output, per_slice)


# -- reading the model's transform -------------------------------------------------------------------------------------


def _pillow_filter(interpolation: Any) -> int | None:
    from torchvision.transforms import InterpolationMode

    if isinstance(interpolation, InterpolationMode):
        return _PILLOW_FILTER.get(interpolation.value)
    if isinstance(interpolation, int) and interpolation in (Resampling.NEAREST, *_FILTERS):
        return interpolation  # torchvision reads Pillow's constants as their own filters
    return None


def _fill_pixel(fill: Any) -> tuple[int, int, int] | None:
    """The RGB pixel torchvision's pad writes for ``fill``: asked of torchvision itself, on a one-pixel image."""
    from torchvision.transforms import functional

    try:
        padded = functional.pad(Image.new("RGB", (1, 1)), [1, 0, 0, 0], fill=fill)
    except (TypeError, ValueError):
        return None
    red, green, blue = padded.getpixel((0, 0))
    return red, green, blue


def _step(transform: Any) -> _Step | None:
    """The geometry of one Pillow-side step; None for anything not reproduced exactly."""
    from open_clip.transform import CenterCropOrPad, ResizeKeepRatio
    from torchvision import transforms

    kind = type(transform)
    if kind is transforms.Resize:
        resample = _pillow_filter(transform.interpolation)
        size = transform.size
        if resample is None:
            return None
        if isinstance(size, int) or len(size) == 1:
            short = size if isinstance(size, int) else size[0]
            max_size = transform.max_size
            if max_size is not None and max_size <= short:
                return None  # torchvision raises
            return _ShortestSide(resample, short, max_size)
        return _FixedSize(resample, size[0], size[1]) if transform.max_size is None else None
    if kind is ResizeKeepRatio:
        resample = _pillow_filter(transform.interpolation)
        if resample is None or transform.random_scale_prob > 0 or transform.random_aspect_prob > 0:
            return None
        return _KeepRatio(resample, transform.size[0], transform.size[1], transform.longest)
    if kind is transforms.CenterCrop:
        return _CenterCrop(transform.size[0], transform.size[1], (0, 0, 0))
    if kind is CenterCropOrPad:
        fill = _fill_pixel(transform.fill)
        return None if fill is None else _CenterCrop(transform.size[0], transform.size[1], fill)
    return None


def _flatten(transform: Any) -> list[Any]:
    from torchvision import transforms

    if type(transform) is transforms.Compose:
        return [step for inner in transform.transforms for step in _flatten(inner)]
    return [transform]


def plan_device_transform(preprocess: Any, method: Method = "auto") -> DeviceTransform | None:
    """The tensor version of ``preprocess``, a ``Compose`` of resizes and crops, the RGB conversion, ToTensor and
    optionally Normalize; None when it holds anything else (then apply it with Pillow, image by image)."""
    from open_clip.transform import MaybeConvertMode, MaybeToTensor
    from torchvision import transforms

    if type(preprocess) is not transforms.Compose or pillow_vertical_first() is None:
        return None
    steps: list[_Step] = []
    transforms_left = _flatten(preprocess)
    while transforms_left and type(transforms_left[0]) not in (transforms.ToTensor, MaybeToTensor):
        transform = transforms_left.pop(0)
        if type(transform) is MaybeConvertMode and transform.mode == "RGB":
            continue  # the images are RGB already: Pillow's convert copies them
        step = _step(transform)
        if step is None:
            return None
        steps.append(step)
    if not transforms_left or len(transforms_left) > 2:
        return None
    to_tensor, normalize = transforms_left[0], transforms_left[1] if len(transforms_left) == 2 else None
    if normalize is not None and type(normalize) is not transforms.Normalize:
        return None
    try:
        # float64 holds means given as Python floats exactly; the conversion to the float dtype rounds them as torchvision does
        mean = None if normalize is None else torch.as_tensor(normalize.mean, dtype=torch.float64).clone()
        std = None if normalize is None else torch.as_tensor(normalize.std, dtype=torch.float64).clone()
    except (TypeError, ValueError, RuntimeError):
        return None
    plan = DeviceTransform(steps, mean, std, method)
    return plan if _same_floats(plan, to_tensor, normalize) else None


def _same_floats(plan: DeviceTransform, to_tensor: Any, normalize: Any) -> bool:
    """Whether the plan's conversion equals the model's own ToTensor and Normalize on every uint8 value of every channel.

    Each output float depends only on its channel and uint8 value, so this covers every input there is.
    """
    values = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2)
    try:
        expected = to_tensor(Image.fromarray(values, "RGB"))
        if normalize is not None:
            expected = normalize(expected)
    except (TypeError, ValueError, RuntimeError):
        return False
    conversion_only = DeviceTransform([], plan._mean, plan._std)
    return torch.equal(conversion_only(torch.from_numpy(values)[None])[0], expected)
