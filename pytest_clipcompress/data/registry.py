"""The dataset registry: the names ``clip_dataset`` and ``clip_eval(dataset=...)`` accept, their one
canonical spelling, their test-id part, and loading by name.

One :class:`~.base.DatasetSpec` per dataset, each declared in its own module (``cifar10``,
``cifar100``, ``stl10``, ``imagenet``, ``wds``, ``folder``, ``demo``) and registered here; a user's dataset is one
:func:`register_dataset` call (docs/extending.md).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from ..inputs import DEFAULT_MAX_IMAGE_PIXELS, safe_id
from . import cifar10, cifar100, demo, folder, imagenet, stl10, wds
from .base import DatasetSource, DatasetSpec, ImageDataset

DATASETS: dict[str, DatasetSpec] = {}
_BUILTIN_DATASETS: set[str] = set()
_SEPARATORS = "/\\"  # a trailing separator of either platform names the same folder


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Add a dataset to the registry (e.g. from a ``conftest.py``). Registering a name again replaces
    the entry (a re-imported conftest does that), except for the built-in datasets."""
    if not isinstance(spec, DatasetSpec):
        raise ConfigError(f"register_dataset takes a DatasetSpec, not {type(spec).__name__}")
    if not spec.name or ":" in spec.name or spec.name != spec.name.strip():
        raise ConfigError(f"dataset name {spec.name!r} must be non-empty, without ':' or surrounding spaces")
    if spec.name in _BUILTIN_DATASETS and DATASETS[spec.name] != spec:
        raise ConfigError(f"dataset {spec.name!r} is built in; give yours another name")
    DATASETS[spec.name] = spec
    return spec


def _parse(name: object) -> tuple[DatasetSpec, str | None]:
    if not isinstance(name, str):
        raise ConfigError(f"dataset {name!r} must be a string")
    prefix, colon, argument = name.partition(":")
    spec = DATASETS.get(prefix)
    takes = bool(colon) == bool(spec.argument) or (spec.argument_optional and not colon) if spec is not None else False
    if spec is not None and takes and (not colon or argument.strip()):
        return spec, spec.canonical(argument) if colon else None
    # Names that stand alone first, then those that need an argument: "cifar10, ..., demo, wds:DIR or imagefolder:PATH".
    usages = [s.usage for s in DATASETS.values() if not s.argument or s.argument_optional] + [
        s.usage for s in DATASETS.values() if s.argument and not s.argument_optional
    ]
    choices = ", ".join(usages[:-1]) + f" or {usages[-1]}" if len(usages) > 1 else usages[0]
    raise ConfigError(f"unknown dataset {name!r}; choose one of {choices}")


def validate_dataset_name(name: str) -> str:
    """Check a ``clip_dataset`` name without loading anything; returns the one spelling that results
    carry (``imagefolder:/x/`` -> ``imagefolder:/x``)."""
    return _canonical(*_parse(name))


def _canonical(spec: DatasetSpec, argument: str | None) -> str:
    return spec.name if argument is None else f"{spec.name}:{argument}"


def dataset_id(name: str) -> str:
    """The dataset's part of a test id: the name, or ``imagefolder-<folder name>`` (``wds-<folder name>``)."""
    spec, argument = _parse(name)
    short = spec.short or (lambda argument: Path(argument.rstrip(_SEPARATORS)).name)
    text = spec.name if argument is None else f"{spec.name}-{short(argument)}"
    return safe_id(text)  # pytest-html prints ids unescaped: a folder name must not become markup


def marker_help() -> str:
    """The ``clip_dataset`` marker's help line, from the registry."""
    names = ", ".join(spec.usage for spec in DATASETS.values())
    return f"clip_dataset(*names): datasets to evaluate on: {names}; one case per name."


def load_dataset(name: str, data_root: Path, offline: bool, max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> ImageDataset:
    """Load a dataset by its ``clip_dataset`` name; image files with more than ``max_image_pixels`` are refused."""
    spec, argument = _parse(name)
    canonical = _canonical(spec, argument)
    dataset = spec.load(DatasetSource(canonical, argument, data_root, offline, max_image_pixels))
    if not isinstance(dataset, ImageDataset) or dataset.name != canonical:
        got = repr(dataset.name) if isinstance(dataset, ImageDataset) else type(dataset).__name__
        raise ConfigError(f"the loader of dataset {spec.name!r} returned {got}; it must return an ImageDataset named {canonical!r}")
    return dataset


for _module in (cifar10, cifar100, stl10, imagenet, wds, demo, folder):
    register_dataset(_module.SPEC)
_BUILTIN_DATASETS.update(DATASETS)
