"""CIFAR-100's test split in the official "python version" layout (``cifar-100-python/test`` and
``meta``), the one torchvision downloads; its 100 class names come from the file's
``fine_label_names`` and its prompts are CLIP's published ensemble."""

from __future__ import annotations

from pathlib import Path

from .base import ArrayDataset, DatasetSpec
from .cifar10 import CIFAR10_TEMPLATES, CifarArchive, load_cifar
from .downloads import Download

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
#: CLIP's prompt ensemble for CIFAR-100 (Radford et al. 2021, the notebook of prompt templates) is
#: CIFAR-10's 18 templates (CLIP_benchmark's en_zeroshot_classification_templates.json too).
CIFAR100_TEMPLATES = CIFAR10_TEMPLATES
CIFAR100 = CifarArchive(
    "cifar100", "CIFAR-100", CIFAR100_DOWNLOAD, "fine_labels", "fine_label_names", CIFAR100_TEST_SIZE, CIFAR100_TEMPLATES, underscores_are_spaces=True
)


def load_cifar100(root: Path, offline: bool) -> ArrayDataset:
    return load_cifar(root, offline, CIFAR100)


SPEC = DatasetSpec("cifar100", lambda source: load_cifar100(source.data_root, source.offline))
