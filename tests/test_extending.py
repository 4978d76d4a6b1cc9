"""The registries: a codec, a dataset and a metric added from outside the package, and one spelling
per dataset. The examples in docs/extending.md run here as written."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pytest_clipcompress.codecs.registry import CODECS, CodecSpec, ParamSpec, register_codec
from pytest_clipcompress.data.base import DatasetSpec
from pytest_clipcompress.data.registry import DATASETS, dataset_id, register_dataset, validate_dataset_name
from pytest_clipcompress.engine.metrics import METRICS, Metric, register_metric
from pytest_clipcompress.errors import ConfigError

from .helpers import without_run_block

DOCS = Path(__file__).resolve().parents[1] / "docs"

TOY_CONFTEST = """
import hashlib

import numpy as np

from pytest_clipcompress.codecs.registry import CodecSpec, ParamSpec, register_codec
from pytest_clipcompress.data.base import ArrayDataset, DatasetSpec
from pytest_clipcompress.data.registry import register_dataset
from pytest_clipcompress.plugin import dataset_fixture


def level_to_quality(level):
    return 100 - 10 * level  # level 1 is JPEG quality 90, level 9 quality 10


register_codec(
    CodecSpec(
        "toyjpeg", "JPEG", "jpg",
        {"level": ParamSpec(int, "l", 1, 9, milder="lower", label="level", pillow="quality", to_pillow=level_to_quality)},
        required=("level",),
        label="Toy JPEG",
    )
)


def load_toy(source):
    rng = np.random.default_rng(7)
    labels = np.arange(12) % 3
    colours = np.array([[220, 30, 30], [30, 200, 40], [40, 60, 230]])
    images = np.clip(colours[labels][:, None, None, :] + rng.integers(-20, 21, size=(12, 32, 32, 3)), 0, 255).astype(np.uint8)
    fingerprint = hashlib.sha256(images.tobytes()).hexdigest()[:16]
    return ArrayDataset(source.name, ("red", "green", "blue"), images, labels, fingerprint, ("a photo of something {}.",))


register_dataset(DatasetSpec("toy", load_toy))
toy = dataset_fixture("toy")
"""

TOY_TESTS = """
import io

import numpy as np
import pytest
from hypothesis import find, settings
from PIL import Image

from pytest_clipcompress import assert_accuracy
from pytest_clipcompress import strategies as cs
from pytest_clipcompress.engine.breaking_point import mildness_order


@pytest.mark.clip_dataset("toy")
@pytest.mark.compression("toyjpeg", level=[1, 8])
def test_toy(clip_eval, compression, clip_dataset):
    result = clip_eval()
    assert result.dataset == "toy" and result.n == 12
    image = clip_dataset.image(0)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=100 - 10 * compression.param("level"))
    expected = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    assert np.array_equal(np.asarray(compression.apply(image)[0]), expected)
    assert_accuracy(result, min_accuracy=0.0)


def test_fixture_search_and_strategy(toy, clip_breaking_point):
    assert toy.classes == ("red", "green", "blue")
    assert list(mildness_order("toyjpeg", "level")) == list(range(1, 10))
    assert find(cs.codec("toyjpeg"), lambda c: True, settings=settings(database=None)).param("level") == 1
    point = clip_breaking_point("toy", "toyjpeg", "level", floor=1.0)  # floors are at most 1: only a perfect score passes, the mildest breaks
    assert point.breaking_value == 1 and point.last_passing_value is None
"""


@pytest.fixture
def registries() -> Iterator[None]:
    """Registrations made by in-process pytester runs and doc examples are undone afterwards."""
    saved = [(registry, dict(registry)) for registry in (CODECS, DATASETS, METRICS)]
    yield
    for registry, contents in saved:
        registry.clear()
        registry.update(contents)


def test_a_conftest_registers_a_codec_and_a_dataset_without_editing_the_package(pytester: pytest.Pytester, tiny_args: list[str], registries: None) -> None:
    pytester.makeconftest(TOY_CONFTEST)
    pytester.makepyfile(test_toy=TOY_TESTS)
    listed = pytester.runpytest("--markers")
    listed.stdout.fnmatch_lines(["*Codecs: none, jpeg(*), toyjpeg(level 1-9).", "*clip_dataset(*names): datasets to evaluate on: *, toy; one case per name."])

    serial_results, parallel_results = pytester.path / "serial.json", pytester.path / "parallel.json"
    serial = pytester.runpytest(*tiny_args, "-v", "-p", "no:cacheprovider", f"--clip-results={serial_results}")
    serial.assert_outcomes(passed=3)
    serial.stdout.fnmatch_lines(["*test_toy[[]toy-toyjpeg-l1[]] PASSED*", "*test_toy[[]toy-toyjpeg-l8[]] PASSED*"])
    results = json.loads(serial_results.read_text())
    by_id = {record["compression_id"]: record for record in results["evaluations"]}
    assert {"toyjpeg-l1", "toyjpeg-l8"} <= set(by_id) and all(re.fullmatch(r"toyjpeg-l\d", i) for i in by_id)  # + the search's probes
    assert all(r["dataset"] == "toy" and r["n"] == 12 and r["compression"]["codec"] == "toyjpeg" for r in by_id.values())
    assert by_id["toyjpeg-l8"]["bits_per_pixel"] < by_id["toyjpeg-l1"]["bits_per_pixel"]  # harsher level, fewer bits
    assert results["breaking_points"][0]["codec"] == "toyjpeg" and results["breaking_points"][0]["dataset"] == "toy"

    # Each xdist worker imports the conftest, so each registers the same codec and dataset.
    parallel = pytester.runpytest(*tiny_args, "-n", "2", "-p", "no:cacheprovider", f"--clip-results={parallel_results}")
    parallel.assert_outcomes(passed=3)
    # Identical but for the run block (its start time, to the second, may differ between two runs).
    assert without_run_block(parallel_results.read_text()) == without_run_block(serial_results.read_text())


def _write_folder(root: Path) -> None:
    rng = np.random.default_rng(1)
    for name, colour in (("red", (220, 30, 30)), ("blue", (40, 60, 230))):
        (root / name).mkdir(parents=True)
        for index in range(3):
            pixels = np.clip(np.array(colour) + rng.integers(-20, 21, size=(24, 24, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{index}.png")


def test_one_spelling_per_image_folder_keeps_the_breaking_point_on_its_chart(pytester: pytest.Pytester, tiny_args: list[str], tmp_path: Path) -> None:
    folder = tmp_path / "shapes"
    _write_folder(folder)
    pytester.makepyfile(
        f"""
        def test_search(clip_breaking_point):
            clip_breaking_point("imagefolder:{folder}/", "jpeg", "quality", floor=1.0, low=90, high=95)
        """
    )
    results_path = pytester.path / "results.json"
    outcome = pytester.runpytest(*tiny_args, "-p", "no:cacheprovider", f"--clip-results={results_path}")
    outcome.assert_outcomes(passed=1)
    results = json.loads(results_path.read_text())
    point = results["breaking_points"][0]
    assert point["dataset"] == f"imagefolder:{folder}"
    # The charts match breaking points to evaluations by (model, pretrained, dataset, codec).
    keys = {(r["model"], r["pretrained"], r["dataset"], r["compression"]["codec"]) for r in results["evaluations"]}
    assert (point["model"], point["pretrained"], point["dataset"], point["codec"]) in keys


def test_image_folder_spellings_are_one_dataset(tmp_path: Path) -> None:
    assert validate_dataset_name(f"imagefolder:{tmp_path}/") == validate_dataset_name(f"imagefolder:{tmp_path}") == f"imagefolder:{tmp_path}"
    assert validate_dataset_name("imagefolder:~/pictures") == f"imagefolder:{Path('~/pictures').expanduser()}"
    assert dataset_id(f"imagefolder:{tmp_path}/") == dataset_id(f"imagefolder:{tmp_path}") == f"imagefolder-{tmp_path.name}"
    assert validate_dataset_name("cifar10") == "cifar10" and dataset_id("stl10") == "stl10"
    for bad in ("imagefolder:", "imagefolder:  ", "imagefolder", "demo:x", "imagenet"):
        with pytest.raises(ConfigError, match="unknown dataset"):
            validate_dataset_name(bad)


def test_registrations_are_checked() -> None:
    with pytest.raises(ConfigError, match="'jpeg' is built in"):
        register_codec(CodecSpec("jpeg", "PNG", None))
    register_codec(CODECS["jpeg"])  # the same spec again is harmless
    with pytest.raises(ConfigError, match=r"raw_decoder='jpeg'; give \(decoder name, \(arguments, ...\)\)"):
        register_codec(CodecSpec("rawjpeg", "JPEG", "jpg", raw_decoder="jpeg"))  # type: ignore[arg-type]  # the mistake under test
    assert "rawjpeg" not in CODECS
    with pytest.raises(ConfigError, match="not in its params"):
        register_codec(CodecSpec("broken", "PNG", None, {"level": ParamSpec(int, "l", 0, 9)}, required=("quality",)))
    with pytest.raises(ConfigError, match="'demo' is built in"):
        register_dataset(DatasetSpec("demo", lambda source: None))
    with pytest.raises(ConfigError, match="without ':'"):
        register_dataset(DatasetSpec("a:b", lambda source: None))
    with pytest.raises(ConfigError, match="'accuracy' is built in"):
        register_metric(Metric("accuracy", lambda result: 0.0, higher_is_better=True, floor="min_accuracy"))
    assert (
        "broken" not in CODECS
        and "a:b" not in DATASETS
        and list(METRICS) == ["accuracy", "drop", "top5", "top5_drop", "mean_per_class_recall", "mean_per_class_recall_drop"]
    )


def test_a_loader_must_name_its_dataset_canonically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_clipcompress.data import registry
    from pytest_clipcompress.data.demo import load_demo

    loaded = load_demo()
    monkeypatch.setitem(DATASETS, "renamed", DatasetSpec("renamed", lambda source: loaded))
    with pytest.raises(ConfigError, match="returned 'demo'; it must return an ImageDataset named 'renamed'"):
        registry.load_dataset("renamed", tmp_path, offline=True)


def test_extending_examples_run_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, registries: None) -> None:
    """Every ```python block of docs/extending.md, in order, in one namespace."""
    blocks = re.findall(r"^```python\n(.*?)^```", (DOCS / "extending.md").read_text(encoding="utf-8"), flags=re.S | re.M)
    assert len(blocks) >= 3, "docs/extending.md lost its examples"
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "extending_example"}
    for block in blocks:
        exec(compile(block, str(DOCS / "extending.md"), "exec"), namespace)  # the docs' own examples
    assert {"leveljpeg", "patches", "top3"} <= set(CODECS) | set(DATASETS) | set(METRICS)
