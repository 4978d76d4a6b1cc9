"""Comparison pages: two runs (or two models of one run) side by side with the paired change.

Rendered from ``templates/comparison.html.j2`` through the package's Jinja2 environment
(autoescaped), from the :class:`~..results.schema.ComparisonRow` s that :mod:`..compare` makes. A page
carries its CSS inline and no scripts, dates or paths, so the same comparison gives the same bytes;
``python -m pytest_clipcompress compare --html`` writes one anywhere, and the report folder holds
``models.html`` and ``baseline.html`` beside ``index.html``, which links them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from markupsafe import Markup

from ..results.schema import ComparisonRow
from .html import render, static_text

__all__ = ["COMPARISON_PAGES", "comparison_html", "comparison_pages"]

#: The comparison pages beside the report folder's index.html, in link order, with their link text.
COMPARISON_PAGES = {"models.html": "models side by side", "baseline.html": "this run against the baseline"}


def comparison_html(
    rows: Sequence[ComparisonRow],
    *,
    old_label: str = "old",
    new_label: str = "new",
    title: str = "pytest-clipcompress comparison",
    margin: float | None = None,
    alpha: float = 0.05,
    back: str | None = None,
) -> str:
    """A standalone HTML page: one row per pair, with the change, its interval, b, c, p and the verdict.

    ``back`` is the relative link of the page to return to (the report folder's ``index.html``).
    """
    cells = []
    for row in rows:
        same = row["candidate_role"] == row["reference_role"]
        model = row["candidate_role"] if same else f"{row['reference_role']} \u2192 {row['candidate_role']}"
        cell: dict[str, Any] = {"model": model, "dataset": row["dataset"], "compression": row["compression_id"], "error": row.get("error")}
        if "error" not in row:
            low, high = row["change_ci95"]
            cell.update(
                n=row["n"],
                old=f"{row['reference_accuracy']:.2%}",
                new=f"{row['accuracy']:.2%}",
                change=f"{row['change'] * 100:+.2f}",
                direction=row["direction"],
                interval=f"{low * 100:+.2f} to {high * 100:+.2f}",
                b=row["b"],
                c=row["c"],
                p=f"{row['p_value']:.3g}",
                regressed=row["regressed"],
                verdict=row["verdict"],
                flips=row["flips"],
            )
        cells.append(cell)
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


def comparison_pages(side_by_side: Sequence[ComparisonRow], against_baseline: Sequence[ComparisonRow], baseline_name: str | None) -> dict[str, str]:
    """The report folder's comparison pages with something to show: ``models.html`` (the run's models side by
    side) and ``baseline.html`` (the run against the baseline file ``baseline_name``)."""
    pages: dict[str, str] = {}
    if side_by_side:
        pages["models.html"] = comparison_html(side_by_side, old_label="first model", new_label="other model", title="Models side by side", back="index.html")
    if against_baseline:
        title = f"Against the baseline {baseline_name}"
        pages["baseline.html"] = comparison_html(against_baseline, old_label="baseline", new_label="this run", title=title, back="index.html")
    return pages
