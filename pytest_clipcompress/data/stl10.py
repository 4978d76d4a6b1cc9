"""STL-10's test split in the official binary layout (``stl10_binary/test_X.bin``, ``test_y.bin``,
``class_names.txt``), memory-mapped; its prompts are CLIP's published ensemble."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DatasetError
from .base import DatasetSpec, MappedDataset, decode_names, hash_files
from .downloads import Download, check_official, ensure_downloaded

STL10_DOWNLOAD = Download(
    url="http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz",
    filename="stl10_binary.tar.gz",
    md5="91f7769df0f17e558f3565bffb0c7dfb",
    folder="stl10_binary",
    files=("test_X.bin", "test_y.bin", "class_names.txt"),
    checksums={"test_X.bin": "7f263ba9f9e0b06b93213547f721ac82", "test_y.bin": "36f9794fa4beb8a2c72628de14fa638e"},
)

#: CLIP's prompt ensemble for STL-10.
STL10_TEMPLATES = ("a photo of a {}.", "a photo of the {}.")

STL10_IMAGE_BYTES = 3 * 96 * 96
STL10_TEST_SIZE = 8000


def load_stl10(root: Path, offline: bool) -> MappedDataset:
    folder = ensure_downloaded(root, STL10_DOWNLOAD, "stl10", offline)
    x_path, y_path, names_path = folder / "test_X.bin", folder / "test_y.bin", folder / "class_names.txt"
    size = x_path.stat().st_size
    if size == 0 or size % STL10_IMAGE_BYTES:
        raise DatasetError(f"{x_path} has {size} bytes, not a whole number of 3x96x96 images; it is truncated or corrupt: delete it and download again")
    count = size // STL10_IMAGE_BYTES
    labels = np.fromfile(y_path, dtype=np.uint8).astype(np.int64) - 1
    classes = tuple(line.strip() for line in decode_names(names_path.read_bytes()).splitlines() if line.strip())
    if len(labels) != count:
        raise DatasetError(f"{y_path} has {len(labels)} labels for {count} images in {x_path}; the files do not belong together")
    if len(classes) != 10 or labels.min() < 0 or labels.max() >= len(classes):
        raise DatasetError(f"{folder}: expected 10 class names and labels 1..10; found {len(classes)} names and labels {labels.min() + 1}..{labels.max() + 1}")
    full_size = count == STL10_TEST_SIZE
    check_official(x_path, STL10_DOWNLOAD, full_size)
    check_official(y_path, STL10_DOWNLOAD, full_size)
    # Each image is stored channel by channel, column-major: (N, C, W, H) -> (N, H, W, C).
    fingerprint = hash_files([x_path, y_path, names_path])
    return MappedDataset("stl10", classes, x_path, (count, 3, 96, 96), (0, 3, 2, 1), labels, fingerprint, STL10_TEMPLATES)


SPEC = DatasetSpec("stl10", lambda source: load_stl10(source.data_root, source.offline))
