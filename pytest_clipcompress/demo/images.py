"""Drawing the demo images: numpy only, with integer or IEEE-exact float arithmetic, so the same
arguments give byte-identical arrays on any machine (the package docstring says what they show)."""

from __future__ import annotations

from typing import Final

import numpy as np

from . import DEMO_CLASSES, DEMO_IMAGE_SIZE, PATTERNS, SHAPES

__all__ = ["generate_demo_images"]

# Stable per-split stream ids (never hash(), which is salted per process).
_SPLIT_IDS: Final = {"train": 1, "test": 2}

# ITU-R BT.601 luma weights, as JPEG uses for its Y channel.
_LUMA: Final = np.array([0.299, 0.587, 0.114])


def generate_demo_images(split: str, n_per_class: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Draw the demo dataset.

    Args:
        split: ``"train"`` or ``"test"``; the two use disjoint random streams.
        n_per_class: number of images per class (at least 1).
        seed: extra seed; ``(seed, split)`` fully determines the output.

    Returns:
        ``(images, labels)``: ``(N, S, S, 3)`` uint8 RGB images with
        ``S = DEMO_IMAGE_SIZE`` and ``(N,)`` int64 labels indexing
        ``DEMO_CLASSES``, where ``N = n_per_class * len(DEMO_CLASSES)``.
        Labels are interleaved (0, 1, ..., 9, 0, 1, ...).

    Raises:
        ValueError: on an unknown split or ``n_per_class < 1``.
    """
    if split not in _SPLIT_IDS:
        raise ValueError(f"split must be one of {sorted(_SPLIT_IDS)}, got {split!r}")
    if isinstance(n_per_class, bool) or not isinstance(n_per_class, (int, np.integer)):
        raise ValueError(f"n_per_class must be an int, got {n_per_class!r}")
    if n_per_class < 1:
        raise ValueError(f"n_per_class must be >= 1, got {n_per_class}")

    rng = np.random.default_rng([int(seed), _SPLIT_IDS[split]])
    n_classes = len(DEMO_CLASSES)
    labels = np.tile(np.arange(n_classes, dtype=np.int64), int(n_per_class))
    images = np.empty((labels.size, DEMO_IMAGE_SIZE, DEMO_IMAGE_SIZE, 3), np.uint8)
    for i, label in enumerate(labels):
        images[i] = _draw(rng, int(label))
    return images, labels


def _draw(rng: np.random.Generator, label: int) -> np.ndarray:
    """Draw one image of class ``label``."""
    size = DEMO_IMAGE_SIZE
    shape, pattern = divmod(label, len(PATTERNS))
    y, x = np.mgrid[0:size, 0:size]

    # Background: a random colour with a gentle linear ramp (coarse, JPEG-proof).
    bg = rng.uniform(40.0, 215.0, 3)
    ramp = rng.uniform(-1.0, 1.0, 2)
    img = bg + (ramp[0] * (x - size / 2) + ramp[1] * (y - size / 2))[..., None]

    # Foreground colour kept clearly apart from the background so the shape is
    # always visible; mid-range so added texture is not clipped away.
    while True:
        fg = rng.uniform(50.0, 205.0, 3)
        if np.abs(fg - bg).sum() >= 90.0:
            break

    half = rng.uniform(9.0, 12.0)
    cy, cx = rng.uniform(half + 1.5, size - half - 1.5, 2)
    if SHAPES[shape] == "square":
        mask = (np.abs(y + 0.5 - cy) <= half) & (np.abs(x + 0.5 - cx) <= half)
    else:
        # A wide hole keeps the ring/square difference coarse, so that shape is
        # never the part of the label that compression erases.
        dist2 = (y + 0.5 - cy) ** 2 + (x + 0.5 - cx) ** 2
        hole = half * rng.uniform(0.45, 0.55)
        mask = (dist2 <= (half * 1.1) ** 2) & (dist2 >= hole**2)

    surface = fg + _pattern(rng, PATTERNS[pattern], y, x)
    img = np.where(mask[..., None], surface, img)

    # Sensor-like noise of random strength (none to mild) on every class, so
    # neither noise nor its absence tells anything about the pattern.
    level = rng.integers(4)
    noise = rng.integers(-level, level + 1, img.shape)
    return np.clip(np.rint(img) + noise, 0, 255).astype(np.uint8)


def _pattern(rng: np.random.Generator, pattern: str, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Fine texture (H, W, 3) added on top of the shape's colour."""
    size = y.shape[0]
    if pattern == "plain":
        return np.zeros((size, size, 3))
    if pattern == "striped":
        # One-pixel stripes: the highest vertical or horizontal frequency.
        amp = rng.uniform(5.0, 14.0)
        along = y if rng.integers(2) else x
        wave = 1 - 2 * ((along + rng.integers(2)) % 2)
        return np.repeat((amp * wave)[..., None], 3, axis=2)
    if pattern == "checkered":
        # One-pixel checkerboard: the highest diagonal frequency.
        amp = rng.uniform(6.0, 16.0)
        wave = 1 - 2 * ((x + y + rng.integers(2)) % 2)
        return np.repeat((amp * wave)[..., None], 3, axis=2)
    if pattern == "dotted":
        # Single-pixel dots on a 3-pixel lattice, light or dark.
        amp = rng.uniform(16.0, 40.0) * (1 if rng.integers(2) else -1)
        oy, ox = rng.integers(3, size=2)
        dots = ((y % 3) == oy) & ((x % 3) == ox)
        return np.repeat((amp * dots)[..., None], 3, axis=2)
    # "speckled": random colour flecks on the 2x2 grid JPEG subsamples chroma
    # on, swinging along a random direction with zero luma, so they exist
    # only in chroma. Faint flecks are included because JPEG's chroma
    # upsampling roughly halves them even at quality 100.
    amp = rng.uniform(8.0, 36.0)
    # Elementwise sums rather than BLAS dot products keep this bit-exact.
    direction = rng.uniform(-1.0, 1.0, 3)
    direction -= (direction * _LUMA).sum() / (_LUMA * _LUMA).sum() * _LUMA
    direction /= np.sqrt((direction * direction).sum())
    flecks = rng.choice(np.array([-1.0, 1.0]), size=(size // 2, size // 2))
    flecks = np.repeat(np.repeat(flecks, 2, axis=0), 2, axis=1)
    return amp * flecks[..., None] * direction
