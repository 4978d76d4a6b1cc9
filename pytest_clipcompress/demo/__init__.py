"""Offline demo: a procedural image dataset and a micro CLIP trained on it.

Pretrained CLIP weights and public datasets cannot be downloaded on an
offline machine, so the plugin ships this small stand-in. Each image is a
square or a ring whose surface carries one of five patterns. The shape is
coarse (a ring has a hole) and survives any compression, but it is shared by
five classes each, so telling classes apart needs the pattern: none, one-pixel
stripes, one-pixel checks, sparse dots or two-pixel colour speckles. Those
live at the highest spatial frequencies (and, for the speckles, only in
chroma, which JPEG also subsamples 2x2), which is exactly what lossy JPEG
throws away: the speckles fade first (partly even at quality 100, since
Pillow subsamples chroma 4:2:0 at every quality), then checks and dots, and
the stripes last. The bundled model therefore scores high on clean images and
drops step by step as JPEG quality falls, like real CLIP on natural images.

The images are drawn by :mod:`.images` with numpy only, with integer or IEEE-exact float arithmetic,
so the same arguments give byte-identical arrays on any machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

__all__ = [
    "DEMO_CLASSES",
    "DEMO_IMAGE_SIZE",
    "DEMO_MODEL_CONFIG",
    "DEMO_MODEL_NAME",
    "DEMO_SEED",
    "DEMO_TEMPLATES",
    "DEMO_TEST_PER_CLASS",
    "DEMO_WEIGHTS",
]

#: The two coarse shapes and the five fine patterns whose pairs are the classes.
SHAPES: Final = ("square", "ring")
PATTERNS: Final = ("plain", "striped", "checkered", "dotted", "speckled")

#: Class names, shape-major: index ``5 * shape + pattern``.
DEMO_CLASSES: Final[tuple[str, ...]] = tuple(f"{pattern} {shape}" for shape in SHAPES for pattern in PATTERNS)

#: Prompt templates for zero-shot classification; ``{}`` takes a class name.
DEMO_TEMPLATES: Final[tuple[str, ...]] = (
    "a picture of a {}.",
    "a photo of a {}.",
    "an image of a {}.",
    "a drawing of a {}.",
    "a {}.",
)

#: Side of the square demo images in pixels (equals the model's input size).
DEMO_IMAGE_SIZE: Final[int] = 32

#: Images per class in the default test split.
DEMO_TEST_PER_CLASS: Final[int] = 40

#: Seed of the default test split.
DEMO_SEED: Final[int] = 0

_HERE: Final = Path(__file__).resolve().parent

#: open_clip model name of the bundled micro CLIP.
DEMO_MODEL_NAME: Final[str] = "clipcompress-demo"

#: open_clip model config; register it with ``open_clip.add_model_config``.
DEMO_MODEL_CONFIG: Final[Path] = _HERE / f"{DEMO_MODEL_NAME}.json"

#: Trained state_dict, loadable as ``pretrained=str(DEMO_WEIGHTS)``.
DEMO_WEIGHTS: Final[Path] = _HERE / f"{DEMO_MODEL_NAME}.pt"
