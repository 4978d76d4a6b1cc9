"""Independent reference computations the tests compare the package against.

Nothing here imports ``pytest_clipcompress``: each function is the straightforward computation
written from the published definition (or a third-party library), so a bug in the package cannot
hide in a shared helper.
"""

from __future__ import annotations

import io
import math
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


def reference_predictions(
    config: Path, model_name: str, checkpoint: Path, root: Path, quality: int | None, templates: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Zero-shot predictions and labels on an official CIFAR-10 test file, optionally JPEG round-tripped.

    Pillow, open_clip and torch only: unpickle the official file, ``Image.save``/``Image.open``, the
    model's own preprocess, ``encode_image``/``encode_text``, 100 x cosine similarity, argmax.
    """
    import open_clip

    open_clip.add_model_config(config)
    model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=str(checkpoint))
    model.eval()
    tokenizer = open_clip.get_tokenizer(model_name)
    with open(root / "cifar-10-batches-py" / "test_batch", "rb") as handle:
        batch = pickle.load(handle, encoding="bytes")
    with open(root / "cifar-10-batches-py" / "batches.meta", "rb") as handle:
        # The official files are Python 2 pickles: keys and class names come back as bytes.
        classes = [name.decode("ascii") for name in pickle.load(handle, encoding="bytes")[b"label_names"]]
    images = batch[b"data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return zero_shot_predictions(model, preprocess, tokenizer, images, classes, templates, quality), np.asarray(batch[b"labels"])


def zero_shot_predictions(
    model: Any, preprocess: Any, tokenizer: Any, images: np.ndarray, classes: Sequence[str], templates: Sequence[str], quality: int | None
) -> np.ndarray:
    """CLIP's zero-shot classification as published: optional JPEG round trip through Pillow, the
    model's preprocess, L2-normalised image embeddings against the renormalised mean of the
    L2-normalised template embeddings per class, 100 x cosine similarity, argmax."""
    import torch

    tensors = []
    for array in images:
        image = Image.fromarray(array)
        if quality is not None:
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=quality)
            image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
        tensors.append(preprocess(image))
    with torch.no_grad():
        text = []
        for name in classes:
            features = model.encode_text(tokenizer([t.format(name) for t in templates]))
            features = features / features.norm(dim=-1, keepdim=True)
            mean = features.mean(dim=0)
            text.append(mean / mean.norm())
        image_features = model.encode_image(torch.stack(tensors))
        image_features = image_features / image_features.norm(dim=-1, keepdim=True)
        logits = 100.0 * image_features @ torch.stack(text).T
    return logits.argmax(dim=1).numpy()


def softmax(logits: Sequence[float]) -> list[float]:
    """exp(x_i) / sum_j exp(x_j), term by term in floating point (shifted by the maximum, which cancels)."""
    top = max(logits)
    terms = [math.exp(value - top) for value in logits]
    total = sum(terms)
    return [term / total for term in terms]


def wilson_interval(correct: int, n: int) -> tuple[float, float]:
    """The 95% Wilson score interval, from scipy's binomial test."""
    from scipy.stats import binomtest

    interval = binomtest(correct, n).proportion_ci(confidence_level=0.95, method="wilson")
    return float(interval.low), float(interval.high)
