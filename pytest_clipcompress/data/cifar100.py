"""CIFAR-100's test split in the official "python version" layout (``cifar-100-python/test`` and
``meta``), the one torchvision downloads; its 100 class names come from the file's
``fine_label_names`` and its prompts are CLIP's published ensemble."""

from __future__ import annotations

from pathlib import Path

from .base import ArrayDataset, DatasetSpec, hash_files
from .cifar10 import CIFAR10_TEMPLATES, CifarKeys, cifar_arrays
from .downloads import Download, check_official, ensure_downloaded
from .safe_pickle import unpickle_dict

# The archive, its md5 and the test files' md5s are the ones torchvision's CIFAR100 checks.
CIFAR100_DOWNLOAD = Download(
    url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    filename="cifar-100-python.tar.gz",
    md5="eb9058c3a382ffc7106e4002c42a8d85",
    folder="cifar-100-python",
    files=("test", "meta"),
    checksums={"test": "f0ef6b0ae62326f3e7ffdfab6717acfc"},
)
CIFAR100_TEST_SIZE = 10000
CIFAR100_KEYS = CifarKeys("CIFAR-100", "fine_labels", "fine_label_names")

#: CLIP's prompt ensemble for CIFAR-100 (Radford et al. 2021, the notebook of prompt templates) is
#: CIFAR-10's 18 templates (CLIP_benchmark's en_zeroshot_classification_templates.json too).
CIFAR100_TEMPLATES = CIFAR10_TEMPLATES


def load_cifar100(root: Path, offline: bool) -> ArrayDataset:
    folder = ensure_downloaded(root, CIFAR100_DOWNLOAD, "cifar100", offline)
    test_path, meta_path = folder / "test", folder / "meta"
    batch, meta = unpickle_dict(test_path, "CIFAR-100"), unpickle_dict(meta_path, "CIFAR-100")
    data, labels, names = cifar_arrays(batch, meta, folder, test_path, CIFAR100_KEYS)
    check_official(test_path, CIFAR100_DOWNLOAD, full_size=len(data) == CIFAR100_TEST_SIZE)
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    # The file writes "aquarium_fish"; CLIP's prompts (and its notebook's class list) say "aquarium fish".
    classes = tuple(name.replace("_", " ") for name in names)
    return ArrayDataset("cifar100", classes, images, labels, hash_files([test_path, meta_path]), CIFAR100_TEMPLATES)


SPEC = DatasetSpec("cifar100", lambda source: load_cifar100(source.data_root, source.offline))
