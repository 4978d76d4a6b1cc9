"""Hostile and unlucky input (issue 14, input side): each class ends in a clean message or a clean pass.

Cache faults degrade to one warning, images go through one guard, malformed CIFAR-10 files and
templates are refused with the documented message, sizes a pickle declares beyond what it holds are
refused before anything is allocated, numbers of any real type are accepted and
stored as plain floats, and the ids we generate carry no markup.
"""

from __future__ import annotations

import errno
import html as html_module
import io
import json
import os
import pickle
import re
import struct
import subprocess
import sys
import tempfile
import warnings
import zlib
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from pytest_clipcompress.codecs.compression import Compression
from pytest_clipcompress.codecs.images import check_image, open_image, round_trip
from pytest_clipcompress.codecs.registry import available_codecs
from pytest_clipcompress.config.settings import build_settings
from pytest_clipcompress.data.cifar10 import load_cifar10
from pytest_clipcompress.data.folder import load_image_folder
from pytest_clipcompress.data.registry import dataset_id
from pytest_clipcompress.data.safe_pickle import unpickle_dict
from pytest_clipcompress.data.stl10 import load_stl10
from pytest_clipcompress.engine.cache import CacheWarning, LogitsCache
from pytest_clipcompress.errors import ConfigError, DatasetError
from pytest_clipcompress.inputs import check_fraction, display_text, real_number, safe_id

from .conftest import TINY_CONFIG, TINY_MODEL
from .helpers import DeclaredArray, DeclaredType, python2_pickle
from .test_datasets import (
    CIFAR_CLASSES,
    STL_CLASSES,
    random_images,
    write_cifar10,
    write_stl10,
)

KEY = {"k": 1}
SHAPES = {"logits": (4, 3), "bits_per_pixel": ()}


def good_arrays() -> dict[str, np.ndarray]:
    return {"logits": np.arange(12, dtype=np.float32).reshape(4, 3), "bits_per_pixel": np.float64(1.5)}


# --- the cache: failures are one warning, never an exception ------------------------------------


def _enospc(*args: object, **kwargs: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def _read_only(*args: object, **kwargs: object) -> None:
    raise PermissionError(errno.EROFS, "Read-only file system")


@pytest.mark.parametrize("fault", ["full disk", "read-only", "dir is a file", "raced clear", "entry is a folder"])
def test_cache_write_failures_warn_once_and_raise_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: str) -> None:
    directory = tmp_path / "cache"
    cache = LogitsCache(directory)
    if fault == "full disk":
        monkeypatch.setattr(os, "fsync", _enospc)  # where a full disk reports itself on a buffered write
    elif fault == "read-only":
        monkeypatch.setattr(tempfile, "mkstemp", _read_only)  # root ignores chmod, so the OS error is simulated
    elif fault == "dir is a file":
        directory.write_text("not a folder")
    elif fault == "raced clear":
        original = tempfile.mkstemp

        def cleared_meanwhile(*args: object, **kwargs: object) -> tuple[int, str]:
            LogitsCache(directory).clear()  # another process's --clip-cache-clear, between mkdir and write
            return original(*args, **kwargs)

        monkeypatch.setattr(tempfile, "mkstemp", cleared_meanwhile)
    else:
        cache.path_for(KEY).mkdir(parents=True)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        cache.store(KEY, good_arrays())
        cache.store({"k": 2}, good_arrays())  # a second failure in the same run adds no second line
        assert cache.load(KEY, SHAPES) is None
    assert [w.category for w in record] == [CacheWarning], [str(w.message) for w in record]
    assert "results are computed without the cache" in str(record[0].message)
    assert not list(tmp_path.rglob(".*.tmp")), "a failed write leaves no temporary file"


def _npz(**arrays: object) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


GOOD_KEY = np.array(json.dumps(KEY, sort_keys=True))
MALFORMED = {
    "garbage": b"garbage",
    "empty": b"",
    "truncated": _npz(key=GOOD_KEY, **good_arrays())[:200],
    "no key": _npz(**good_arrays()),
    "other key": _npz(key=np.array('{"k": 2}'), **good_arrays()),
    "key is an array": _npz(key=np.arange(3), **good_arrays()),
    "wrong logits shape": _npz(key=GOOD_KEY, logits=np.zeros((2, 3), np.float32), bits_per_pixel=np.float64(1)),
    "logits are 1-d": _npz(key=GOOD_KEY, logits=np.zeros(12, np.float32), bits_per_pixel=np.float64(1)),
    "integer logits": _npz(key=GOOD_KEY, logits=np.zeros((4, 3), np.int64), bits_per_pixel=np.float64(1)),
    "string logits": _npz(key=GOOD_KEY, logits=np.full((4, 3), "x"), bits_per_pixel=np.float64(1)),
    "no logits": _npz(key=GOOD_KEY, bits_per_pixel=np.float64(1)),
    "nan bits": _npz(key=GOOD_KEY, logits=np.zeros((4, 3), np.float32), bits_per_pixel=np.float64("nan")),
    "array bits": _npz(key=GOOD_KEY, logits=np.zeros((4, 3), np.float32), bits_per_pixel=np.ones(4)),
    "object logits": _npz(key=GOOD_KEY, logits=np.array([object()] * 12, dtype=object).reshape(4, 3), bits_per_pixel=np.float64(1)),
}


@pytest.mark.parametrize("content", MALFORMED.values(), ids=list(MALFORMED))
def test_malformed_cache_entries_are_refused_with_one_warning(tmp_path: Path, content: bytes) -> None:
    cache = LogitsCache(tmp_path)
    cache.path_for(KEY).parent.mkdir(parents=True)
    cache.path_for(KEY).write_bytes(content)
    with pytest.warns(CacheWarning, match="ignoring"):
        assert cache.load(KEY, SHAPES) is None


def test_cache_entry_that_is_a_folder_is_a_miss_with_a_warning(tmp_path: Path) -> None:
    cache = LogitsCache(tmp_path)
    cache.path_for(KEY).mkdir(parents=True)
    with pytest.warns(CacheWarning, match="IsADirectoryError"):
        assert cache.load(KEY, SHAPES) is None


def test_a_good_entry_loads_silently(tmp_path: Path) -> None:
    cache = LogitsCache(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cache.load(KEY, SHAPES) is None  # a plain miss says nothing
        cache.store(KEY, good_arrays())
        loaded = cache.load(KEY, SHAPES)
    assert loaded is not None and np.array_equal(loaded["logits"], good_arrays()["logits"])


def test_cache_warning_never_fails_a_test_under_w_error(tmp_path: Path) -> None:
    cache = LogitsCache(tmp_path / "file")
    (tmp_path / "file").write_text("x")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cache.store(KEY, good_arrays())  # must not raise CacheWarning into the test


def test_evaluator_recomputes_an_entry_of_the_wrong_shape(tmp_path: Path, tiny_checkpoint: Path) -> None:
    from pytest_clipcompress.engine.evaluator import Evaluator
    from pytest_clipcompress.models.resolve import register_model_configs

    from .test_cache import JPEG_50, make_dataset, make_settings

    register_model_configs([str(TINY_CONFIG)])
    settings = make_settings(tmp_path / "cache", tiny_checkpoint)
    expected = Evaluator.from_settings(settings).evaluate(TINY_MODEL, make_dataset(), JPEG_50).logits
    entries = list((tmp_path / "cache").rglob("*.npz"))
    assert len(entries) == 2
    for entry in entries:  # our own key, so only the shape check can refuse it
        with np.load(entry) as stored:
            key = stored["key"]
        np.savez(entry, key=key, logits=np.zeros((1, 1), np.float32), bits_per_pixel=np.float64(1.0))
    with pytest.warns(CacheWarning, match="expected floats of shape"):
        again = Evaluator.from_settings(settings).evaluate(TINY_MODEL, make_dataset(), JPEG_50)
    assert np.array_equal(again.logits, expected) and again.logits.shape == (24, 3)


def test_cache_clear_removes_only_our_entries(tmp_path: Path) -> None:
    cache = LogitsCache(tmp_path)
    cache.store(KEY, good_arrays())
    cache.store({"k": 2}, good_arrays())
    ours = [cache.path_for(KEY), cache.path_for({"k": 2})]
    stale_temporary = ours[0].parent / f".{ours[0].name}.abc123_x.tmp"
    stale_temporary.write_bytes(b"half written")
    foreign = {
        "v1/embeddings.npz": _npz(embeddings=np.ones(3)),
        # Our naming, but not our content: its key does not hash to its name.
        "ab/ab" + "0" * 62 + ".npz": _npz(key=np.array('{"k": 1}'), logits=np.ones((4, 3))),
        "ab/" + "f" * 64 + ".npz": b"someone else's bytes",
        "cd/notes.txt": b"keep me",
        ours[0].parent.name + "/readme.npz": _npz(x=np.ones(1)),
    }
    for name, content in foreign.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(content)
    cache.clear()
    assert not any(path.exists() for path in [*ours, stale_temporary])
    assert all((tmp_path / name).read_bytes() == content for name, content in foreign.items())
    assert cache.load(KEY, SHAPES) is None


# --- one image-loading guard --------------------------------------------------------------------


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` (its data is one row): what a bomb looks like."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\0" * (width + 1)))
        + chunk(b"IEND", b"")
    )


def bmp_header(width: int, height: int) -> bytes:
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 54 + 16, 0, 0, 54) + info + b"\0" * 16


_SEED_IMAGE = Image.fromarray(np.random.default_rng(0).integers(0, 256, (12, 10, 3), dtype=np.uint8), "RGB")


def encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


@pytest.mark.parametrize("data", [png_header(20000, 20000), bmp_header(24, 2_000_000_000)], ids=["png-20000x20000", "bmp-24x2e9"])
def test_decompression_bombs_are_refused_before_decoding(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(data)
    with pytest.raises(DatasetError, match=r"cannot decode .*bomb\.png \(.*(bomb|limit).*\)"):
        open_image(path)
    assert "bomb.png" in (check_image(path) or "")


def test_pixel_limit_is_ours_and_the_option_raises_it(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    Image.new("RGB", (20, 10), (1, 2, 3)).save(path)
    with pytest.raises(DatasetError, match=r"claims 20x10 = 200 pixels, above the limit of 199.*--clip-max-image-pixels"):
        open_image(path, max_pixels=199)
    assert open_image(path, max_pixels=200).getpixel((0, 0)) == (1, 2, 3)
    values = {"max-image-pixels": "199"}
    assert build_settings(lambda option: values.get(option.name)).data.max_image_pixels == 199
    with pytest.raises(ConfigError, match="--clip-max-image-pixels 'lots' is not a whole number"):
        build_settings(lambda option: {"max-image-pixels": "lots"}.get(option.name))


def test_image_folders_keep_the_pixel_limit_for_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cat").mkdir()
    Image.new("RGB", (20, 20)).save(tmp_path / "cat" / "1.png")
    with pytest.raises(DatasetError, match="claims 20x20 = 400 pixels, above the limit of 399"):
        load_image_folder(tmp_path, max_pixels=399)
    dataset = load_image_folder(tmp_path, max_pixels=400)
    assert dataset.image(0).size == (20, 20)
    Image.new("RGB", (21, 20)).save(tmp_path / "cat" / "1.png")  # replaced after loading
    with pytest.raises(DatasetError, match="above the limit of 400"):
        dataset.image(0)

    def denied(self: Path) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "iterdir", denied)  # root ignores chmod, so the OS error is simulated
    with pytest.raises(DatasetError, match=r"cannot read image folder .* \(PermissionError: .*Permission denied.*\); check its permissions"):
        load_image_folder(tmp_path)


def test_bomb_in_an_image_folder_is_a_dataset_error(tmp_path: Path) -> None:
    (tmp_path / "cat").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "cat" / "fine.png")
    (tmp_path / "cat" / "bomb.png").write_bytes(png_header(20000, 20000))
    with pytest.raises(DatasetError, match=r"1 file\(s\) in .* are not readable images: cannot decode .*bomb\.png \("):
        load_image_folder(tmp_path)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"P6 " + b"1" * 30 + b" 1 255\n", "Token too long"),
        (encoded(_SEED_IMAGE, "PNG")[:100], "truncated"),
        (encoded(_SEED_IMAGE, "JPEG")[:400], ""),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", "cannot identify"),  # never handed to Ghostscript
        (b"", "cannot identify"),
    ],
    ids=["ppm-token-too-long", "truncated-png", "truncated-jpeg", "eps", "empty"],
)
def test_decoder_errors_are_cannot_decode(tmp_path: Path, data: bytes, reason: str) -> None:
    path = tmp_path / "x.png"
    path.write_bytes(data)
    with pytest.raises(DatasetError, match=rf"^cannot decode .*x\.png \(.*{reason}.*\); replace or remove the file$"):
        open_image(path)


@pytest.mark.parametrize(
    ("codec", "params", "limit"),
    [("webp", {"quality": 50}, 16383), ("jpeg", {"quality": 50}, 65500), ("avif", {"quality": 50}, 32768)],
)
def test_codec_size_limits_are_checked_before_encoding(codec: str, params: dict, limit: int) -> None:
    if codec not in available_codecs():
        pytest.skip(f"the installed Pillow cannot encode {codec}")
    compression = Compression(codec, **params)
    fits, _ = round_trip(compression, Image.new("RGB", (limit, 1)), "wide.png")
    assert fits.size == (limit, 1)
    message = rf"cannot compress wide\.png with {compression.id} \({codec} images are at most {limit} px per side; this one is {limit + 1}x1\)"
    with pytest.raises(DatasetError, match=message):
        round_trip(compression, Image.new("RGB", (limit + 1, 1)), "wide.png")


def test_encoder_errors_are_cannot_compress(monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(self: Compression, image: Image.Image) -> tuple[Image.Image, int]:
        raise OSError("broken data stream when writing image file")

    monkeypatch.setattr(Compression, "apply", failing)
    with pytest.raises(DatasetError, match=r"^cannot compress cat/1\.png with jpeg-q50 \(OSError: broken data stream when writing image file\)$"):
        round_trip(Compression("jpeg", quality=50), Image.new("RGB", (4, 4)), "cat/1.png")


def test_undecodable_file_and_class_names_are_shown_safely(tmp_path: Path) -> None:
    root = os.fsencode(tmp_path)
    os.mkdir(root + b"/caf\xe9")
    os.mkdir(root + b"/dog")
    Image.new("RGB", (8, 8), (9, 9, 9)).save(os.fsdecode(root + b"/caf\xe9/\xff.png"))
    Image.new("RGB", (8, 8)).save(tmp_path / "dog" / "1.png")
    junk = os.fsdecode(root + b"/dog/\xfe.png")
    Path(junk).write_bytes(b"junk")
    with pytest.raises(DatasetError, match=r"dog/\\xfe\.png \(") as error:
        load_image_folder(tmp_path)
    str(error.value).encode("utf-8")  # printable: no lone surrogates in the message
    Path(junk).unlink()
    dataset = load_image_folder(tmp_path)
    assert dataset.classes == ("caf\\xe9", "dog")
    json.dumps(dataset.classes, ensure_ascii=False).encode("utf-8")
    assert dataset.describe(0).endswith("caf\\xe9/\\xff.png") and dataset.image(0).getpixel((0, 0)) == (9, 9, 9)
    assert display_text(os.fsdecode(b"a\xff")) == "a\\xff" and display_text("plain") == "plain"


def test_stl10_class_names_in_latin1_are_read(tmp_path: Path) -> None:
    folder = write_stl10(tmp_path, random_images(2, 96), [1, 2])
    (folder / "class_names.txt").write_bytes("\n".join(["caf\xe9", *STL_CLASSES[1:]]).encode("latin-1"))
    assert load_stl10(tmp_path, offline=True).classes[0] == "caf\xe9"


# --- the fuzz: mutated image bytes decode to RGB or fail as a DatasetError --------------------------

SEEDS = [
    encoded(_SEED_IMAGE, "PNG"),
    encoded(_SEED_IMAGE, "JPEG", quality=80),
    encoded(_SEED_IMAGE, "BMP"),
    encoded(_SEED_IMAGE, "WEBP", quality=80),
]


@st.composite
def mutated_images(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["flip", "set", "cut", "insert"]))
        position = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set":
            data[position] = draw(st.sampled_from([0, 1, 0x7F, 0x80, 0xFF]))
        elif kind == "cut":
            del data[position : position + draw(st.integers(1, 64))]
        else:
            data[position:position] = draw(st.binary(min_size=1, max_size=16))
        if not data:
            break
    return bytes(data)


# Headers claiming between Pillow's limit and twice it make Pillow warn before the guard refuses them.
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@settings(max_examples=300, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_images())
def test_fuzzed_images_decode_to_rgb_or_fail_cleanly(data: bytes) -> None:
    try:
        image = open_image(data, max_pixels=1_000_000, name="fuzzed.png")
    except DatasetError as error:
        message = str(error)
    else:
        assert image.mode == "RGB" and image.width * image.height <= 1_000_000
        return
    assert message.startswith(("cannot decode fuzzed.png (", "cannot convert fuzzed.png"))


# --- malformed CIFAR-10 files that pass the pickle guard ----------------------------------------


def write_cifar_batch(root: Path, batch: dict) -> Path:
    folder = write_cifar10(root, random_images(4, 32), [0, 1, 2, 3])
    with open(folder / "test_batch", "wb") as handle:
        pickle.dump(batch, handle, protocol=4)  # protocol 2 would pickle empty bytes as a builtins call, refused earlier
    return folder


GOOD_DATA = np.zeros((4, 3072), dtype=np.uint8)
CIFAR_CASES = {
    "labels as an (N, 1) column": ({b"data": GOOD_DATA, b"labels": np.array([[0], [1], [2], [3]])}, "labels must be a flat list"),
    "pixel value 300": ({b"data": np.full((4, 3072), 300, dtype=np.int64), b"labels": [0, 1, 2, 3]}, r"pixel values must lie in 0\.\.255"),
    "negative pixels": ({b"data": np.full((4, 3072), -1, dtype=np.int16), b"labels": [0, 1, 2, 3]}, r"pixel values must lie in 0\.\.255"),
    "huge zero-byte array": ({b"data": np.empty((10**12, 3072), dtype="V0"), b"labels": [0]}, "data must be a uint8 array"),
    "object data": ({b"data": np.array([[10**100] * 3072] * 4, dtype=object), b"labels": [0, 1, 2, 3]}, "data must be a uint8 array"),
    "float data": ({b"data": np.zeros((4, 3072)), b"labels": [0, 1, 2, 3]}, "data must be a uint8 array"),
    "data as bytes": ({b"data": b"\0" * 3072 * 4, b"labels": [0, 1, 2, 3]}, "data must be a uint8 array"),
    "float labels": ({b"data": GOOD_DATA, b"labels": [0.0, 1.0, 2.0, 3.0]}, "labels must be a flat list"),
    "huge label": ({b"data": GOOD_DATA, b"labels": [0, 1, 2, 10**30]}, r"has labels outside 0\.\.9"),
    "too few labels": ({b"data": GOOD_DATA, b"labels": [0, 1]}, "with 2 labels; expected"),
    "no labels": ({b"data": GOOD_DATA}, "no b?'?labels"),
}


@pytest.mark.parametrize(("batch", "message"), CIFAR_CASES.values(), ids=list(CIFAR_CASES))
def test_malformed_cifar10_files_are_clean_errors(tmp_path: Path, batch: dict, message: str) -> None:
    write_cifar_batch(tmp_path, batch)
    with pytest.raises(DatasetError, match=message) as error:
        load_cifar10(tmp_path, offline=True)
    assert "delete it and download again" in str(error.value) or "expected (N, 3072)" in str(error.value) or "labels outside" in str(error.value)


def test_cifar10_label_names_must_be_names(tmp_path: Path) -> None:
    folder = write_cifar10(tmp_path, random_images(4, 32), [0, 1, 2, 3])
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump({b"label_names": 10}, handle, protocol=2)
    with pytest.raises(DatasetError, match="label_names must be a list of class names"):
        load_cifar10(tmp_path, offline=True)
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump({b"label_names": [n.encode("latin-1") for n in ["caf\xe9", *CIFAR_CLASSES[1:]]]}, handle, protocol=2)
    assert load_cifar10(tmp_path, offline=True).classes[0] == "caf\xe9"


# --- sizes a pickle declares: checked against what the file holds before anything is allocated -------

PiB = 2**50
SIZE_CASES: dict[str, tuple[object, str]] = {
    # An array is rebuilt as numpy pickles it: _reconstruct(ndarray, placeholder shape, "b"), then its state.
    "placeholder of 1 PiB": (
        DeclaredArray((4, 3072), "u1", bytes(4 * 3072), placeholder=(PiB,)),
        r"an array placeholder of shape \(1125899906842624,\) and type int8 needs 1,125,899,906,842,624 bytes; the file holds [\d,]+\)",
    ),
    "shape of 1 PiB over 12 KiB of data": (
        DeclaredArray((PiB,), "u1", bytes(4 * 3072)),
        r"an array of shape \(1125899906842624,\) and type uint8 needs 1,125,899,906,842,624 bytes; the file holds 12,288\)",
    ),
    "shape past 64-bit sizes": (
        DeclaredArray((2**62, 2**62), "u1", bytes(16)),
        r"needs 21,267,647,932,558,653,966,460,912,964,485,513,216 bytes; the file holds 16\)",
    ),
    "item size of 1 TiB": (
        DeclaredArray((1,), DeclaredType("V8", itemsize=2**40), bytes(8)),
        r"the array type \S+ is stored with item size 1,099,511,627,776",
    ),
    "object array of 2**40 items listing 2": (
        DeclaredArray((2**40,), "O", [0, 1]),
        r"an object array of shape \(1099511627776,\) needs a list of 1,099,511,627,776 items; the file holds 2 items",
    ),
    "object array of 10 items listing 2": (DeclaredArray((10,), "O", [0, 1]), r"needs a list of 10 items; the file holds 2 items"),  # numpy reads past the list
    "object type without its object flags": (
        DeclaredArray((1,), DeclaredType("O", flags=0), b"A" * 8),
        r"the array type object is stored with item size 8, alignment 8 and flags 0, unlike numpy's own",
    ),
    "uint8 type with object flags": (
        DeclaredArray((2,), DeclaredType("u1", flags=63), [1, 2]),
        r"the array type uint8 is stored with item size 1, alignment 1 and flags 63",
    ),
    # Lengths in the opcodes themselves: CPython allocates a declared length, and a memo table up to the slot, before reading.
    "bytes8 of 1 PiB": (b"\x80\x04" + pickle.BINBYTES8 + struct.pack("<Q", PiB) + b"abc", r"expected 1125899906842624 bytes in a bytes8, but only 3 remain"),
    "bytearray8 of 1 PiB": (
        b"\x80\x05" + pickle.BYTEARRAY8 + struct.pack("<Q", PiB) + b"abc",
        r"expected 1125899906842624 bytes in a bytearray8, but only 3 remain",
    ),
    "unicode8 of 1 PiB": (
        b"\x80\x04" + pickle.BINUNICODE8 + struct.pack("<Q", PiB) + b"abc",
        r"expected 1125899906842624 bytes in a unicodestring8, but only 3 remain",
    ),
    "Python 2 string of 2 GiB": (
        b"\x80\x02" + pickle.BINSTRING + struct.pack("<i", 2**31 - 1) + b"abc",
        r"expected 2147483647 bytes in a string4, but only 3 remain",
    ),
    "frame of 1 PiB": (b"\x80\x04" + pickle.FRAME + struct.pack("<Q", PiB) + b"}.", r"a frame at byte 2 needs 1,125,899,906,842,624 bytes; the file holds 2\)"),
    "memo slot 2**28 (4 GiB of memo)": (
        b"\x80\x02}" + pickle.LONG_BINPUT + struct.pack("<I", 2**28) + b".",
        r"memo slot 268,435,456 at byte 3 after 0 stored objects",
    ),
    "memo slot 10**15": (b"\x80\x02}" + pickle.PUT + b"1000000000000000\n.", r"memo slot 1,000,000,000,000,000 at byte 3 after 0 stored objects"),
}
PICKLE_FILES = {"test_batch": b"data", "batches.meta": b"label_names"}

# Each crafted folder is loaded in a child process with 2 GiB of address space, so a guard that
# breaks fails its own case (numpy reading past a short list crashes; a memo slot of 2**28 takes
# 4 GiB) instead of taking the test run down.
LOAD_EACH = """
import json, resource, sys
from pathlib import Path
resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
from pytest_clipcompress.data.cifar10 import load_cifar10
from pytest_clipcompress.errors import DatasetError
for root in sys.argv[1:]:
    try:
        dataset = load_cifar10(Path(root), offline=True)
        outcome = f"loaded {len(dataset)} images, data flags {dataset.images.dtype.flags}"
    except DatasetError as error:
        outcome = str(error)
    except Exception as error:
        outcome = f"unexpected {type(error).__name__}: {error}"
    print(json.dumps([root, outcome]), flush=True)
"""


def crafted_file(case: object, name: str) -> bytes:
    """A whole file of raw opcodes, or the file ``name`` with ``case`` where its array or list goes."""
    if isinstance(case, bytes):
        return case
    if name == "test_batch":
        return python2_pickle({b"batch_label": b"crafted", b"labels": [0, 1, 2, 3], b"data": case})
    return python2_pickle({b"label_names": case, b"num_cases_per_batch": 10000, b"num_vis": 3072})


def rebuilt_type_batch() -> bytes:
    """A test_batch whose data takes a uint8 type that the file then rebuilds with object flags."""
    uint8_state = b"(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK%ctb"  # (3, '|', None, None, None, -1, -1, flags) BUILD
    return b"".join(
        [
            b"\x80\x02}(U\x06labels](K\x00K\x01K\x02K\x03e",
            b"U\x04kindcnumpy\ndtype\nU\x02u1K\x00K\x01\x87Rq\x00" + uint8_state % 0,  # the type, in memo slot 0
            b"U\x04datacnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85U\x01b\x87R",
            b"(K\x01J\x04\x00\x00\x00M\x00\x0c\x86h\x00\x89T" + struct.pack("<i", 4 * 3072) + bytes(4 * 3072) + b"tb",  # (1, (4, 3072), slot 0, False, data)
            b"U\x05againh\x00" + uint8_state % 63 + b"u.",  # slot 0 rebuilt: a uint8 type claiming objects
        ]
    )


@pytest.fixture(scope="module")
def crafted_outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], str]:
    """What load_cifar10 says about each crafted file (every case in both pickles), from one child process.

    ``("child", "exit")`` holds how the child ended: its exit status and what it wrote to stderr.
    """
    base = tmp_path_factory.mktemp("crafted")
    roots: dict[str, tuple[str, str]] = {}
    for index, (case, name) in enumerate([*((c, n) for c in SIZE_CASES for n in PICKLE_FILES), ("rebuilt type", "test_batch")]):
        folder = write_cifar10(base / str(index), random_images(4, 32), [0, 1, 2, 3])
        (folder / name).write_bytes(rebuilt_type_batch() if case == "rebuilt type" else crafted_file(SIZE_CASES[case][0], name))
        roots[str(base / str(index))] = (case, name)
    environment = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    child = subprocess.run([sys.executable, "-c", LOAD_EACH, *roots], capture_output=True, text=True, timeout=120, env=environment)
    ended = f"exit {child.returncode}; stderr: {child.stderr[-2000:]!r}"
    outcomes = dict.fromkeys(roots.values(), f"no outcome: the child process ended before this case ({ended})")
    outcomes.update((roots[root], outcome) for root, outcome in map(json.loads, child.stdout.splitlines()))
    return {**outcomes, ("child", "exit"): ended}


@pytest.mark.parametrize("name", PICKLE_FILES)
@pytest.mark.parametrize("case", SIZE_CASES)
def test_declared_sizes_beyond_the_file_are_refused_before_allocating(crafted_outcomes: dict[tuple[str, str], str], case: str, name: str) -> None:
    message = crafted_outcomes[(case, name)]
    assert re.fullmatch(rf".*/cifar-10-batches-py/{re.escape(name)} is truncated or corrupt \(.*\); delete it and download the dataset again", message), message
    assert re.search(SIZE_CASES[case][1], message), message


def test_a_type_rebuilt_after_its_array_took_it_leaves_the_array_alone(crafted_outcomes: dict[tuple[str, str], str]) -> None:
    # numpy's arrays get numpy's own type objects, never the file's, so a later rebuild changes nothing they use.
    assert crafted_outcomes[("rebuilt type", "test_batch")] == f"loaded 4 images, data flags {np.dtype(np.uint8).flags}"
    assert crafted_outcomes[("child", "exit")] == "exit 0; stderr: ''"  # nothing went wrong when the arrays were freed either


@pytest.mark.parametrize("name", PICKLE_FILES)
def test_an_unreadable_pickle_is_one_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    folder = write_cifar10(tmp_path, random_images(4, 32), [0, 1, 2, 3])
    real_read = Path.read_bytes

    def denied(self: Path) -> bytes:
        if self.name == name:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_read(self)

    monkeypatch.setattr(Path, "read_bytes", denied)  # root ignores chmod, so the OS error is simulated
    with pytest.raises(DatasetError) as error:
        load_cifar10(tmp_path, offline=True)
    assert str(error.value) == f"cannot read {folder / name} (PermissionError: Permission denied); check its permissions"


@pytest.mark.parametrize("protocol", [2, 4])
def test_arrays_of_every_plain_type_load_as_numpy_loads_them(tmp_path: Path, protocol: int) -> None:
    arrays = [
        np.arange(6, dtype=">i4").reshape(2, 3),
        np.asfortranarray(np.arange(6).reshape(2, 3)),
        np.array([b"ab", b"c"]),
        np.array(["ab", "\xe9"]),
        np.array(["2020-01-01"], dtype="M8[ns]"),
        np.array([True, False]),
        np.zeros(3, np.float16),
        np.array([1 + 2j]),
        np.array([1, None, "x", np.arange(2)], dtype=object),
    ]
    if protocol > 2:  # protocol 2 writes empty bytes as a call to bytes(), which the guard refuses
        arrays.append(np.empty((10**12, 3072), dtype="V0"))
    blob = pickle.dumps({"arrays": arrays, "pair": (arrays[0], [arrays[1]])}, protocol=protocol)
    (tmp_path / "arrays.pickle").write_bytes(blob)
    loaded, expected = unpickle_dict(tmp_path / "arrays.pickle", "test"), pickle.loads(blob)  # numpy's own rebuild (our own file)
    for ours, theirs in zip(loaded["arrays"], expected["arrays"], strict=True):
        assert type(ours) is np.ndarray and (ours.dtype, ours.shape, ours.strides) == (theirs.dtype, theirs.shape, theirs.strides)
        assert ours[:3].tolist() == theirs[:3].tolist() if theirs.dtype.hasobject else ours.tobytes() == theirs.tobytes()
    nested = loaded["arrays"][8][3]  # an array inside an object array
    assert type(nested) is np.ndarray and nested.tolist() == [0, 1]
    assert type(loaded["pair"]) is tuple and type(loaded["pair"][0]) is np.ndarray and type(loaded["pair"][1][0]) is np.ndarray


@pytest.mark.parametrize("name", PICKLE_FILES)
def test_a_crafted_pickle_errors_at_setup_with_one_line(pytester: pytest.Pytester, tmp_path: Path, name: str) -> None:
    folder = write_cifar10(tmp_path, random_images(4, 32), [0, 1, 2, 3])
    (folder / name).write_bytes(crafted_file(SIZE_CASES["placeholder of 1 PiB"][0], name))
    pytester.makepyfile('import pytest\n\n@pytest.mark.clip_dataset("cifar10")\ndef test_evaluate(clip_eval):\n    clip_eval()\n')
    result = pytester.runpytest(f"--clip-data-root={tmp_path}", "--clip-offline", "-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    reason = "an array placeholder of shape (1125899906842624,) and type int8 needs 1,125,899,906,842,624 bytes; the file holds *"
    result.stdout.fnmatch_lines(
        ["*_ ERROR at setup of test_evaluate[[]cifar10[]] _*", f"{folder / name} is truncated or corrupt ({reason}); delete it and download the dataset again"]
    )
    text = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in text and "MemoryError" not in text and "pytest_clipcompress/" not in text


# --- templates ----------------------------------------------------------------------------------


@pytest.mark.parametrize("template", ["a {0.__class__} {}", "a {style} photo of {}", "a { photo of {}", "a {1} {}", "{} and {}", "a {}} b", "a {{}} b"])
def test_templates_with_format_fields_are_refused_at_start(tmp_path: Path, template: str) -> None:
    path = tmp_path / "t.json"
    path.write_text(json.dumps(["a photo of a {}.", template]))
    with pytest.raises(ConfigError, match=r"template .* must hold exactly one \{\} where the class name goes and no other braces") as error:
        build_settings(lambda option: {"templates": str(path)}.get(option.name))
    assert repr(template) in str(error.value)


def test_a_plain_template_file_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text(json.dumps(["a photo of a {}.", "itap of the {}"]))
    assert build_settings(lambda option: {"templates": str(path)}.get(option.name)).data.templates == str(path)


# --- numbers at the boundary --------------------------------------------------------------------


def test_real_numbers_of_any_type_become_plain_values() -> None:
    import torch

    for value in (np.float32(0.5), np.float64(0.5), Decimal("0.5"), Fraction(1, 2), torch.tensor(0.5), 0.5):
        number = check_fraction("floor", value)
        assert type(number) is float and number == 0.5
    for value in (np.int64(75), torch.tensor(75), Decimal(75), 75.0):
        assert type(Compression("jpeg", quality=value).param("quality")) is int
        assert Compression("jpeg", quality=value).id == "jpeg-q75"
    assert type(real_number(np.int64(3))) is int and real_number(np.array([1.0])) is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0.8", r"floor='0\.8' is not a number; floors are fractions \(0\.8 means 80%\)"),
        ("high", "floor='high' is not a number"),
        (True, "floor=True is not a number"),
        (None, "floor=None is not a number"),
        (float("nan"), r"floor=nan is not finite"),
        (np.float32("inf"), r"floor=inf is not finite"),
        (85, r"floor=85 is outside \[0, 1\]; floors are fractions \(0\.85 means 85%\)"),
        (-0.1, r"floor=-0\.1 is outside \[0, 1\]"),
        (10**400, r"floor=1000.* is outside \[0, 1\]"),
        (np.array([0.8]), "is not a number"),
        (1 + 0j, "is not a number"),
    ],
)
def test_bad_floors_get_one_message(value: object, message: str) -> None:
    from pytest_clipcompress.engine.breaking_point import find_breaking_point

    with pytest.raises(ConfigError, match=message):
        check_fraction("floor", value)
    with pytest.raises(ConfigError, match=message):
        find_breaking_point(lambda c: None, "jpeg", "quality", floor=value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [True, "75", float("nan"), np.float64(75.5), np.array([75]), Decimal("NaN"), 10**400, np.bool_(True)])
def test_bad_marker_values_are_refused(value: object) -> None:
    with pytest.raises(ConfigError, match="jpeg quality="):
        Compression("jpeg", quality=value)


@pytest.mark.parametrize(
    ("option", "message"), [("nan", "min_accuracy=nan is not finite"), ("inf", "is not finite"), ("85", r"0\.85 means 85%"), ("x", "'x' is not a number")]
)
def test_bad_floor_options_are_one_message(option: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_settings(lambda o: {"min-accuracy": option}.get(o.name))


# --- ids ----------------------------------------------------------------------------------------


def test_generated_ids_hold_only_safe_characters() -> None:
    assert dataset_id("imagefolder:/data/<img src=x onerror=alert(1)>/") == "imagefolder-_img_src_x_onerror_alert_1__"
    assert dataset_id("imagefolder:/data/caf\udce9 $x") == "imagefolder-caf___x"
    assert safe_id("hf-hub:org/model") == "hf-hub_org_model"
    assert Compression("jpeg", quality=50, subsampling="4:2:0").id == "jpeg-q50-s420"


# --- the plugin end to end ----------------------------------------------------------------------

NUMBERS_SUITE = """
import numpy as np
from decimal import Decimal
import pytest
from pytest_clipcompress import assert_accuracy

@pytest.mark.clip_dataset("demo")
@pytest.mark.compression("jpeg", quality=np.int64(60))
def test_numpy_floor(clip_eval):
    assert_accuracy(clip_eval(), min_accuracy=np.float32(0.0), max_drop=Decimal("1"))

@pytest.mark.clip_dataset("demo")
def test_string_floor(clip_eval):
    assert_accuracy(clip_eval(), min_accuracy="0.8")

def test_percentage_floor(clip_breaking_point):
    clip_breaking_point("demo", floor=85)
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_numpy_floors_pass_and_bad_floors_fail_cleanly(pytester: pytest.Pytester, tiny_args: list[str], workers: list[str]) -> None:
    pytester.makepyfile(NUMBERS_SUITE)
    results = pytester.path / "results.json"
    run = pytester.runpytest_subprocess if workers else pytester.runpytest  # xdist needs a real process
    outcome = run(*tiny_args, "--clip-samples=20", "--clip-ig-samples=0", f"--clip-results={results}", "-p", "no:cacheprovider", *workers)
    outcome.assert_outcomes(passed=1, failed=2)
    # One search each: under xdist the two failures are reported in either order.
    outcome.stdout.fnmatch_lines(["min_accuracy='0.8' is not a number; floors are fractions (0.8 means 80%)"])
    outcome.stdout.fnmatch_lines(["floor=85 is outside [0, 1]; floors are fractions (0.85 means 85%)"])
    text = outcome.stdout.str()
    assert "INTERNALERROR" not in text and "Traceback" not in text and "During handling" not in text
    payload = json.loads(results.read_text(), parse_constant=lambda name: pytest.fail(f"{name} in results"))
    assert sorted(record["compression_id"] for record in payload["evaluations"]) == ["jpeg-q60", "none"]
    (check,) = [c for c in payload["checks"] if "::test_numpy_floor[" in c["test"]]
    assert check["min_accuracy"] == 0.0 and check["max_drop"] == 1.0 and check["passed"] is True


@pytest.mark.parametrize(
    ("pretrained", "message"),
    [("missing.pt", "checkpoint file missing.pt does not exist"), ("nosuchtag", "unknown pretrained tag 'nosuchtag' for clipcompress-demo")],
)
def test_demo_model_with_a_bad_pretrained_is_a_usage_error(pytester: pytest.Pytester, pretrained: str, message: str) -> None:
    pytester.makepyfile("def test_nothing(clip_model):\n    pass\n")
    result = pytester.runpytest("--clip-model=clipcompress-demo", f"--clip-pretrained={pretrained}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}*"])


def test_markup_in_a_folder_name_never_reaches_the_html_report(pytester: pytest.Pytester, tiny_args: list[str]) -> None:
    folder = pytester.path / "<img src=x onerror=alert(1)>"
    for index, name in enumerate(("cat", "dog")):
        (folder / name).mkdir(parents=True)
        Image.new("RGB", (16, 16), (index * 200, 0, 0)).save(folder / name / "1.png")
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.clip_dataset({("imagefolder:" + str(folder))!r})
        @pytest.mark.compression("jpeg", quality=50)
        def test_folder(clip_eval):
            clip_eval()
        """
    )
    result = pytester.runpytest(*tiny_args, "--clip-ig-samples=0", "--html=report.html", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    html = (pytester.path / "report.html").read_text()
    # pytest-html keeps its rows as JSON in an attribute and inserts the id cells with innerHTML, unescaped.
    blob = json.loads(html_module.unescape(re.search(r'data-jsonblob="([^"]*)"', html).group(1)))
    (entry,) = [entry for entries in blob["tests"].values() for entry in entries]
    assert entry["testId"].endswith("test_folder[imagefolder-_img_src_x_onerror_alert_1__-jpeg-q50]")
    assert not [cell for cell in entry["resultsTableRow"] if "<img" in cell]


def test_malformed_cache_entries_and_a_bomb_end_cleanly(pytester: pytest.Pytester, tiny_args: list[str]) -> None:
    folder = pytester.path / "photos"
    for name in ("cat", "dog"):
        (folder / name).mkdir(parents=True)
        Image.new("RGB", (16, 16)).save(folder / name / "1.png")
    (folder / "dog" / "bomb.png").write_bytes(png_header(20000, 20000))
    pytester.makepyfile(
        f"""
        import json
        import pytest

        @pytest.mark.clip_dataset("demo")
        @pytest.mark.compression("jpeg", quality=40)
        def test_demo(clip_eval):
            print("LOGITS", json.dumps(clip_eval().logits.tolist()))

        @pytest.mark.clip_dataset({("imagefolder:" + str(folder))!r})
        def test_bomb(clip_eval):
            clip_eval()
        """
    )
    args = [arg for arg in tiny_args if arg != "--clip-no-cache"]
    args += [f"--clip-cache-dir={pytester.path / 'cache'}", "--clip-samples=10", "--clip-ig-samples=0", "-p", "no:cacheprovider", "-s"]
    cold = pytester.runpytest(*args)
    cold.assert_outcomes(passed=1, errors=1)
    cold.stdout.fnmatch_lines(["*1 file(s) in *photos are not readable images: cannot decode *bomb.png (*"])
    entries = list((pytester.path / "cache").rglob("*.npz"))
    assert len(entries) == 2
    for entry in entries:
        with np.load(entry) as stored:
            key = stored["key"]
        np.savez(entry, key=key, logits=np.zeros((3, 1), np.float32), bits_per_pixel=np.float64("nan"))
    warm = pytester.runpytest(*args)
    warm.assert_outcomes(passed=1, errors=1, warnings=1)
    warm.stdout.fnmatch_lines(["*CacheWarning: ignoring cache entry *(logits is float32 of shape (3, 1), expected floats of shape (10, *"])
    logits = re.findall(r"LOGITS (\[\[.*?\]\])", cold.stdout.str())
    assert len(logits) == 1 and logits == re.findall(r"LOGITS (\[\[.*?\]\])", warm.stdout.str())  # recomputed, identical
    for result in (cold, warm):
        assert "INTERNALERROR" not in result.stdout.str() and "Traceback" not in result.stdout.str()


def test_results_json_is_strict() -> None:
    from pytest_clipcompress.results.collector import ResultsCollector

    collector = ResultsCollector()
    collector.add("t.py::test", {"evaluations": [], "checks": [{"min_accuracy": float("nan"), "passed": True}], "breaking_points": []})  # type: ignore[typeddict-item]
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        collector.to_json()  # never a bare NaN, which JSON readers reject
