"""Test splits of CIFAR-10, STL-10, users' image folders and the procedural demo set.

Each loader reads the dataset's official on-disk layout (the one torchvision downloads), so a
small file written in that layout and the full download go through the same code. Downloads use
torchvision's utilities with the official URLs and checksums.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from PIL import Image

from .errors import ConfigError, DatasetError, DatasetMissingError
from .images import check_image, open_image
from .templates import CIFAR10_TEMPLATES, GENERIC_TEMPLATES, STL10_TEMPLATES
from .values import DEFAULT_MAX_IMAGE_PIXELS, display_text, safe_id


@dataclass(frozen=True)
class Download:
    """An official archive and what it unpacks to."""

    url: str
    filename: str
    md5: str
    folder: str
    files: tuple[str, ...]  # test-split files the loader reads
    checksums: dict[str, str]  # md5 of the official full-size test files


CIFAR10_DOWNLOAD = Download(
    url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    filename="cifar-10-python.tar.gz",
    md5="c58f30108f718f92721af3b95e74349a",
    folder="cifar-10-batches-py",
    files=("test_batch", "batches.meta"),
    checksums={"test_batch": "40351d587109b95175f43aff81a1287e"},
)
STL10_DOWNLOAD = Download(
    url="http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz",
    filename="stl10_binary.tar.gz",
    md5="91f7769df0f17e558f3565bffb0c7dfb",
    folder="stl10_binary",
    files=("test_X.bin", "test_y.bin", "class_names.txt"),
    checksums={"test_X.bin": "7f263ba9f9e0b06b93213547f721ac82", "test_y.bin": "36f9794fa4beb8a2c72628de14fa638e"},
)


class ImageDataset:
    """A labelled test split: class names, labels, and RGB images by index."""

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


class ImageFolderDataset(ImageDataset):
    """A user's ``<class>/<image>`` folders; class names are the folder names."""

    def __init__(
        self, name: str, classes: tuple[str, ...], paths: list[Path], labels: np.ndarray, fingerprint: str, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    ) -> None:
        super().__init__(name, classes, labels, fingerprint, GENERIC_TEMPLATES)
        self.paths = paths
        self.max_pixels = max_pixels

    def image(self, index: int) -> Image.Image:
        return open_image(self.paths[index], self.max_pixels)

    def describe(self, index: int) -> str:
        return display_text(str(self.paths[index]))


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


def default_data_root() -> Path:
    """``$CLIPCOMPRESS_DATA``, else a per-user cache folder."""
    if os.environ.get("CLIPCOMPRESS_DATA"):
        return Path(os.environ["CLIPCOMPRESS_DATA"]).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "pytest-clipcompress" / "data"


# --- the registry -------------------------------------------------------------------------------


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
    spellings of one dataset are one dataset. ``download`` is the official archive, if there is one.
    """

    name: str
    load: Callable[[DatasetSource], ImageDataset]
    argument: str | None = None
    canonical: Callable[[str], str] = str

    @property
    def usage(self) -> str:
        return f"{self.name}:{self.argument}" if self.argument else self.name


DATASETS: dict[str, DatasetSpec] = {}
_BUILTIN_DATASETS: set[str] = set()


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
    if spec is not None and bool(colon) == bool(spec.argument) and (not colon or argument.strip()):
        return spec, spec.canonical(argument) if colon else None
    plain = ", ".join(s.usage for s in DATASETS.values() if not s.argument)
    taking = " or ".join(s.usage for s in DATASETS.values() if s.argument)
    raise ConfigError(f"unknown dataset {name!r}; choose one of {plain}" + (f" or {taking}" if taking else ""))


def validate_dataset_name(name: str) -> str:
    """Check a ``clip_dataset`` name without loading anything; returns the one spelling that results
    carry (``imagefolder:/x/`` -> ``imagefolder:/x``)."""
    return _canonical(*_parse(name))


def _canonical(spec: DatasetSpec, argument: str | None) -> str:
    return spec.name if argument is None else f"{spec.name}:{argument}"


def dataset_id(name: str) -> str:
    """The dataset's part of a test id: the name, or ``imagefolder-<folder name>``."""
    spec, argument = _parse(name)
    text = spec.name if argument is None else f"{spec.name}-{Path(argument.rstrip(_SEPARATORS)).name}"
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


_SEPARATORS = "/\\"  # a trailing separator of either platform names the same folder


def _folder_path(argument: str) -> str:
    return str(Path(argument).expanduser())


# --- CIFAR-10 -----------------------------------------------------------------------------------

CIFAR10_TEST_SIZE = 10000


class _ForbiddenGlobal(pickle.UnpicklingError):
    """The pickle asks for something other than a numpy array: a tampered file."""


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Loads the CIFAR-10 pickles without running code: only what rebuilds a numpy array is allowed."""

    ALLOWED: ClassVar[frozenset[tuple[str, str]]] = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("_codecs", "encode"),
        }
    )

    def find_class(self, module: str, name: str) -> Any:  # pickle API: any class or function
        if (module, name) not in self.ALLOWED:
            raise _ForbiddenGlobal(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as handle:
            data = _ArrayOnlyUnpickler(handle, encoding="bytes").load()
    except _ForbiddenGlobal as error:
        raise DatasetError(f"{path} is not a CIFAR-10 data file ({error}); it may be tampered with: delete it and download the dataset again") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as error:
        raise DatasetError(f"{path} is truncated or corrupt ({type(error).__name__}); delete it and download the dataset again") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{path} does not hold a CIFAR-10 dictionary; delete it and download the dataset again")
    # Official files are Python 2 pickles with bytes keys; accept str keys from re-saved copies too.
    return {key.decode() if isinstance(key, bytes) else key: value for key, value in data.items()}


def load_cifar10(root: Path, offline: bool) -> ArrayDataset:
    folder = _ensure_downloaded(root, CIFAR10_DOWNLOAD, "cifar10", offline)
    batch_path, meta_path = folder / "test_batch", folder / "batches.meta"
    batch, meta = _unpickle(batch_path), _unpickle(meta_path)
    data, labels, classes = _cifar10_arrays(batch, meta, folder, batch_path)
    _check_official(batch_path, CIFAR10_DOWNLOAD, full_size=len(data) == CIFAR10_TEST_SIZE)
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    fingerprint = _hash_files([batch_path, meta_path])
    return ArrayDataset("cifar10", classes, images, labels, fingerprint, CIFAR10_TEMPLATES)


def _cifar10_arrays(batch: dict, meta: dict, folder: Path, batch_path: Path) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Data, labels and class names, checked for shape, type and range before anything is allocated.

    A file that passes the pickle guard may still claim anything: object arrays of huge numbers,
    labels as an (N, 1) column, pixel values of 300. Each is the clean layout error, never a
    MemoryError, an OverflowError or a silently wrong accuracy.
    """

    def layout(problem: str) -> DatasetError:
        return DatasetError(f"{folder} does not have the CIFAR-10 python layout ({problem}); delete it and download again")

    try:
        data, raw_labels, names = batch["data"], batch["labels"], meta["label_names"]
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
        raise layout("label_names must be a list of class names")
    classes = tuple(display_text(_decode_names(n) if isinstance(n, bytes) else n) for n in names)
    # Range first (Python ints may be any size), then the conversion cannot overflow.
    if min(raw_labels) < 0 or max(raw_labels) >= len(classes):
        raise DatasetError(f"{batch_path} has labels outside 0..{len(classes) - 1}")
    labels = np.asarray(raw_labels, dtype=np.int64)
    if data.dtype != np.uint8 and (data.min() < 0 or data.max() > 255):
        raise layout(f"pixel values must lie in 0..255, found {data.min()}..{data.max()}")
    return data.astype(np.uint8, copy=False), labels, classes


# --- STL-10 -------------------------------------------------------------------------------------

STL10_IMAGE_BYTES = 3 * 96 * 96
STL10_TEST_SIZE = 8000


def load_stl10(root: Path, offline: bool) -> ArrayDataset:
    folder = _ensure_downloaded(root, STL10_DOWNLOAD, "stl10", offline)
    x_path, y_path, names_path = folder / "test_X.bin", folder / "test_y.bin", folder / "class_names.txt"
    size = x_path.stat().st_size
    if size == 0 or size % STL10_IMAGE_BYTES:
        raise DatasetError(f"{x_path} has {size} bytes, not a whole number of 3x96x96 images; it is truncated or corrupt: delete it and download again")
    count = size // STL10_IMAGE_BYTES
    labels = np.fromfile(y_path, dtype=np.uint8).astype(np.int64) - 1
    classes = tuple(line.strip() for line in _decode_names(names_path.read_bytes()).splitlines() if line.strip())
    if len(labels) != count:
        raise DatasetError(f"{y_path} has {len(labels)} labels for {count} images in {x_path}; the files do not belong together")
    if len(classes) != 10 or labels.min() < 0 or labels.max() >= len(classes):
        raise DatasetError(f"{folder}: expected 10 class names and labels 1..10; found {len(classes)} names and labels {labels.min() + 1}..{labels.max() + 1}")
    full_size = count == STL10_TEST_SIZE
    _check_official(x_path, STL10_DOWNLOAD, full_size)
    _check_official(y_path, STL10_DOWNLOAD, full_size)
    # Each image is stored channel by channel, column-major: (N, C, W, H) -> (N, H, W, C).
    raw = np.memmap(x_path, dtype=np.uint8, mode="r", shape=(count, 3, 96, 96))
    images = raw.transpose(0, 3, 2, 1)
    return ArrayDataset("stl10", classes, images, labels, _hash_files([x_path, y_path, names_path]), STL10_TEMPLATES)


def _decode_names(raw: bytes) -> str:
    """Class names as UTF-8, else latin-1 (every byte is a latin-1 character, so re-saved files still load)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


# --- image folders ------------------------------------------------------------------------------

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".avif", ".jp2"}


def load_image_folder(root: Path, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> ImageFolderDataset:
    try:
        return _load_image_folder(root, max_pixels)
    except OSError as error:  # a folder or file that cannot be listed or read (permissions, I/O errors)
        raise DatasetError(
            f"cannot read image folder {display_text(str(root))} ({type(error).__name__}: {display_text(str(error))}); check its permissions"
        ) from None


def _load_image_folder(root: Path, max_pixels: int) -> ImageFolderDataset:
    if not root.is_dir():
        raise DatasetError(f"image folder {root} does not exist; give imagefolder:PATH with one sub-folder per class")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise DatasetError(f"image folder {root} has no class sub-folders; lay it out as {root}/<class name>/<image>")
    paths: list[Path] = []
    labels: list[int] = []
    unreadable: list[str] = []
    for label, class_dir in enumerate(class_dirs):
        files = sorted(p for p in class_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise DatasetError(f"class folder {class_dir} has no images; add images or remove the folder")
        for path in files:
            problem = check_image(path, max_pixels)
            if problem:
                unreadable.append(problem)
                continue
            paths.append(path)
            labels.append(label)
    if unreadable:
        shown = "; ".join(unreadable[:5]) + (f"; and {len(unreadable) - 5} more" if len(unreadable) > 5 else "")
        raise DatasetError(f"{len(unreadable)} file(s) in {display_text(str(root))} are not readable images: {shown}; fix or remove them")
    # Folder names as the OS gives them: undecodable bytes are shown as \xNN, never passed on raw.
    classes = tuple(display_text(d.name).replace("_", " ") for d in class_dirs)
    fingerprint = _hash_files(paths, relative_to=root)
    return ImageFolderDataset(f"imagefolder:{root}", classes, paths, np.asarray(labels, dtype=np.int64), fingerprint, max_pixels)


# --- demo ---------------------------------------------------------------------------------------


def load_demo() -> ArrayDataset:
    from .demo import DEMO_CLASSES, DEMO_SEED, DEMO_TEMPLATES, DEMO_TEST_PER_CLASS, generate_demo_images

    images, labels = generate_demo_images("test", DEMO_TEST_PER_CLASS, DEMO_SEED)
    digest = hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest()[:16]
    return ArrayDataset("demo", tuple(DEMO_CLASSES), images, labels, f"demo-{digest}", tuple(DEMO_TEMPLATES))


# --- files, checksums, downloads ----------------------------------------------------------------


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _hash_files(paths: list[Path], relative_to: Path | None = None) -> str:
    digest = hashlib.sha256()
    for path in paths:
        name = path.relative_to(relative_to) if relative_to else Path(path.name)
        digest.update(os.fsencode(name) + b"\0")  # the OS's bytes: names need not be valid UTF-8
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def _check_official(path: Path, download: Download, full_size: bool) -> None:
    """A full-size test file must have the official checksum; smaller well-formed subsets pass."""
    md5 = download.checksums[path.name]
    if full_size and _md5(path) != md5:
        raise DatasetError(
            f"{path} has the size of the official file but the wrong checksum (expected md5 {md5}); it is corrupt: delete {path.parent} and download again"
        )


def _missing_files(root: Path, download: Download) -> list[Path]:
    folder = root / download.folder
    return [folder / name for name in download.files if not (folder / name).is_file()]


def _ensure_downloaded(root: Path, download: Download, name: str, offline: bool) -> Path:
    folder = root / download.folder
    if not _missing_files(root, download):
        return folder
    if offline:
        missing = ", ".join(str(p) for p in _missing_files(root, download))
        raise DatasetMissingError(
            f"{name} is not in {root} (missing: {missing}). Download {download.url} (md5 {download.md5}) and unpack it "
            f"there, point --clip-data-root (or $CLIPCOMPRESS_DATA) at the folder that holds {download.folder}/, "
            f"or run without --clip-offline to download it automatically"
        )
    from filelock import FileLock
    from torchvision.datasets.utils import download_and_extract_archive

    root.mkdir(parents=True, exist_ok=True)
    # One download per machine even with several xdist workers; the others wait, then find the files.
    with FileLock(str(root / f".{name}.lock")):
        if _missing_files(root, download):
            try:
                download_and_extract_archive(download.url, str(root), filename=download.filename, md5=download.md5, remove_finished=True)
            except Exception as error:  # network errors come in many types; all mean the same to the user
                partial = root / download.filename
                partial.unlink(missing_ok=True)
                raise DatasetError(
                    f"downloading {name} from {download.url} failed ({error}); check the network, or download it yourself and unpack it under {root}"
                ) from None
    if _missing_files(root, download):
        raise DatasetError(f"the {name} archive did not contain the expected files under {folder}")
    return folder


# --- built-in datasets --------------------------------------------------------------------------

for _spec in (
    DatasetSpec("cifar10", lambda source: load_cifar10(source.data_root, source.offline)),
    DatasetSpec("stl10", lambda source: load_stl10(source.data_root, source.offline)),
    DatasetSpec("demo", lambda source: load_demo()),
    DatasetSpec("imagefolder", lambda source: load_image_folder(Path(source.argument or ""), source.max_image_pixels), argument="PATH", canonical=_folder_path),
):
    register_dataset(_spec)
_BUILTIN_DATASETS.update(DATASETS)
