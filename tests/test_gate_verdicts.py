"""The gate's three quantities and its verdicts: each number against an independent computation
(scipy.stats and plain counting), each verdict by its rule, and the messages that name them."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from pytest_clipcompress.assertions import assert_no_regression, assert_not_worse
from pytest_clipcompress.compare import compare_outcomes, detectable, drop_change, verdict
from pytest_clipcompress.results.file import load_results_file

from .test_gate import make_result, write_results


def labels_and_hits(n: int, right_clean: int, right_compressed: int, seed: int = 0) -> tuple[list[int], list[int], list[int]]:
    """Labels (all 0) and predictions: ``right_clean`` images right uncompressed, ``right_compressed`` right compressed (a subset of them)."""
    rng = np.random.default_rng(seed)
    clean = np.zeros(n, dtype=bool)
    clean[rng.permutation(n)[:right_clean]] = True
    compressed = np.zeros(n, dtype=bool)
    compressed[rng.permutation(np.flatnonzero(clean))[:right_compressed]] = True
    return [0 if hit else 1 for hit in compressed], [0 if hit else 1 for hit in clean], [0] * n


@pytest.mark.parametrize(
    ("change", "interval", "p", "expected"),
    [
        (-0.05, (-0.08, -0.02), 0.001, "regressed"),  # beyond the 1-point margin, significant
        (-0.05, (-0.11, 0.01), 0.20, "inconclusive"),  # beyond the margin, not significant: cannot tell
        (-0.005, (-0.02, 0.01), 0.60, "inconclusive"),  # the interval reaches past the margin
        (-0.005, (-0.009, -0.001), 0.01, "no change"),  # a real but tiny loss, within the margin
        (0.002, (-0.006, 0.01), 0.70, "no change"),  # a loss beyond the margin is ruled out
        (0.04, (0.01, 0.07), 0.003, "improved"),
    ],
)
def test_verdict_rules(change: float, interval: tuple[float, float], p: float, expected: str) -> None:
    assert verdict(change, interval, p, margin=0.01, alpha=0.05) == expected


def test_drop_change_is_the_paired_t_interval_and_test_of_per_image_drops() -> None:
    reference = make_result(*labels_and_hits(300, 280, 220, seed=1)).outcomes
    candidate = make_result(*labels_and_hits(300, 270, 190, seed=2)).outcomes
    change = drop_change(reference, candidate, margin=0.01, alpha=0.05)
    # Independently: each model's per-image drop, their difference, scipy's paired t test and t interval.
    ref_drop = reference.hits_uncompressed.astype(float) - reference.hits.astype(float)
    cand_drop = candidate.hits_uncompressed.astype(float) - candidate.hits.astype(float)
    test = stats.ttest_rel(ref_drop, cand_drop)
    differences = ref_drop - cand_drop
    low, high = stats.t.interval(0.95, len(differences) - 1, loc=differences.mean(), scale=stats.sem(differences))
    assert change["change"] == pytest.approx(differences.mean(), abs=1e-12)
    assert change["change_ci95"] == pytest.approx([low, high], abs=1e-12)
    assert change["p_value"] == pytest.approx(test.pvalue, rel=1e-9)
    assert change["reference"] == pytest.approx(ref_drop.mean()) and change["candidate"] == pytest.approx(cand_drop.mean())
    assert change["change"] < 0  # the candidate loses more to compression: negative means worse


def test_accuracy_changes_are_candidate_minus_reference_with_mcnemar() -> None:
    reference = make_result(*labels_and_hits(200, 190, 150, seed=3))
    candidate = make_result(*labels_and_hits(200, 180, 120, seed=4))
    comparison = compare_outcomes(reference.outcomes, candidate.outcomes, "baseline", "this run", margin=0.01)
    clean, compressed, drop = comparison.changes
    assert [c["quantity"] for c in comparison.changes] == ["clean", "compressed", "drop"]
    assert clean["change"] == pytest.approx(candidate.baseline_accuracy - reference.baseline_accuracy)
    assert compressed["change"] == pytest.approx(candidate.accuracy - reference.accuracy)
    assert drop["change"] == pytest.approx(reference.drop - candidate.drop)
    # McNemar on the compressed predictions, by counting the discordant images directly.
    b = int(np.sum((reference.predictions == reference.labels) & (candidate.predictions != candidate.labels)))
    c = int(np.sum((reference.predictions != reference.labels) & (candidate.predictions == candidate.labels)))
    assert (compressed["b"], compressed["c"]) == (b, c)
    assert compressed["p_value"] == pytest.approx(stats.binomtest(min(b, c), b + c, 0.5).pvalue)
    low, high = compressed["change_ci95"]
    assert low <= compressed["change"] <= high and compressed["resolution"] == pytest.approx((high - low) / 2)


def test_uncompressed_cases_compare_one_quantity() -> None:
    from pytest_clipcompress.codecs.compression import Compression

    result = make_result(*labels_and_hits(50, 40, 40), compression=Compression("none"))
    comparison = compare_outcomes(result.outcomes, result.outcomes, "baseline", "this run", uncompressed=True)
    # Identical predictions on 50 images: a 1-point loss cannot be ruled out at this n, so not "no change".
    assert [c["quantity"] for c in comparison.changes] == ["clean"] and comparison.changes[0]["change"] == 0
    assert comparison.verdict == "inconclusive" and comparison.changes[0]["change_ci95"][0] < -0.01


def test_a_clean_regression_with_a_smaller_drop_fails_and_names_both(tmp_path: Path) -> None:
    # The release: 100% clean, 80% under compression (a 20-point drop). The candidate: 60% clean, 55%
    # compressed (a 5-point drop). Compressed accuracy alone says "worse"; the verdicts say why.
    release = make_result(*labels_and_hits(200, 200, 160, seed=5), role="m")
    baseline = write_results(tmp_path / "base.json", release)
    candidate = make_result(*labels_and_hits(200, 120, 110, seed=6), baseline=load_results_file(baseline))
    with pytest.raises(AssertionError) as failure:
        assert_no_regression(candidate, max_regression=0.01)
    message = str(failure.value)
    lines = {line.split()[0] + " " + line.split()[1]: line for line in message.splitlines() if line.startswith("  clean") or line.startswith("  drop")}
    assert lines["clean accuracy"].rstrip().endswith("regressed") and "-40.00" in lines["clean accuracy"]
    assert lines["drop (clean"].rstrip().endswith("improved") and "+15.00" in lines["drop (clean"]
    check = candidate.checks[-1]
    assert check["kind"] == "baseline" and check["verdict"] == "regressed" and not check["passed"]
    assert {c["quantity"]: c["verdict"] for c in check["changes"]} == {"clean": "regressed", "compressed": "regressed", "drop": "improved"}
    lost = np.flatnonzero((release.predictions == release.labels) & (candidate.predictions != candidate.labels))
    assert candidate.lost is not None and sorted(candidate.lost) == sorted(lost)  # IG explains these images first


def test_an_inconclusive_change_passes_and_says_what_n_can_resolve(tmp_path: Path) -> None:
    # 80 images; the candidate loses 2 of 40 right answers under compression: -2.5 points, far from significant.
    predicted, clean, labels = labels_and_hits(80, 60, 40, seed=7)
    release = make_result(predicted, clean, labels)
    lost = [i for i, p in enumerate(predicted) if p == 0][:2]
    worse = [1 if i in lost else p for i, p in enumerate(predicted)]
    baseline = load_results_file(write_results(tmp_path / "base.json", release))
    candidate = make_result(worse, clean, labels, baseline=baseline)
    assert_no_regression(candidate, max_regression=0.01)  # passes: nothing shows a real regression
    changes = {c["quantity"]: c for c in candidate.checks[-1]["changes"]}
    assert changes["compressed"]["change"] == pytest.approx(-0.025) and changes["compressed"]["verdict"] == "inconclusive"
    assert candidate.checks[-1]["verdict"] == "inconclusive" and candidate.checks[-1]["passed"]
    text = detectable(changes["compressed"], 80, 0.01)
    half = changes["compressed"]["resolution"]
    assert f"{half * 100:.2f} points are noise at n=80" in text and f"{math.ceil(80 * (half / 0.01) ** 2):,} images" in text


def test_ab_check_is_recorded_with_its_reference_and_quantities() -> None:
    predicted, clean, labels = labels_and_hits(120, 110, 90, seed=8)
    release = make_result(predicted, clean, labels, role="release", weights="a" * 32)
    candidate = make_result(predicted, clean, labels, role="candidate", weights="b" * 32)
    assert_not_worse(candidate, release, max_regression=0.02)
    check = candidate.checks[-1]
    assert (check["kind"], check["reference"], check["role"], check["weights"]) == ("model", "release", "candidate", "b" * 32)
    assert check["reference_label"] == "m/p, weights aaaaaaaaaaaa" and check["passed"]
    assert all(c["change"] == 0 for c in check["changes"])


def test_errors_are_one_clean_message_without_a_chained_traceback() -> None:
    from pytest_clipcompress.codecs.compression import Compression

    release = make_result([0, 1], [0, 1], [0, 1], role="release")
    candidate = make_result([0, 1, 1], [0, 1, 1], [0, 1, 1], role="candidate", compression=Compression("jpeg", quality=60))
    with pytest.raises(pytest.fail.Exception) as failure:
        assert_not_worse(candidate, release)
    assert "compares two models on the same dataset and compression" in str(failure.value)
    assert failure.value.__context__ is None  # raised outside the handler: pytest prints no "During handling of the above exception"
    other = make_result([0, 1, 1], [0, 1, 1], [0, 1, 1], role="candidate")  # three images against two
    with pytest.raises(pytest.fail.Exception) as failure:
        assert_not_worse(other, release)
    assert "not comparable image by image" in str(failure.value) and failure.value.__context__ is None
