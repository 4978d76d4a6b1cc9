"""What every dataset is: a labelled test split (:class:`ImageDataset`), what its loader is asked for
(:class:`DatasetSource`) and what the registry holds (:class:`DatasetSpec`); the seeded, stratified
subset; the fingerprint of a dataset's files."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..inputs import DEFAULT_MAX_IMAGE_PIXELS


class ImageDataset:
    """A labelled test split: class names, labels, prompt templates, and RGB images by index."""

    def __init__(self, name: str, classes: tuple[str, ...], labels: np.ndarray, fingerprint: str, templates: tuple[str, ...]) -> None:
        self.name = name
        self.classes = classes
        self.labels = labels
        self.fingerprint = fingerprint
        self.templates = templates

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}: {len(self)} images, {len(self.classes)} classes>"

    def image(self, index: int) -> Image.Image:
        raise NotImplementedError

    def describe(self, index: int) -> str:
        """The image at ``index`` as messages name it."""
        return f"{self.name} image {index}"

    def subset(self, samples: int | None, seed: int) -> np.ndarray:
        """Indices of a class-stratified, seeded subset of ``samples`` images (all when None)."""
        return stratified_subset(self.labels, samples, seed)


class ArrayDataset(ImageDataset):
    """Images held as a uint8 array of shape (N, H, W, 3), possibly memory-mapped.

    Pickled (the codec's worker processes receive the dataset so), a memory-mapped array travels as
    its file and layout and is mapped again on arrival, not copied.
    """

    def __init__(self, name: str, classes: tuple[str, ...], images: np.ndarray, labels: np.ndarray, fingerprint: str, templates: tuple[str, ...]) -> None:
        super().__init__(name, classes, labels, fingerprint, templates)
        self.images = images

    def image(self, index: int) -> Image.Image:
        return Image.fromarray(np.ascontiguousarray(self.images[index]), "RGB")

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        mapped = MappedArray.of(self.images)
        if mapped is not None:
            state["images"] = mapped
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        images = state["images"]
        self.__dict__.update(state, images=images.open() if isinstance(images, MappedArray) else images)


@dataclass(frozen=True)
class MappedArray:
    """A view of a memory-mapped file, by file and layout: what it takes to map the same pixels again."""

    path: str
    file_offset: int  # where the mapping starts in the file
    mapped_bytes: int
    view_offset: int  # where the view's first element lies in the mapping
    shape: tuple[int, ...]
    strides: tuple[int, ...]
    dtype: str

    @classmethod
    def of(cls, array: np.ndarray) -> MappedArray | None:
        """The file and layout of ``array`` when it is (a view of) a ``np.memmap``; None otherwise."""
        root: object = array
        while isinstance(root, np.ndarray) and isinstance(root.base, np.ndarray):
            root = root.base  # views of a memmap are memmaps too: the root is the one that maps the file
        if not isinstance(root, np.memmap) or root.filename is None:
            return None
        start = array.__array_interface__["data"][0] - root.__array_interface__["data"][0]
        return cls(root.filename, root.offset, root.nbytes, start, array.shape, array.strides, array.dtype.str)

    def open(self) -> np.ndarray:
        mapping = np.memmap(self.path, dtype=np.uint8, mode="r", offset=self.file_offset, shape=(self.mapped_bytes,))
        return np.ndarray(self.shape, np.dtype(self.dtype), buffer=mapping, offset=self.view_offset, strides=self.strides)


def stratified_subset(labels: np.ndarray, samples: int | None, seed: int) -> np.ndarray:
    """Seeded subset keeping each class's share (largest-remainder quotas), as sorted indices."""
    total = len(labels)
    if samples is None or samples >= total:
        return np.arange(total)
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * samples / total
    quotas = np.floor(exact).astype(int)
    # Hand the remaining places to the largest fractional parts; ties go to the lower class id.
    order = np.lexsort((classes, -(exact - quotas)))
    quotas[order[: samples - quotas.sum()]] += 1
    rng = np.random.default_rng(seed)
    chosen = [rng.permutation(np.flatnonzero(labels == c))[:q] for c, q in zip(classes, quotas, strict=True)]
    return np.sort(np.concatenate(chosen))


def hash_files(paths: list[Path], relative_to: Path | None = None) -> str:
    """A dataset's fingerprint: SHA-256 over its files' names and bytes, 16 hex characters."""
    digest = hashlib.sha256()
    for path in paths:
        name = path.relative_to(relative_to) if relative_to else Path(path.name)
        digest.update(os.fsencode(name) + b"\0")  # the OS's bytes: names need not be valid UTF-8
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def decode_names(raw: bytes) -> str:
    """Class names as UTF-8, else latin-1 (every byte is a latin-1 character, so re-saved files still load)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


@dataclass(frozen=True)
class DatasetSource:
    """What a loader is asked for: the dataset's canonical name, the part after ``name:`` (for
    datasets that take one, e.g. the folder of ``imagefolder:PATH``) and the run's data settings."""

    name: str
    argument: str | None
    data_root: Path
    offline: bool
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS  # image files claiming more pixels are refused


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset the ``clip_dataset`` marker and ``clip_eval(dataset=...)`` accept.

    ``load`` returns an :class:`ImageDataset` (its class names and prompt templates included) named
    ``source.name``. With ``argument`` set the dataset is written ``<name>:<argument>`` (its help,
    e.g. ``PATH``); ``canonical`` turns the written argument into the one the results carry, so two
    spellings of one dataset are one dataset.
    """

    name: str
    load: Callable[[DatasetSource], ImageDataset]
    argument: str | None = None
    canonical: Callable[[str], str] = str

    @property
    def usage(self) -> str:
        return f"{self.name}:{self.argument}" if self.argument else self.name
