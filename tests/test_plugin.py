"""The plugin seen from a user's pytest run: options, ini keys, markers, ids, outcomes, messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_clipcompress.config.options import OPTIONS

from .helpers import TINY_CONFIG, random_images, write_cifar10

EXAMPLE = """
import pytest
from pytest_clipcompress import assert_accuracy

@pytest.mark.clip_dataset("cifar10", "stl10")
@pytest.mark.compression("jpeg", quality=[100, 75, 50, 25])
def test_zero_shot_under_jpeg(clip_eval):
    result = clip_eval()
    assert_accuracy(result, min_accuracy={floor}, max_drop=0.5)
"""


def data_args(root: Path) -> list[str]:
    return [f"--clip-data-root={root}", "--clip-offline", "-p", "no:cacheprovider"]


def test_help_lists_every_option_in_one_group(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    text = result.stdout.str()
    assert "CLIP robustness to image compression (pytest-clipcompress):" in text
    for option in OPTIONS:
        assert option.flag in text
        assert option.ini in text  # each option is also an ini key


def test_markers_are_registered(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.compression(codec, **params):*", "@pytest.mark.clip_dataset(*names):*"])


def test_collects_readable_ids_in_marker_order(pytester: pytest.Pytester, tiny_args: list[str]) -> None:
    pytester.makepyfile(EXAMPLE.format(floor=0.0))
    result = pytester.runpytest("--collect-only", "-q", *tiny_args)
    result.stdout.fnmatch_lines(
        [
            "*test_zero_shot_under_jpeg[[]cifar10-jpeg-q100[]]",
            "*test_zero_shot_under_jpeg[[]cifar10-jpeg-q75[]]",
            "*test_zero_shot_under_jpeg[[]cifar10-jpeg-q50[]]",
            "*test_zero_shot_under_jpeg[[]cifar10-jpeg-q25[]]",
            "*test_zero_shot_under_jpeg[[]stl10-jpeg-q100[]]",
            "*test_zero_shot_under_jpeg[[]stl10-jpeg-q25[]]",
            "8 tests collected*",
        ],
        consecutive=False,
    )


def test_several_models_join_the_id(pytester: pytest.Pytester, tiny_args: list[str]) -> None:
    pytester.makepyfile(EXAMPLE.format(floor=0.0))
    result = pytester.runpytest("--collect-only", "-q", *tiny_args, "--clip-model", "clipcompress-demo")
    result.stdout.fnmatch_lines(["*[[]tiny-clip-cifar10-jpeg-q100[]]", "*[[]clipcompress-demo-stl10-jpeg-q25[]]", "16 tests collected*"], consecutive=False)


def test_several_compression_markers_add_their_cases(pytester: pytest.Pytester, tiny_args: list[str]) -> None:
    pytester.makepyfile(
        """
        import pytest
        @pytest.mark.clip_dataset("cifar10")
        @pytest.mark.compression("jpeg", quality=[90, 10], subsampling=["4:4:4", "4:2:0"])
        @pytest.mark.compression("webp", quality=50)
        @pytest.mark.compression("none")
        def test_codecs(clip_eval):
            pass
        """
    )
    result = pytester.runpytest("--collect-only", "-q", *tiny_args)
    result.stdout.fnmatch_lines(
        [
            "*[[]cifar10-jpeg-q90-s444[]]",
            "*[[]cifar10-jpeg-q90-s420[]]",
            "*[[]cifar10-jpeg-q10-s444[]]",
            "*[[]cifar10-jpeg-q10-s420[]]",
            "*[[]cifar10-webp-q50[]]",
            "*[[]cifar10-none[]]",
            "6 tests collected*",
        ]
    )


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        ('compression("gif", quality=5)', "unknown codec 'gif'; choose one of none, jpeg, webp, avif, jpeg2000"),
        ('compression("jpeg", quality=[75, 101])', "jpeg quality=101 is out of range; use 1 to 100"),
        ('compression("jpeg", quality=0)', "jpeg quality=0 is out of range; use 1 to 100"),
        ('compression("jpeg", quality="high")', "jpeg quality='high' must be a number from 1 to 100"),
        ('compression("jpeg", quality=[])', "jpeg quality=[] is empty; give at least one value"),
        ('compression("jpeg", qualty=50)', "unknown jpeg parameter(s) qualty; allowed: quality, subsampling"),
        ('compression("jpeg")', "jpeg needs quality"),
        ('compression("jpeg", quality=50, subsampling="4:1:1")', "jpeg subsampling='4:1:1' is not supported"),
        (
            'clip_dataset("imagenet")',
            "unknown dataset 'imagenet'; choose one of cifar10, cifar100, stl10, imagenet1k[:PATH], demo, wds:DIR or imagefolder:PATH",
        ),
    ],
)
def test_marker_errors_are_collection_errors_naming_the_test(pytester: pytest.Pytester, marker: str, message: str) -> None:
    pytester.makepyfile(
        f"""
        import pytest
        @pytest.mark.{marker}
        def test_bad(clip_eval):
            pass
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.INTERRUPTED  # collection errors stop the run
    text = result.stdout.str()
    assert "test_bad" in text and message in text
    assert "Traceback" not in text and "def pytest_generate_tests" not in text and "During handling" not in text
    errors_section = text.split("short test summary info")[0]  # under CI=true the summary repeats it in full
    assert errors_section.count(message) == 1


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--clip-samples", "0"], "--clip-samples 0 is too small; it must be at least 1"),
        (["--clip-samples", "-3"], "--clip-samples -3 is too small"),
        (["--clip-batch-size", "lots"], "--clip-batch-size 'lots' is not a whole number"),
        (["--clip-device", "tpu"], "--clip-device 'tpu' is not a device; use auto, cpu, cuda, cuda:N or mps"),
        (["--clip-min-accuracy", "80"], "min_accuracy=80.0 is outside [0, 1]"),
        (["--clip-ig-baseline", "white"], "--clip-ig-baseline 'white': choose one of uncompressed, jpeg-q100, black, blur"),
        (["--clip-quick-gelu", "yes"], "--clip-quick-gelu 'yes': choose one of auto, on, off"),
        (["--clip-quick-gelu", "nightly=on"], "--clip-quick-gelu 'nightly=on': no --clip-model has the id 'nightly'; this run's models: clipcompress-demo"),
        (["--clip-protocol", "exact"], "--clip-protocol 'exact': choose one of default, paper"),
        (["--clip-templates", "nope.json"], "--clip-templates: nope.json does not exist"),
        (["--clip-model", "ViT-B-33"], "unknown model 'ViT-B-33': did you mean ViT-B-32"),
        (["--clip-model", "ViT-B-32", "--clip-pretrained", "opena"], "unknown pretrained tag 'opena' for ViT-B-32; valid tags: openai, laion400m_e31"),
        (["--clip-model", "ViT-B-32", "--clip-pretrained", "missing/weights.pt"], "checkpoint file missing/weights.pt does not exist"),
        (["--clip-model-config", "nowhere.json"], "--clip-model-config: nowhere.json does not exist"),
    ],
)
def test_bad_options_are_usage_errors(pytester: pytest.Pytester, option: list[str], message: str) -> None:
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest(*option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_cuda_requested_without_cuda_is_a_usage_error(pytester: pytest.Pytester) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest("--clip-device", "cuda")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--clip-device cuda: CUDA is not available here" in result.stderr.str()


def test_invalid_model_config_json_is_a_usage_error(pytester: pytest.Pytester) -> None:
    broken = pytester.makefile(".json", broken='{"embed_dim": 32, "vision_cfg": ')
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest("--clip-model-config", str(broken))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "is not valid JSON" in result.stderr.str()


def test_floors_fail_with_an_actionable_message(pytester: pytest.Pytester, tiny_args: list[str], cifar_sample_root: Path) -> None:
    pytester.makepyfile(EXAMPLE.format(floor=0.99))
    result = pytester.runpytest(*tiny_args, *data_args(cifar_sample_root), "-k", "cifar10 and q25", "--clip-ig-samples", "0")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*zero-shot accuracy of tiny-clip/tiny-clip.pt on cifar10 under jpeg-q25 is below its floor (n=200)",
            "*accuracy * (95% CI * to *)   floor min_accuracy=99.00%: FAILED",
            "*uncompressed * (same 200 images)",
            "*drop * points   floor max_drop=50.00 points: ok",
            "*worst classes *",
            "*flipped * images correct uncompressed and wrong compressed",
        ]
    )
    assert "pytest_clipcompress/" not in result.stdout.str()  # no plugin frames in the failure


def test_missing_dataset_offline_skips_with_instructions(pytester: pytest.Pytester, tiny_args: list[str], tmp_path: Path) -> None:
    pytester.makepyfile(EXAMPLE.format(floor=0.0))
    result = pytester.runpytest(*tiny_args, *data_args(tmp_path / "empty"), "-rs")
    result.assert_outcomes(skipped=8)
    result.stdout.fnmatch_lines(
        ["*cifar10 is not in *empty (missing: *test_batch*). Download https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz*--clip-data-root*"]
    )


def test_cli_wins_over_ini_and_ini_floors_apply(pytester: pytest.Pytester, tiny_args: list[str], cifar_sample_root: Path) -> None:
    pytester.makeini(
        f"""
        [pytest]
        clip_samples = 50
        clip_min_accuracy = 0.99
        clip_data_root = {cifar_sample_root}
        clip_offline = true
        """
    )
    pytester.makepyfile(
        """
        import pytest
        from pytest_clipcompress import assert_accuracy

        @pytest.mark.clip_dataset("cifar10")
        def test_floor_from_ini(clip_eval):
            assert_accuracy(clip_eval())
        """
    )
    from_ini = pytester.runpytest(*tiny_args, "--clip-ig-samples", "0", "-p", "no:cacheprovider")
    from_ini.assert_outcomes(failed=1)
    from_ini.stdout.fnmatch_lines(["*(n=50)*", "*floor min_accuracy=99.00% (configured: clip_min_accuracy in the ini file or --clip-min-accuracy): FAILED*"])
    from_cli = pytester.runpytest(*tiny_args, "--clip-samples", "20", "--clip-min-accuracy", "0", "-p", "no:cacheprovider")
    from_cli.assert_outcomes(passed=1)


def test_results_file_has_one_record_per_evaluation(pytester: pytest.Pytester, tiny_args: list[str], cifar_sample_root: Path) -> None:
    pytester.makepyfile(
        EXAMPLE.format(floor=0.0)
        + """
@pytest.mark.clip_dataset("cifar10")
@pytest.mark.compression("jpeg", quality=75)
def test_same_evaluation_again(clip_eval):
    assert clip_eval().n == 200
"""
    )
    results = pytester.path / "out" / "results.json"
    results.parent.mkdir()  # the folder must exist; the plugin checks it at the start
    outcome = pytester.runpytest(*tiny_args, *data_args(cifar_sample_root), "--clip-results", str(results))
    outcome.assert_outcomes(passed=5, skipped=4)
    data = json.loads(results.read_text())
    assert [r["compression_id"] for r in data["evaluations"]] == ["jpeg-q100", "jpeg-q25", "jpeg-q50", "jpeg-q75"]
    record = data["evaluations"][0]
    expected_keys = {"model", "pretrained", "dataset", "n", "compression", "accuracy", "baseline_accuracy", "drop", "ci95", "per_class", "bits_per_pixel"}
    assert expected_keys <= set(record)
    assert record["compression"] == {"codec": "jpeg", "quality": 100}
    assert record["n"] == 200 and record["pretrained"] == "tiny-clip.pt"
    assert len(data["checks"]) == 4
    outcome.stdout.fnmatch_lines(["*clipcompress: zero-shot accuracy under compression*", "tiny-clip/tiny-clip.pt on cifar10 (jpeg, n=200; uncompressed *)"])


def test_demo_model_is_the_default_and_says_so(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest()
    result.stdout.fnmatch_lines(["clipcompress: bundled demo model; pass --clip-model for a real one*"])


def test_clip_eval_without_a_dataset_says_how_to_give_one(pytester: pytest.Pytester, tiny_args: list[str]) -> None:
    pytester.makepyfile("def test_no_dataset(clip_eval):\n    clip_eval()\n")
    result = pytester.runpytest(*tiny_args)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*clip_eval() needs a dataset: add @pytest.mark.clip_dataset('cifar10') or call clip_eval(dataset='cifar10')"])
    assert "Traceback" not in result.stdout.str()


PROGRESS_SUITE = """
import pytest

@pytest.mark.clip_dataset("cifar10")
@pytest.mark.compression("jpeg", quality=50)
def test_quiet(clip_eval):
    print("captured output stays captured")
    clip_eval()
"""


def test_progress_shows_through_capture_only_for_slow_evaluations(
    pytester: pytest.Pytester, tiny_args: list[str], cifar_sample_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(PROGRESS_SUITE)
    args = [*tiny_args, *data_args(cifar_sample_root), "--clip-batch-size=50"]
    # Quick means under the threshold, whatever the machine's load: a loaded CI runner can take 3 s here.
    monkeypatch.setattr("pytest_clipcompress.plugin.progress.PROGRESS_AFTER_SECONDS", 600.0)
    quick = pytester.runpytest(*args)
    quick.assert_outcomes(passed=1)
    assert "images/s" not in quick.stdout.str()

    monkeypatch.setattr("pytest_clipcompress.plugin.progress.PROGRESS_AFTER_SECONDS", 0.0)  # as if every batch were slow
    slow = pytester.runpytest(*args)
    slow.assert_outcomes(passed=1)
    slow.stdout.fnmatch_lines(
        [
            "clipcompress: tiny-clip/tiny-clip.pt cifar10 none+jpeg-q50: 50/200 images, * images/s",  # one pass for both
            "clipcompress: tiny-clip/tiny-clip.pt cifar10 none+jpeg-q50: 200/200 images, * images/s",
        ]
    )
    assert "captured output stays captured" not in slow.stdout.str()


def test_broken_checkpoint_and_dataset_fail_without_traceback(pytester: pytest.Pytester, tmp_path: Path) -> None:
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    root = tmp_path / "data"
    folder = write_cifar10(root, random_images(4, 32), [0, 1, 2, 3])
    (folder / "test_batch").write_bytes(b"\x80\x02}q\x00(X")  # a truncated pickle
    pytester.makepyfile(EXAMPLE.format(floor=0.0))
    bad_model = pytester.runpytest(f"--clip-model-config={TINY_CONFIG}", "--clip-model=tiny-clip", f"--clip-pretrained={broken}", "-k", "cifar10 and q75")
    bad_model.assert_outcomes(errors=1)
    bad_model.stdout.fnmatch_lines(["*cannot load checkpoint *broken.pt into tiny-clip*the file is corrupt or belongs to another architecture"])
    bad_data = pytester.runpytest(f"--clip-model-config={TINY_CONFIG}", "--clip-model=tiny-clip", "--clip-pretrained=none", *data_args(root), "-k", "cifar10")
    bad_data.assert_outcomes(errors=4)
    bad_data.stdout.fnmatch_lines(["*test_batch is truncated or corrupt (*); delete it and download the dataset again"])
    for result in (bad_model, bad_data):
        assert "Traceback" not in result.stdout.str() and "pytest_clipcompress/" not in result.stdout.str()
