"""Shards across machines: the results files of 2 and of 3 pytest-split shards (serial, and one under ``-n 2``)
merge into the unsharded run's results file (apart from its run block); files of different runs are
refused with a message; ``report`` (with its Markdown summary) and ``compare`` read the merged file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_clipcompress.cli import main as cli_main

from .helpers import without_run_block

SUITE = """
import pytest
from pytest_clipcompress import assert_accuracy


@pytest.mark.clip_dataset("cifar10")
@pytest.mark.compression("jpeg", quality=[90, 40, 10])
def test_jpeg(clip_eval):
    assert_accuracy(clip_eval(), min_accuracy=0.0, max_drop=1.0)


@pytest.mark.clip_dataset("cifar10")
@pytest.mark.compression("webp", quality=[30])
def test_webp(clip_eval):
    assert clip_eval().n == 30


@pytest.mark.clip_dataset("cifar10")
def test_uncompressed_twice(clip_eval):
    assert_accuracy(clip_eval(), min_accuracy=0.0)
"""


@pytest.fixture
def shard_args(tiny_args: list[str], cifar_sample_root: Path) -> list[str]:
    return [*tiny_args, f"--clip-data-root={cifar_sample_root}", "--clip-offline", "--clip-samples=30", "--clip-ig-samples=0", "-p", "no:cacheprovider"]


def run(pytester: pytest.Pytester, args: list[str], results: Path, *extra: str) -> None:
    outcome = (
        pytester.runpytest(*args, f"--clip-results={results}", *extra)
        if "-n" in extra
        else pytester.runpytest_inprocess(*args, f"--clip-results={results}", *extra)
    )
    assert outcome.ret == 0, outcome.stdout.str()[-3000:]


def test_merged_shards_equal_the_unsharded_run(pytester: pytest.Pytester, shard_args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytester.makepyfile(test_suite=SUITE)
    whole = tmp_path / "whole.json"
    run(pytester, shard_args, whole)
    expected = without_run_block(whole.read_text())
    for splits in (2, 3):
        shards = []
        for group in range(1, splits + 1):
            shards.append(tmp_path / f"shard-{splits}-{group}.json")
            # One shard under pytest-xdist: a file written by xdist's controller merges like a serial one.
            extra = ("-n", "2") if (splits, group) == (2, 1) else ()
            run(pytester, shard_args, shards[-1], f"--splits={splits}", f"--group={group}", *extra)
        evaluations = [len(json.loads(path.read_text())["evaluations"]) for path in shards]
        assert all(evaluations) and sum(evaluations) >= len(json.loads(expected)["evaluations"])  # every shard evaluated something
        merged = tmp_path / f"merged-{splits}.json"
        assert cli_main(["merge", *map(str, shards), "-o", str(merged)]) == 0
        assert without_run_block(merged.read_text()) == expected, f"{splits} shards"
        run_block = json.loads(merged.read_text())["run"]
        assert run_block["shards"] == splits and run_block["settings"] == json.loads(whole.read_text())["run"]["settings"]
    assert cli_main(["compare", str(whole), str(merged), "--fail-on-regression", "0.01"]) == 0
    assert cli_main(["report", str(merged), "--out", str(tmp_path / "report"), "--summary", str(tmp_path / "summary.md")]) == 0
    assert (tmp_path / "report" / "index.html").is_file()
    summary = (tmp_path / "summary.md").read_text()
    assert "All 4 checks passed; 5 evaluations." in summary and "| Top-5 | Per-class recall |" in summary
    assert "merged 3 results file(s), 5 evaluations, 4 checks" in capsys.readouterr().out


def results_file(path: Path, **changes: object) -> Path:
    """A small valid results file of one evaluation; ``changes`` replace parts of its run block or record."""
    record = {
        "model": "m",
        "role": "m",
        "pretrained": "p",
        "dataset": "d",
        "n": 2,
        "seed": 0,
        "templates": "clip",
        "compression": {"codec": "jpeg", "quality": 50},
        "compression_id": "jpeg-q50",
        "accuracy": float(changes.pop("accuracy", 0.5)),  # type: ignore[arg-type]
        "probe": False,
    }
    run = {
        "models": [{"label": "m/p", "weights_hash": changes.pop("weights", "aaaa"), "device": "cpu", "precision": "fp32"}],
        "device": "cpu",
        "precision": "fp32",
        "versions": {"torch": "2.14.1"},
        "git": {"commit": changes.pop("commit", "c0ffee"), "dirty": False},
        "started_utc": "2026-12-01T00:00:00Z",
        "settings": {"samples": changes.pop("samples", 500), "seed": 0, "templates": "clip"},
    }
    payload = {
        "plugin": "pytest-clipcompress",
        "version": changes.pop("version", "0.1.0"),
        "evaluations": [record],
        "checks": [],
        "breaking_points": [],
        "run": run,
    }
    path.write_text(json.dumps(payload))
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"weights": "bbbb"}, r"the weights of m/p differ \(aaaa against bbbb\)"),
        ({"samples": 1000}, r"the settings differ \(.*\"samples\": 500.* against .*\"samples\": 1000"),
        ({"version": "0.2.0"}, r"the pytest-clipcompress versions differ \(0\.1\.0 against 0\.2\.0\)"),
        ({"commit": "deadbeef"}, r"the git commits differ \(c0ffee against deadbeef\)"),
        ({"accuracy": 1.0}, r"both hold m on d under jpeg-q50 with different numbers"),
    ],
    ids=["weights", "settings", "plugin-version", "commit", "numbers"],
)
def test_files_of_different_runs_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], change: dict[str, object], message: str) -> None:
    first, second = results_file(tmp_path / "a.json"), results_file(tmp_path / "b.json", **change)
    out = tmp_path / "merged.json"
    assert cli_main(["merge", str(first), str(second), "-o", str(out)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("clipcompress merge: error: ") and len(error.strip().splitlines()) == 1
    import re

    assert re.search(message, error), error
    assert not out.exists()  # nothing half-written


def test_merging_the_same_shard_twice_is_harmless(tmp_path: Path) -> None:
    first = results_file(tmp_path / "a.json")
    out = tmp_path / "merged.json"
    assert cli_main(["merge", str(first), str(first), "-o", str(out)]) == 0
    assert len(json.loads(out.read_text())["evaluations"]) == 1
