"""Top-5 accuracy and mean per-class recall equal CLIP_benchmark's computations (tests/reference.py),
also on subsets with classes absent; their intervals, records, JUnit properties and floors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_clipcompress.codecs.compression import Compression
from pytest_clipcompress.engine.metrics import METRICS
from pytest_clipcompress.engine.result import EvalResult
from pytest_clipcompress.plugin.junit import check_properties, metric_properties

from . import reference


def make_result(labels: np.ndarray, logits: np.ndarray, baseline_logits: np.ndarray, classes: int) -> EvalResult:
    return EvalResult(
        model="m",
        pretrained="p",
        dataset="d",
        compression=Compression("jpeg", quality=30),
        classes=tuple(f"class {c}" for c in range(classes)),
        indices=np.arange(len(labels)),
        labels=labels,
        logits=logits,
        baseline_logits=baseline_logits,
        bits_per_pixel=1.0,
        templates="clip",
        seed=0,
    )


def random_result(seed: int, images: int, classes: int, present: int) -> EvalResult:
    """Logits of ``images`` images over ``classes`` classes, labels drawn from the first ``present`` only."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, present, size=images)
    noisy = rng.normal(size=(images, classes)).astype(np.float32)
    noisy[np.arange(images), labels] += 1.5  # mostly right, some wrong, some predicted as absent classes
    return make_result(labels, noisy, noisy + rng.normal(scale=0.8, size=noisy.shape).astype(np.float32) * -1, classes)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), images=st.integers(1, 60), classes=st.integers(5, 40), share=st.floats(0.05, 1.0))
def test_top5_and_mean_per_class_recall_equal_clip_benchmarks(seed: int, images: int, classes: int, share: float) -> None:
    present = max(1, round(classes * share))  # classes absent from the subset: never labels, sometimes predicted
    result = random_result(seed, images, classes, present)
    assert result.top5 == pytest.approx(reference.clip_benchmark_top_k(result.logits, result.labels, 5), abs=1e-12)
    assert result.baseline_top5 == pytest.approx(reference.clip_benchmark_top_k(result.baseline_logits, result.labels, 5), abs=1e-12)
    labels = result.labels.tolist()
    assert result.mean_per_class_recall == pytest.approx(reference.balanced_accuracy(labels, result.predictions.tolist()), abs=1e-12)
    assert result.baseline_mean_per_class_recall == pytest.approx(reference.balanced_accuracy(labels, result.baseline_predictions.tolist()), abs=1e-12)
    assert result.accuracy == pytest.approx(reference.clip_benchmark_top_k(result.logits, result.labels, 1), abs=1e-12)


def test_absent_classes_count_for_nothing_and_predicted_absent_ones_neither() -> None:
    # 10 classes; the subset holds images of classes 0 and 1 only; one image is predicted as class 7.
    labels = np.array([0, 0, 0, 1])
    logits = np.zeros((4, 10), dtype=np.float32)
    logits[[0, 1, 2, 3], [0, 0, 7, 1]] = 5.0
    result = make_result(labels, logits, logits, 10)
    # class 0: 2 of 3, class 1: 1 of 1; classes 2..9 have no image: (2/3 + 1) / 2, not divided by 10 (nor by 3 for class 7).
    assert result.mean_per_class_recall == pytest.approx((2 / 3 + 1) / 2) == reference.balanced_accuracy(labels.tolist(), [0, 0, 7, 1])
    assert result.per_class == {"class 0": pytest.approx(2 / 3), "class 1": 1.0}


def test_ties_follow_argmax_so_top1_hits_are_top5_hits() -> None:
    logits = np.zeros((2, 8), dtype=np.float32)  # every class tied: argmax says class 0
    result = make_result(np.array([4, 5]), logits, logits, 8)
    assert result.top5 == 0.5  # classes 0..4 come first among equals: image of class 4 in, class 5 out
    assert result.predictions.tolist() == [0, 0]


def test_fewer_than_five_classes_have_no_top5() -> None:
    labels = np.array([0, 1, 2, 3])
    logits = np.eye(4, dtype=np.float32)
    result = make_result(labels, logits, logits, 4)
    record = result.to_record()
    assert record["top5"] is None and record["top5_ci95"] is None and record["baseline_top5"] is None
    assert math.isnan(METRICS["top5"].value(result)) and math.isnan(METRICS["top5_drop"].value(result))
    names = [name for name, _ in metric_properties(result)]
    assert not any(name.endswith((".top5", ".top5_drop")) for name in names) and any(name.endswith(".mean_per_class_recall") for name in names)
    json.dumps(record, allow_nan=False)  # strict JSON: the results file has no NaN


def test_record_carries_the_metrics_with_the_wilson_interval_of_top5() -> None:
    result = random_result(7, 50, 12, 12)
    record = result.to_record()
    hits = round(record["top5"] * 50)
    assert record["top5_ci95"] == pytest.approx(list(reference.hand_wilson(hits, 50)), abs=1e-12)
    assert record["mean_per_class_recall"] == result.mean_per_class_recall and record["source_format"] == "pixels"
    assert record["baseline_mean_per_class_recall"] == result.baseline_mean_per_class_recall
    properties = dict(metric_properties(result))
    prefix = "clip[m|d|jpeg-q30]"
    assert properties[f"{prefix}.top5"] == f"{record['top5']:.6f}"
    assert properties[f"{prefix}.top5_drop"] == f"{record['baseline_top5'] - record['top5']:.6f}"
    assert properties[f"{prefix}.mean_per_class_recall_drop"] == f"{result.baseline_mean_per_class_recall - result.mean_per_class_recall:.6f}"
    result.checks.append(result.check_record(False, 0.99, None, metric="top5"))
    assert check_properties([result]) == [(f"{prefix}.top5.min_accuracy", "0.990000"), (f"{prefix}.top5.check", "failed")]


def test_repeated_class_names_keep_their_own_recall() -> None:
    labels = np.array([0, 1, 1])
    logits = np.array([[9, 0, 0, 0, 0], [9, 0, 0, 0, 0], [0, 9, 0, 0, 0]], dtype=np.float32)
    result = make_result(labels, logits, logits, 5)
    result.classes = ("missile", "missile", "c", "d", "e")
    assert result.per_class == {"missile #0": 1.0, "missile #1": 0.5}


def test_records_of_the_wds_and_jpeg_folder_name_their_source_format(tmp_path: Path) -> None:
    from pytest_clipcompress.data.registry import load_dataset

    from .helpers import random_images, write_wds

    root = write_wds(tmp_path / "ds", random_images(3, 8), [0, 1, 0], ["a", "b"], ["a {c}"], "jpg")
    assert load_dataset(f"wds:{root}", tmp_path, True).source_format == "JPEG"
    assert load_dataset("demo", tmp_path, True).source_format == "pixels"


METRIC_SUITE = """
import pytest
from pytest_clipcompress import assert_accuracy


@pytest.mark.clip_dataset("cifar10")
@pytest.mark.compression("jpeg", quality=[30])
def test_top5_floor(clip_eval):
    assert_accuracy(clip_eval(), metric="top5", min_accuracy=0.99)


@pytest.mark.clip_dataset("cifar10")
@pytest.mark.compression("jpeg", quality=[30])
def test_floors_that_hold(clip_eval):
    result = clip_eval()
    assert_accuracy(result, metric="top5", min_accuracy=0.0, max_drop=1.0, confidence=0.95)
    assert_accuracy(result, metric="mean_per_class_recall", max_drop=1.0)


@pytest.mark.clip_dataset("cifar10")
@pytest.mark.compression("jpeg", quality=[30])
def test_recall_has_no_interval(clip_eval):
    assert_accuracy(clip_eval(), metric="mean_per_class_recall", min_accuracy=0.5, confidence=0.95)


@pytest.mark.clip_dataset("cifar10")
@pytest.mark.compression("jpeg", quality=[30])
def test_unknown_metric(clip_eval):
    assert_accuracy(clip_eval(), metric="top3", min_accuracy=0.5)
"""


def test_floors_on_top5_and_mean_per_class_recall(pytester: pytest.Pytester, tiny_args: list[str], cifar_sample_root: Path) -> None:
    pytester.makepyfile(test_metrics=METRIC_SUITE)
    results, summary = pytester.path / "results.json", pytester.path / "summary.md"
    args = [*tiny_args, f"--clip-data-root={cifar_sample_root}", "--clip-offline", "--clip-samples=60", "--clip-ig-samples=0", "-p", "no:cacheprovider"]
    outcome = pytester.runpytest_inprocess(*args, f"--clip-results={results}", f"--clip-summary={summary}")
    outcome.assert_outcomes(passed=1, failed=3)
    payload = json.loads(results.read_text())
    (record,) = payload["evaluations"]
    text = outcome.stdout.str()
    assert f"E       AssertionError: zero-shot top-5 accuracy of {record['model']}/" in text
    assert f"top5           {record['top5']:.2%}   floor min_accuracy=99.00%: FAILED" in text
    assert f"uncompressed  {record['baseline_top5']:>7.2%}" in text
    assert "mean per-class recall has no interval here (docs/floors.md says why)" in text
    assert "metric='top3' is not supported by assert_accuracy; choose 'top1', 'top5', 'mean_per_class_recall'" in text
    checks = {(check["test"].split("::")[1].split("[")[0], check.get("metric"), check["passed"]) for check in payload["checks"]}
    assert checks == {("test_top5_floor", "top5", False), ("test_floors_that_hold", "top5", True), ("test_floors_that_hold", "mean_per_class_recall", True)}
    failures = summary.read_text().split("### Failures", 1)[1]
    assert f"| top5 {record['top5']:.2%} | min_accuracy 99.00% **failed** |" in failures
    assert "| Top-5 | Per-class recall |" in summary.read_text()
    assert f"| {record['top5']:.2%} | {record['mean_per_class_recall']:.2%} |" in summary.read_text()


def test_reports_show_the_metrics_and_what_uncompressed_means() -> None:
    from pytest_clipcompress.render.html import summary_table_html
    from pytest_clipcompress.render.markdown import summary_markdown
    from pytest_clipcompress.render.terminal import terminal_table

    record = {**random_result(3, 40, 12, 12).to_record(), "source_format": "JPEG", "dataset": "imagenet1k"}
    lines = terminal_table([record])
    assert lines[0].endswith("; uncompressed = the decoded JPEG files)")
    assert "top-5" in lines[1] and "per-class" in lines[1] and f"{record['top5']:.2%}" in lines[2] and f"{record['mean_per_class_recall']:.2%}" in lines[2]
    markdown = summary_markdown([record], [])
    assert "uncompressed accuracy" in markdown and "; uncompressed = the decoded JPEG files" in markdown
    html = summary_table_html([record])
    assert ">decoded JPEG</td>" in html and f">{record['top5'] * 100:.1f}%</td>" in html


def test_top5_in_blocks_equals_top5_at_once() -> None:
    from pytest_clipcompress.engine.result import TOP_K_ROWS, top_k_hits

    result = random_result(11, TOP_K_ROWS * 2 + 17, 9, 9)
    assert top_k_hits(result.logits, result.labels, 5).mean() == pytest.approx(reference.clip_benchmark_top_k(result.logits, result.labels, 5), abs=1e-12)
