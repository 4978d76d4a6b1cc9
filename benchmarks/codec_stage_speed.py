"""Measurement (h) of ``bench.py`` (issue 22): the codec stage against Pillow's own codec work.

For large images the plugin's CPU work is the codec stage (:mod:`pytest_clipcompress.engine.codec_stage`):
decode the dataset's image, JPEG-encode it, decode the JPEG, in worker processes that hand the pixels
to the main process. Two kinds of images, made here (no large real images are available offline):

- *photos*: an image folder of 500x375 JPEG files (quality 90) of smooth random scenes with fine
  grain, so that they compress like photographs (about 60 KB each);
- *96 px*: an in-memory array of 96x96 images of the same kind, as STL-10 holds them.

Each is measured three ways, images per second, repetitions interleaved:

- **Pillow alone**: one process doing the same work written plainly (``Image.open`` + ``load`` for
  the photos, ``Image.fromarray`` for the arrays; ``save`` to JPEG quality 75; ``Image.open`` +
  ``load`` of the JPEG), the cost the stage cannot go below;
- **the stage with 1 worker process** and **with 2**: ``ImagePipeline.codec_batches`` (the
  uncompressed and the JPEG pass at once, as an evaluation runs them), timed in the main process
  until the last batch has arrived; the workers are started before the timing (a session starts
  them once).

Reported: the stage's cost per image over Pillow's (1 worker), and the scaling ``2 workers /
Pillow alone``, whose target is >= 0.8 x 2 (issue 22: >= 0.8 x cores x the single-core throughput).
"""

from __future__ import annotations

import io
import statistics
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from timing import time_alternately

QUALITY = 75
TARGET_SCALING = 0.8


def scenes(count: int, height: int, width: int, seed: int) -> np.ndarray:
    """Smooth random scenes (coarse noise upscaled with Pillow's bicubic) with fine grain: photograph-like to JPEG."""
    rng = np.random.default_rng(seed)
    made = np.empty((count, height, width, 3), dtype=np.uint8)
    for i in range(count):
        coarse = Image.fromarray(rng.integers(0, 256, size=(max(2, height // 40), max(2, width // 40), 3), dtype=np.uint8))
        smooth = np.asarray(coarse.resize((width, height), Image.Resampling.BICUBIC), dtype=np.int16)
        made[i] = np.clip(smooth + rng.integers(-12, 13, size=smooth.shape), 0, 255).astype(np.uint8)
    return made


@dataclass
class StageFigures:
    kind: str
    images: int
    pillow_s: list[float] = field(default_factory=list)
    stage_s: dict[int, list[float]] = field(default_factory=dict)

    def per_second(self, times: list[float]) -> float:
        return self.images / statistics.median(times)

    @property
    def cost_ratio(self) -> float:
        """The stage's time per image with 1 worker over Pillow's alone (1.0: no overhead at all)."""
        return statistics.median(self.stage_s[1]) / statistics.median(self.pillow_s)

    @property
    def scaling(self) -> float:
        """The stage's throughput with 2 workers over Pillow's alone in one process (2.0: perfect)."""
        return self.per_second(self.stage_s[2]) / self.per_second(self.pillow_s)


def pillow_alone(sources: list[Callable[[], Image.Image]]) -> None:
    for source in sources:
        image = source()
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=QUALITY)
        with Image.open(io.BytesIO(buffer.getvalue())) as decoded:
            decoded.load()


def bench_stage(repeats: int, log: Callable[[str], None], photos: int = 96, small: int = 512) -> list[StageFigures]:
    from pytest_clipcompress.codecs.compression import Compression
    from pytest_clipcompress.data.base import ArrayDataset, ImageDataset
    from pytest_clipcompress.data.folder import load_image_folder

    compressions = (Compression("none"), Compression("jpeg", quality=QUALITY))
    with tempfile.TemporaryDirectory(prefix="clipcompress-stage-") as directory:
        folder = Path(directory)
        (folder / "scene").mkdir()
        for i, pixels in enumerate(scenes(photos, 375, 500, seed=1)):
            Image.fromarray(pixels).save(folder / "scene" / f"{i:04d}.jpg", quality=90)
        arrays = scenes(small, 96, 96, seed=2)
        datasets: list[tuple[str, ImageDataset, list[Callable[[], Image.Image]]]] = [
            ("photos 500x375 (image folder)", load_image_folder(folder), [lambda p=p: _opened(p) for p in sorted((folder / "scene").iterdir())]),
            (
                "96x96 (array, as STL-10)",
                ArrayDataset("stl-like", ("a",), arrays, np.zeros(len(arrays), dtype=np.int64), "s-0", ("{}",)),
                [lambda a=a: Image.fromarray(a) for a in arrays],
            ),
        ]
        results = [_measure(kind, dataset, sources, compressions, repeats, log) for kind, dataset, sources in datasets]
    return results


def _measure(kind: str, dataset: Any, sources: list[Callable[[], Image.Image]], compressions: tuple, repeats: int, log: Callable[[str], None]) -> StageFigures:
    from pytest_clipcompress.engine.pipeline import ImagePipeline

    figures = StageFigures(kind, len(sources), stage_s={1: [], 2: []})
    pipelines = {workers: ImagePipeline(workers, "cpu") for workers in (1, 2)}
    indices = np.arange(len(sources))
    batch = 16 if "photos" in kind else 64

    def stage(pipeline: ImagePipeline) -> None:
        with pipeline.codec_batches(dataset, indices, compressions, batch) as batches:
            for _ in batches:
                pass

    for pipeline in pipelines.values():
        stage(pipeline)  # starts the workers, outside the timing
    pillow_alone(sources[:4])
    runs: dict[str, tuple[Callable[[Any], object], list[float]]] = {
        "pillow": (lambda _: pillow_alone(sources), figures.pillow_s),
        "stage 1": (lambda _: stage(pipelines[1]), figures.stage_s[1]),
        "stage 2": (lambda _: stage(pipelines[2]), figures.stage_s[2]),
    }
    time_alternately(runs, repeats, log, f"(h) {kind}")
    for pipeline in pipelines.values():
        pipeline.close()
    return figures


def _opened(path: Path) -> Image.Image:
    with Image.open(path) as image:
        image.load()
        return image.convert("RGB")
