"""The bundled procedural demo set (``demo``): drawn on the fly, the same bytes on every machine."""

from __future__ import annotations

import hashlib

from ..demo import DEMO_CLASSES, DEMO_SEED, DEMO_TEMPLATES, DEMO_TEST_PER_CLASS
from .base import ArrayDataset, DatasetSpec


def load_demo() -> ArrayDataset:
    from ..demo.images import generate_demo_images

    images, labels = generate_demo_images("test", DEMO_TEST_PER_CLASS, DEMO_SEED)
    digest = hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest()[:16]
    return ArrayDataset("demo", tuple(DEMO_CLASSES), images, labels, f"demo-{digest}", tuple(DEMO_TEMPLATES))


SPEC = DatasetSpec("demo", lambda source: load_demo())
