"""Comparison pages: two runs (or two models of one run) side by side with the paired change.

Rendered from ``templates/comparison.html.j2`` through the package's Jinja2 environment
(autoescaped), from the rows :func:`..gate.compare_files` or :func:`..gate.roles_side_by_side`
return. A page carries its CSS inline and no scripts, dates or paths, so the same comparison gives
the same bytes; ``python -m pytest_clipcompress compare --html`` writes one anywhere, and the report
folder holds ``models.html`` and ``baseline.html`` beside ``index.html``, which links them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from markupsafe import Markup

from ..gate import Comparison, GateError
from ..outcomes import flip_text
from ..records import record_id
from .folder import COMPARISON_PAGES
from .html import render, static_text

__all__ = ["comparison_html", "write_comparison_pages"]


def comparison_html(
    rows: list[tuple[Mapping[str, Any], Mapping[str, Any], Comparison | GateError]],
    *,
    old_label: str = "old",
    new_label: str = "new",
    title: str = "pytest-clipcompress comparison",
    margin: float | None = None,
    alpha: float = 0.05,
    back: str | None = None,
) -> str:
    """A standalone HTML page: one row per pair, with the change, its interval, b, c, p and a verdict.

    ``back`` is the relative link of the page to return to (the report folder's ``index.html``).
    """
    cells = []
    for reference, candidate, outcome in rows:
        model = record_id(candidate) if record_id(candidate) == record_id(reference) else f"{record_id(reference)} \u2192 {record_id(candidate)}"
        cell: dict[str, Any] = {"model": model, "dataset": candidate["dataset"], "compression": candidate["compression_id"], "error": None}
        if isinstance(outcome, GateError):
            cells.append({**cell, "error": str(outcome)})
            continue
        low, high = outcome.paired.interval
        regressed = margin is not None and outcome.regressed(margin, alpha)
        significant = outcome.paired.p_value < alpha
        cells.append(
            {
                **cell,
                "n": outcome.paired.n,
                "old": f"{outcome.reference_accuracy:.2%}",
                "new": f"{outcome.accuracy:.2%}",
                "change": f"{outcome.change * 100:+.2f}",
                "direction": "worse" if outcome.change < 0 and significant else ("better" if outcome.change > 0 and significant else ""),
                "interval": f"{-high * 100:+.2f} to {-low * 100:+.2f}",
                "b": outcome.paired.b,
                "c": outcome.paired.c,
                "p": f"{outcome.paired.p_value:.3g}",
                "regressed": regressed,
                "verdict": "REGRESSED" if regressed else ("significant" if significant else "no significant change"),
                "flips": flip_text(candidate.get("flip_confusion") or []),
            }
        )
    return render(
        "comparison.html.j2",
        rows=cells,
        old_label=old_label,
        new_label=new_label,
        title=title,
        margin=margin,
        alpha=alpha,
        back=back,
        css=Markup(static_text("comparison.css")),
    )


def write_comparison_pages(directory: Path, records: Sequence[Mapping[str, Any]], model_order: Sequence[str], baseline: Path | None) -> list[str]:
    """Beside the report folder's index.html: ``models.html`` (the run's models side by side) and
    ``baseline.html`` (the run against ``--clip-baseline``), each only when there is something to pair.

    Returns the names written, in :data:`COMPARISON_PAGES` order, for index.html to link. A page an
    earlier run wrote and this run has nothing for is removed, so the folder shows one run.
    """
    from ..gate import BaselineFile, compare_files, roles_side_by_side
    from ..results import atomic_write_text

    directory = Path(directory)
    pages: dict[str, str] = {}
    side_by_side = roles_side_by_side(records, model_order)
    if side_by_side:
        pages["models.html"] = comparison_html(side_by_side, old_label="first model", new_label="other model", title="Models side by side", back="index.html")
    if baseline is not None:
        rows = compare_files(BaselineFile.load(baseline).records, records).rows
        if rows:
            title = f"Against the baseline {baseline.name}"
            pages["baseline.html"] = comparison_html(rows, old_label="baseline", new_label="this run", title=title, back="index.html")
    written = []
    for name in COMPARISON_PAGES:
        if name in pages:
            atomic_write_text(directory / name, pages[name])
            written.append(name)
        else:
            (directory / name).unlink(missing_ok=True)
    return written
