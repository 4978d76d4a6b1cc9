"""Webdataset shards in CLIP_benchmark's layout (``wds:SOURCE``), as its ``build_wds_dataset`` reads
them and its ``clip_benchmark_export_wds`` writes them::

    DIR/test/nshards.txt                          the number of shards, N
    DIR/test/0.tar ... DIR/test/{N-1}.tar         samples s0000000.webp + s0000000.cls, ...
    DIR/classnames.txt                            one class name a line, in label order
    DIR/zeroshot_classification_templates.txt     one prompt a line, the class written {c}
    DIR/dataset_type.txt                          optional; only "classification" is read here

SOURCE is such a folder, a brace pattern of its shards (``DIR/test/{0..3}.tar``, expanded as
webdataset expands shard lists; the metadata is read from ``DIR``), or the URL of such a folder
(``https://huggingface.co/datasets/clip-benchmark/wds_vtab-cifar10/tree/main``), downloaded once
into ``<data root>/wds/``: for a Hugging Face ``tree/<branch>`` URL the text files come from
``raw/`` and the shards from ``resolve/``, CLIP_benchmark's rule; into a temporary folder renamed
into place when complete, so an interrupted download never looks like a dataset (no checksums are
published for these folders; the tar structure and labels are checked when indexed). A sample is grouped from the tar members by webdataset's key rule
(``base_plus_ext``); its image is the first of ``.webp``, ``.png``, ``.jpg``, ``.jpeg`` present,
as CLIP_benchmark's ``to_tuple`` picks it, and its label the integer in ``.cls``.

Loading reads the tar headers and the ``.cls`` members only (the image bytes are skipped by
seeking): labels for ``--clip-samples`` without touching an image. Each image is read from its
offset and decoded when its batch is prepared, so a 50,000-image split is never held decoded,
and the dataset (paths and a few arrays) pickles cheaply to worker processes. webdataset's own
reader streams shards from the start; the engine asks for images by index (the subset, and the
flipped images Integrated Gradients explains later), hence the index.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import string
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..codecs.images import open_image
from ..errors import DatasetError, DatasetMissingError
from ..inputs import DEFAULT_MAX_IMAGE_PIXELS, display_text, safe_id
from .base import DatasetSource, DatasetSpec, ImageDataset, decode_names, formats_of

#: CLIP_benchmark's image extensions, in the order its ``to_tuple`` looks for them.
IMAGE_EXTENSIONS = ("webp", "png", "jpg", "jpeg")
LABEL_EXTENSION = "cls"
SPLIT = "test"
CLASSNAMES_FILE = "classnames.txt"
TEMPLATES_FILE = "zeroshot_classification_templates.txt"
TYPE_FILE = "dataset_type.txt"
NSHARDS_FILE = "nshards.txt"
_META_MEMBER = re.compile(r"__[^/]*__($|/)")  # webdataset's skip_meta: members it never reads


class WebDatasetShards(ImageDataset):
    """Samples of tar shards, each image read from its offset when asked for."""

    def __init__(
        self,
        name: str,
        classes: tuple[str, ...],
        templates: tuple[str, ...],
        shards: tuple[Path, ...],
        index: ShardIndex,
        fingerprint: str,
        max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    ) -> None:
        super().__init__(name, classes, index.labels, fingerprint, templates)
        self.shards = shards
        self.index = index
        self.max_pixels = max_pixels
        self.source_format = formats_of({member.rpartition(".")[2] for member in index.members})

    def image(self, index: int) -> Image.Image:
        size = int(self.index.sizes[index])
        with open(self.shards[self.index.shard[index]], "rb") as handle:
            handle.seek(int(self.index.offsets[index]))
            data = handle.read(size)
        if len(data) != size:
            raise DatasetError(f"{self.describe(index)} is cut short; the shard changed or is truncated: download it again")
        return open_image(data, self.max_pixels, name=self.describe(index))

    def describe(self, index: int) -> str:
        return display_text(f"{self.shards[self.index.shard[index]]}:{self.index.members[index]}")


@dataclass(frozen=True)
class ShardIndex:
    """Where each sample's image is: shard number, byte offset and size, member name; and its label."""

    shard: np.ndarray
    offsets: np.ndarray
    sizes: np.ndarray
    members: tuple[str, ...]
    labels: np.ndarray

    def digest(self) -> bytes:
        parts = (self.shard, self.offsets, self.sizes, self.labels)
        return hashlib.sha256(b"".join(part.astype(np.int64).tobytes() for part in parts) + "\0".join(self.members).encode("utf-8", "surrogateescape")).digest()


@dataclass
class _Sample:
    key: str
    image: tuple[int, int, str] | None = None  # offset, size, member name of the preferred image
    image_rank: int = len(IMAGE_EXTENSIONS)
    label: int | None = None


def load_wds(source: DatasetSource) -> WebDatasetShards:
    argument = source.argument or ""
    if "://" in argument:
        argument = str(_downloaded_folder(argument, source.data_root, source.offline))
    try:
        return _load_wds(source, argument)
    except OSError as error:  # a folder or shard that cannot be listed or read (permissions, I/O errors)
        raise DatasetError(f"cannot read wds:{display_text(argument)} ({type(error).__name__}: {display_text(str(error))}); check its permissions") from None


def _load_wds(source: DatasetSource, argument: str) -> WebDatasetShards:
    root, shards = _shard_paths(argument)
    _check_type(root)
    classes = read_classnames(root / CLASSNAMES_FILE)
    templates = read_templates(root / TEMPLATES_FILE)
    index = _index(shards)
    bad = np.flatnonzero((index.labels < 0) | (index.labels >= len(classes)))
    if len(bad):
        first = bad[0]
        raise DatasetError(
            f"{display_text(str(shards[index.shard[first]]))}: sample {index.members[first]} has label {index.labels[first]}, "
            f"outside 0..{len(classes) - 1} ({len(classes)} classes in {CLASSNAMES_FILE})"
        )
    digest = hashlib.sha256(index.digest())
    for path in (root / CLASSNAMES_FILE, root / TEMPLATES_FILE):
        digest.update(path.read_bytes())
    return WebDatasetShards(source.name, classes, templates, shards, index, digest.hexdigest()[:16], source.max_image_pixels)


def _shard_paths(argument: str) -> tuple[Path, tuple[Path, ...]]:
    """The dataset folder (where the metadata is) and its test shards, from a folder or a shard pattern."""
    from webdataset.shardlists import expand_urls

    if argument.endswith(".tar") or "{" in argument:
        shards = tuple(Path(url).expanduser() for url in expand_urls(argument))
        root = shards[0].parent.parent
        missing = [str(path) for path in shards if not path.is_file()]
        if missing:
            raise DatasetMissingError(f"wds: {len(missing)} shard(s) of {argument} are absent ({display_text(missing[0])}, ...); put the shards there")
        return root, shards
    root = Path(argument).expanduser()
    count_file = root / SPLIT / NSHARDS_FILE
    if not count_file.is_file():
        if not root.is_dir():
            raise DatasetMissingError(
                f"wds:{display_text(argument)} does not exist; put a dataset in CLIP_benchmark's webdataset layout there ({SPLIT}/{NSHARDS_FILE}, "
                f"{SPLIT}/0.tar ..., {CLASSNAMES_FILE}, {TEMPLATES_FILE}), e.g. downloaded from huggingface.co/clip-benchmark"
            )
        raise DatasetError(f"{display_text(str(root))} is not in CLIP_benchmark's webdataset layout: {SPLIT}/{NSHARDS_FILE} is missing")
    text = _read_text(count_file).strip()
    if not text.isdigit() or int(text) < 1:
        raise DatasetError(f"{display_text(str(count_file))} holds {text[:20]!r}, not a number of shards")
    shards = tuple(root / SPLIT / f"{number}.tar" for number in range(int(text)))
    absent = [path for path in shards if not path.is_file()]
    if absent:
        raise DatasetError(
            f"{display_text(str(count_file))} counts {len(shards)} shards but {display_text(str(absent[0]))} is missing; download the dataset again"
        )
    return root, shards


def _read_text(path: Path) -> str:
    try:
        return decode_names(path.read_bytes())
    except FileNotFoundError:
        raise DatasetError(f"{display_text(str(path))} is missing; CLIP_benchmark's webdataset layout needs it for zero-shot classification") from None


def read_classnames(path: Path) -> tuple[str, ...]:
    """One class name a line, by position (CLIP_benchmark keeps every line, so an empty one would be a nameless class)."""
    classes = tuple(line.strip() for line in _read_text(path).splitlines())
    if not classes:
        raise DatasetError(f"{display_text(str(path))} names no class; write one class name a line, in label order")
    if "" in classes:
        raise DatasetError(f"{display_text(str(path))} line {classes.index('') + 1} is empty; class names are read by position, one a line")
    return classes


def _check_type(root: Path) -> None:
    kind = _read_text(root / TYPE_FILE).strip().lower() if (root / TYPE_FILE).is_file() else "classification"
    if kind != "classification":
        raise DatasetError(f"wds: {display_text(str(root))} is a {kind!r} dataset ({TYPE_FILE}); only classification with .cls labels is evaluated")


def read_templates(path: Path) -> tuple[str, ...]:
    """CLIP_benchmark's templates (``a photo of a {c}.``) as ours (``a photo of a {}.``), literal braces kept."""
    templates = []
    for number, line in enumerate(_read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            parts = list(string.Formatter().parse(line.strip()))
        except ValueError as error:
            raise DatasetError(f"{display_text(str(path))} line {number}: {error}; write the class as {{c}} and a literal brace as {{{{ or }}}}") from None
        fields = {field for _, field, _, _ in parts if field is not None}
        if fields != {"c"}:
            raise DatasetError(
                f"{display_text(str(path))} line {number} must name the class as {{c}} (and nothing else in braces); found {sorted(fields) or 'none'}"
            )
        templates.append("".join(text.replace("{", "{{").replace("}", "}}") + ("{}" if field else "") for text, field, _, _ in parts))
    if not templates:
        raise DatasetError(f"{display_text(str(path))} holds no template; write one prompt a line, e.g. a photo of a {{c}}.")
    return tuple(templates)


def _index(shards: tuple[Path, ...]) -> ShardIndex:
    rows: list[tuple[int, int, int, str, int]] = []
    for number, path in enumerate(shards):
        rows += [(number, *sample) for sample in _index_shard(path)]
    if not rows:
        raise DatasetError(f"the shards of {display_text(str(shards[0].parent))} hold no samples")
    shard, offsets, sizes, members, labels = zip(*rows, strict=True)
    as_array = np.asarray
    return ShardIndex(as_array(shard, np.int32), as_array(offsets, np.int64), as_array(sizes, np.int64), tuple(members), as_array(labels, np.int64))


def _index_shard(path: Path) -> list[tuple[int, int, str, int]]:
    """(offset, size, member, label) per sample, reading headers and labels only (seeking over images)."""
    from webdataset.tariterators import base_plus_ext

    samples: list[_Sample] = []
    length = path.stat().st_size
    try:
        # A plain tar, as ShardWriter writes them; the TarInfo list (10,000 samples: ~10 MB) goes with the shard.
        with tarfile.open(path, "r:") as tar:
            for info in tar:
                prefix, suffix = base_plus_ext(info.name)
                if not info.isreg() or prefix is None or _META_MEMBER.match(info.name):
                    continue
                if info.offset_data + info.size > length:
                    raise DatasetError(f"{display_text(str(path))} is truncated inside {display_text(info.name)}; download the shard again")
                if not samples or samples[-1].key != prefix:  # webdataset groups consecutive members by key
                    samples.append(_Sample(prefix))
                _add_member(samples[-1], suffix.lower(), info, tar, path)
    except (tarfile.TarError, EOFError) as error:
        raise DatasetError(f"{display_text(str(path))} is not a readable tar shard ({type(error).__name__}: {error}); download it again") from None
    rows = []
    for sample in samples:
        if sample.image is None or sample.label is None:
            lacking = "image (.webp, .png, .jpg or .jpeg)" if sample.image is None else ".cls label"
            raise DatasetError(f"{display_text(str(path))}: sample {display_text(sample.key)} has no {lacking}; every sample needs both")
        rows.append((*sample.image, sample.label))
    return rows


def _add_member(sample: _Sample, suffix: str, info: tarfile.TarInfo, tar: tarfile.TarFile, path: Path) -> None:
    if suffix == LABEL_EXTENSION:
        handle = tar.extractfile(info)
        text = handle.read(32).decode("ascii", "replace").strip() if handle is not None and info.size <= 32 else ""
        if not re.fullmatch(r"-?\d+", text):
            raise DatasetError(f"{display_text(str(path))}: {display_text(info.name)} is not an integer class label")
        sample.label = int(text)
    elif suffix in IMAGE_EXTENSIONS and IMAGE_EXTENSIONS.index(suffix) < sample.image_rank:
        sample.image, sample.image_rank = (info.offset_data, info.size, info.name), IMAGE_EXTENSIONS.index(suffix)


def _canonical(argument: str) -> str:
    if "://" in argument:
        return argument.rstrip("/")
    return str(Path(argument).expanduser())


def _short(argument: str) -> str:
    """The dataset's folder name (``wds_vtab-cifar10``), also for shard patterns and hub URLs."""
    parts = [part for part in re.split(r"[/\\]+", argument) if part]
    if parts and (parts[-1].endswith(".tar") or "{" in parts[-1]):
        parts = parts[:-2]  # DIR/test/{0..3}.tar -> DIR
    if len(parts) >= 2 and parts[-2] == "tree":
        parts = parts[:-2]  # .../<repo>/tree/<branch> -> <repo>
    return safe_id(parts[-1] if parts else argument)


# --- wds:URL: downloaded once into the data root -------------------------------------------------


def cache_folder(url: str, data_root: Path) -> Path:
    """Where ``wds:URL`` is kept: ``<data root>/wds/<folder name>-<hash of the URL>``."""
    return data_root / "wds" / f"{_short(url)}-{hashlib.sha256(url.encode()).hexdigest()[:8]}"


def _bases(url: str) -> tuple[str, str]:
    """(where the text files are, where the shards are), CLIP_benchmark's rule for Hugging Face URLs."""
    if url.startswith("https://huggingface.co/datasets/") and "/tree/" in url:
        *head, _, path = url.split("/", 7)
        return "/".join([*head, "raw", path]), "/".join([*head, "resolve", path])
    return url, url


def _downloaded_folder(url: str, data_root: Path, offline: bool) -> Path:
    folder = cache_folder(url, data_root)
    if (folder / SPLIT / NSHARDS_FILE).is_file():
        return folder
    if offline:
        raise DatasetMissingError(
            f"wds:{url} is not in {display_text(str(folder))}; download the dataset folder there (its {SPLIT}/ shards, {CLASSNAMES_FILE}, "
            f"{TEMPLATES_FILE}), give wds:<local folder>, or run without --clip-offline to download it"
        )
    from filelock import FileLock

    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):
        if not (folder / SPLIT / NSHARDS_FILE).is_file():
            _download(url, folder)
    return folder


def _download(url: str, folder: Path) -> None:
    from torchvision.datasets.utils import download_url

    text_base, shard_base = _bases(url)
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)

    def fetch(base: str, name: str) -> Path:
        target = partial / name
        download_url(f"{base}/{name}", str(target.parent), target.name)
        return target

    try:
        for name in (CLASSNAMES_FILE, TEMPLATES_FILE, f"{SPLIT}/{NSHARDS_FILE}"):
            fetch(text_base, name)
        try:
            fetch(text_base, TYPE_FILE)
        except Exception:  # optional: CLIP_benchmark assumes classification without it
            (partial / TYPE_FILE).unlink(missing_ok=True)
        count = (partial / SPLIT / NSHARDS_FILE).read_text().strip()
        if not count.isdigit():
            raise DatasetError(f"{url}/{SPLIT}/{NSHARDS_FILE} holds {count[:20]!r}, not a number of shards")
        for number in range(int(count)):
            fetch(shard_base, f"{SPLIT}/{number}.tar")
    except DatasetError:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    except Exception as error:  # network errors come in many types; all mean the same to the user
        shutil.rmtree(partial, ignore_errors=True)
        raise DatasetError(f"downloading wds:{url} failed ({type(error).__name__}: {error}); check the URL and the network, or download it yourself") from None
    partial.replace(folder)


SPEC = DatasetSpec("wds", load_wds, argument="DIR", canonical=_canonical, short=_short)
