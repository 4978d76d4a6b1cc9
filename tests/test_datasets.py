"""Dataset loaders against files written in the official formats, and the real samples."""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pytest
from PIL import Image

from pytest_clipcompress.codecs.images import to_rgb
from pytest_clipcompress.data.base import stratified_subset
from pytest_clipcompress.data.cifar10 import CIFAR10_TEST_SIZE, load_cifar10
from pytest_clipcompress.data.folder import load_image_folder
from pytest_clipcompress.data.registry import load_dataset
from pytest_clipcompress.data.stl10 import load_stl10
from pytest_clipcompress.errors import DatasetError, DatasetMissingError

if TYPE_CHECKING:
    from torchvision.datasets import CIFAR10

from .helpers import CIFAR_CLASSES, STL_CLASSES, random_images, write_cifar10, write_stl10


def torchvision_cifar10_test(root: Path) -> CIFAR10:
    """torchvision's own CIFAR-10 reader on ``root``; its md5s are those of the files there (a subset is not the official file)."""
    from torchvision.datasets import CIFAR10

    folder = root / CIFAR10.base_folder

    def md5(name: str) -> str:
        return hashlib.md5((folder / name).read_bytes(), usedforsecurity=False).hexdigest()

    class Sample(CIFAR10):
        train_list: ClassVar[list] = []
        test_list: ClassVar[list] = [["test_batch", md5("test_batch")]]
        meta: ClassVar[dict] = {**CIFAR10.meta, "md5": md5("batches.meta")}

    return Sample(str(root), train=False, download=False)


def assert_same_as_torchvision(root: Path) -> None:
    ours = load_cifar10(root, offline=True)
    theirs = torchvision_cifar10_test(root)
    assert ours.classes == tuple(theirs.classes)
    assert ours.labels.tolist() == list(theirs.targets)
    assert len(ours) == len(theirs)
    for index in range(len(theirs)):
        image, label = theirs[index]
        assert label == ours.labels[index]
        assert np.array_equal(np.asarray(ours.image(index)), np.asarray(image)), f"pixels differ at image {index}"


def test_cifar10_official_layout_round_trips(tmp_path: Path) -> None:
    images = random_images(12, 32)
    labels = [i % 10 for i in range(12)]
    write_cifar10(tmp_path, images, labels)
    dataset = load_cifar10(tmp_path, offline=True)
    assert dataset.classes == tuple(CIFAR_CLASSES)
    assert list(dataset.labels) == labels
    assert np.array_equal(np.asarray(dataset.image(5)), images[5])
    assert dataset.image(5).mode == "RGB"


@pytest.mark.parametrize("python2", [True, False], ids=["python2-pickles", "python3-resave"])
def test_cifar10_reads_python2_pickles_and_python3_copies_like_torchvision(tmp_path: Path, python2: bool) -> None:
    images = random_images(12, 32, seed=4)
    labels = [(3 * i) % 10 for i in range(12)]
    folder = write_cifar10(tmp_path, images, labels, python2=python2)
    with open(folder / "test_batch", "rb") as handle:
        as_bytes = pickle.load(handle, encoding="bytes")
    with open(folder / "test_batch", "rb") as handle:
        as_latin1 = pickle.load(handle, encoding="latin1")
    # Official files: bytes keys under encoding="bytes", str under torchvision's latin1; a re-save: str in both.
    assert set(map(type, as_bytes)) == ({bytes} if python2 else {str})
    assert set(map(type, as_latin1)) == {str}
    dataset = load_cifar10(tmp_path, offline=True)
    assert list(dataset.labels) == labels and dataset.classes == tuple(CIFAR_CLASSES)
    assert all(np.array_equal(np.asarray(dataset.image(i)), images[i]) for i in range(12))
    assert_same_as_torchvision(tmp_path)


def test_real_sample_agrees_with_torchvision_on_every_pixel_and_label(cifar_sample_root: Path) -> None:
    assert_same_as_torchvision(cifar_sample_root)


def test_cifar10_real_sample(cifar_sample_root: Path) -> None:
    dataset = load_dataset("cifar10", cifar_sample_root, offline=True)
    assert len(dataset) == 200
    assert np.bincount(dataset.labels).tolist() == [21, 17, 28, 25, 14, 22, 14, 17, 26, 16]
    assert dataset.classes[0] == "airplane" and dataset.image(0).size == (32, 32)


def test_stl10_official_layout_round_trips(tmp_path: Path) -> None:
    images = random_images(5, 96)
    images[0, :10, :, 0] = 255  # a horizontal band, which a transposed reader would get wrong
    labels = [1, 2, 3, 10, 7]
    write_stl10(tmp_path, images, labels)
    dataset = load_stl10(tmp_path, offline=True)
    assert dataset.classes == tuple(STL_CLASSES)
    assert list(dataset.labels) == [0, 1, 2, 9, 6]
    for index in range(5):
        assert np.array_equal(np.asarray(dataset.image(index)), images[index])


def test_missing_dataset_offline_names_files_and_remedies(tmp_path: Path) -> None:
    with pytest.raises(DatasetMissingError) as caught:
        load_stl10(tmp_path, offline=True)
    message = str(caught.value)
    assert str(tmp_path / "stl10_binary" / "test_X.bin") in message
    assert "stl10_binary.tar.gz" in message and "--clip-data-root" in message and "without --clip-offline" in message


def test_failed_download_leaves_no_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets.utils as tv_utils

    def interrupted(url: str, download_root: str, filename: str, **kwargs: object) -> None:
        (Path(download_root) / filename).write_bytes(b"half an archive")
        raise ConnectionError("connection reset")

    monkeypatch.setattr(tv_utils, "download_and_extract_archive", interrupted)
    with pytest.raises(DatasetError, match=r"downloading cifar10 from https://www\.cs\.toronto\.edu/.* failed .*connection reset"):
        load_cifar10(tmp_path, offline=False)
    assert not (tmp_path / "cifar-10-python.tar.gz").exists()


def test_malicious_pickle_is_rejected_without_running_code(tmp_path: Path) -> None:
    folder = write_cifar10(tmp_path, random_images(2, 32), [0, 1])
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):  # noqa: ANN204 - the attack
            return (os.system, (f"touch {marker}",))

    with open(folder / "test_batch", "wb") as handle:
        pickle.dump({b"data": Exploit(), b"labels": [0]}, handle, protocol=2)
    with pytest.raises(DatasetError, match=r"refusing to load posix\.system"):
        load_cifar10(tmp_path, offline=True)
    assert not marker.exists()


def test_truncated_pickle_is_a_clear_error(tmp_path: Path) -> None:
    folder = write_cifar10(tmp_path, random_images(4, 32), [0, 1, 2, 3])
    path = folder / "test_batch"
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(DatasetError, match=r"truncated or corrupt.*download the dataset again"):
        load_cifar10(tmp_path, offline=True)


def test_full_size_file_with_wrong_checksum_is_rejected(tmp_path: Path) -> None:
    write_cifar10(tmp_path, random_images(CIFAR10_TEST_SIZE, 32), [i % 10 for i in range(CIFAR10_TEST_SIZE)])
    with pytest.raises(DatasetError, match=r"size of the official file but the wrong checksum .*40351d587109b95175f43aff81a1287e"):
        load_cifar10(tmp_path, offline=True)


def test_stl10_truncated_binary_is_rejected(tmp_path: Path) -> None:
    folder = write_stl10(tmp_path, random_images(2, 96), [1, 2])
    (folder / "test_X.bin").write_bytes((folder / "test_X.bin").read_bytes()[:-100])
    with pytest.raises(DatasetError, match="not a whole number of 3x96x96 images"):
        load_stl10(tmp_path, offline=True)


def test_stl10_label_count_mismatch_is_rejected(tmp_path: Path) -> None:
    folder = write_stl10(tmp_path, random_images(2, 96), [1, 2])
    np.asarray([1, 2, 3], dtype=np.uint8).tofile(folder / "test_y.bin")
    with pytest.raises(DatasetError, match="3 labels for 2 images"):
        load_stl10(tmp_path, offline=True)


@pytest.mark.parametrize("samples", [1, 7, 10, 33, 100, 199])
def test_stratified_subset_keeps_class_shares(samples: int) -> None:
    labels = np.repeat(np.arange(10), [21, 17, 28, 25, 14, 22, 14, 17, 26, 16])
    chosen = stratified_subset(labels, samples, seed=3)
    assert len(chosen) == samples == len(set(chosen.tolist()))
    assert np.all(np.diff(chosen) > 0)
    counts = np.bincount(labels[chosen], minlength=10)
    expected = np.bincount(labels, minlength=10) * samples / len(labels)
    assert np.all(np.abs(counts - expected) < 1)
    assert np.array_equal(chosen, stratified_subset(labels, samples, seed=3))


def test_stratified_subset_depends_on_seed_and_all_means_all() -> None:
    labels = np.repeat(np.arange(4), 50)
    assert not np.array_equal(stratified_subset(labels, 20, seed=0), stratified_subset(labels, 20, seed=1))
    assert np.array_equal(stratified_subset(labels, None, seed=0), np.arange(200))
    assert np.array_equal(stratified_subset(labels, 500, seed=0), np.arange(200))


def save_image(path: Path, image: Image.Image) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def test_image_folder_converts_common_modes(tmp_path: Path) -> None:
    save_image(tmp_path / "cats" / "gray.png", Image.new("L", (8, 8), 128))
    save_image(tmp_path / "cats" / "rgba.png", Image.new("RGBA", (8, 8), (255, 0, 0, 0)))
    save_image(tmp_path / "dogs" / "palette.png", Image.new("RGB", (8, 8), (0, 0, 255)).convert("P"))
    sixteen = Image.fromarray(np.full((8, 8), 65535, dtype=np.uint16))
    save_image(tmp_path / "dogs" / "sixteen.png", sixteen)
    dataset = load_image_folder(tmp_path)
    assert dataset.classes == ("cats", "dogs") and list(dataset.labels) == [0, 0, 1, 1]
    pixels = [np.asarray(dataset.image(i))[0, 0].tolist() for i in range(4)]
    assert pixels == [[128, 128, 128], [255, 255, 255], [0, 0, 255], [255, 255, 255]]  # transparent -> white
    assert all(dataset.image(i).mode == "RGB" for i in range(4))


def test_image_folder_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        load_image_folder(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="has no class sub-folders"):
        load_image_folder(tmp_path)
    save_image(tmp_path / "cats" / "a.png", Image.new("RGB", (4, 4)))
    (tmp_path / "dogs").mkdir()
    with pytest.raises(DatasetError, match=r"class folder .*dogs has no images"):
        load_image_folder(tmp_path)
    (tmp_path / "dogs" / "broken.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(DatasetError, match=r"1 file\(s\) in .* are not readable images: .*broken.jpg"):
        load_image_folder(tmp_path)


def test_to_rgb_scales_32_bit_integer_images() -> None:
    image = Image.fromarray(np.array([[0, 32768, 65535]], dtype=np.int32), "I")
    assert np.asarray(to_rgb(image))[0, :, 0].tolist() == [0, 128, 255]


def test_real_image_folder_sample(image_folder_sample: Path) -> None:
    dataset = load_dataset(f"imagefolder:{image_folder_sample}", Path("unused"), offline=True)
    assert len(dataset) == 1000 and len(dataset.classes) == 10
    assert dataset.classes[1] == "automobile" and dataset.image(0).mode == "RGB"


def test_fingerprint_changes_with_file_content(tmp_path: Path) -> None:
    save_image(tmp_path / "a" / "x.png", Image.new("RGB", (4, 4), (1, 2, 3)))
    before = load_image_folder(tmp_path).fingerprint
    save_image(tmp_path / "a" / "x.png", Image.new("RGB", (4, 4), (1, 2, 4)))
    assert load_image_folder(tmp_path).fingerprint != before
