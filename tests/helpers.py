"""What several test modules share: paths of the test assets and the real samples, and writers of
small datasets in the official on-disk formats. Test modules import from here, never from each
other or from conftest.py (which only holds fixtures)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

ASSETS = Path(__file__).parent / "assets"
TINY_CONFIG = ASSETS / "tiny-clip.json"
TINY_MODEL = "tiny-clip"
SHARED_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
CIFAR_SAMPLE = SHARED_DATASETS / "cifar10-test-sample"
IMAGE_FOLDER_SAMPLE = SHARED_DATASETS / "cifar10-test-jpeg-q75-folder"

CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
STL_CLASSES = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]


def write_cifar10(root: Path, images: np.ndarray, labels: list[int]) -> Path:
    """The official python layout: Python-2 style pickles with bytes keys, planar R, G, B rows."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    data = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)
    batch = {b"batch_label": b"testing batch 1 of 1", b"labels": labels, b"data": data, b"filenames": [b"x.png"] * len(labels)}
    with open(folder / "test_batch", "wb") as handle:
        pickle.dump(batch, handle, protocol=2)
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump({b"label_names": [name.encode() for name in CIFAR_CLASSES], b"num_vis": 3072}, handle, protocol=2)
    return folder


def write_stl10(root: Path, images: np.ndarray, labels: list[int]) -> Path:
    """The official binary layout: each image 3x96x96, column-major per channel; labels 1..10."""
    folder = root / "stl10_binary"
    folder.mkdir(parents=True)
    images.transpose(0, 3, 2, 1).astype(np.uint8).tofile(folder / "test_X.bin")
    np.asarray(labels, dtype=np.uint8).tofile(folder / "test_y.bin")
    (folder / "class_names.txt").write_text("\n".join(STL_CLASSES) + "\n")
    return folder


def random_images(count: int, side: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(count, side, side, 3), dtype=np.uint8)
