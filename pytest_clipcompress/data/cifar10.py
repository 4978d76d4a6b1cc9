"""CIFAR-10's test split in the official "python version" layout (``cifar-10-batches-py/test_batch``
and ``batches.meta``), the one torchvision downloads; its prompts are CLIP's published ensemble."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from ..inputs import display_text
from .base import ArrayDataset, DatasetSpec, decode_names, hash_files
from .downloads import Download, check_official, ensure_downloaded
from .safe_pickle import unpickle_dict

CIFAR10_DOWNLOAD = Download(
    url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    filename="cifar-10-python.tar.gz",
    md5="c58f30108f718f92721af3b95e74349a",
    folder="cifar-10-batches-py",
    files=("test_batch", "batches.meta"),
    checksums={"test_batch": "40351d587109b95175f43aff81a1287e"},
)
CIFAR10_TEST_SIZE = 10000

#: CLIP's prompt ensemble for CIFAR-10 (Radford et al. 2021, the notebook of prompt templates).
CIFAR10_TEMPLATES = (
    "a photo of a {}.",
    "a blurry photo of a {}.",
    "a black and white photo of a {}.",
    "a low contrast photo of a {}.",
    "a high contrast photo of a {}.",
    "a bad photo of a {}.",
    "a good photo of a {}.",
    "a photo of a small {}.",
    "a photo of a big {}.",
    "a photo of the {}.",
    "a blurry photo of the {}.",
    "a black and white photo of the {}.",
    "a low contrast photo of the {}.",
    "a high contrast photo of the {}.",
    "a bad photo of the {}.",
    "a good photo of the {}.",
    "a photo of the small {}.",
    "a photo of the big {}.",
)


@dataclass(frozen=True)
class CifarArchive:
    """A CIFAR "python version" archive: where its test split, labels and class names are, and the dataset it makes."""

    name: str  # the dataset's name
    what: str  # its name in messages
    download: Download  # its files: the test split's, then the class names'
    labels: str  # the keys of the labels and the class names
    names: str
    test_size: int
    templates: tuple[str, ...]
    underscores_are_spaces: bool = False  # CIFAR-100 writes "aquarium_fish" where CLIP's prompts say "aquarium fish"


def load_cifar(root: Path, offline: bool, archive: CifarArchive) -> ArrayDataset:
    """The archive's test split under ``root`` (downloaded unless ``offline``), checked before anything is allocated."""
    folder = ensure_downloaded(root, archive.download, archive.name, offline)
    data_path, meta_path = (folder / name for name in archive.download.files)
    batch, meta = unpickle_dict(data_path, archive.what), unpickle_dict(meta_path, archive.what)
    data, labels, classes = cifar_arrays(batch, meta, folder, data_path, archive)
    check_official(data_path, archive.download, full_size=len(data) == archive.test_size)
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    if archive.underscores_are_spaces:
        classes = tuple(name.replace("_", " ") for name in classes)
    return ArrayDataset(archive.name, classes, images, labels, hash_files([data_path, meta_path]), archive.templates)


CIFAR10 = CifarArchive("cifar10", "CIFAR-10", CIFAR10_DOWNLOAD, "labels", "label_names", CIFAR10_TEST_SIZE, CIFAR10_TEMPLATES)


def load_cifar10(root: Path, offline: bool) -> ArrayDataset:
    return load_cifar(root, offline, CIFAR10)


def cifar_arrays(batch: dict, meta: dict, folder: Path, batch_path: Path, archive: CifarArchive) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Data, labels and class names, checked for shape, type and range before anything is allocated.

    A file that passes the pickle guard may still claim anything: object arrays of huge numbers,
    labels as an (N, 1) column, pixel values of 300. Each is the clean layout error, never a
    MemoryError, an OverflowError or a silently wrong accuracy.
    """

    def layout(problem: str) -> DatasetError:
        return DatasetError(f"{folder} does not have the {archive.what} python layout ({problem}); delete it and download again")

    try:
        data, raw_labels, names = batch["data"], batch[archive.labels], meta[archive.names]
    except KeyError as error:
        raise layout(f"no {error}") from None
    if not isinstance(data, np.ndarray) or data.dtype.kind not in "iu" or data.ndim != 2:
        shown = f"an array of {data.dtype} with shape {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise layout(f"data must be a uint8 array of shape (N, 3072), found {shown}")
    if data.shape[1] != 3072 or data.shape[0] == 0:
        raise DatasetError(f"{batch_path} holds data of shape {data.shape}; expected (N, 3072) with N labels")
    if isinstance(raw_labels, np.ndarray):
        if raw_labels.ndim != 1 or raw_labels.dtype.kind not in "iu":
            raise layout(f"labels must be a flat list of integers, found an array of {raw_labels.dtype} with shape {raw_labels.shape}")
    elif not isinstance(raw_labels, list) or not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) for n in raw_labels):
        raise layout(f"labels must be a flat list of integers, found {type(raw_labels).__name__}")
    if len(raw_labels) != len(data):
        raise DatasetError(f"{batch_path} holds data of shape {data.shape} with {len(raw_labels)} labels; expected (N, 3072) with N labels")
    if not isinstance(names, (list, tuple)) or not names or not all(isinstance(n, (bytes, str)) for n in names):
        raise layout(f"{archive.names} must be a list of class names")
    classes = tuple(display_text(decode_names(n) if isinstance(n, bytes) else n) for n in names)
    # Range first (Python ints may be any size), then the conversion cannot overflow.
    if min(raw_labels) < 0 or max(raw_labels) >= len(classes):
        raise DatasetError(f"{batch_path} has labels outside 0..{len(classes) - 1}")
    labels = np.asarray(raw_labels, dtype=np.int64)
    if data.dtype != np.uint8 and (data.min() < 0 or data.max() > 255):
        raise layout(f"pixel values must lie in 0..255, found {data.min()}..{data.max()}")
    return data.astype(np.uint8, copy=False), labels, classes


SPEC = DatasetSpec("cifar10", lambda source: load_cifar10(source.data_root, source.offline))
