"""The model-CI gate: paired statistics, per-image outcomes, model roles, the baseline gate and the CLI.

Every statistic is checked against a computation written from the textbook formulas in
tests/reference.py (closed-form Wilson bounds, McNemar's exact p from binomial coefficients,
Newcombe's method 10) and against scipy called directly, never against the package's own helpers.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.stats import binomtest

from pytest_clipcompress.assertions import assert_not_worse
from pytest_clipcompress.cli import main as cli_main
from pytest_clipcompress.codecs.compression import Compression
from pytest_clipcompress.compare import compare_outcomes
from pytest_clipcompress.config.model_entries import ModelEntry, parse_model_entries, parse_model_entry
from pytest_clipcompress.config.settings import Settings, build_settings
from pytest_clipcompress.engine.result import EvalResult
from pytest_clipcompress.engine.stats import PairedDifference, mcnemar_exact, paired_difference_interval, wilson_interval
from pytest_clipcompress.errors import ConfigError
from pytest_clipcompress.results.file import GateError, load_results_file
from pytest_clipcompress.results.per_image import Outcomes, OutcomesError
from pytest_clipcompress.results.schema import CaseKey

from .helpers import without_run_block
from .reference import hand_mcnemar, hand_newcombe, hand_wilson

# (both right, right under the first only, right under the second only, both wrong)
TABLES = [(59, 6, 16, 80), (1, 1, 7, 12), (14, 5, 0, 22), (80, 19, 0, 1), (0, 0, 0, 5), (40, 10, 3, 947), (850, 40, 10, 100), (3, 0, 0, 0)]


@pytest.mark.parametrize("table", TABLES, ids=[",".join(map(str, t)) for t in TABLES])
def test_mcnemar_and_paired_interval_equal_independent_computations(table: tuple[int, int, int, int]) -> None:
    both, b, c, neither = table
    p = mcnemar_exact(b, c)
    assert p == pytest.approx(hand_mcnemar(b, c), rel=1e-12)
    if b + c:
        assert p == pytest.approx(binomtest(b, b + c, 0.5, alternative="two-sided").pvalue, rel=1e-12)
    for confidence in (0.95, 0.9):
        low, high = paired_difference_interval(both, b, c, neither, confidence)
        expected = hand_newcombe(both, b, c, neither, confidence)
        assert (low, high) == pytest.approx(expected, abs=1e-12)
        assert low <= (b - c) / sum(table) <= high


@pytest.mark.parametrize(("k", "n"), [(0, 10), (8, 10), (10, 10), (437, 500), (1, 3)])
def test_wilson_interval_equals_closed_form(k: int, n: int) -> None:
    assert wilson_interval(k, n) == pytest.approx(hand_wilson(k, n), abs=1e-12)
    assert wilson_interval(k, n, 0.99) == pytest.approx(hand_wilson(k, n, 0.99), abs=1e-12)


def test_wilson_and_mcnemar_equal_scipy_binomtest_on_a_grid() -> None:
    # The package computes both on scipy.special (scipy.stats costs ~0.9 s to import per process).
    for n in (*range(1, 41), 199, 200, 1000):
        for k in sorted({*range(min(n, 40) + 1), n // 3, n // 2, n - 1, n}):
            for confidence in (0.9, 0.95, 0.99):
                reference = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
                assert wilson_interval(k, n, confidence) == pytest.approx((max(0.0, reference.low), min(1.0, reference.high)), abs=1e-12)
    for b in range(60):
        for c in range(60):
            if b + c:
                assert mcnemar_exact(b, c) == pytest.approx(binomtest(b, b + c, 0.5).pvalue, rel=1e-11)


def test_the_statistics_do_not_import_scipy_stats() -> None:
    code = "import sys, pytest_clipcompress.engine.evaluator, pytest_clipcompress.compare, pytest_clipcompress.assertions; print('scipy.stats' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_paired_difference_counts_from_hits() -> None:
    first = np.array([1, 1, 1, 0, 0, 1, 0], dtype=bool)
    second = np.array([1, 0, 0, 1, 0, 1, 0], dtype=bool)
    paired = PairedDifference.from_hits(first, second)
    assert (paired.n, paired.both, paired.b, paired.c, paired.neither) == (7, 2, 2, 1, 2)
    assert paired.difference == pytest.approx(first.mean() - second.mean())
    assert paired.p_value == pytest.approx(hand_mcnemar(2, 1))


# --- per-image outcomes in records --------------------------------------------------------------


def make_result(predicted: list[int], predicted_uncompressed: list[int], labels: list[int], **changes: object) -> EvalResult:
    classes = ("a", "b", "c")
    eye = np.eye(len(classes), dtype=np.float32)
    fields: dict[str, object] = {
        "model": "m",
        "pretrained": "p",
        "dataset": "d",
        "compression": Compression("jpeg", quality=50),
        "classes": classes,
        "indices": np.arange(len(labels)) * 3 + 7,
        "labels": np.array(labels),
        "logits": eye[predicted],
        "baseline_logits": eye[predicted_uncompressed],
        "bits_per_pixel": 1.0,
        "templates": "clip",
        "seed": 0,
        "role": "m",
        "fingerprint": "files-1",
        "templates_digest": "prompts-1",
    }
    fields.update(changes)
    return EvalResult(**fields)  # type: ignore[arg-type]


def test_record_carries_outcomes_flips_and_paired_drop() -> None:
    labels = [0, 0, 0, 1, 1, 2, 2, 2]
    uncompressed = [0, 0, 0, 1, 0, 2, 2, 2]  # 7 right
    compressed = [1, 1, 0, 1, 1, 2, 0, 1]  # 0, 1, 6, 7 flip (b = 4); 4 recovers (c = 1); 2, 3, 5 stay right
    record = json.loads(json.dumps(make_result(compressed, uncompressed, labels).to_record()))
    outcomes = Outcomes.from_record(record)
    assert outcomes.indices.tolist() == [7, 10, 13, 16, 19, 22, 25, 28]
    assert outcomes.predicted.tolist() == compressed and outcomes.predicted_uncompressed.tolist() == uncompressed and outcomes.labels.tolist() == labels
    assert record["data"] == {
        "fingerprint": "files-1",
        "classes": ["a", "b", "c"],
        "templates_digest": "prompts-1",
        "seed": 0,
        "n": 8,
        "indices_digest": record["data"]["indices_digest"],
    }
    # Flips: right uncompressed, wrong compressed, counted by (true, predicted).
    assert record["flip_confusion"] == [
        {"true": "a", "predicted": "b", "count": 2},
        {"true": "c", "predicted": "a", "count": 1},
        {"true": "c", "predicted": "b", "count": 1},
    ]
    assert record["discordant"] == {"lost": 4, "gained": 1}
    assert record["drop_p_value"] == pytest.approx(hand_mcnemar(4, 1))
    assert record["drop_ci95"] == pytest.approx(hand_newcombe(3, 4, 1, 0))
    assert record["role"] == "m"
    # The same result gives the same bytes.
    assert json.dumps(make_result(compressed, uncompressed, labels).to_record(), sort_keys=True) == json.dumps(record, sort_keys=True)


def test_outcomes_of_an_old_or_damaged_record_are_a_clear_error() -> None:
    record = make_result([0, 1], [0, 1], [0, 1]).to_record()
    with pytest.raises(OutcomesError, match="older pytest-clipcompress"):
        Outcomes.from_record({key: value for key, value in record.items() if key != "outcomes"})
    record["outcomes"]["predicted"] = "not base64!"
    with pytest.raises(OutcomesError, match=r"outcomes\.predicted is not valid"):
        Outcomes.from_record(record)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"fingerprint": "files-2"}, "dataset files differ"),
        ({"classes": ("a", "c", "b")}, "classes differ"),
        ({"templates_digest": "prompts-2"}, "prompt templates differ"),
        ({"indices": np.arange(4) + 1}, "image subsets differ"),
    ],
)
def test_different_images_are_never_compared(change: dict[str, object], message: str) -> None:
    reference = make_result([0, 1, 2, 0], [0, 1, 2, 0], [0, 1, 2, 0])
    candidate = make_result([0, 1, 2, 0], [0, 1, 2, 0], [0, 1, 2, 0], **change)
    with pytest.raises(GateError, match=message):
        compare_outcomes(reference.outcomes, candidate.outcomes, "baseline", "this run")


def test_assert_not_worse_uses_margin_and_mcnemar() -> None:
    labels = [0] * 40
    reference = make_result([0] * 40, [0] * 40, labels, role="release")
    slightly = make_result([1] * 2 + [0] * 38, [0] * 40, labels, role="candidate")  # 5 points, b=2: p=0.5
    assert_not_worse(slightly, reference, max_regression=0.01)
    assert slightly.checks[-1]["passed"] is True
    much = make_result([1] * 12 + [0] * 28, [0] * 40, labels, role="candidate")  # 30 points, b=12: p=0.0005
    with pytest.raises(AssertionError) as failure:
        assert_not_worse(much, reference, max_regression=0.01)
    text = str(failure.value)
    assert "candidate is worse than release on d under jpeg-q50" in text
    row = next(line for line in text.splitlines() if line.lstrip().startswith("accuracy under jpeg-q50"))
    low, high = hand_newcombe(28, 12, 0, 0)  # reference minus candidate; the message shows candidate minus reference
    assert row.split()[3:9] == ["100.00%", "70.00%", "-30.00", f"{-high * 100:+.2f}", "to", f"{-low * 100:+.2f}"]
    assert row.split()[9] == f"{hand_mcnemar(12, 0):.3g}" and row.rstrip().endswith("regressed")
    assert "classes lost a -12" in text
    changes = {c["quantity"]: c for c in much.checks[-1]["changes"]}
    # The clean predictions agree on all 40 images, yet 40 images cannot rule out a 1-point loss: inconclusive.
    assert (changes["compressed"]["b"], changes["compressed"]["c"]) == (12, 0) and changes["clean"]["verdict"] == "inconclusive"
    assert_not_worse(much, reference, max_regression=0.35)  # within the margin


def test_assert_accuracy_on_the_interval_fails_only_on_significant_evidence() -> None:
    from pytest_clipcompress import assert_accuracy

    labels = [0] * 20
    result = make_result([0] * 15 + [1] * 5, [0] * 20, labels)  # 75% of 20, drop 25 points with b=5, c=0
    high = hand_wilson(15, 20)[1]  # 0.886
    with pytest.raises(AssertionError):
        assert_accuracy(result, min_accuracy=0.8)  # the point estimate is below
    assert_accuracy(result, min_accuracy=0.8, confidence=0.95)  # but 0.8 is inside the interval
    with pytest.raises(AssertionError, match=r"floor min_accuracy=90.00% on the 95% interval: FAILED"):
        assert_accuracy(result, min_accuracy=round(high + 0.01, 2), confidence=0.95)
    drop_low = hand_newcombe(15, 5, 0, 0)[0]
    assert_accuracy(result, max_drop=round(drop_low + 0.01, 2), confidence=0.95)
    with pytest.raises(AssertionError, match="drop 95% CI"):
        assert_accuracy(result, max_drop=round(drop_low - 0.01, 2), confidence=0.95)
    expected = {"min_accuracy": None, "max_drop": round(drop_low - 0.01, 2), "passed": False, "confidence": 0.95}
    assert {name: result.checks[-1].get(name) for name in expected} == expected


# --- model roles --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "entry"),
    [
        ("ViT-B-32", ModelEntry("ViT-B-32")),
        ("ViT-B-32:openai", ModelEntry("ViT-B-32", "openai")),
        ("candidate=ViT-B-32:/ckpt/epoch13.pt", ModelEntry("ViT-B-32", "/ckpt/epoch13.pt", "candidate")),
        ("release=ViT-B-32:openai", ModelEntry("ViT-B-32", "openai", "release")),
        ("hf-hub:timm/ViT-B-16-SigLIP", ModelEntry("hf-hub:timm/ViT-B-16-SigLIP")),
        ("ref=hf-hub:org/repo", ModelEntry("hf-hub:org/repo", None, "ref")),
        ("ViT-B-32:C:\\ckpt\\epoch13.pt", ModelEntry("ViT-B-32", "C:\\ckpt\\epoch13.pt")),
        ("ViT-B-32:/runs/lr=0.1/ckpt.pt", ModelEntry("ViT-B-32", "/runs/lr=0.1/ckpt.pt")),
        ("new=local-dir:C:\\models\\x", ModelEntry("local-dir:C:\\models\\x", None, "new")),
        ("ViT-B-32:none", ModelEntry("ViT-B-32", "none")),
    ],
)
def test_model_entries_parse(text: str, entry: ModelEntry) -> None:
    assert parse_model_entry(text) == entry


@pytest.mark.parametrize(
    ("values", "message"), [(["candidate="], "names no model"), (["ViT-B-32:"], "nothing after ':'"), (["ViT-B-32", "ViT-B-32:openai"], "used twice")]
)
def test_bad_model_entries_say_what_to_write(values: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_model_entries(values)


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def compare_links(folder: Path) -> list[str]:
    """The pages index.html's "Compare:" line links, checked to exist and to link back to index.html."""
    import re

    line = re.findall(r'<p class="cc-compare">Compare: (.*)</p>', (folder / "index.html").read_text())
    assert len(line) <= 1
    links = re.findall(r'<a href="([^"]+)">', line[0]) if line else []
    for link in links:
        assert '<a href="index.html">&larr; report</a>' in (folder / link).read_text()
    return links


def test_report_folder_links_the_comparison_pages_it_holds(tmp_path: Path) -> None:
    from pytest_clipcompress.compare import compare_files, roles_side_by_side
    from pytest_clipcompress.render import write_report_dir
    from pytest_clipcompress.render.comparison import comparison_pages

    labels = [0, 1, 2] * 10
    release = make_result(labels, labels, labels, role="release")
    candidate = make_result([1] * 10 + labels[10:], labels, labels, role="candidate")
    baseline = write_results(tmp_path / "base.json", release, make_result(labels, labels, labels, role="candidate"))
    records = [json.loads(json.dumps(result.to_record())) for result in (release, candidate)]
    folder = tmp_path / "report"

    def write(records: list[dict[str, Any]], order: tuple[str, ...], baseline: Path | None) -> dict[str, bytes]:
        against = compare_files(load_results_file(baseline).evaluations, records).rows if baseline is not None else []
        pages = comparison_pages(roles_side_by_side(records, order), against, baseline.name if baseline else None)
        write_report_dir(folder, records, [], [], comparison_pages=pages)
        assert compare_links(folder) == list(pages)
        return folder_bytes(folder)

    first = write(records, ("release", "candidate"), baseline)
    assert compare_links(folder) == ["models.html", "baseline.html"]
    assert (
        'Compare: <a href="models.html">models side by side</a> &middot; <a href="baseline.html">this run against the baseline</a>'
        in (folder / "index.html").read_text()
    )
    assert "release \u2192 candidate" in (folder / "models.html").read_text() and ">REGRESSED<" not in (folder / "baseline.html").read_text()
    assert write(records, ("release", "candidate"), baseline) == first  # the same run, the same bytes
    # One model and no baseline: nothing to compare, no links, and the earlier run's pages are gone.
    write(records[:1], ("release",), None)
    assert compare_links(folder) == [] and not (folder / "models.html").exists() and not (folder / "baseline.html").exists()
    assert "Compare:" not in (folder / "index.html").read_text()


def role_properties(junit: Path, records: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """Each test case's JUnit properties, checked to name both roles apart and to hold each role's own numbers."""
    import xml.etree.ElementTree as ET

    accuracy = {record["role"]: record["accuracy"] for record in records}
    assert len(accuracy) == 2 and len(set(accuracy.values())) == 2  # the roles really measure differently
    cases = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        pairs = [(p.get("name"), p.get("value")) for p in case.iter("property")]
        names = [name for name, _ in pairs]
        assert len(names) == len(set(names)), names  # no property written twice under one name
        properties = dict(pairs)
        for role in ("candidate", "release"):
            prefix = f"clip[{role}|demo|jpeg-q90]"
            assert properties[f"{prefix}.accuracy"] == f"{accuracy[role]:.6f}"
            assert properties[f"{prefix}.n"] == "100"
        cases[str(case.get("name"))] = properties
    assert sorted(cases) == ["test_candidate_not_worse[candidate-demo-jpeg-q90]", "test_candidate_not_worse[release-demo-jpeg-q90]"]
    return cases


def settings_from(values: dict[str, object]) -> Settings:
    return build_settings(lambda option: values.get(option.name))


def test_roles_choose_their_own_weights(tmp_path: Path) -> None:
    from pytest_clipcompress.demo import DEMO_WEIGHTS
    from pytest_clipcompress.models.resolve import ModelSpec, model_config_paths, register_model_configs, spec_for

    checkpoint = tmp_path / "epoch13.pt"
    checkpoint.write_bytes(b"weights")
    models = settings_from({"model": [f"candidate=clipcompress-demo:{checkpoint}", "release=clipcompress-demo"], "pretrained": None}).models
    register_model_configs(model_config_paths(models.configs))
    assert models.ids == ("candidate", "release") and not models.uses_demo_model
    assert spec_for(models, "candidate") == ModelSpec("clipcompress-demo", str(checkpoint))
    assert spec_for(models, "release") == ModelSpec("clipcompress-demo", str(DEMO_WEIGHTS))
    with pytest.raises(ConfigError, match="no --clip-model has the id 'nightly'; this run's models: candidate, release"):
        spec_for(models, "nightly")
    with pytest.raises(ConfigError, match=r"--clip-baseline-save .* is a folder"):
        settings_from({"baseline-save": str(tmp_path)})


# --- files and the CLI --------------------------------------------------------------------------


def write_results(path: Path, *results: EvalResult) -> Path:
    payload = {"plugin": "pytest-clipcompress", "version": "x", "evaluations": [r.to_record() for r in results], "checks": [], "breaking_points": []}
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    return path


@pytest.mark.parametrize(
    ("content", "message"), [(None, "does not exist"), ("{not json", "is not JSON"), ('{"evaluations": []}', "not a pytest-clipcompress results file")]
)
def test_bad_results_files_are_clear_errors(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "file.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_results_file(path)


def test_baseline_without_the_entry_is_a_clear_error(tmp_path: Path) -> None:
    stored = load_results_file(write_results(tmp_path / "base.json", make_result([0], [0], [0], role="release")))
    with pytest.raises(GateError, match=r"has no entry for candidate on d under jpeg-q50; it holds: release on d \(jpeg-q50\)"):
        stored.entry_for(CaseKey("candidate", "d", "jpeg-q50"), "files-1")
    assert stored.entry_for(CaseKey("release", "renamed", "jpeg-q50"), "files-1")["role"] == "release"  # found by the files' fingerprint


def test_cli_compare_exit_codes_and_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    labels = [0] * 40
    old = write_results(tmp_path / "old.json", make_result([0] * 40, [0] * 40, labels))
    new = write_results(tmp_path / "new.json", make_result([1] * 12 + [0] * 28, [0] * 40, labels))
    assert cli_main(["compare", str(old), str(new)]) == 0  # a table, no gate
    assert cli_main(["compare", str(old), str(new), "--fail-on-regression", "0.01"]) == 1
    out = capsys.readouterr().out
    assert "m on d under jpeg-q50 (same 40 images, margin 1.00 points): REGRESSED" in out
    row = next(line for line in out.splitlines() if line.lstrip().startswith("accuracy under jpeg-q50"))
    assert row.split()[3:6] == ["100.00%", "70.00%", "-30.00"] and row.rstrip().endswith("regressed")
    assert f"REGRESSED m on d under jpeg-q50: accuracy -30.00 points (p={hand_mcnemar(12, 0):.3g})" in out
    assert cli_main(["compare", str(old), str(old), "--fail-on-regression", "0.01"]) == 0
    page = tmp_path / "compare.html"
    assert cli_main(["compare", str(old), str(new), "--fail-on-regression", "0.01", "--html", str(page)]) == 1
    html = page.read_text()
    low, high = hand_newcombe(28, 12, 0, 0)
    assert '<td class="num regressed">-30.00</td>' in html and f"{-high * 100:+.2f} to {-low * 100:+.2f}" in html and ">regressed<" in html
    assert "a -&gt; b 12" in html  # flips, escaped
    assert cli_main(["compare", str(old), str(new), "--fail-on-regression", "0.01", "--html", str(page)]) == 1
    assert page.read_text() == html  # same comparison, same bytes
    assert cli_main(["compare", str(old), str(new), "--fail-on-regression", "0.35"]) == 0
    other = write_results(tmp_path / "other.json", make_result([0] * 40, [0] * 40, labels, indices=np.arange(40)))
    assert cli_main(["compare", str(old), str(other), "--fail-on-regression", "0.01"]) == 2
    assert "not comparable" in capsys.readouterr().out
    assert cli_main(["compare", str(old), str(new), "--fail-on-regression", "5"]) == 2
    assert "error: --fail-on-regression 5.0 is outside [0, 1]" in capsys.readouterr().err
    assert cli_main(["compare", str(old), str(tmp_path / "missing.json")]) == 2
    assert "error: NEW " in (err := capsys.readouterr().err) and "missing.json does not exist" in err
    nothing = write_results(tmp_path / "nothing.json", make_result([0], [0], [0], role="other", dataset="e", fingerprint="files-9"))
    assert cli_main(["compare", str(old), str(nothing)]) == 2
    assert "no evaluation in common" in capsys.readouterr().err


def run_module_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m pytest_clipcompress ARGS`` in a fresh process, as CI runs it."""
    return subprocess.run([sys.executable, "-m", "pytest_clipcompress", *args], capture_output=True, text=True, check=False)


def test_cli_runs_as_a_module_without_tracebacks(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    done = run_module_cli("compare", str(bad), str(bad))
    assert done.returncode == 2
    assert "clipcompress compare: error: OLD " in done.stderr and "not a pytest-clipcompress results file" in done.stderr
    assert "Traceback" not in done.stderr
    results = write_results(tmp_path / "r.json", make_result([0, 1, 2, 0], [0, 1, 2, 0], [0, 1, 2, 0]))
    done = run_module_cli("report", str(results), "--out", str(tmp_path / "rep"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "rep" / "index.html").is_file() and "jpeg-q50" in (tmp_path / "rep" / "index.html").read_text()


# --- the gate in a user's run, with the bundled demo model ---------------------------------------

GATE_SUITE = """
import pytest
from pytest_clipcompress import assert_no_regression

@pytest.mark.clip_dataset("demo")
@pytest.mark.compression("jpeg", quality=90)
def test_no_regression(clip_eval):
    assert_no_regression(clip_eval(), max_regression=0.01)
"""

AB_SUITE = """
import pytest
from pytest_clipcompress import assert_not_worse

@pytest.mark.clip_dataset("demo")
@pytest.mark.compression("jpeg", quality=90)
def test_candidate_not_worse(clip_eval):
    assert_not_worse(clip_eval(model="candidate"), clip_eval(model="release"), max_regression=0.01)
"""

DEMO_ARGS = ["--clip-samples=100", "--clip-no-cache", "--clip-device=cpu", "--clip-ig-samples=0", "-p", "no:cacheprovider"]


@pytest.fixture(scope="module")
def degraded_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled demo weights with seeded Gaussian noise (0.2 standard deviations of each tensor)."""
    # Imported here, in this process, so that pytester's in-process runs (which restore sys.modules
    # after each run) never import torch's extensions a second time.
    import open_clip  # noqa: F401
    import torch

    from pytest_clipcompress.demo import DEMO_WEIGHTS

    state = torch.load(DEMO_WEIGHTS, map_location="cpu", weights_only=True)
    generator = torch.Generator().manual_seed(0)
    noisy = {
        name: tensor + 0.2 * tensor.float().std() * torch.randn(tensor.shape, generator=generator)
        if tensor.is_floating_point() and tensor.numel() > 1
        else tensor
        for name, tensor in state.items()
    }
    path = tmp_path_factory.mktemp("degraded") / "demo-noisy.pt"
    torch.save(noisy, path)
    return path


def test_degraded_checkpoint_fails_the_gate_and_passes_against_itself(pytester: pytest.Pytester, degraded_checkpoint: Path) -> None:
    pytester.makepyfile(GATE_SUITE)
    base, noisy = pytester.path / "base.json", pytester.path / "noisy.json"
    first = pytester.runpytest(*DEMO_ARGS, f"--clip-baseline-save={base}", f"--clip-baseline={write_empty(pytester.path / 'empty.json')}")
    first.assert_outcomes(failed=1)  # the empty baseline has no entry: a clear error, not a pass
    first.stdout.fnmatch_lines(["*baseline *empty.json has no entry for clipcompress-demo on demo under jpeg-q90; it holds: nothing*"])
    assert base.is_file()

    degraded = pytester.runpytest(
        *DEMO_ARGS, f"--clip-model=clipcompress-demo:{degraded_checkpoint}", f"--clip-baseline={base}", f"--clip-baseline-save={noisy}"
    )
    degraded.assert_outcomes(failed=1)
    degraded.stdout.fnmatch_lines(
        [
            "*clipcompress-demo (clipcompress-demo/demo-noisy.pt) on demo under jpeg-q90 regressed against the baseline *base.json",
            "*baseline: clipcompress-demo/clipcompress-demo.pt, weights *",
            "*this run: clipcompress-demo/demo-noisy.pt, weights *",
            "*quantity * baseline * this run * change * 95% CI (points) * p  verdict",
            "*clean accuracy * -* to * regressed",
            "*accuracy under jpeg-q90 * -* to * regressed",
            "*drop (clean - jpeg-q90) *",
            "*change: negative = the candidate is worse*",
            "*same 100 images; margin max_regression=1.00 points, alpha 0.05",
            "*classes lost *",
        ]
    )
    assert "Traceback" not in degraded.stdout.str()
    degraded.stdout.fnmatch_lines(
        [
            "against the baseline *base.json (clipcompress-demo/clipcompress-demo.pt, weights *), on the same images:",
            "  clipcompress-demo on demo under jpeg-q90 (same 100 images, margin 1.00 points): REGRESSED",
        ]
    )
    itself = pytester.runpytest(*DEMO_ARGS, f"--clip-model=clipcompress-demo:{degraded_checkpoint}", f"--clip-baseline={noisy}")
    itself.assert_outcomes(passed=1)

    other_subset = pytester.runpytest(*DEMO_ARGS, "--clip-samples=50", f"--clip-baseline={base}")
    other_subset.assert_outcomes(failed=1)
    other_subset.stdout.fnmatch_lines(
        ["*not comparable image by image: the image subsets differ (n=100, seed 0 vs n=50, seed 0; keep --clip-samples and --clip-seed equal)*"]
    )

    regressed = run_module_cli("compare", str(base), str(noisy), "--fail-on-regression", "0.01")
    assert regressed.returncode == 1 and "REGRESSED clipcompress-demo on demo under jpeg-q90" in regressed.stdout
    same = run_module_cli("compare", str(noisy), str(noisy), "--fail-on-regression", "0.01")
    assert same.returncode == 0 and "no regression beyond 1.00 points" in same.stdout


def write_empty(path: Path) -> Path:
    path.write_text(json.dumps({"plugin": "pytest-clipcompress", "version": "x", "evaluations": [], "checks": [], "breaking_points": []}))
    return path


def test_bad_baseline_file_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(GATE_SUITE)
    bad = pytester.path / "bad.json"
    bad.write_text("{}")
    result = pytester.runpytest(*DEMO_ARGS, f"--clip-baseline={bad}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--clip-baseline *bad.json is JSON but not a pytest-clipcompress results file*"])


def test_two_roles_side_by_side_in_one_session(pytester: pytest.Pytester, degraded_checkpoint: Path) -> None:
    pytester.makepyfile(AB_SUITE)
    # IG on: attributions of a failure must load the model by its role, not by its architecture name.
    roles = [
        "--clip-model=release=clipcompress-demo",
        f"--clip-model=candidate=clipcompress-demo:{degraded_checkpoint}",
        "--clip-ig-samples=1",
        "--clip-ig-steps=4",
    ]
    outputs, junit_properties = {}, {}
    for mode, extra in (("serial", []), ("xdist", ["-n", "2"])):
        results, junit = pytester.path / f"{mode}.json", pytester.path / f"{mode}.xml"
        outputs_args = [f"--clip-results={results}", f"--clip-report={pytester.path / mode}", f"--junitxml={junit}"]
        run = pytester.runpytest_subprocess(*DEMO_ARGS, *roles, *outputs_args, *extra) if extra else pytester.runpytest(*DEMO_ARGS, *roles, *outputs_args)
        run.assert_outcomes(failed=2)  # one case per role; both compare candidate with release
        run.stdout.fnmatch_lines(
            [
                "*test_candidate_not_worse[[]release-demo-jpeg-q90[]]*",
                "*candidate is worse than release on demo under jpeg-q90*",
            ],
            consecutive=False,
        )
        outputs[mode] = without_run_block(results.read_text())
        junit_properties[mode] = role_properties(junit, json.loads(results.read_text())["evaluations"])
    assert junit_properties["serial"] == junit_properties["xdist"]
    run.stdout.fnmatch_lines(
        [
            "*models side by side*",
            "*release -> candidate on demo under jpeg-q90 (same 100 images, margin 1.00 points): REGRESSED",
            "attributions: * flipped images of 2 failing tests*",
        ],
        consecutive=False,
    )
    assert outputs["serial"] == outputs["xdist"]  # identical results with per-image outcomes, but for the run block
    page = (pytester.path / "serial" / "models.html").read_text()
    assert "release \u2192 candidate" in page and '<td rowspan="3">demo</td>' in page and '<td rowspan="3">jpeg-q90</td>' in page
    assert compare_links(pytester.path / "serial") == ["models.html"]
    assert 'src="charts/models_demo_jpeg.png"' in (pytester.path / "serial" / "index.html").read_text()  # both roles overlaid
    # The whole folder (index.html with its Compare line, models.html, charts) is the same under xdist.
    assert folder_bytes(pytester.path / "serial") == folder_bytes(pytester.path / "xdist")
    records = json.loads(outputs["serial"])["evaluations"]
    assert sorted(record["role"] for record in records) == ["candidate", "release"]
    assert {record["pretrained"] for record in records} == {"clipcompress-demo.pt", "demo-noisy.pt"}
