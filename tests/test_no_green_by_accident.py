"""Paths that must not end green by accident: a configured floor a test did not name, a near miss of a
marker, clip cases that could not run (strict mode, and the summaries' count), and a path option
given as two words that would change pytest's rootdir."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

DEMO_CASE = """
import pytest
from pytest_clipcompress import assert_accuracy

@pytest.mark.clip_dataset("demo")
@pytest.mark.compression("jpeg", quality=25)
def test_adds_a_floor(clip_eval):
    assert_accuracy(clip_eval(), min_accuracy=0.2)
"""
DEMO_ARGS = ["--clip-offline", "--clip-no-cache", "--clip-samples=100", "--clip-ig-samples=0", "-p", "no:cacheprovider"]


@pytest.mark.parametrize("mode", ["serial", "xdist"])
def test_a_configured_floor_still_applies_when_a_test_names_another(pytester: pytest.Pytester, mode: str) -> None:
    pytester.makeini("[pytest]\nclip_max_drop = 0.05\n")
    pytester.makepyfile(DEMO_CASE)
    result = pytester.runpytest(*DEMO_ARGS, "--clip-results=results.json", *(["-n", "2"] if mode == "xdist" else []))
    result.assert_outcomes(failed=1)  # demo under q25 drops ~60 points: the ini's 5-point max_drop fails it
    result.stdout.fnmatch_lines(
        ["*floor min_accuracy=20.00%: ok*", "*floor max_drop=5.00 points (configured: clip_max_drop in the ini file or --clip-max-drop): FAILED*"]
    )
    (check,) = json.loads((pytester.path / "results.json").read_text())["checks"]
    assert (check["min_accuracy"], check["max_drop"]) == (0.2, 0.05)
    assert check["floor_sources"] == {"min_accuracy": "test", "max_drop": "config"}


def test_a_floor_named_in_the_test_replaces_only_that_configured_floor(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nclip_max_drop = 0.05\nclip_min_accuracy = 0.99\n")
    pytester.makepyfile(DEMO_CASE.replace("min_accuracy=0.2", "min_accuracy=0.2, max_drop=0.9"))
    result = pytester.runpytest(*DEMO_ARGS, "--clip-results=results.json")
    result.assert_outcomes(passed=1)
    (check,) = json.loads((pytester.path / "results.json").read_text())["checks"]
    assert (check["min_accuracy"], check["max_drop"], check["floor_sources"]) == (0.2, 0.9, {"min_accuracy": "test", "max_drop": "test"})


@pytest.mark.parametrize(("written", "meant"), [("compresion", "compression"), ("clip_datset", "clip_dataset"), ("compressions", "compression")])
def test_a_near_miss_of_a_marker_is_a_collection_error(pytester: pytest.Pytester, written: str, meant: str) -> None:
    arguments = '"jpeg", quality=50' if "compr" in written else '"demo"'
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.clip_dataset("demo")
        @pytest.mark.{written}({arguments})
        def test_case(clip_eval):
            clip_eval()
        """
    )
    result = pytester.runpytest(*DEMO_ARGS)  # no --strict-markers: the plugin refuses it anyway
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines([f"*@pytest.mark.{written} is not a marker; did you mean @pytest.mark.{meant}?*"])
    assert "Traceback" not in result.stdout.str()


def test_unrelated_unknown_markers_stay_pytests_business(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.clip_dataset("demo")
        @pytest.mark.gpu_only
        def test_case(clip_eval):
            assert clip_eval().n == 100
        """
    )
    pytester.runpytest(*DEMO_ARGS, "-W", "ignore::pytest.PytestUnknownMarkWarning").assert_outcomes(passed=1)


MISSING_DATA = """
import pytest
from pytest_clipcompress import assert_accuracy

@pytest.mark.clip_dataset("demo", "cifar10")
@pytest.mark.compression("jpeg", quality=50)
def test_case(clip_eval):
    assert_accuracy(clip_eval(), min_accuracy=0.1)

def test_not_a_clip_case():
    pytest.skip("unrelated")
"""


@pytest.mark.parametrize("mode", ["serial", "xdist"])
def test_strict_mode_fails_clip_cases_that_skip(pytester: pytest.Pytester, tmp_path: Path, mode: str) -> None:
    pytester.makepyfile(MISSING_DATA)
    args = [*DEMO_ARGS, f"--clip-data-root={tmp_path}", *(["-n", "2"] if mode == "xdist" else [])]
    lenient = pytester.runpytest(*args, "--clip-summary=summary.md")
    lenient.assert_outcomes(passed=1, skipped=2)
    summary = (pytester.path / "summary.md").read_text()
    assert "All 1 checks passed; 1 evaluations." in summary
    assert "**1 clip case skipped, first reason: cifar10 is not in" in summary  # the unrelated skip is not a clip case
    strict = pytester.runpytest(*args, "--clip-strict")
    strict.assert_outcomes(passed=1, skipped=1, errors=1)  # the cifar10 case skipped in setup: an error now
    strict.stdout.fnmatch_lines(["*clipcompress --clip-strict: this clip case could not run, which fails a strict run: cifar10 is not in*"])
    assert strict.ret == pytest.ExitCode.TESTS_FAILED


def test_strict_mode_from_the_ini_file_fails_a_skip_in_the_test_body(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nclip_strict = true\n")
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.clip_dataset("demo")
        def test_gate(clip_eval, pytestconfig):
            clip_eval()
            if pytestconfig.getoption("clip_baseline") is None:
                pytest.skip("no --clip-baseline: this run only records a baseline")
        """
    )
    result = pytester.runpytest(*DEMO_ARGS)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*this clip case could not run, which fails a strict run: no --clip-baseline*"])


def test_a_path_option_given_as_two_words_that_moves_the_rootdir_is_refused(pytester: pytest.Pytester, tmp_path: Path) -> None:
    outside = tmp_path / "data"
    outside.mkdir()
    pytester.makeini("[pytest]\nclip_samples = 10\n")
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest_subprocess("--clip-data-root", str(outside), "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    two_words = f"because --clip-data-root {outside} was given as two words"
    result.stderr.fnmatch_lines([f"*pytest took {outside} for a test path when it chose its rootdir*{two_words}*Write --clip-data-root={outside}"])
    pytester.runpytest_subprocess(f"--clip-data-root={outside}", "-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_the_header_says_how_many_images_at_most(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest("--clip-samples=1000", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["clipcompress: bundled demo model*; up to 1000 images per dataset; seed 0"])
