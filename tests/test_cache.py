"""The logits cache: same answers warm and cold, never a stale answer for a changed input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pytest_clipcompress.codecs.compression import Compression
from pytest_clipcompress.config.settings import build_settings
from pytest_clipcompress.data.base import ArrayDataset
from pytest_clipcompress.engine.cache import CacheWarning, LogitsCache
from pytest_clipcompress.engine.evaluator import Evaluator
from pytest_clipcompress.models.resolve import register_model_configs

from .helpers import TINY_CONFIG, TINY_MODEL

JPEG_50 = Compression("jpeg", quality=50)


def make_settings(cache_dir: Path, checkpoint: Path, **overrides: str) -> object:
    values = {"model": [TINY_MODEL], "pretrained": str(checkpoint), "cache-dir": str(cache_dir), "workers": "0", **overrides}
    return build_settings(lambda option: values.get(option.name))


def make_dataset(seed: int = 0, count: int = 24) -> ArrayDataset:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(count, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(count) % 3
    return ArrayDataset("toy", ("cat", "dog", "ship"), images, labels, f"toy-{seed}", ("a photo of a {}.",))


@pytest.fixture(autouse=True)
def tiny_registered() -> None:
    register_model_configs([str(TINY_CONFIG)])


def evaluate(settings: object, dataset: ArrayDataset, compression: Compression = JPEG_50) -> np.ndarray:
    return Evaluator.from_settings(settings).evaluate(TINY_MODEL, dataset, compression).logits


def entries(cache_dir: Path) -> int:
    return len(list(cache_dir.rglob("*.npz")))


def test_warm_cache_gives_identical_logits(tmp_path: Path, tiny_checkpoint: Path) -> None:
    settings = make_settings(tmp_path / "cache", tiny_checkpoint)
    cold = evaluate(settings, make_dataset())
    assert entries(tmp_path / "cache") == 2  # compressed and uncompressed logits
    warm = evaluate(settings, make_dataset())
    uncached = evaluate(make_settings(tmp_path / "unused", tiny_checkpoint, **{"no-cache": True}), make_dataset())
    assert np.array_equal(cold, warm) and np.array_equal(cold, uncached)
    assert not (tmp_path / "unused").exists()


def test_changed_inputs_never_reuse_stale_results(tmp_path: Path, tiny_checkpoint: Path) -> None:
    import torch

    cache = tmp_path / "cache"
    settings = make_settings(cache, tiny_checkpoint)
    evaluate(settings, make_dataset())
    assert entries(cache) == 2

    evaluate(settings, make_dataset(seed=1))  # other images
    assert entries(cache) == 4
    evaluate(settings, make_dataset(), Compression("jpeg", quality=51))  # other codec parameters
    assert entries(cache) == 5
    evaluate(make_settings(cache, tiny_checkpoint, templates="paper"), make_dataset())  # other prompts
    assert entries(cache) == 7

    # The same checkpoint path with other weights: the weights hash changes the key.
    state = torch.load(tiny_checkpoint, weights_only=True)
    state["visual.proj"] = state["visual.proj"] * -1
    changed = tmp_path / "changed.pt"
    torch.save(state, changed)
    before = evaluate(make_settings(tmp_path / "other", tiny_checkpoint), make_dataset())
    after = evaluate(make_settings(tmp_path / "other", changed), make_dataset())
    assert entries(tmp_path / "other") == 4
    assert not np.array_equal(before, after)


def test_corrupt_or_foreign_entries_are_recomputed(tmp_path: Path, tiny_checkpoint: Path) -> None:
    cache = tmp_path / "cache"
    settings = make_settings(cache, tiny_checkpoint)
    expected = evaluate(settings, make_dataset())
    for entry in cache.rglob("*.npz"):
        entry.write_bytes(b"garbage")
    with pytest.warns(CacheWarning, match="ignoring unreadable cache entry"):
        assert np.array_equal(evaluate(settings, make_dataset()), expected)


def test_cache_refuses_pickled_entries(tmp_path: Path) -> None:
    store = LogitsCache(tmp_path)
    key = {"k": 1}
    path = store.path_for(key)
    path.parent.mkdir(parents=True)
    np.savez(path, key=np.array(json.dumps(key)), logits=np.array([object()], dtype=object))
    with pytest.warns(CacheWarning, match="Object arrays cannot be loaded"):
        assert store.load(key) is None  # object arrays would need pickle: never loaded


def test_store_is_atomic_and_clear_empties(tmp_path: Path) -> None:
    store = LogitsCache(tmp_path / "c")
    store.store({"k": 2}, {"logits": np.ones((2, 3), dtype=np.float32)})
    assert np.array_equal(store.load({"k": 2})["logits"], np.ones((2, 3)))
    assert not list((tmp_path / "c").rglob(".*.tmp"))
    store.clear()
    assert store.load({"k": 2}) is None


def test_cached_uncached_serial_and_parallel_runs_agree(pytester: pytest.Pytester, tiny_args: list[str], cifar_sample_root: Path) -> None:
    pytester.makepyfile(
        """
        import numpy as np
        import pytest
        from pathlib import Path

        @pytest.mark.clip_dataset("cifar10")
        @pytest.mark.compression("jpeg", quality=[80, 40])
        @pytest.mark.compression("webp", quality=30)
        def test_predictions(clip_eval, compression, request):
            run = Path(request.config.getoption("clip_cache_dir")).name
            np.save(f"{run}-{compression.id}.npy", clip_eval().predictions)
        """
    )
    common = [arg for arg in tiny_args if arg != "--clip-no-cache"] + [f"--clip-data-root={cifar_sample_root}", "--clip-offline", "--clip-samples=60"]
    runs = {"cold": [], "warm": [], "parallel": ["-n", "2"]}
    for name, extra in runs.items():
        cache = pytester.path / ("shared-cache" if name != "parallel" else "parallel-cache")
        outcome = pytester.runpytest_subprocess(*common, f"--clip-cache-dir={cache}", *extra)
        outcome.assert_outcomes(passed=3)
        for file in pytester.path.glob(f"{cache.name}-*.npy"):
            file.rename(pytester.path / f"{name}{file.name[len(cache.name) :]}")
    pytester.runpytest_subprocess(*common, "--clip-no-cache", f"--clip-cache-dir={pytester.path / 'nocache'}").assert_outcomes(passed=3)
    for file in pytester.path.glob("nocache-*.npy"):
        file.rename(pytester.path / f"uncached{file.name[len('nocache') :]}")
    for compression in ("jpeg-q80", "jpeg-q40", "webp-q30"):
        reference = np.load(pytester.path / f"cold-{compression}.npy")
        for name in ("warm", "parallel", "uncached"):
            assert np.array_equal(np.load(pytester.path / f"{name}-{compression}.npy"), reference), (name, compression)
