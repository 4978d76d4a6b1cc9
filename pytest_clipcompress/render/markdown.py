"""The Markdown summary for CI job pages (``--clip-summary``, GitHub's ``$GITHUB_STEP_SUMMARY``).

Failures first (test, model, dataset, compression, measured value against its floor, drop), then a
compact table per (model, dataset), then breaking points. Reads the records the controller
gathered; the same records give the same bytes (no time, no paths), serial or under xdist.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..files import atomic_write_text
from ..results.schema import VERDICTS, BreakingPoint, CaseKey, CheckRecord, EvaluationRecord, QuantityChange, RunBlock, SkipRecord, case_key
from .format import CHANGE_SIGN, change_text, quantity_label, quantity_value
from .terminal import breaking_point_verdict
from .view import check_status, checked_values, counts, distinct_checks, is_gate, record_index, skip_line, source_note

TITLE = "## clipcompress: zero-shot accuracy under compression"
GITHUB_STEP_SUMMARY = "GITHUB_STEP_SUMMARY"


def code(text: Any, *, table: bool = True) -> str:
    """User text as an inline code span: no markup, and in a GFM table cell no broken cells."""
    value = re.sub(r"\s+", " ", str(text))
    if table:  # GFM splits rows at pipes even inside code spans; a backslash keeps them in the cell
        value = value.replace("|", "\\|")
    fence = "`" * (max((len(run) for run in re.findall(r"`+", value)), default=0) + 1)
    pad = " " if value.startswith("`") or value.endswith("`") else ""
    return f"{fence}{pad}{value}{pad}{fence}"


def _pct(value: float) -> str:
    return f"{value:.2%}"


def _points(value: float) -> str:
    return f"{value * 100:.2f}"


def _measured(check: CheckRecord, record: EvaluationRecord | None) -> tuple[str, str, str]:
    """The measured value(s), the floor(s) and the drop of one check, as table cells."""
    if record is None:  # pragma: no cover - a check always comes with its evaluation's record
        return ("?", "?", "?")
    measured, floors = [], []
    minimum, max_drop = check.get("min_accuracy"), check.get("max_drop")
    value, _, value_drop = checked_values(record, check)
    name = "accuracy" if check.get("metric", "top1") == "top1" else check["metric"]
    if minimum is not None:
        ok = value is not None and value >= minimum
        measured.append(f"{name} {_optional_pct(value)}")
        floors.append(f"min_accuracy {_pct(minimum)}{'' if ok else ' **failed**'}")
    if max_drop is not None:
        ok = value_drop is not None and value_drop <= max_drop
        measured.append(f"{'' if name == 'accuracy' else name + ' '}drop {'—' if value_drop is None else _points(value_drop)} points")
        floors.append(f"max_drop {_points(max_drop)} points{'' if ok else ' **failed**'}")
    if record.get("drop_ci95"):  # the paired interval of the drop itself, where the run computed it
        low, high = record["drop_ci95"]
        interval = f"95% CI {low * 100:.1f} to {high * 100:.1f} points"
    else:
        low, high = record["ci95"]
        interval = f"accuracy 95% CI {low:.1%} to {high:.1%}"
    drop = f"{_points(record['drop'])} points ({interval}; uncompressed {_pct(record['baseline_accuracy'])})"
    return ("; ".join(measured), "; ".join(floors), drop)


def _failures(checks: list[CheckRecord], records: dict[CaseKey, EvaluationRecord]) -> list[str]:
    failed = [check for check in distinct_checks(checks) if check_status(check) == "failed"]
    if not failed:
        return []
    lines = ["### Failures", "", "| Test | Model | Dataset | Compression | Measured | Floor | Drop |", "|---|---|---|---|---|---|---|"]
    for check in failed:
        if is_gate(check):
            regressed = [c for c in check.get("changes") or [] if c["verdict"] == "regressed"]
            measured = "; ".join(f"{quantity_label(c, check['compression_id'])} {change_text(c)[0]} points" for c in regressed) or "regressed"
            floor = f"max_regression {_points(check.get('max_regression', 0.0))} points against {code(check.get('reference', 'the baseline'), table=True)}"
            drop = "see Gate checks"
        else:
            measured, floor, drop = _measured(check, records.get(case_key(check)))
        model = f"{check['model']}/{check['pretrained']}"
        lines.append(f"| {code(check['test'])} | {code(model)} | {code(check['dataset'])} | {code(check['compression_id'])} | {measured} | {floor} | {drop} |")
    return [*lines, ""]


def _gates(checks: list[CheckRecord]) -> list[str]:
    """Every gate check (each once): per quantity the reference's and this run's values, the change with its interval, and the verdict."""
    gates = sorted(distinct_checks(check for check in checks if is_gate(check)), key=lambda c: (str(c.get("test")), c["role"], c["compression_id"]))
    if not gates:
        return []
    lines = [
        "### Gate checks",
        "",
        f"{CHANGE_SIGN[0].upper()}{CHANGE_SIGN[1:]}; in points, with the paired 95% interval. Each cell: reference → this run, change (interval), verdict.",
        "",
        "| Test | Model | Dataset | Compression | Reference | Clean accuracy | Accuracy under compression | Drop | Verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for check in gates:
        cells = {change["quantity"]: _change_cell(change) for change in check.get("changes") or []}
        verdict = str(check.get("verdict", ""))
        model = f"{check['role']} ({check['model']}/{check['pretrained']})"
        lines.append(
            f"| {code(check.get('test', ''))} | {code(model)} | {code(check['dataset'])} | "
            f"{code(check['compression_id'])} | {code(check.get('reference_label') or check.get('reference', ''))} | "
            f"{cells.get('clean', '—')} | {cells.get('compressed', '—')} | {cells.get('drop', '—')} | "
            f"{f'**{verdict}**' if verdict == 'regressed' else verdict} |"
        )
    return [*lines, ""]


def _change_cell(change: QuantityChange) -> str:
    value, interval = change_text(change)
    verdict = f"**{change['verdict']}**" if change["verdict"] == "regressed" else change["verdict"]
    return f"{quantity_value(change, 'reference')} → {quantity_value(change, 'candidate')}: {value} ({interval}) {verdict}"


def _verdicts(checks: list[CheckRecord]) -> dict[CaseKey, str]:
    """Per evaluation: failed (unexpectedly), xfailed, or passed, over every floor check made on it."""
    verdicts: dict[CaseKey, str] = {}
    rank = {"passed": 0, "xfailed": 1, "failed": 2}
    for check in (check for check in checks if not is_gate(check)):
        key = case_key(check)
        verdict = "passed" if check["passed"] else ("failed" if check_status(check) == "failed" else "xfailed")
        if rank[verdict] >= rank[verdicts.get(key, "passed")]:
            verdicts[key] = verdict
    return verdicts


def _tables(records: list[EvaluationRecord], checks: list[CheckRecord]) -> list[str]:
    groups: dict[tuple[str, str, str], list[EvaluationRecord]] = defaultdict(list)
    for record in records:
        groups[(record["model"], record["pretrained"], record["dataset"])].append(record)
    verdicts = _verdicts(checks)
    lines: list[str] = []
    for (model, pretrained, dataset), rows in sorted(groups.items()):
        rows = sorted(rows, key=lambda r: (r["compression"]["codec"], -r["bits_per_pixel"], r["compression_id"]))
        sizes = sorted({row["n"] for row in rows})
        baseline = ", ".join(_pct(a) for a in sorted({row["baseline_accuracy"] for row in rows}))
        extra = any("mean_per_class_recall" in row for row in rows)  # files written before these metrics have none
        lines += [
            f"### {code(f'{model}/{pretrained}', table=False)} on {code(dataset, table=False)}",
            "",
            f"n={', '.join(str(n) for n in sizes)} images; uncompressed accuracy {baseline}{source_note(rows[0])}",
            "",
            "| Compression | Bits/px | Accuracy | 95% CI |" + (" Top-5 | Per-class recall |" if extra else "") + " Drop (points) | Flipped | Floor checks |",
            "|---|---:|---:|---:|" + ("---:|---:|" if extra else "") + "---:|---:|---|",
        ]
        for row in rows:
            low, high = row["ci95"]
            verdict = verdicts.get(case_key(row), "not checked")  # e.g. a bisection probe
            metrics = f" {_optional_pct(row.get('top5'))} | {_optional_pct(row.get('mean_per_class_recall'))} |" if extra else ""
            lines.append(
                f"| {code(row['compression_id'])} | {row['bits_per_pixel']:.2f} | {_pct(row['accuracy'])} | {low:.1%} to {high:.1%} |{metrics} "
                f"{_points(row['drop'])} | {row['flipped']} | {'**failed**' if verdict == 'failed' else verdict} |"
            )
        lines.append("")
    return lines


def _optional_pct(value: Any) -> str:
    return "\u2014" if value is None else _pct(value)


def _breaking_points(points: list[BreakingPoint]) -> list[str]:
    if not points:
        return []
    lines = ["### Breaking points", ""]
    for point in sorted(points, key=lambda p: (p.test, p.model, p.dataset, p.codec, p.param, p.floor)):
        where = f"{code(point.model + '/' + point.pretrained, table=False)} on {code(point.dataset, table=False)}, {point.codec} {point.param}"
        lines.append(f"- {where}: {breaking_point_verdict(point)}; {len(point.frontier)} probes")
    return [*lines, ""]


def _run_line(run: RunBlock | None) -> list[str]:
    """Models, library versions and commit; no time, so repeated runs give the same bytes."""
    if not run:
        return []
    parts = [f"{code(m['label'], table=False)} weights {m['weights_hash'][:12]} on {m['device']} ({m['precision']})" for m in run["models"]]
    versions = run["versions"]
    parts.append(", ".join(f"{name} {versions[name]}" for name in ("torch", "open_clip", "Pillow") if name in versions))
    git = run.get("git")
    if git:
        parts.append(f"commit {git['commit'][:12]}" + (" with uncommitted changes" if git["dirty"] else ""))
    return [f"Run: {'; '.join(parts)}", ""]


def summary_markdown(
    records: Iterable[EvaluationRecord],
    checks: Iterable[CheckRecord],
    breaking_points: Iterable[BreakingPoint] = (),
    *,
    run: RunBlock | None = None,
    demo_note: str | None = None,
    skips: Iterable[SkipRecord] = (),
) -> str:
    """The whole summary as Markdown text, ending with one newline."""
    records, checks, points = list(records), list(checks), list(breaking_points)
    lines = [TITLE, ""]
    if demo_note:
        lines += [f"Model: {demo_note}", ""]
    lines += _headline(records, checks, list(skips))
    lines += _failures(checks, record_index(records)) + _gates(checks) + _tables(records, checks) + _breaking_points(points) + _run_line(run)
    return "\n".join(lines).rstrip("\n") + "\n"


def _headline(records: list[EvaluationRecord], checks: list[CheckRecord], skips: list[SkipRecord]) -> list[str]:
    """How many checks failed (or that all passed), the gate's verdicts, and the clip cases that could not run."""
    skipped = skip_line(skips)
    lines = [] if records else ["No evaluations ran.", ""]
    if records or checks:
        tally = counts(records, checks, skips)
        failed, total = tally.unexpected, tally.checks
        expected = tally.floors.get("xfailed", 0)
        verdict = f"**{failed} of {total} checks failed**" if failed else f"All {total} checks passed"
        extra = f", {expected} failed as expected (xfail)" if expected else ""
        gates = ", ".join(f"{tally.gates[v]} {v}" for v in VERDICTS if tally.gates.get(v))
        lines += [f"{verdict}{extra}" + (f" (gate checks: {gates})" if gates else "") + f"; {len(records)} evaluations.", ""]
    if skipped:
        lines += [f"**{skipped.sentence()}**", ""]
    return lines


def write_summary(text: str, path: Path | None, environ: Mapping[str, str] = os.environ) -> list[str]:
    """Write ``text`` to ``path`` (atomically) and append it to ``$GITHUB_STEP_SUMMARY`` when that is set.

    Returns a note per file that could not be written: a summary is optional output and never
    takes the run down.
    """
    notes = []
    if path is not None:
        try:
            atomic_write_text(path, text)
        except OSError as error:
            notes.append(f"summary not written to {path}: {error.strerror or error}")
    step_summary = environ.get(GITHUB_STEP_SUMMARY)
    if step_summary:
        try:
            with open(step_summary, "a", encoding="utf-8") as file:  # GitHub collects several steps' summaries in one file
                file.write(text)
        except OSError as error:
            notes.append(f"summary not appended to ${GITHUB_STEP_SUMMARY} ({step_summary}): {error.strerror or error}")
    return notes
