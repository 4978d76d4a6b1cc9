"""Shared test fixtures: a tiny open_clip architecture, its saved checkpoint, and the real samples."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import open_clip  # imported at load time: see below
import pytest
import torch  # imported at load time: see below

from .helpers import CIFAR_SAMPLE, IMAGE_FOLDER_SAMPLE, TINY_CONFIG, TINY_MODEL

# torch and open_clip are imported here, once, before any in-process pytester run: pytester restores
# sys.modules after each run, and a torch first imported (then dropped) inside one can crash a later
# run of the same process when it is imported again.


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent (the real samples live in ../shared/datasets beside the project checkout)")
    return path


@pytest.fixture(scope="session")
def cifar_sample_root() -> Path:
    """Folder holding the 200-image lossless CIFAR-10 sample in the official python layout."""
    return _require(CIFAR_SAMPLE)


@pytest.fixture(scope="session")
def image_folder_sample() -> Path:
    return _require(IMAGE_FOLDER_SAMPLE)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded random tiny-clip checkpoint, saved the way users save theirs."""
    open_clip.add_model_config(TINY_CONFIG)
    torch.manual_seed(1234)
    model = open_clip.create_model(TINY_MODEL, pretrained=None)
    path = tmp_path_factory.mktemp("weights") / "tiny-clip.pt"
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture(scope="session")
def tiny_args(tiny_checkpoint: Path) -> list[str]:
    """Command-line options that select the tiny model from its checkpoint."""
    # "--option=value" keeps paths out of pytest's rootdir guess, so pytester's own ini files are used.
    # The CPU keeps the runs comparable with the CPU reference computations (also on GPU machines).
    return [f"--clip-model={TINY_MODEL}", f"--clip-model-config={TINY_CONFIG}", f"--clip-pretrained={tiny_checkpoint}", "--clip-no-cache", "--clip-device=cpu"]


@pytest.fixture(autouse=True)
def _no_github_step_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs inside tests must not append their summaries to the CI job's own page (tests that need it set it)."""
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


@pytest.fixture
def run_args(tiny_args: list[str], cifar_sample_root: Path) -> list[str]:
    """The tiny model on 80 CIFAR-10 sample images, offline, with quick attributions (report and session tests)."""
    return [
        *tiny_args,
        f"--clip-data-root={cifar_sample_root}",
        "--clip-offline",
        "--clip-samples=80",
        "--clip-ig-samples=2",
        "--clip-ig-steps=8",
        "-p",
        "no:cacheprovider",
    ]


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """torch on one intra-op thread for a module of many small operations (tiny models, per-image references):
    with more, each waits on an OpenMP barrier, and on a busy 2-core machine that made such modules 20x to 100x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
