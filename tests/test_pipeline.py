"""The image pipeline: the codec in worker processes, the model's preprocessing batched on its device.

Worker processes give the inline pipeline's numbers; each original is decoded once for both of an
evaluation's passes; images of several sizes are batched by size; a bad image or a dying worker is
one clear error naming the image; Ctrl-C leaves no process behind; datasets travel cheaply.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import signal
import subprocess
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pytest_clipcompress.codecs.compression import Compression
from pytest_clipcompress.config.options import cpu_share
from pytest_clipcompress.config.settings import build_settings
from pytest_clipcompress.data.base import ArrayDataset
from pytest_clipcompress.data.folder import load_image_folder
from pytest_clipcompress.engine.codec_stage import PreparedBatch
from pytest_clipcompress.engine.evaluator import Evaluator
from pytest_clipcompress.engine.pipeline import ModelTransform, PipelineWarning
from pytest_clipcompress.errors import DatasetError
from pytest_clipcompress.models.resolve import register_model_configs

from .helpers import TINY_CONFIG, TINY_MODEL, without_run_block

JPEG_50 = Compression("jpeg", quality=50)


@pytest.fixture(autouse=True)
def tiny_registered() -> None:
    register_model_configs([str(TINY_CONFIG)])


def evaluator(checkpoint: Path, workers: int, **overrides: str) -> Evaluator:
    values = {"model": [TINY_MODEL], "pretrained": str(checkpoint), "no-cache": True, "device": "cpu", "workers": str(workers), **overrides}
    return Evaluator.from_settings(build_settings(lambda option: values.get(option.name)))


def noise(count: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(count, height, width, 3), dtype=np.uint8)


class CountingDataset(ArrayDataset):
    """Counts the images it hands out (in this process: the inline pipeline)."""

    def __init__(self, images: np.ndarray) -> None:
        super().__init__("counted", ("a", "b"), images, np.arange(len(images)) % 2, "counted-0", ("a photo of a {}.",))
        self.served = 0

    def image(self, index: int) -> Image.Image:
        self.served += 1
        return super().image(index)


class UnsendableDataset(ArrayDataset):
    """Holds a lambda: it cannot be pickled, so it cannot go to worker processes."""

    def __init__(self, images: np.ndarray) -> None:
        super().__init__("unsendable", ("a", "b"), images, np.arange(len(images)) % 2, "unsendable-0", ("a photo of a {}.",))
        self.describe_index = lambda index: f"unsendable image {index}"


class StillbornDataset(ArrayDataset):
    """Kills any process that unpickles it: a worker that cannot start (as with a class it cannot import)."""

    def __setstate__(self, state: dict[str, object]) -> None:
        os.kill(os.getpid(), signal.SIGKILL)


class DyingDataset(ArrayDataset):
    """Kills the process that prepares image ``fatal`` unless it is the one that made the dataset (a crash in native code)."""

    def __init__(self, images: np.ndarray, fatal: int) -> None:
        super().__init__("dying", ("a", "b"), images, np.arange(len(images)) % 2, "dying-0", ("a photo of a {}.",))
        self.fatal, self.home = fatal, os.getpid()

    def image(self, index: int) -> Image.Image:
        if index == self.fatal and os.getpid() != self.home:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().image(index)


def test_worker_processes_give_the_inline_logits(tiny_checkpoint: Path, cifar_sample_root: Path) -> None:
    results = {}
    for workers in (0, 2):
        evaluated = evaluator(tiny_checkpoint, workers, **{"data-root": str(cifar_sample_root), "offline": True, "batch-size": "48"})
        results[workers] = [evaluated.evaluate(TINY_MODEL, "cifar10", Compression("jpeg", quality=q)) for q in (75, 25)]
        assert bool(evaluated.pipeline._loaders) == (workers > 0)  # the worker processes did prepare the images
        evaluated.close()
    for inline, pooled in zip(results[0], results[2], strict=True):
        assert np.array_equal(inline.logits, pooled.logits) and np.array_equal(inline.baseline_logits, pooled.baseline_logits)
        assert inline.bits_per_pixel == pooled.bits_per_pixel


class SlowArrays(ArrayDataset):
    """Images that take a while to prepare, as large photographs do."""

    def image(self, index: int) -> Image.Image:
        time.sleep(0.08)
        return super().image(index)


class NoSharedMemoryDataset(ArrayDataset):
    """Arrays in worker processes where shared memory has no room (a container's 64 MiB /dev/shm): any move there fails as torch's does."""

    def __setstate__(self, state: dict[str, object]) -> None:  # runs in each worker process as it receives the dataset
        import torch

        def full(tensor: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("unable to allocate shared memory(shm) for file </torch_1_2_3>: No space left on device (28)")

        torch.Tensor.share_memory_ = full  # type: ignore[method-assign]
        self.__dict__.update(state)


def test_batches_go_through_pipes_when_shared_memory_is_full(tiny_checkpoint: Path) -> None:
    images, labels = noise(40, 32, 32), np.arange(40) % 2
    full = NoSharedMemoryDataset("full", ("a", "b"), images, labels, "full-0", ("{}",))
    inline = evaluator(tiny_checkpoint, 0, **{"batch-size": "8"}).evaluate(TINY_MODEL, full, JPEG_50)
    pooled = evaluator(tiny_checkpoint, 2, **{"batch-size": "8"})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = pooled.evaluate(TINY_MODEL, full, JPEG_50)
        pooled.evaluate(TINY_MODEL, full, Compression("jpeg", quality=20))
    said = [str(warning.message) for warning in caught if issubclass(warning.category, PipelineWarning)]
    assert len(said) == 1, said  # once per run
    assert re.match(r"the codec's worker processes cannot hand a batch of 8 images over through shared memory \(RuntimeError: unable to", said[0])
    assert "--shm-size" in said[0] and "--clip-batch-size" in said[0]  # what to do
    assert np.array_equal(result.logits, inline.logits) and np.array_equal(result.baseline_logits, inline.baseline_logits)
    pooled.close()


def test_a_piped_batch_pickles_without_shared_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a worker sends when shared memory is full: torch's pickler must not try shared memory again (in a worker that
    fails unseen in the queue's feeder thread, and the evaluation waits for the batch for ever)."""
    from multiprocessing.reduction import ForkingPickler

    import torch
    import torch.multiprocessing  # registers the reductions that put tensors in shared memory

    def full(storage: object) -> None:
        raise RuntimeError("unable to allocate shared memory(shm): No space left on device (28)")

    for method in ("_share_fd_cpu_", "_share_filename_cpu_"):
        monkeypatch.setattr(torch.UntypedStorage, method, full)
    pixels = [torch.arange(12, dtype=torch.uint8), torch.arange(12, 24, dtype=torch.uint8)]
    batch = PreparedBatch(np.array([[2, 2]]), pixels, [1.0, 2.0], piped="no room")
    received = pickle.loads(ForkingPickler.dumps(batch))
    assert received.piped == "no room" and all(torch.equal(a, b) for a, b in zip(received.pixels, pixels, strict=True))
    with pytest.raises(RuntimeError, match="No space left"):  # a batch in shared memory as usual still goes that way
        ForkingPickler.dumps(replace(batch, piped=None))


def test_by_default_on_the_cpu_workers_start_only_where_they_pay(tiny_checkpoint: Path) -> None:
    values = {"model": [TINY_MODEL], "pretrained": str(tiny_checkpoint), "no-cache": True, "device": "cpu", "batch-size": "8"}
    default = Evaluator.from_settings(build_settings(lambda option: values.get(option.name)))
    quick = ArrayDataset("quick", ("a", "b"), noise(40, 32, 32), np.arange(40) % 2, "quick-0", ("{}",))
    default.evaluate(TINY_MODEL, quick, JPEG_50)
    assert default.pipeline.adaptive and not default.pipeline._loaders  # 5 batches of 32 px images: milliseconds of codec work
    slow = SlowArrays("slow", ("a", "b"), noise(48, 32, 32), np.arange(48) % 2, "slow-0", ("{}",))
    inline = evaluator(tiny_checkpoint, 0, **{"batch-size": "8"}).evaluate(TINY_MODEL, slow, JPEG_50)
    pooled = default.evaluate(TINY_MODEL, slow, JPEG_50)  # 0.64 s per batch, 3.2 s left after the first: the workers start
    assert [dataset for dataset, _, _ in default.pipeline._loaders.values()] == [slow]
    assert np.array_equal(pooled.logits, inline.logits) and np.array_equal(pooled.baseline_logits, inline.baseline_logits)
    default.close()


def test_the_uncompressed_pass_shares_each_decode(tiny_checkpoint: Path) -> None:
    dataset = CountingDataset(noise(12, 32, 32))
    evaluated = evaluator(tiny_checkpoint, 0, **{"batch-size": "5"})
    first = evaluated.evaluate(TINY_MODEL, dataset, JPEG_50)
    assert dataset.served == 12  # one decode per image for the uncompressed and the JPEG pass
    evaluated.evaluate(TINY_MODEL, dataset, Compression("jpeg", quality=20))
    assert dataset.served == 24  # the uncompressed logits are remembered: only the new pass
    alone = evaluator(tiny_checkpoint, 0, **{"batch-size": "5"})
    assert np.array_equal(alone.evaluate(TINY_MODEL, dataset, Compression("none")).logits, first.baseline_logits)


def test_images_of_several_sizes_are_batched_by_size() -> None:
    import open_clip
    import torch
    from torchvision import transforms

    from pytest_clipcompress.engine.device_transform import plan_device_transform

    images = [noise(1, *shape, seed=i)[0] for i, shape in enumerate([(40, 60), (32, 32), (40, 60), (75, 20), (32, 32)])]
    pixels = torch.from_numpy(np.concatenate([image.reshape(-1) for image in images]))
    shapes = np.array([image.shape[:2] for image in images])
    odd = transforms.Compose([transforms.Resize(24), transforms.CenterCrop(24), transforms.Lambda(lambda image: image), transforms.ToTensor()])
    for preprocess in (open_clip.image_transform(24, is_train=False), odd):
        transform = ModelTransform(preprocess, plan_device_transform(preprocess))
        assert (transform.plan is None) == (preprocess is odd)  # a Lambda: the model's own transform, image by image
        expected = torch.stack([preprocess(Image.fromarray(image, "RGB")) for image in images])
        assert torch.equal(transform(pixels, shapes), expected)
        one_size = torch.from_numpy(np.concatenate([images[1].reshape(-1), images[4].reshape(-1)]))  # one batch, as CIFAR-10's
        assert torch.equal(transform(one_size, shapes[[1, 4]]), expected[[1, 4]])


def test_a_file_that_breaks_while_decoding_is_named(tiny_checkpoint: Path, tmp_path: Path) -> None:
    for label, seed in (("cat", 1), ("dog", 2)):
        (tmp_path / label).mkdir()
        for number, size in enumerate([(48, 64), (30, 30)]):
            Image.fromarray(noise(1, *size, seed=seed + number)[0]).save(tmp_path / label / f"{number}.png")
    encoded = io.BytesIO()
    Image.fromarray(noise(1, 60, 80)[0]).save(encoded, "JPEG", quality=90)
    broken = tmp_path / "dog" / "broken.jpg"
    broken.write_bytes(encoded.getvalue()[: len(encoded.getvalue()) // 2])  # passes the folder's scan, fails to decode
    dataset = load_image_folder(tmp_path)
    evaluated = evaluator(tiny_checkpoint, 2, **{"batch-size": "1"})  # five batches: the worker processes prepare them
    with pytest.raises(DatasetError, match=rf"^cannot decode {broken} \(OSError: image file is truncated.*replace or remove the file$"):
        evaluated.evaluate(TINY_MODEL, dataset, JPEG_50)
    evaluated.close()


def test_a_worker_process_that_dies_is_named(tiny_checkpoint: Path) -> None:
    dataset = DyingDataset(noise(10, 32, 32), fatal=6)
    evaluated = evaluator(tiny_checkpoint, 1, **{"batch-size": "4"})
    with pytest.raises(DatasetError, match=r"^a codec worker process died while preparing dying image 6 \(none, jpeg-q50; .*\); check or remove that image$"):
        evaluated.evaluate(TINY_MODEL, dataset, JPEG_50)
    stillborn = StillbornDataset("stillborn", ("a", "b"), noise(10, 32, 32), np.arange(10) % 2, "s-0", ("{}",))
    with pytest.raises(DatasetError, match=r"^the codec worker processes died \(.*\), and a fresh one dies before preparing any image: .*--clip-workers 0$"):
        evaluated.evaluate(TINY_MODEL, stillborn, JPEG_50)
    evaluated.close()


def test_a_dataset_that_cannot_be_pickled_is_prepared_in_the_process(tiny_checkpoint: Path) -> None:
    from pytest_clipcompress.engine.pipeline import PipelineWarning

    dataset = UnsendableDataset(noise(10, 32, 32))
    with pytest.warns(PipelineWarning, match=r"^dataset unsendable cannot be sent to the codec's worker processes \(.*lambda.*\); its images are prepared"):
        pooled = evaluator(tiny_checkpoint, 2, **{"batch-size": "4"}).evaluate(TINY_MODEL, dataset, JPEG_50)
    inline = evaluator(tiny_checkpoint, 0, **{"batch-size": "4"}).evaluate(TINY_MODEL, dataset, JPEG_50)
    assert np.array_equal(pooled.logits, inline.logits)


def test_worker_count_follows_the_cpu_share(tiny_checkpoint: Path) -> None:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert cpu_share() == cores and cpu_share(4) == max(1, cores // 4) and cpu_share(10**6) == 1
    assert evaluator(tiny_checkpoint, 3).workers == 3
    values = {"model": [TINY_MODEL], "pretrained": str(tiny_checkpoint)}
    settings = build_settings(lambda option: values.get(option.name))
    assert settings.evaluation.workers is None
    assert Evaluator.from_settings(settings).workers == cores
    assert Evaluator.from_settings(settings, cpu_share=1).workers == 1  # an xdist worker's share


SLOW_SUITE = """
import time
import numpy as np
import pytest
from PIL import Image
from pytest_clipcompress.data import ArrayDataset, DatasetSpec, register_dataset


class SlowDataset(ArrayDataset):
    def image(self, index):
        time.sleep(0.2)
        return super().image(index)


def load(source):
    images = np.random.default_rng(0).integers(0, 256, size=(400, 32, 32, 3), dtype=np.uint8)
    return SlowDataset(source.name, ("a", "b"), images, np.arange(400) % 2, "slow-0", ("a photo of a {}.",))


register_dataset(DatasetSpec("slow", load))


@pytest.mark.clip_dataset("slow")
@pytest.mark.compression("jpeg", quality=[50])
def test_slow(clip_eval):
    clip_eval()
"""


def test_worker_processes_under_xdist_write_the_serial_inline_results(pytester: pytest.Pytester, tiny_args: list[str], cifar_sample_root: Path) -> None:
    pytester.makepyfile(
        test_sweep="""
import pytest

@pytest.mark.clip_dataset("cifar10")
@pytest.mark.compression("jpeg", quality=[75, 30])
def test_jpeg(clip_eval):
    clip_eval()

@pytest.mark.clip_dataset("cifar10")
@pytest.mark.compression("webp", quality=[50])
def test_webp(clip_eval):
    clip_eval()
"""
    )
    common = [*tiny_args, f"--clip-data-root={cifar_sample_root}", "--clip-offline", "--clip-batch-size=32", "-p", "no:cacheprovider"]
    inline = pytester.runpytest_subprocess(*common, "--clip-workers=0", "--clip-results=inline.json")
    pooled = pytester.runpytest_subprocess(*common, "--clip-workers=2", "-n", "2", "--clip-results=pooled.json")
    inline.assert_outcomes(passed=3)
    pooled.assert_outcomes(passed=3)
    assert without_run_block((pytester.path / "inline.json").read_text()) == without_run_block((pytester.path / "pooled.json").read_text())


def descendants(pid: int) -> set[int]:
    """Every process below ``pid``, from /proc (the codec workers are the fork server's children)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue  # ended meanwhile
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the process tree from /proc")
def test_ctrl_c_leaves_no_worker_process_behind(pytester: pytest.Pytester, tiny_args: list[str]) -> None:
    pytester.makeconftest(SLOW_SUITE.split("@pytest.mark")[0])
    pytester.makepyfile(test_slow="import pytest\n\n@pytest.mark" + SLOW_SUITE.split("@pytest.mark", 1)[1])
    command = [sys.executable, "-m", "pytest", *tiny_args, "--clip-workers=2", "-p", "no:cacheprovider", "-q"]
    process = subprocess.Popen(command, cwd=pytester.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    seen: set[int] = set()
    deadline = time.monotonic() + 120
    while len(seen) < 3 and time.monotonic() < deadline and process.poll() is None:  # the fork server and two workers
        seen |= descendants(process.pid)
        time.sleep(0.2)
    assert len(seen) >= 3, f"no worker processes appeared: {process.communicate()[0].decode()[-2000:]}"
    time.sleep(1.0)  # the workers are busy preparing images
    process.send_signal(signal.SIGINT)
    output = process.communicate(timeout=60)[0].decode()
    assert "KeyboardInterrupt" in output and "Traceback" not in output.split("KeyboardInterrupt")[0], output[-3000:]
    deadline = time.monotonic() + 15
    while any(alive(pid) for pid in seen) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in seen if alive(pid)]


def test_fast_preprocessing_is_deprecated_and_ignored(pytester: pytest.Pytester, tiny_args: list[str], cifar_sample_root: Path) -> None:
    pytester.makepyfile(
        """
        import pytest
        from pytest_clipcompress import assert_accuracy

        @pytest.mark.clip_dataset("cifar10")
        @pytest.mark.compression("jpeg", quality=[50])
        def test_jpeg(clip_eval):
            assert_accuracy(clip_eval(), min_accuracy=0.0)
        """
    )
    common = [*tiny_args, f"--clip-data-root={cifar_sample_root}", "--clip-offline", "--clip-samples=20", "--clip-workers=0", "-p", "no:cacheprovider"]
    outcome = pytester.runpytest(*common, "--clip-preprocess=fast")
    outcome.assert_outcomes(passed=1, warnings=1)
    outcome.stdout.fnmatch_lines(["*PytestDeprecationWarning: --clip-preprocess fast is deprecated and ignored*drop the option"])
    outcome = pytester.runpytest(*common, "--clip-preprocess=quick")
    assert outcome.ret == pytest.ExitCode.USAGE_ERROR
    outcome.stderr.fnmatch_lines(["*--clip-preprocess 'quick'*exact*"])


def test_the_cache_key_says_nothing_of_the_pipeline(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """Entries made by the per-image pipeline stay valid: the pipeline's tensors equal it (tests/test_device_transform.py)."""
    dataset = ArrayDataset("toy", ("a", "b"), noise(8, 32, 32), np.arange(8) % 2, "toy-3", ("{}",))
    values = {"model": [TINY_MODEL], "pretrained": str(tiny_checkpoint), "cache-dir": str(tmp_path)}
    cached = Evaluator.from_settings(build_settings(lambda option: values.get(option.name)))
    key = cached._cache_key(TINY_MODEL, dataset, np.arange(8), JPEG_50)
    fields = {"version", "model", "weights", "activation", "preprocess", "device_type", "precision", "dataset", "dataset_files", "indices"}
    assert set(key) == fields | {"compression", "classes", "templates"}


def test_the_gpu_check_runs_on_the_cpu_at_a_small_size(cifar_sample_root: Path) -> None:
    """benchmarks/gpu_check.py is for a lent GPU; --small runs every step of it here, so that it is ready when one is lent."""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
    done = subprocess.run(
        [sys.executable, str(script), "--small", f"--cifar-root={cifar_sample_root}"], capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    for way in ("limit: the zero-shot head's forward", "plugin, defaults (whole pytest session)", "DataLoader loop, 2 worker processes"):
        assert any(line.startswith(f"| {way}") for line in lines), done.stdout
    assert any(line.startswith("plugin / limit: ") for line in lines) and any(line.startswith("IG, 4 steps: ") for line in lines)
    exact = next(line for line in lines if line.startswith("exact on cpu"))
    equal, total = (int(number) for number in re.findall(r"(\d+) of (\d+)", exact)[0])
    assert equal == total > 0, exact
