"""What several test modules share: paths of the test assets and the real samples, and writers of
small datasets in the official on-disk formats. Test modules import from here, never from each
other or from conftest.py (which only holds fixtures)."""

from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np

if TYPE_CHECKING:
    from pytest_clipcompress.results.schema import AttributionItem

ASSETS = Path(__file__).parent / "assets"
TINY_CONFIG = ASSETS / "tiny-clip.json"
TINY_MODEL = "tiny-clip"
SHARED_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
CIFAR_SAMPLE = SHARED_DATASETS / "cifar10-test-sample"
IMAGE_FOLDER_SAMPLE = SHARED_DATASETS / "cifar10-test-jpeg-q75-folder"

CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
STL_CLASSES = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]


def python2_pickle(value: object) -> bytes:
    """A protocol-2 pickle as Python 2 writes it: its ``str`` (here bytes) as SHORT_BINSTRING/BINSTRING.

    Python 3's own pickler writes bytes as ``_codecs.encode`` calls, which load as bytes under
    every encoding; Python 2 strings load as bytes under ``encoding="bytes"`` and as str under
    ``encoding="latin1"`` (what torchvision uses). Arrays are numpy's own protocol-2 reduction.
    """
    out = bytearray(pickle.PROTO + b"\x02")

    def emit(item: object) -> None:
        if isinstance(item, bytes):
            out.extend(pickle.SHORT_BINSTRING + bytes([len(item)]) + item if len(item) < 256 else pickle.BINSTRING + struct.pack("<I", len(item)) + item)
        elif isinstance(item, int) and 0 <= item < 256:
            out.extend(pickle.BININT1 + bytes([item]))
        elif isinstance(item, int):
            out.extend(pickle.BININT + struct.pack("<i", item))
        elif isinstance(item, list):
            out.extend(pickle.EMPTY_LIST + pickle.MARK)
            for element in item:
                emit(element)
            out.extend(pickle.APPENDS)
        elif isinstance(item, dict):
            out.extend(pickle.EMPTY_DICT + pickle.MARK)
            for key, element in item.items():
                emit(key)
                emit(element)
            out.extend(pickle.SETITEMS)
        elif isinstance(item, (np.ndarray, DeclaredArray)):
            out.extend(pickle.dumps(item, protocol=2)[2:-1])  # without its PROTO header and STOP
        else:
            raise TypeError(f"cannot write {type(item).__name__}")

    emit(value)
    return bytes(out + pickle.STOP)


class DeclaredType:
    """A numpy type pickled as numpy does, with its stored item size or flags replaced (a crafted file)."""

    def __init__(self, spec: str, itemsize: int | None = None, flags: int | None = None) -> None:
        self.spec, self.itemsize, self.flags = spec, itemsize, flags

    def __reduce__(self) -> tuple:
        rebuild, arguments, state = np.dtype(self.spec).__reduce__()
        # numpy's state: (version, byte order, sub-array, names, fields, item size, alignment, flags)
        state = (*state[:5], state[5] if self.itemsize is None else self.itemsize, state[6], state[7] if self.flags is None else self.flags)
        return rebuild, arguments, state


class DeclaredArray:
    """An ndarray pickled as numpy does (an empty placeholder, then its state), with any shape, type and data.

    Files holding these promise what they need not hold: a placeholder or a shape larger than the
    data, a list shorter than the shape, a type whose stored details are not numpy's.
    """

    def __init__(self, shape: tuple[int, ...], dtype: str | DeclaredType, data: bytes | list, placeholder: tuple[int, ...] = (0,)) -> None:
        self.shape, self.dtype, self.data, self.placeholder = shape, dtype, data, placeholder

    def __reduce__(self) -> tuple:
        reconstruct = np.zeros(0).__reduce__()[0]  # numpy's own rebuilder, found through its public reduce
        dtype = np.dtype(self.dtype) if isinstance(self.dtype, str) else self.dtype
        return reconstruct, (np.ndarray, self.placeholder, b"b"), (1, self.shape, dtype, False, self.data)


def write_cifar10(root: Path, images: np.ndarray, labels: list[int], python2: bool = True) -> Path:
    """The official python layout: Python-2 pickles (bytes keys), or a Python 3 re-save with str keys; planar R, G, B rows."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    data = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)
    batch = {b"batch_label": b"testing batch 1 of 1", b"labels": labels, b"data": data, b"filenames": [b"x.png"] * len(labels)}
    meta = {b"label_names": [name.encode() for name in CIFAR_CLASSES], b"num_cases_per_batch": 10000, b"num_vis": 3072}
    for name, content in (("test_batch", batch), ("batches.meta", meta)):
        if python2:
            (folder / name).write_bytes(python2_pickle(content))
        else:
            text = {key.decode(): [v.decode() for v in value] if key == b"label_names" else value for key, value in content.items()}
            (folder / name).write_bytes(pickle.dumps(text, protocol=2))
    return folder


def write_stl10(root: Path, images: np.ndarray, labels: list[int]) -> Path:
    """The official binary layout: each image 3x96x96, column-major per channel; labels 1..10."""
    folder = root / "stl10_binary"
    folder.mkdir(parents=True)
    images.transpose(0, 3, 2, 1).astype(np.uint8).tofile(folder / "test_X.bin")
    np.asarray(labels, dtype=np.uint8).tofile(folder / "test_y.bin")
    (folder / "class_names.txt").write_text("\n".join(STL_CLASSES) + "\n")
    return folder


def random_images(count: int, side: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(count, side, side, 3), dtype=np.uint8)


def without_run_block(text: str) -> str:
    """The results file without its run metadata (time, versions, commit), the one part allowed to differ."""
    data = json.loads(text)
    assert set(data["run"]) <= {"models", "device", "precision", "versions", "git", "started_utc", "settings", "shards"}
    del data["run"]
    return json.dumps(data, indent=2, sort_keys=True)


def attribution_info(index: int, label: int = 0, **overrides: object) -> AttributionItem:
    """One explained image's record with plausible values; ``overrides`` replace any field."""
    values: dict[str, object] = {
        "index": index,
        "label": label,
        "pred_uncompressed": label,
        "pred_compressed": 1,
        "prob_true_uncompressed": 0.9,
        "prob_true_compressed": 0.2,
        "steps": 50,
        "method": "riemann_trapezoid",
        "f_input": 1.7,
        "f_reference": 0.1,
        "delta_f": 1.6,
        "sum_attributions": 1.59,
        "completeness_gap": 0.01,
        "positive_mass": 2.0,
        "negative_mass": 0.41,
        "boundary_share": 0.6,
        "boundary_area_share": 0.44,
        "seconds": 0.5,
        "model": "tiny-clip",
        "dataset": "cifar10",
        "compression_id": "jpeg-q10",
        "reference_input": "uncompressed",
        "chosen_as": "compression flip",
        "true_name": f"class {label}",
        "pred_uncompressed_name": f"class {label}",
        "pred_compressed_name": "class 1",
    }
    values.update(overrides)
    return cast("AttributionItem", values)


def write_cifar100(root: Path, images: np.ndarray, labels: list[int], names: list[str]) -> Path:
    """CIFAR-100's official python layout: ``cifar-100-python/test`` and ``meta`` as Python 2 pickles (bytes keys)."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    data = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)
    coarse = [label // 5 for label in labels]
    test = {b"filenames": [b"x.png"] * len(labels), b"batch_label": b"testing batch 1 of 1", b"fine_labels": labels, b"coarse_labels": coarse, b"data": data}
    meta = {b"fine_label_names": [name.encode() for name in names], b"coarse_label_names": [f"group{i}".encode() for i in range(20)]}
    (folder / "test").write_bytes(python2_pickle(test))
    (folder / "meta").write_bytes(python2_pickle(meta))
    return folder


def write_wds(
    root: Path, images: np.ndarray, labels: list[int], classes: list[str], templates: list[str], image_format: str = "webp", per_shard: int = 5
) -> Path:
    """A dataset as CLIP_benchmark's ``convert_dataset`` writes it, with webdataset's ``ShardWriter``:
    ``test/%d.tar`` shards of ``s%07d`` samples (lossless WebP, PNG or JPEG bytes and a ``.cls`` label),
    ``test/nshards.txt``, ``classnames.txt`` and ``zeroshot_classification_templates.txt``."""
    import io

    import webdataset
    from PIL import Image

    options = {"webp": {"format": "webp", "lossless": True}, "png": {"format": "png"}, "jpg": {"format": "jpeg"}}[image_format]
    (root / "test").mkdir(parents=True)
    (root / "classnames.txt").write_text("\n".join(classes) + "\n")
    (root / "zeroshot_classification_templates.txt").write_text("\n".join(templates) + "\n")
    with webdataset.ShardWriter(str(root / "test" / "%d.tar"), maxcount=per_shard, verbose=0) as sink:
        for index, (array, label) in enumerate(zip(images, labels, strict=True)):
            stream = io.BytesIO()
            Image.fromarray(array).save(stream, **options)
            sink.write({"__key__": f"s{index:07d}", image_format: stream.getvalue(), "cls": label})
        shards = sink.shard
    (root / "test" / "nshards.txt").write_text(f"{shards}\n")
    return root


def write_image_folder(root: Path, images: np.ndarray, labels: list[int], classes: list[str]) -> Path:
    """``<class>/<NNNN>.png``: lossless, so the pixels are the array's."""
    from PIL import Image

    for index, (array, label) in enumerate(zip(images, labels, strict=True)):
        path = root / classes[label] / f"{index:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(array).save(path)
    return root


def write_imagenet(root: Path, files: dict[str, list[int]], wnids: list[str], meta: bool = True, side: int = 40) -> Path:
    """torchvision's ImageNet layout: ``val/<wnid>/ILSVRC2012_val_NNNNNNNN.JPEG`` for the image numbers in
    ``files``, and (``meta``) ``meta.bin`` as ``torchvision.datasets.ImageNet`` saves it:
    ``torch.save((wnid_to_classes, val_wnids))`` over all 1,000 ``wnids``."""
    import torch
    from PIL import Image

    val_wnids = [wnids[number % len(wnids)] for number in range(50000)]
    for wnid, numbers in files.items():
        (root / "val" / wnid).mkdir(parents=True, exist_ok=True)
        for number in numbers:
            val_wnids[number - 1] = wnid
            pixels = random_images(1, side, seed=number)[0]
            Image.fromarray(pixels).save(root / "val" / wnid / f"ILSVRC2012_val_{number:08d}.JPEG", quality=90)
    if meta:
        torch.save(({wnid: (f"name of {wnid}",) for wnid in wnids}, val_wnids), root / "meta.bin")
    return root
