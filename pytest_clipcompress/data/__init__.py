"""Datasets: one module per dataset (official on-disk layouts, classes, prompt ensembles), the registry,
downloads with official checksums and the safe unpickler. Knows no model.

The names below are the extension API (docs/extending.md).
"""

from .base import ArrayDataset, DatasetSource, DatasetSpec, ImageDataset
from .registry import DATASETS, dataset_id, load_dataset, register_dataset, validate_dataset_name

__all__ = [
    "DATASETS",
    "ArrayDataset",
    "DatasetSource",
    "DatasetSpec",
    "ImageDataset",
    "dataset_id",
    "load_dataset",
    "register_dataset",
    "validate_dataset_name",
]
