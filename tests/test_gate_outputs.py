"""The docs' CI recipe end to end (docs/ci.md, "The regression gate"), as a model team runs it: save a
baseline on the release, then gate a candidate with every output on. Every output must exist and
show each gate check's model, dataset, compression, figures and verdict, with one sign convention
(a negative change means the candidate is worse), serial and under pytest-xdist, failing and passing."""

from __future__ import annotations

import json
import re
import shutil
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch

from pytest_clipcompress.demo import DEMO_WEIGHTS

ROOT = Path(__file__).resolve().parents[1]
CASES = ("jpeg-q90", "jpeg-q75", "jpeg-q50")


def ci_recipe() -> str:
    """The gate test of docs/ci.md, on the demo set instead of CIFAR-10 (which the docs' readers have), with an
    absolute floor the demo model meets under its harshest JPEG (it loses fine textures a real CLIP does not have)."""
    text = (ROOT / "docs" / "ci.md").read_text(encoding="utf-8")
    block = next(code for code in re.findall(r"```python\n(.*?)```", text, re.S) if "assert_no_regression(result" in code)
    assert 'clip_dataset("cifar10")' in block and "min_accuracy=0.5," in block
    return block.replace('clip_dataset("cifar10")', 'clip_dataset("demo")').replace("min_accuracy=0.5,", "min_accuracy=0.2,")


@pytest.fixture(scope="module")
def candidates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The release's own weights under another file name (the gate passes), and a damaged copy (it fails)."""
    folder = tmp_path_factory.mktemp("candidates")
    state = torch.load(DEMO_WEIGHTS, map_location="cpu", weights_only=True)
    generator = torch.Generator().manual_seed(7)
    noisy = {
        k: v + 0.3 * v.float().std() * torch.randn(v.shape, generator=generator) if v.is_floating_point() and v.numel() > 1 else v for k, v in state.items()
    }
    torch.save(noisy, folder / "noisy.pt")
    shutil.copy(DEMO_WEIGHTS, folder / "same.pt")
    return {"regressed": folder / "noisy.pt", "passes": folder / "same.pt"}


class _Text(HTMLParser):
    """The visible text of an HTML page, cell by cell."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[str] = []

    def handle_data(self, data: str) -> None:
        if data.strip():
            self.cells.append(data.strip())


def page_text(html: str) -> list[str]:
    parser = _Text()
    parser.feed(html)
    return parser.cells


def pytest_html_summary(report: Path) -> str:
    """pytest-html 4 keeps the summary section's HTML in the page; its results rows live in a JSON blob."""
    page = report.read_text(encoding="utf-8")
    assert re.search(r'data-jsonblob="([^"]*)"', page)  # a self-contained report of the run
    return page


@pytest.mark.parametrize("mode", ["serial", "xdist"])
@pytest.mark.parametrize("outcome", ["regressed", "passes"])
def test_ci_recipe_outputs_show_every_gate_check(pytester: pytest.Pytester, candidates: dict[str, Path], outcome: str, mode: str) -> None:
    pytester.makepyfile(test_gate=ci_recipe())
    common = ["--clip-offline", "--clip-no-cache", "--clip-samples=100", "--clip-ig-samples=1", "--clip-ig-steps=4", "-p", "no:cacheprovider"]
    common += ["-n", "2"] if mode == "xdist" else []
    release = pytester.runpytest_subprocess(*common, "--clip-baseline-save=base.json")
    release.assert_outcomes(passed=0, skipped=3)  # no --clip-baseline yet: the recipe records one
    gate = pytester.runpytest_subprocess(
        *common,
        f"--clip-model=clipcompress-demo:{candidates[outcome]}",
        "--clip-baseline=base.json",
        "--clip-results=out/results.json",
        "--clip-summary=out/summary.md",
        "--clip-report=out/report",
        "--html=out/report.html",
        "--self-contained-html",
        "--junitxml=out/junit.xml",
    )
    gate.assert_outcomes(**({"failed": 3} if outcome == "regressed" else {"passed": 3}))
    out = pytester.path / "out"
    checks = [c for c in json.loads((out / "results.json").read_text())["checks"] if c["kind"] == "baseline"]
    assert sorted(c["compression_id"] for c in checks) == sorted(CASES)
    for check in checks:
        assert (check["role"], check["model"], check["dataset"], check["reference"]) == ("clipcompress-demo", "clipcompress-demo", "demo", "base.json")
        assert check["pretrained"] == candidates[outcome].name and len(check["weights"]) == 32
        assert [c["quantity"] for c in check["changes"]] == ["clean", "compressed", "drop"]
        assert (check["verdict"] == "regressed") == (outcome == "regressed") and check["passed"] == (outcome == "passes")
    compressed = {c["compression_id"]: next(q for q in c["changes"] if q["quantity"] == "compressed") for c in checks}
    if outcome == "regressed":
        assert all(q["change"] < 0 for q in compressed.values())  # one sign convention: negative is worse
    else:  # identical predictions: no change, or inconclusive where these images cannot rule out a 1-point loss
        assert all(q["change"] == 0 and q["verdict"] in ("no change", "inconclusive") for q in compressed.values())

    summary = (out / "summary.md").read_text()
    assert "None" not in summary and "### Gate checks" in summary
    verdicts = ", ".join(
        f"{count} {verdict}" for verdict in ("regressed", "inconclusive", "no change") if (count := sum(c["verdict"] == verdict for c in checks))
    )
    headline = "**3 of 6 checks failed**" if outcome == "regressed" else "All 6 checks passed"
    assert f"{headline} (gate checks: {verdicts}); 3 evaluations." in summary
    for case in CASES:
        row = next(line for line in summary.splitlines() if line.startswith("| `test_gate.py") and f"| `{case}` |" in line and "→" in line)
        assert "`demo`" in row and f"`clipcompress-demo (clipcompress-demo/{candidates[outcome].name})`" in row and "weights" in row
        change = compressed[case]
        verdict = next(c["verdict"] for c in checks if c["compression_id"] == case)
        assert f"{change['change'] * 100:+.2f} (" in row and row.rstrip(" |").endswith(f"**{verdict}**" if verdict == "regressed" else verdict)

    report = page_text((out / "report" / "index.html").read_text())
    assert "None" not in " ".join(report) and "Gate checks" in report
    for case, change in compressed.items():
        assert case in report and f"{change['change'] * 100:+.2f}" in report
    assert report.count("regressed") >= (3 if outcome == "regressed" else 0)
    html = page_text(pytest_html_summary(out / "report.html"))
    assert "None/None" not in " ".join(html) and "Gate checks" in html
    assert all(f"{change['change'] * 100:+.2f}" in html for change in compressed.values())
    baseline_page = page_text((out / "report" / "baseline.html").read_text())
    assert all(f"{change['change'] * 100:+.2f}" in baseline_page for change in compressed.values())

    for case in ET.parse(out / "junit.xml").getroot().iter("testcase"):
        properties = [(p.get("name"), p.get("value")) for p in case.iter("property")]
        names = [name for name, _ in properties]
        assert len(names) == len(set(names)), names  # one name per property in a test case
        values = dict(properties)
        prefix = next(name for name in names if name.endswith(".vs[base.json].verdict"))[: -len(".verdict")]
        assert values[f"{prefix}.verdict"] in (("regressed",) if outcome == "regressed" else ("no change", "inconclusive"))
        assert (float(values[f"{prefix}.compressed.change"]) < 0) == (outcome == "regressed")
    terminal = gate.stdout.str()
    assert "against the baseline" in terminal and ("REGRESSED" in terminal) == (outcome == "regressed")

    compare = pytester.run(sys.executable, "-m", "pytest_clipcompress", "compare", "base.json", "out/results.json", "--fail-on-regression", "0.01")
    assert compare.ret == (1 if outcome == "regressed" else 0)
    text = compare.stdout.str()
    assert f"new: out/results.json: clipcompress-demo/{candidates[outcome].name}" in text and "weights" in text
    for change in compressed.values():
        assert f"{change['change'] * 100:+.2f}" in text
