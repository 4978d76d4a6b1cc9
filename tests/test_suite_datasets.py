"""ImageNet-1k, CIFAR-100 and CLIP_benchmark's webdataset shards, loaded from files written here in the
official formats; tampered and truncated files; offline messages; the facts (class names, templates,
checksums) against the libraries that publish them; one prediction through every loader."""

from __future__ import annotations

import functools
import http.server
import io
import pickle
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pytest_clipcompress.data.cifar100 import CIFAR100_DOWNLOAD, CIFAR100_TEMPLATES, load_cifar100
from pytest_clipcompress.data.imagenet import IMAGENET_CLASSNAMES, IMAGENET_TEMPLATES
from pytest_clipcompress.data.registry import dataset_id, load_dataset
from pytest_clipcompress.errors import DatasetError, DatasetMissingError

from .helpers import CIFAR_CLASSES, random_images, write_cifar100, write_image_folder, write_imagenet, write_wds

TENCH, GOLDFISH, TOILET_TISSUE = "n01440764", "n01443537", "n15075141"  # ImageNet-1k labels 0, 1 and 999


@functools.cache
def all_wnids() -> list[str]:
    from timm.data import ImageNetInfo

    return list(ImageNetInfo("imagenet-1k").label_names())


def load(name: str, root: Path, offline: bool = True):  # noqa: ANN201 - an ImageDataset
    return load_dataset(name, root, offline)


# --- facts -------------------------------------------------------------------------------------


def test_imagenet_names_and_templates_are_clips_as_open_clip_ships_them() -> None:
    import open_clip

    assert tuple(open_clip.IMAGENET_CLASSNAMES) == IMAGENET_CLASSNAMES
    assert [template.format("X") for template in IMAGENET_TEMPLATES] == [make("X") for make in open_clip.OPENAI_IMAGENET_TEMPLATES]
    assert len(IMAGENET_TEMPLATES) == 80 and IMAGENET_CLASSNAMES[:2] == ("tench", "goldfish") and IMAGENET_CLASSNAMES[999] == "toilet paper"


def test_official_wnids_are_sorted_and_a_thousand() -> None:
    assert len(all_wnids()) == 1000 == len(set(all_wnids())) and all_wnids() == sorted(all_wnids())
    assert (all_wnids()[0], all_wnids()[1], all_wnids()[999]) == (TENCH, GOLDFISH, TOILET_TISSUE)


def test_cifar100_download_and_templates_are_the_published_ones() -> None:
    from torchvision.datasets import CIFAR100

    assert (CIFAR100_DOWNLOAD.url, CIFAR100_DOWNLOAD.md5, CIFAR100_DOWNLOAD.folder) == (CIFAR100.url, CIFAR100.tgz_md5, CIFAR100.base_folder)
    assert CIFAR100_DOWNLOAD.checksums == dict(CIFAR100.test_list)
    assert CIFAR100_TEMPLATES[0] == "a photo of a {}." and len(CIFAR100_TEMPLATES) == 18


# --- ImageNet ----------------------------------------------------------------------------------


def test_imagenet_torchvision_layout_loads_with_official_labels(tmp_path: Path) -> None:
    write_imagenet(tmp_path, {TENCH: [1, 7], GOLDFISH: [3], TOILET_TISSUE: [50000]}, all_wnids())
    dataset = load(f"imagenet1k:{tmp_path}", Path("unused"))
    assert dataset.classes == IMAGENET_CLASSNAMES and dataset.templates == IMAGENET_TEMPLATES
    assert dataset.labels.tolist() == [0, 0, 1, 999]
    expected = Image.open(tmp_path / "val" / TENCH / "ILSVRC2012_val_00000007.JPEG").convert("RGB")
    assert np.array_equal(np.asarray(dataset.image(1)), np.asarray(expected))
    assert dataset.describe(1).endswith("ILSVRC2012_val_00000007.JPEG")
    # Cheap to send to a worker process: 1,000 class names, 80 templates and a name per file, never pixels.
    assert len(pickle.dumps(dataset)) < 20000 + 100 * len(dataset)


def test_imagenet_under_the_data_root_and_as_a_plain_wnid_folder(tmp_path: Path) -> None:
    write_imagenet(tmp_path / "imagenet", {GOLDFISH: [2]}, all_wnids())
    assert load("imagenet1k", tmp_path).labels.tolist() == [1]
    plain = tmp_path / "plain"
    (plain / TOILET_TISSUE).mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(plain / TOILET_TISSUE / "a.jpg")
    assert load(f"imagenet1k:{plain}", tmp_path).labels.tolist() == [999]
    assert dataset_id(f"imagenet1k:{plain}/") == "imagenet1k-plain"


def test_imagenet_folder_that_disagrees_with_the_devkit_is_refused(tmp_path: Path) -> None:
    write_imagenet(tmp_path, {TENCH: [1], GOLDFISH: [3]}, all_wnids())
    (tmp_path / "val" / TENCH / "ILSVRC2012_val_00000001.JPEG").rename(tmp_path / "val" / GOLDFISH / "ILSVRC2012_val_00000001.JPEG")
    with pytest.raises(DatasetError, match=rf"ILSVRC2012_val_00000001.JPEG is in the folder of {GOLDFISH} but the devkit labels it {TENCH}"):
        load(f"imagenet1k:{tmp_path}", tmp_path)


def test_imagenet_tampered_or_truncated_meta_file_is_a_clear_error(tmp_path: Path) -> None:
    write_imagenet(tmp_path, {TENCH: [1]}, all_wnids())
    meta = tmp_path / "meta.bin"
    meta.write_bytes(meta.read_bytes()[:300])
    with pytest.raises(DatasetError, match=r"meta.bin is not torchvision's ImageNet meta file .*truncated or tampered"):
        load(f"imagenet1k:{tmp_path}", tmp_path)
    marker = tmp_path / "pwned"
    meta.write_bytes(pickle.dumps(Exploit(str(marker)), protocol=2))
    with pytest.raises(DatasetError, match=r"truncated or tampered"):
        load(f"imagenet1k:{tmp_path}", tmp_path)
    assert not marker.exists()


class Exploit:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        import os

        return (os.system, (f"touch {self.path}",))


def test_imagenet_unknown_folders_and_undecodable_images(tmp_path: Path) -> None:
    (tmp_path / "cats").mkdir()
    (tmp_path / TENCH).mkdir()
    (tmp_path / TENCH / "broken.JPEG").write_bytes(b"\xff\xd8 not a jpeg")
    with pytest.raises(DatasetError, match=r"folders that are not ImageNet-1k classes \(cats\).*WordNet id"):
        load(f"imagenet1k:{tmp_path}", tmp_path)
    (tmp_path / "cats").rmdir()
    dataset = load(f"imagenet1k:{tmp_path}", tmp_path)  # labels only at load ...
    with pytest.raises(DatasetError, match=r"cannot decode .*broken.JPEG"):  # ... the image when its batch is prepared
        dataset.image(0)


def test_imagenet_missing_says_where_the_files_go(tmp_path: Path) -> None:
    with pytest.raises(DatasetMissingError) as caught:
        load("imagenet1k", tmp_path, offline=False)  # never downloaded, online or not: ImageNet needs a login
    message = str(caught.value)
    assert str(tmp_path / "imagenet") in message and "ILSVRC2012_devkit_t12.tar.gz" in message and "ILSVRC2012_img_val.tar" in message
    assert "meta.bin and val/<wnid>/*.JPEG" in message and "--clip-data-root" in message and "imagenet1k:PATH" in message


def test_imagenet_archives_with_the_wrong_checksum_are_refused(tmp_path: Path) -> None:
    for name in ("ILSVRC2012_devkit_t12.tar.gz", "ILSVRC2012_img_val.tar"):
        (tmp_path / name).write_bytes(b"not the archive")
    with pytest.raises(DatasetError, match=r"ILSVRC2012_devkit_t12.tar.gz .*official md5 did not match"):
        load(f"imagenet1k:{tmp_path}", tmp_path)


# --- CIFAR-100 ---------------------------------------------------------------------------------

CIFAR100_NAMES = [f"class_{i}" for i in range(98)] + ["aquarium_fish", "maple_tree"]


def test_cifar100_official_layout_agrees_with_torchvision(tmp_path: Path) -> None:
    from torchvision.datasets import CIFAR100

    images, labels = random_images(12, 32, seed=5), [0, 99, 98, 5, 17, 99, 3, 3, 60, 61, 62, 1]
    folder = write_cifar100(tmp_path, images, labels, CIFAR100_NAMES)
    dataset = load_cifar100(tmp_path, offline=True)
    assert dataset.classes[98:] == ("aquarium fish", "maple tree") and len(dataset.classes) == 100
    assert dataset.templates == CIFAR100_TEMPLATES

    import hashlib

    class Sample(CIFAR100):  # torchvision's reader with the md5s of these files (a subset is not the official file)
        train_list = []  # noqa: RUF012
        test_list = [["test", hashlib.md5((folder / "test").read_bytes(), usedforsecurity=False).hexdigest()]]  # noqa: RUF012
        meta = {**CIFAR100.meta, "md5": hashlib.md5((folder / "meta").read_bytes(), usedforsecurity=False).hexdigest()}  # noqa: RUF012

    theirs = Sample(str(tmp_path), train=False, download=False)
    assert dataset.labels.tolist() == list(theirs.targets) == labels
    assert [name.replace("_", " ") for name in theirs.classes] == list(dataset.classes)
    assert all(np.array_equal(np.asarray(dataset.image(i)), np.asarray(theirs[i][0])) for i in range(12))


def test_cifar100_truncated_or_tampered_files_and_offline_message(tmp_path: Path) -> None:
    folder = write_cifar100(tmp_path, random_images(4, 32), [0, 1, 2, 3], CIFAR100_NAMES)
    test = folder / "test"
    original = test.read_bytes()
    test.write_bytes(original[:1500])
    with pytest.raises(DatasetError, match=r"truncated or corrupt.*download the dataset again"):
        load_cifar100(tmp_path, offline=True)
    test.write_bytes(pickle.dumps({b"data": Exploit(str(tmp_path / "pwned")), b"fine_labels": [0]}, protocol=2))
    with pytest.raises(DatasetError, match=r"refusing to load posix\.system"):
        load_cifar100(tmp_path, offline=True)
    with pytest.raises(DatasetMissingError, match=r"cifar-100-python/test.*cifar-100-python.tar.gz \(md5 eb9058c3a382ffc7106e4002c42a8d85\).*--clip-data-root"):
        load_cifar100(tmp_path / "empty", offline=True)


def test_cifar100_labels_must_fit_the_hundred_names(tmp_path: Path) -> None:
    write_cifar100(tmp_path, random_images(2, 32), [0, 100], CIFAR100_NAMES)
    with pytest.raises(DatasetError, match=r"labels outside 0\.\.99"):
        load_cifar100(tmp_path, offline=True)


# --- webdataset shards -------------------------------------------------------------------------

WDS_TEMPLATES = ["a photo of a {c}.", "itap of a {c} {{braces}}."]


@pytest.mark.parametrize("image_format", ["webp", "png", "jpg"])
def test_wds_agrees_with_clip_benchmarks_webdataset_pipeline(tmp_path: Path, image_format: str) -> None:
    import webdataset

    images, labels = random_images(12, 24, seed=2), [i % 3 for i in range(12)]
    root = write_wds(tmp_path / "wds_toy", images, labels, ["red", "green", "blue"], WDS_TEMPLATES, image_format)
    dataset = load(f"wds:{root}", tmp_path)
    assert dataset.classes == ("red", "green", "blue") and dataset.templates == ("a photo of a {}.", "itap of a {} {{braces}}.")
    assert [t.format("cat") for t in dataset.templates] == [t.format(c="cat") for t in WDS_TEMPLATES]
    # CLIP_benchmark's build_wds_dataset, step for step: 3 shards of 5, 5 and 2 samples.
    assert (root / "test" / "nshards.txt").read_text() == "3\n"
    pipeline = webdataset.WebDataset(str(root / "test" / "{0..2}.tar"), shardshuffle=False, nodesplitter=lambda src: src)
    pipeline = pipeline.decode(webdataset.autodecode.ImageHandler("pil", extensions=["webp", "png", "jpg", "jpeg"])).to_tuple(
        ["webp", "png", "jpg", "jpeg"], "cls"
    )
    theirs = list(pipeline)
    assert dataset.labels.tolist() == [label for _, label in theirs] == labels
    for index, (image, _) in enumerate(theirs):
        assert np.array_equal(np.asarray(dataset.image(index)), np.asarray(image.convert("RGB"))), f"pixels differ at sample {index}"
    assert dataset_id(f"wds:{root}/") == "wds-wds_toy" and dataset_id(f"wds:{root}/test/{{0..2}}.tar") == "wds-wds_toy"
    assert len(load(f"wds:{root}/test/{{0..1}}.tar", tmp_path)) == 10


def test_wds_truncated_shard_bad_labels_and_layout_errors(tmp_path: Path) -> None:
    root = write_wds(tmp_path / "ds", random_images(6, 24), [0, 1, 2, 0, 1, 2], ["a", "b", "c"], WDS_TEMPLATES)
    shard = root / "test" / "1.tar"
    whole = shard.read_bytes()
    shard.write_bytes(whole[: len(whole) // 3])
    with pytest.raises(DatasetError, match=r"1\.tar is (truncated inside s0000005|not a readable tar shard)"):
        load(f"wds:{root}", tmp_path)
    shard.write_bytes(whole)
    (root / "classnames.txt").write_text("a\nb\n")
    with pytest.raises(DatasetError, match=r"has label 2, outside 0\.\.1 \(2 classes in classnames.txt\)"):
        load(f"wds:{root}", tmp_path)
    (root / "classnames.txt").write_text("a\n\nb\n")
    with pytest.raises(DatasetError, match=r"classnames.txt line 2 is empty; class names are read by position"):
        load(f"wds:{root}", tmp_path)
    (root / "classnames.txt").write_text("a\nb\nc\n")
    (root / "zeroshot_classification_templates.txt").write_text("a photo of a {}.\n")
    with pytest.raises(DatasetError, match=r"line 1 must name the class as \{c\}"):
        load(f"wds:{root}", tmp_path)
    (root / "zeroshot_classification_templates.txt").write_text("a photo of a {c}.\n")
    (root / "test" / "nshards.txt").write_text("3\n")
    with pytest.raises(DatasetError, match=r"counts 3 shards but .*2\.tar is missing"):
        load(f"wds:{root}", tmp_path)
    (root / "test" / "nshards.txt").write_text("2\n")
    (root / "dataset_type.txt").write_text("retrieval\n")
    with pytest.raises(DatasetError, match=r"is a 'retrieval' dataset"):
        load(f"wds:{root}", tmp_path)


def test_wds_sample_without_label_is_refused(tmp_path: Path) -> None:
    (tmp_path / "ds" / "test").mkdir(parents=True)
    (tmp_path / "ds" / "classnames.txt").write_text("a\n")
    (tmp_path / "ds" / "zeroshot_classification_templates.txt").write_text("a {c}\n")
    (tmp_path / "ds" / "test" / "nshards.txt").write_text("1\n")
    with tarfile.open(tmp_path / "ds" / "test" / "0.tar", "w") as tar:
        data = io.BytesIO()
        Image.new("RGB", (4, 4)).save(data, "png")
        info = tarfile.TarInfo("s0000000.png")
        info.size = len(data.getvalue())
        tar.addfile(info, io.BytesIO(data.getvalue()))
    with pytest.raises(DatasetError, match=r"sample s0000000 has no \.cls label; every sample needs both"):
        load(f"wds:{tmp_path / 'ds'}", tmp_path)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    """A web server on this machine serving ``tmp_path/www`` (stands in for the hub)."""
    (tmp_path / "www").mkdir()
    handler = functools.partial(QuietHandler, directory=str(tmp_path / "www"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def test_wds_url_is_downloaded_once_into_the_data_root_and_offline_says_where(tmp_path: Path, served: str) -> None:
    images, labels = random_images(7, 16, seed=9), [0, 1, 0, 1, 0, 1, 1]
    write_wds(tmp_path / "www" / "wds_toy", images, labels, ["x", "y"], WDS_TEMPLATES)
    url = f"{served}/wds_toy"
    data_root = tmp_path / "data"
    with pytest.raises(DatasetMissingError, match=rf"wds:{url} is not in {data_root}/wds/wds_toy-[0-9a-f]{{8}}; download the dataset folder there"):
        load(f"wds:{url}", data_root, offline=True)
    dataset = load(f"wds:{url}/", data_root, offline=False)
    assert dataset.name == f"wds:{url}" and dataset.labels.tolist() == labels
    assert np.array_equal(np.asarray(dataset.image(6)), images[6])
    assert [path.name for path in (data_root / "wds").iterdir() if path.is_dir()] == [dataset.shards[0].parents[1].name]
    assert load(f"wds:{url}", data_root, offline=True).fingerprint == dataset.fingerprint  # now cached
    with pytest.raises(DatasetError, match=r"downloading wds:.*/nowhere failed"):
        load(f"wds:{served}/nowhere", data_root, offline=False)
    assert not any(path.name.endswith(".partial") for path in (data_root / "wds").iterdir())


def test_wds_missing_folder_is_a_skip_with_the_layout(tmp_path: Path) -> None:
    with pytest.raises(DatasetMissingError, match=r"does not exist; put a dataset in CLIP_benchmark's webdataset layout there \(test/nshards.txt"):
        load(f"wds:{tmp_path / 'nowhere'}", tmp_path)


# --- one prediction through every loader --------------------------------------------------------


def test_same_images_and_prompts_give_the_same_predictions_through_every_loader(cifar_sample_root: Path, tmp_path: Path) -> None:
    from pytest_clipcompress.codecs.compression import Compression
    from pytest_clipcompress.config.settings import build_settings
    from pytest_clipcompress.engine.evaluator import Evaluator

    cifar = load("cifar10", cifar_sample_root)
    indices = np.arange(0, 200, 5)
    images, labels = np.stack([np.asarray(cifar.image(int(i))) for i in indices]), cifar.labels[indices].tolist()
    folder = write_image_folder(tmp_path / "folder", images, labels, CIFAR_CLASSES)
    shards = write_wds(tmp_path / "shards", images, labels, CIFAR_CLASSES, ["a photo of a {c}."], "png", per_shard=16)
    values = {"templates": "paper", "no-cache": True, "device": "cpu", "data-root": str(cifar_sample_root), "offline": True}
    evaluator = Evaluator.from_settings(build_settings(lambda option: values.get(option.name)))
    jpeg = Compression("jpeg", quality=40)
    runs = {name: evaluator.evaluate("clipcompress-demo", name, jpeg) for name in ("cifar10", f"imagefolder:{folder}", f"wds:{shards}")}
    # The same 40 images in each loader's order: the folder lists them class by class.
    by_class = np.argsort(labels, kind="stable")
    logits = {
        "pickle": runs["cifar10"].logits[indices],
        "png folder": runs[f"imagefolder:{folder}"].logits[np.argsort(by_class)],
        "wds shards": runs[f"wds:{shards}"].logits,
    }
    for name, own in logits.items():
        assert np.array_equal(own, logits["pickle"]), f"{name} differs from the pickle's logits"
    assert all(result.classes == tuple(CIFAR_CLASSES) for result in runs.values())
    assert runs[f"wds:{shards}"].labels.tolist() == labels


def test_datasets_pickle_to_worker_processes_without_their_pixels(tmp_path: Path) -> None:
    from .helpers import write_stl10

    write_stl10(tmp_path, random_images(40, 96), [1 + i % 10 for i in range(40)])
    write_wds(tmp_path / "wds", random_images(40, 48), [i % 3 for i in range(40)], ["a", "b", "c"], WDS_TEMPLATES)
    write_image_folder(tmp_path / "folder", random_images(40, 48), [i % 3 for i in range(40)], ["a", "b", "c"])
    for name in ("stl10", f"wds:{tmp_path / 'wds'}", f"imagefolder:{tmp_path / 'folder'}"):
        dataset = load(name, tmp_path)
        dataset.image(3)  # a dataset in use (STL-10's map opened) pickles just as small
        sent = pickle.dumps(dataset)
        assert len(sent) < 8000, f"{name}: {len(sent)} bytes"  # STL-10's file alone is 1.1 MB
        received = pickle.loads(sent)
        assert all(np.array_equal(np.asarray(received.image(i)), np.asarray(dataset.image(i))) for i in (0, 39))
        assert received.labels.tolist() == dataset.labels.tolist() and received.fingerprint == dataset.fingerprint


def test_missing_datasets_skip_with_where_the_files_go(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makepyfile(
        test_missing="""
        import pytest

        @pytest.mark.clip_dataset("imagenet1k", "cifar100", "wds:/nowhere/wds_vtab-cifar10")
        def test_suite(clip_eval):
            clip_eval()
        """
    )
    outcome = pytester.runpytest_inprocess(f"--clip-data-root={tmp_path}", "--clip-offline", "-rs", "-v", "-p", "no:cacheprovider")
    outcome.assert_outcomes(skipped=3)
    text = outcome.stdout.str()
    assert f"imagenet1k is not in {tmp_path / 'imagenet'}; put ImageNet-1k's validation split in" in text
    assert f"cifar100 is not in {tmp_path} (missing: {tmp_path / 'cifar-100-python' / 'test'}" in text
    assert "wds:/nowhere/wds_vtab-cifar10 does not exist; put a dataset in CLIP_benchmark's webdataset layout there" in text
    assert all(f"test_suite[{case}] SKIPPED" in text for case in ("imagenet1k", "cifar100", "wds-wds_vtab-cifar10"))
