"""Images per second on the CPU: the model's own preprocess image by image against DeviceTransform on batches.

Usage: python benchmarks/device_transform_speed.py [--cifar-root DIR] [--repeats N]

open_clip's eval transform at 224 px (bicubic shortest side, centre crop, ToTensor, Normalize), on
the 32 px CIFAR-10 sample (noise of that size when the sample is absent) and on 480x360 images (noise;
the speed of both paths does not depend on the content). The per-image path applies ``preprocess``
to each Pillow image and stacks the tensors; the batched path takes the same pixels as one
(64, H, W, 3) uint8 tensor: banded integer sums (the CPU default), the float64 matrix products (the
CUDA default), and the banded sums writing into a reused output tensor. Each figure is the median
of ``--repeats`` runs of one batch of 64, at 1 and 2 torch threads. Every batched result is checked
equal to the per-image one before it is timed. Runs in well under a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import pickle
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import open_clip
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from pytest_clipcompress.engine.device_transform import plan_device_transform  # noqa: E402 - importable only after the sys.path line

BATCH = 64


def cifar_images(root: Path) -> np.ndarray:
    path = root / "cifar-10-batches-py" / "test_batch"
    if not path.exists():
        print(f"{path} is absent: 32 px noise instead")
        return np.random.default_rng(0).integers(0, 256, size=(BATCH, 32, 32, 3), dtype=np.uint8)
    with path.open("rb") as handle:
        data = pickle.load(handle, encoding="bytes")[b"data"]
    return np.ascontiguousarray(np.asarray(data, dtype=np.uint8)[:BATCH].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))


def median_seconds(run: Callable[[], object], repeats: int) -> float:
    run()  # warm-up: plan caches, allocator
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def per_image(preprocess: Callable[[Image.Image], torch.Tensor], images: list[Image.Image]) -> torch.Tensor:
    return torch.stack([preprocess(image) for image in images])


def compare(name: str, arrays: np.ndarray, preprocess: Callable[[Image.Image], torch.Tensor], repeats: int) -> None:
    images = [Image.fromarray(array, "RGB") for array in arrays]
    tensor = torch.from_numpy(arrays)
    expected = per_image(preprocess, images)
    runs: dict[str, Callable[[], object]] = {"per-image preprocess": partial(per_image, preprocess, images)}
    for method in ("banded", "dense"):
        plan = plan_device_transform(preprocess, method)
        assert plan is not None and torch.equal(plan(tensor), expected), method
        runs[f"batched, {method}"] = partial(plan, tensor)
        if method == "banded":
            runs["batched, banded, reused out"] = partial(plan, tensor, out=torch.empty_like(expected))
    for threads in (1, 2):
        torch.set_num_threads(threads)
        speeds = {label: BATCH / median_seconds(run, repeats) for label, run in runs.items()}
        for label, speed in speeds.items():
            print(f"{name:22} threads {threads}  {label:28} {speed:8.0f}  ({speed / speeds['per-image preprocess']:.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cifar-root", type=Path, default=ROOT.parent / "shared" / "datasets" / "cifar10-test-sample")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    preprocess = open_clip.image_transform(224, is_train=False)
    print(f"torch {torch.__version__}, batch {BATCH}, median of {args.repeats} runs, images/s (ratio to the per-image path at the same threads)")
    print(f"load average before: {os.getloadavg()[0]:.2f} (other processes on the cores slow the 2-thread runs most: OpenMP waits on them)")
    compare("32 px CIFAR-10 -> 224", cifar_images(args.cifar_root), preprocess, args.repeats)
    compare("480x360 -> 224", np.random.default_rng(1).integers(0, 256, size=(BATCH, 360, 480, 3), dtype=np.uint8), preprocess, args.repeats)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
