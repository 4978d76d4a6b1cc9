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
from statistics import NormalDist
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


def hand_wilson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson's (1927) score interval in closed form."""
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def hand_mcnemar(b: int, c: int) -> float:
    """McNemar's exact two-sided p from binomial coefficients: the discordant pairs as a fair coin."""
    m = b + c
    if m == 0:
        return 1.0
    tail = sum(math.comb(m, k) for k in range(min(b, c) + 1)) / 2**m
    return min(1.0, 2 * tail) if b != c else 1.0


def hand_newcombe(n11: int, n12: int, n21: int, n22: int, confidence: float = 0.95) -> tuple[float, float]:
    """Newcombe (1998) method 10 for p1 - p2, p1 = (n11 + n12)/N, p2 = (n11 + n21)/N (Fagerland et al. 2017, ch. 8)."""
    total = n11 + n12 + n21 + n22
    p1, p2 = (n11 + n12) / total, (n11 + n21) / total
    l1, u1 = hand_wilson(n11 + n12, total, confidence)
    l2, u2 = hand_wilson(n11 + n21, total, confidence)
    rows, cols = (n11 + n12, n21 + n22), (n11 + n21, n12 + n22)
    if 0 in rows or 0 in cols:
        psi = 0.0
    else:
        a = n11 * n22 - n12 * n21
        product = math.sqrt(rows[0] * rows[1] * cols[0] * cols[1])
        psi = (a - total / 2) / product if a > total / 2 else (0.0 if a >= 0 else a / product)
    lower = (p1 - p2) - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2 - 2 * psi * (p1 - l1) * (u2 - p2))
    upper = (p1 - p2) + math.sqrt((p2 - l2) ** 2 + (u1 - p1) ** 2 - 2 * psi * (p2 - l2) * (u1 - p1))
    return max(-1.0, lower), min(1.0, upper)


def clip_benchmark_top_k(logits: np.ndarray, labels: np.ndarray, k: int) -> float:
    """CLIP_benchmark's ``accuracy(output, target, topk=(k,))``: ``torch.topk`` of the logits, then the
    share of targets among the first ``k`` predictions (clip_benchmark/metrics/zeroshot_classification.py)."""
    import torch

    output, target = torch.from_numpy(logits), torch.from_numpy(labels)
    pred = output.topk(k, 1, True, True)[1].t()
    correct = pred.eq(target.view(1, -1).expand_as(pred))
    return float(correct[:k].reshape(-1).float().sum(0).item()) / len(target)


def balanced_accuracy(labels: Sequence[int], predictions: Sequence[int]) -> float:
    """scikit-learn's ``balanced_accuracy_score`` from its definition: the confusion matrix over the
    labels that occur in either sequence, the diagonal over each row's total, rows with no true
    sample (classes only ever predicted) dropped, then the plain mean."""
    classes = sorted(set(labels) | set(predictions))
    matrix = {(t, p): 0 for t in classes for p in classes}
    for t, p in zip(labels, predictions, strict=True):
        matrix[(t, p)] += 1
    recalls = []
    for c in classes:
        row = sum(matrix[(c, p)] for p in classes)
        if row:
            recalls.append(matrix[(c, c)] / row)
    return sum(recalls) / len(recalls)
