"""The session seen from a user's run: attributions as guarded test work, --clip-ig-on/--clip-ig-budget,
output paths checked at start (missing folders are made as for --junitxml), a results file that a full disk cannot turn into an INTERNALERROR, and
fresh outputs when nothing was evaluated."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from pytest_clipcompress.results.collector import ResultsCollector
from pytest_clipcompress.results.schema import eval_key

SUITE = """
import pytest
from pytest_clipcompress import assert_accuracy

@pytest.mark.clip_dataset("cifar10")
@pytest.mark.compression("jpeg", quality=[75, 25])
def test_floor(clip_eval, compression):
    # This tiny model loses accuracy at q25 only, so that case fails and the q75 case passes.
    assert_accuracy(clip_eval(), max_drop=0.0 if compression.param("quality") == 25 else 1.0)

@pytest.mark.clip_dataset("cifar10")
@pytest.mark.compression("jpeg", quality=25)
def test_known(clip_eval, request):
    request.applymarker(pytest.mark.xfail(strict=True, reason="known weakness"))
    assert_accuracy(clip_eval(), max_drop=0.0)
"""
FAILING = "test_floor[cifar10-jpeg-q25]"
KNOWN = "test_known[cifar10-jpeg-q25]"

# Seen from a conftest hook on the controller: which tests carried attributions, and their notes.
OBSERVER = """
import json

seen = {}

def pytest_runtest_logreport(report):
    data = getattr(report, "clipcompress", None)
    if report.when == "call" and data:
        attributions = data.get("attributions")
        seen[report.nodeid.split("::")[-1]] = {
            "images": None if attributions is None else len(attributions["items"]),
            "seconds": None if attributions is None else attributions["seconds"],
            "note": data.get("note"),
            "duration": report.duration,
        }

def pytest_sessionfinish(session):
    if not hasattr(session.config, "workerinput"):
        with open("seen.json", "w") as file:
            json.dump(seen, file)
"""

BROKEN_IG = """
import pytest_clipcompress.ig.integrated_gradients as attribution

def out_of_memory(*args, **kwargs):
    raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB\\nsecond line")

def pytest_configure(config):
    config.stash_original = attribution.integrated_gradients
    attribution.integrated_gradients = out_of_memory

def pytest_unconfigure(config):
    attribution.integrated_gradients = config.stash_original
"""

SLOW_IG = """
import time
import pytest_clipcompress.ig.integrated_gradients as attribution

def pytest_configure(config):
    original = config.stash_original = attribution.integrated_gradients

    def slow(*args, **kwargs):
        time.sleep(1.0)
        return original(*args, **kwargs)

    attribution.integrated_gradients = slow

def pytest_unconfigure(config):
    attribution.integrated_gradients = config.stash_original
"""

FULL_DISK = """
import errno
import os

def pytest_configure(config):
    config.stash_fsync = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    os.fsync = full

def pytest_unconfigure(config):
    os.fsync = config.stash_fsync
"""


def esc(text: str) -> str:
    """``text`` as a literal fnmatch pattern (test ids hold brackets)."""
    return re.sub(r"([\[\]*?])", r"[\1]", text)


def seen(pytester: pytest.Pytester) -> dict[str, dict]:
    return json.loads((pytester.path / "seen.json").read_text())


def run(pytester: pytest.Pytester, xdist: bool, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(*args, "-n", "2") if xdist else pytester.runpytest(*args)


# --- attributions are test work, guarded -----------------------------------------------------------


@pytest.mark.parametrize("xdist", [False, True], ids=["serial", "xdist"])
def test_failing_attributions_leave_the_outcome_and_exit_code_alone(pytester: pytest.Pytester, run_args: list[str], xdist: bool) -> None:
    pytester.makepyfile(SUITE)
    pytester.makeconftest(BROKEN_IG + OBSERVER)
    result = run(pytester, xdist, *run_args, "--clip-ig-on=xfailed", "-rx")
    result.assert_outcomes(passed=1, failed=1, xfailed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    text = result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" not in text and "Traceback" not in text
    note = "clipcompress: attributions skipped: RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB"
    result.stdout.fnmatch_lines(["*Captured stdout clipcompress attributions*", note])  # under the failure
    result.stdout.fnmatch_lines([f"note: *{esc(FAILING)}: attributions skipped: RuntimeError: CUDA out of memory*"])  # and in the summary
    assert "second line" not in text  # one line
    observed = seen(pytester)
    assert observed[FAILING]["note"] == note and observed[FAILING]["images"] is None
    assert observed[KNOWN]["note"] == note  # the xfailed test too, and it stays xfailed
    assert observed["test_floor[cifar10-jpeg-q75]"]["note"] is None


def test_durations_count_the_attribution_time_in_the_call_phase(pytester: pytest.Pytester, run_args: list[str]) -> None:
    pytester.makepyfile(SUITE)
    pytester.makeconftest(SLOW_IG + OBSERVER)
    result = pytester.runpytest(*run_args, "--clip-ig-samples=1", "--durations=0", "-vv")
    result.assert_outcomes(passed=1, failed=1, xfailed=1)
    failing = seen(pytester)[FAILING]
    assert failing["images"] == 1 and failing["seconds"] >= 1.0  # each image sleeps a second
    shown = {m.group(2): float(m.group(1)) for m in re.finditer(r"^(\d+\.\d+)s call\s+\S+::(\S+)$", result.stdout.str(), re.MULTILINE)}
    assert shown[FAILING] >= failing["seconds"]  # the IG time is inside the test's call phase
    assert failing["duration"] >= failing["seconds"]


@pytest.mark.parametrize(
    ("mode", "explained"),
    [
        ("never", set()),
        ("failed", {FAILING}),
        ("xfailed", {FAILING, KNOWN}),
        ("all", {FAILING, KNOWN, "test_floor[cifar10-jpeg-q75]"}),
    ],
)
def test_ig_on_chooses_the_outcomes_explained(pytester: pytest.Pytester, run_args: list[str], mode: str, explained: set[str]) -> None:
    pytester.makepyfile(SUITE)
    pytester.makeconftest(OBSERVER)
    result = pytester.runpytest(*run_args, f"--clip-ig-on={mode}", "--clip-ig-samples=1")
    result.assert_outcomes(passed=1, failed=1, xfailed=1)
    observed = seen(pytester)
    assert {test for test, data in observed.items() if data["images"] is not None} == explained
    assert all(data["note"] is None for data in observed.values())
    if FAILING in explained:
        assert observed[FAILING]["images"] == 1


def test_ig_on_from_the_ini_file(pytester: pytest.Pytester, run_args: list[str]) -> None:
    pytester.makepyfile(SUITE)
    pytester.makeconftest(OBSERVER)
    pytester.makeini("[pytest]\nclip_ig_on = never\n")
    pytester.runpytest(*run_args).assert_outcomes(passed=1, failed=1, xfailed=1)
    assert all(data["images"] is None for data in seen(pytester).values())


def test_ig_budget_stops_explaining_and_says_so(pytester: pytest.Pytester, run_args: list[str]) -> None:
    pytester.makepyfile(SUITE)
    pytester.makeconftest(OBSERVER)
    result = pytester.runpytest(*run_args, "--clip-ig-budget=0")
    result.assert_outcomes(passed=1, failed=1, xfailed=1)
    note = "clipcompress: attributions stopped after 0 of 2 images: --clip-ig-budget 0 s is spent"
    assert seen(pytester)[FAILING] | {"duration": None, "seconds": None} == {"images": 0, "seconds": None, "note": note, "duration": None}
    result.stdout.fnmatch_lines([note, f"note: *{esc(FAILING)}: attributions stopped after 0 of 2 images*"])


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("--clip-ig-on=sometimes", "--clip-ig-on 'sometimes': choose one of failed, xfailed, all, never"),
        ("--clip-ig-budget=soon", "--clip-ig-budget 'soon' is not a number of seconds"),
        ("--clip-ig-budget=-1", "--clip-ig-budget '-1' must be a finite number of seconds, 0 or more"),
        ("--clip-ig-budget=nan", "--clip-ig-budget 'nan' must be a finite number of seconds, 0 or more"),
    ],
)
def test_bad_ig_options_are_usage_errors(pytester: pytest.Pytester, option: str, message: str) -> None:
    result = pytester.runpytest(option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])


# --- output paths -------------------------------------------------------------------------------------


def _paths(root: Path) -> None:
    (root / "folder").mkdir()
    (root / "file").write_text("x")


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("--clip-results=folder", "--clip-results folder is a folder; give a file path, e.g. folder/results.json"),
        ("--clip-results=file/results.json", "--clip-results file/results.json: file is a file, not a folder"),
        ("--clip-results=file/a/b/results.json", "--clip-results file/a/b/results.json: file is a file, not a folder"),
        ("--clip-summary=folder/file/s.md", "--clip-summary folder/file/s.md: folder/file is a file, not a folder"),
        ("--clip-baseline-save=file/base.json", "--clip-baseline-save file/base.json: file is a file, not a folder"),
        ("--clip-report=file", "--clip-report file is a file; give a folder path or move the file away"),
        ("--clip-report=file/a/report", "--clip-report file/a/report: file is a file, not a folder"),
        ("--clip-report=dangling/report", "--clip-report dangling/report: dangling is a link to nothing; point it at a folder or choose another path"),
        ("--clip-cache-dir=file/cache", "--clip-cache-dir file/cache: file is a file, not a folder"),
    ],
)
def test_output_paths_are_checked_before_any_test(pytester: pytest.Pytester, option: str, message: str) -> None:
    _paths(pytester.path)
    (pytester.path / "folder" / "file").write_text("x")
    (pytester.path / "dangling").symlink_to(pytester.path / "nowhere")
    pytester.makepyfile("def test_never_runs():\n    raise AssertionError('ran')\n")
    result = pytester.runpytest(option, "--clip-results=out/a/results.json" if "results" not in option else "-q")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])
    assert "Traceback" not in result.stderr.str() and "ran" not in result.stdout.str()
    assert not (pytester.path / "out").exists()  # a refused run leaves no empty folders behind


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("--clip-results=results.json", "--clip-results results.json: cannot write in . (Read-only file system); choose a writable path"),
        ("--clip-results=out/a/results.json", "--clip-results out/a/results.json: cannot create out/a in . (Read-only file system); choose a writable path"),
        ("--clip-report=out/report", "--clip-report out/report: cannot create out/report in . (Read-only file system); choose a writable path"),
    ],
)
def test_unwritable_output_folder_is_a_usage_error(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, option: str, message: str) -> None:
    # Running as root ignores permission bits; a read-only mount fails the probe like this.
    def read_only(folder: Path) -> None:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr("pytest_clipcompress.files.probe_write", read_only)
    pytester.makepyfile("def test_never_runs():\n    pass\n")
    result = pytester.runpytest(option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])


def test_a_folder_without_write_permission_is_a_usage_error(pytester: pytest.Pytester) -> None:
    locked = pytester.path / "locked"
    locked.mkdir(mode=0o555)
    try:
        (locked / "probe").touch()
    except PermissionError:
        pass
    else:
        locked.chmod(0o755)
        pytest.skip("this user writes into read-only folders (root with CAP_DAC_OVERRIDE ignores permission bits)")
    pytester.makepyfile("def test_never_runs():\n    pass\n")
    try:
        result = pytester.runpytest("--clip-summary=locked/a/summary.md")
    finally:
        locked.chmod(0o755)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --clip-summary locked/a/summary.md: cannot create locked/a in locked (Permission denied); choose a writable path"])
    assert not (locked / "a").exists()


OUTPUTS = """
import pytest

@pytest.mark.clip_dataset("demo")
@pytest.mark.compression("jpeg", quality=50)
def test_evaluate(clip_eval):
    clip_eval()
"""


@pytest.mark.parametrize("xdist", [False, True], ids=["serial", "xdist"])
def test_missing_output_folders_are_made_as_for_junitxml(pytester: pytest.Pytester, xdist: bool) -> None:
    pytester.makepyfile(OUTPUTS)
    paths = {
        "--clip-results": "out/a/results.json",
        "--clip-baseline-save": "out/b/c/baseline.json",
        "--clip-summary": "out/d/e/f/summary.md",
        "--clip-report": "out/g/h/report",
        "--junitxml": "out/j/junit.xml",  # pytest's own, for comparison
    }
    args = [f"{flag}={path}" for flag, path in paths.items()]
    result = run(pytester, xdist, *args, "--clip-samples=20", "--clip-device=cpu", "--clip-no-cache", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.OK and "Traceback" not in result.stdout.str() + result.stderr.str()
    out = pytester.path
    results, baseline = json.loads((out / paths["--clip-results"]).read_text()), json.loads((out / paths["--clip-baseline-save"]).read_text())
    assert [r["compression_id"] for r in results["evaluations"]] == ["jpeg-q50"] and baseline["evaluations"] == results["evaluations"]
    assert "jpeg-q50" in (out / paths["--clip-summary"]).read_text()
    assert "jpeg-q50" in (out / paths["--clip-report"] / "index.html").read_text()
    assert (out / paths["--junitxml"]).is_file()


def test_output_paths_are_checked_by_the_xdist_controller(pytester: pytest.Pytester) -> None:
    (pytester.path / "file").write_text("x")
    pytester.makepyfile("def test_never_runs():\n    pass\n")
    result = pytester.runpytest_subprocess("-n", "2", "--clip-results=file/results.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --clip-results file/results.json: file is a file, not a folder"])


# --- the results file and fresh outputs ---------------------------------------------------------------

SMALL = """
import pytest

@pytest.mark.clip_dataset("cifar10")
@pytest.mark.compression("jpeg", quality=50)
def test_evaluate(clip_eval):
    clip_eval()

def test_plain():
    pass
"""


@pytest.mark.parametrize("xdist", [False, True], ids=["serial", "xdist"])
def test_full_disk_keeps_the_previous_results_and_fails_cleanly(pytester: pytest.Pytester, run_args: list[str], xdist: bool) -> None:
    pytester.makepyfile(SMALL)
    pytester.makeconftest(FULL_DISK)
    results = pytester.path / "results.json"
    results.write_text('{"previous": true}\n')
    result = run(pytester, xdist, *run_args, f"--clip-results={results}")
    result.assert_outcomes(passed=2)  # every test ran
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # the one output allowed to fail the run
    text = result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" not in text and "Traceback" not in text
    result.stdout.fnmatch_lines([f"ERROR: cannot write the results file {results}: [[]Errno 28[]] No space left on device; the previous file is unchanged"])
    assert results.read_text() == '{"previous": true}\n'
    assert sorted(p.name for p in pytester.path.iterdir() if p.name.startswith(".results")) == []  # no temporary files


@pytest.mark.parametrize("xdist", [False, True], ids=["serial", "xdist"])
def test_a_run_that_evaluates_nothing_still_writes_fresh_outputs(pytester: pytest.Pytester, xdist: bool) -> None:
    pytester.makepyfile("import pytest\n\ndef test_skipped():\n    pytest.skip('no data here')\n")
    results, report = pytester.path / "results.json", pytester.path / "report"
    results.write_text(json.dumps({"evaluations": ["last week's"]}))
    report.mkdir()
    (report / "index.html").write_text("last week's report")
    result = run(pytester, xdist, f"--clip-results={results}", f"--clip-report={report}", "-p", "no:cacheprovider")
    result.assert_outcomes(skipped=1)
    data = json.loads(results.read_text())
    assert data["evaluations"] == [] and data["checks"] == [] and data["breaking_points"] == []
    assert "no evaluations" in (report / "index.html").read_text()
    result.stdout.fnmatch_lines(["*clipcompress: zero-shot accuracy under compression*", "no evaluations"])


def test_a_model_that_fails_to_load_still_writes_fresh_results(pytester: pytest.Pytester, tmp_path: Path, cifar_sample_root: Path) -> None:
    from .conftest import TINY_CONFIG

    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    pytester.makepyfile(SMALL)
    results = pytester.path / "results.json"
    results.write_text(json.dumps({"evaluations": ["last week's"]}))
    result = pytester.runpytest(
        f"--clip-model-config={TINY_CONFIG}",
        "--clip-model=tiny-clip",
        f"--clip-pretrained={broken}",
        f"--clip-data-root={cifar_sample_root}",
        "--clip-offline",
        "--clip-no-cache",
        f"--clip-results={results}",
        "-p",
        "no:cacheprovider",
    )
    result.assert_outcomes(passed=1, errors=1)
    assert json.loads(results.read_text())["evaluations"] == []


def test_results_json_is_strict() -> None:
    collector = ResultsCollector()
    record = {"model": "m", "pretrained": "p", "dataset": "d", "n": 1, "seed": 0, "templates": "clip", "compression": {"codec": "none"}, "accuracy": math.nan}
    collector.add("t.py::test", {"evaluations": [record], "checks": [], "breaking_points": []})  # type: ignore[list-item]
    with pytest.raises(ValueError, match="not JSON compliant"):
        collector.to_json()


def test_one_evaluation_key_orders_the_results_file() -> None:
    low = eval_key("m", "p", "d", {"codec": "jpeg", "quality": 25}, 10, 0, "clip", "")
    high = eval_key("m", "p", "d", {"codec": "jpeg", "quality": 75}, 10, 0, "clip", "")
    assert low < high and low.compression == '{"codec": "jpeg", "quality": 25}' and low.role == "m"  # the role defaults to the model
    assert eval_key("m", "p", "d", {"quality": 25, "codec": "jpeg"}, 10, 0, "clip", "m") == low  # parameter order does not matter
    assert eval_key("m", "p", "d", {"codec": "jpeg", "quality": 25}, 10, 0, "clip", "candidate") != low  # two roles, two evaluations
