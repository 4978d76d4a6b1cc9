"""The model's own preprocessing, applied per batch instead of one torch call chain per image.

open_clip's eval transform is ``Compose([Resize, CenterCrop, MaybeConvertMode, MaybeToTensor,
Normalize])``. Run image by image, the last two steps are several small torch operations per image,
each an OpenMP parallel region: on a few shared cores they cost more than the codec and, for a
small model, more than the forward pass.

- ``exact`` (the default): every step before the tensor conversion is the model's own transform
  object applied to the Pillow image, as in the reference loop. The conversion and normalisation
  (``x / 255``, then ``(x - mean) / std`` per channel, in float32) run once per batch as numpy
  ufuncs, with no torch call (and no OpenMP parallel region) outside the model. Each output float
  depends only on its (channel, uint8 value), so the plan checks, once, that this arithmetic equals
  the model's own ToTensor and Normalize objects on an image holding all 256 values in every
  channel: that is every input there is, so the batches are bit-identical to the per-image
  pipeline; a transform that computes anything else is applied per image instead.
- ``fast`` (opt-in): the decoded images stay uint8 arrays at their native size; resize and crop run
  batched on tensors (torchvision's tensor ``resize`` with antialiasing, in the model's own size and
  interpolation), on the model's device. The pixels differ slightly from Pillow's resize, so
  predictions may differ; ``benchmarks/bench.py`` measures by how much.

Neither path changes the pixels the codec produced: the round trip stays Pillow's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from ..errors import ConfigError

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class BatchPreprocess:
    """A model's eval transform split into its per-image Pillow steps and its batched tensor tail."""

    pil_steps: tuple[Callable[[Image.Image], Image.Image], ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    unchanged_size: tuple[int, int] | None = None  # (width, height) of RGB images the Pillow steps return as they are

    def pil_array(self, image: Image.Image) -> np.ndarray:
        """The model's Pillow steps (resize, crop, mode), as an (H, W, 3) uint8 array."""
        if image.size == self.unchanged_size and image.mode == "RGB":
            return np.asarray(image)  # e.g. CIFAR-10's 32 px into a 32 px model: the steps would copy it
        for step in self.pil_steps:
            image = step(image)
        if image.mode != "RGB":  # the datasets and the codecs hand over RGB; anything else is converted
            image = image.convert("RGB")
        return np.asarray(image)

    def normalise_arrays(self, arrays: Sequence[np.ndarray]) -> np.ndarray:
        """Equal-sized (H, W, 3) uint8 arrays -> the (B, 3, H, W) float32 batch the model's transform makes."""
        batch = np.stack(arrays).transpose(0, 3, 1, 2)
        out = np.empty(batch.shape, dtype=np.float32)
        # torchvision's order of operations, each correctly rounded in float32: ToTensor divides by
        # 255, Normalize subtracts the mean and divides by the std (a reciprocal would round differently).
        np.divide(batch, np.float32(255), out=out, dtype=np.float32)
        np.subtract(out, np.asarray(self.mean, dtype=np.float32).reshape(3, 1, 1), out=out)
        np.divide(out, np.asarray(self.std, dtype=np.float32).reshape(3, 1, 1), out=out)
        return out

    def normalise(self, batch: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) uint8 -> contiguous float32, with torchvision's ToTensor and Normalize arithmetic.

        ``normalise_arrays`` in torch, for the fast path's tensors on the model's device.
        """
        import torch

        tensor = batch.contiguous().to(dtype=torch.float32).div(255)
        mean = torch.as_tensor(self.mean, dtype=torch.float32, device=tensor.device).view(-1, 1, 1)
        std = torch.as_tensor(self.std, dtype=torch.float32, device=tensor.device).view(-1, 1, 1)
        return tensor.sub_(mean).div_(std)

    def fast(self, arrays: Sequence[np.ndarray], device: str) -> torch.Tensor:
        """Resize and crop on tensors, batched (one call per distinct input size), then normalise."""
        import torch
        from torchvision.transforms import functional

        def tensor_steps(batch: torch.Tensor) -> torch.Tensor:
            batch = batch.to(device, non_blocking=True).permute(0, 3, 1, 2)
            for step in self.pil_steps:
                batch = _tensor_step(step, batch, functional)
            return batch

        shapes = {array.shape for array in arrays}
        if len(shapes) == 1:
            resized = tensor_steps(torch.from_numpy(np.stack(arrays)))
        else:  # an image folder with mixed sizes: each image on its own, still on tensors
            resized = torch.cat([tensor_steps(torch.from_numpy(np.stack([array]))) for array in arrays])
        return self.normalise(resized)


def batch_preprocess(preprocess: Callable) -> BatchPreprocess | None:
    """Split ``preprocess`` when it ends in ToTensor + Normalize; None means apply it per image."""
    from torchvision import transforms

    steps = list(getattr(preprocess, "transforms", ()))
    if len(steps) < 2 or type(steps[-2]) not in (transforms.ToTensor, _maybe_to_tensor()) or not isinstance(steps[-1], transforms.Normalize):
        return None
    to_tensor, normalize = steps[-2], steps[-1]
    mean, std = tuple(float(v) for v in normalize.mean), tuple(float(v) for v in normalize.std)
    if len(mean) != 3 or len(std) != 3:
        return None
    pil_steps = tuple(steps[:-2])
    plan = BatchPreprocess(pil_steps, mean, std, _unchanged_size(pil_steps))
    values = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2)  # one row: 0..255 in every channel
    models_own = normalize(to_tensor(Image.fromarray(values, "RGB"))).numpy()
    return plan if np.array_equal(plan.normalise_arrays([values])[0], models_own) else None


def _unchanged_size(pil_steps: tuple[Callable[[Image.Image], Image.Image], ...]) -> tuple[int, int] | None:
    """The RGB image size the steps leave as it is, when they are only Resize, CenterCrop and the RGB conversion.

    Pillow's ``resize`` to an image's own size returns a copy and a crop of the whole image is the
    image, whatever its pixels; the probe (noise at the final crop size) checks the size arithmetic.
    """
    from torchvision import transforms

    crops = [step for step in pil_steps if isinstance(step, transforms.CenterCrop)]
    if not crops or not all(isinstance(step, (transforms.Resize, transforms.CenterCrop, _maybe_convert_mode())) for step in pil_steps):
        return None
    height, width = crops[-1].size
    probe = Image.fromarray(np.random.default_rng(0).integers(0, 256, size=(height, width, 3), dtype=np.uint8), "RGB")
    out = probe
    for step in pil_steps:
        out = step(out)
    return (width, height) if out.size == probe.size and np.array_equal(np.asarray(out), np.asarray(probe)) else None


def check_fast_supported(plan: BatchPreprocess | None, model_label: str) -> None:
    """The tensor path knows Resize, CenterCrop and the RGB conversion; anything else is an error."""
    from torchvision import transforms

    supported = (transforms.Resize, transforms.CenterCrop, _maybe_convert_mode())
    unknown = [type(step).__name__ for step in (plan.pil_steps if plan else ()) if not isinstance(step, supported)]
    if plan is None or unknown:
        what = ", ".join(unknown) if unknown else "a pipeline that does not end in ToTensor + Normalize"
        raise ConfigError(
            f"--clip-preprocess fast: the preprocessing of {model_label} has {what}, which the tensor path does not "
            "reproduce; use --clip-preprocess exact (the default)"
        )


def _tensor_step(step: Any, batch: torch.Tensor, functional: Any) -> torch.Tensor:
    from torchvision import transforms

    if isinstance(step, transforms.Resize):
        return functional.resize(batch, step.size, step.interpolation, step.max_size, antialias=True)
    if isinstance(step, transforms.CenterCrop):
        return functional.center_crop(batch, list(step.size))
    return batch  # the RGB conversion: the arrays are RGB already


def _maybe_to_tensor() -> type:
    from open_clip.transform import MaybeToTensor

    return MaybeToTensor


def _maybe_convert_mode() -> type:
    from open_clip.transform import MaybeConvertMode

    return MaybeConvertMode
