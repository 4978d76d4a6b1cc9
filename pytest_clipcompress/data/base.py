"""What every dataset is: a labelled test split (:class:`ImageDataset`), what its loader is asked for
(:class:`DatasetSource`) and what the registry holds (:class:`DatasetSpec`); the seeded, stratified
subset; the fingerprint of a dataset's files."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..inputs import DEFAULT_MAX_IMAGE_PIXELS


class ImageDataset:
    """A labelled test split: class names, labels, prompt templates, and RGB images by index.

    ``source_format`` says how the split stores its images (``pixels`` for arrays, else the file
    formats, e.g. ``JPEG``): the "uncompressed" images of an evaluation are these, decoded, so for
    a JPEG-stored split they already carry one JPEG compression.
    """

    source_format = "pixels"

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
    """Images held as a uint8 array of shape (N, H, W, 3), possibly memory-mapped."""

    def __init__(self, name: str, classes: tuple[str, ...], images: np.ndarray, labels: np.ndarray, fingerprint: str, templates: tuple[str, ...]) -> None:
        super().__init__(name, classes, labels, fingerprint, templates)
        self.images = images

    def image(self, index: int) -> Image.Image:
        return Image.fromarray(np.ascontiguousarray(self.images[index]), "RGB")


class MappedDataset(ImageDataset):
    """Images in a raw uint8 file of shape ``shape``, viewed with ``axes`` as (N, H, W, 3), memory-mapped.

    The map is opened on first use in each process: pickling the dataset to a worker process sends
    the path and the labels, never the pixels.
    """

    def __init__(
        self,
        name: str,
        classes: tuple[str, ...],
        path: Path,
        shape: tuple[int, ...],
        axes: tuple[int, ...],
        labels: np.ndarray,
        fingerprint: str,
        templates: tuple[str, ...],
    ) -> None:
        super().__init__(name, classes, labels, fingerprint, templates)
        self.path, self.shape, self.axes = path, shape, axes
        self._images: np.ndarray | None = None

    @property
    def images(self) -> np.ndarray:
        if self._images is None:
            self._images = np.memmap(self.path, dtype=np.uint8, mode="r", shape=self.shape).transpose(self.axes)
        return self._images

    def image(self, index: int) -> Image.Image:
        return Image.fromarray(np.ascontiguousarray(self.images[index]), "RGB")

    def __getstate__(self) -> dict[str, object]:
        return {**self.__dict__, "_images": None}


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


def hash_listing(root: Path, files: tuple[str, ...], extra: tuple[Path, ...] = ()) -> str:
    """The fingerprint of a large split without reading its images: SHA-256 over the files' relative
    names and sizes, and the bytes of the small ``extra`` files (label files). A file replaced by
    another of the same size under the same name goes unnoticed; reading 50,000 images' bytes
    before the first evaluation would cost more than the run."""
    digest = hashlib.sha256()
    for name in files:
        digest.update(os.fsencode(name) + b"\0" + str((root / name).stat().st_size).encode() + b"\0")
    return hashlib.sha256(digest.digest() + hash_files(list(extra)).encode()).hexdigest()[:16] if extra else digest.hexdigest()[:16]


#: Display names of image file extensions, for ``source_format``.
FORMAT_NAMES = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "webp": "WebP", "bmp": "BMP", "gif": "GIF", "tif": "TIFF", "tiff": "TIFF"}


def formats_of(extensions: Iterable[str]) -> str:
    """``JPEG``, ``PNG, WebP``: the formats of a set of file extensions (with or without the dot)."""
    names = {FORMAT_NAMES.get(ext.lower().lstrip("."), ext.lower().lstrip(".").upper()) for ext in extensions}
    return ", ".join(sorted(names)) or "pixels"


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
    spellings of one dataset are one dataset. ``argument_optional`` lets the name stand alone too
    (``imagenet1k`` reads the data root, ``imagenet1k:PATH`` a folder elsewhere); ``short`` gives
    the argument's part of a test id (default: its last path component).
    """

    name: str
    load: Callable[[DatasetSource], ImageDataset]
    argument: str | None = None
    canonical: Callable[[str], str] = str
    argument_optional: bool = False
    short: Callable[[str], str] | None = None

    @property
    def usage(self) -> str:
        if not self.argument:
            return self.name
        return f"{self.name}[:{self.argument}]" if self.argument_optional else f"{self.name}:{self.argument}"
