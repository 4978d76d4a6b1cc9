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

from ..results.schema import ComparisonRow, QuantityChange
from .format import CHANGE_SIGN, change_text, quantity_label, quantity_value
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
    margin: float = 0.01,
    alpha: float = 0.05,
    back: str | None = None,
    sides: Sequence[tuple[str, str]] = (),
) -> str:
    """A standalone HTML page: per pair, one row per quantity with both values, the change, its interval, p and the verdict.

    ``sides`` name what the two labels stand for (a checkpoint, its weights hash); ``back`` is the
    relative link of the page to return to (the report folder's ``index.html``).
    """
    cells = []
    for row in rows:
        same = row["candidate_role"] == row["reference_role"]
        model = row["candidate_role"] if same else f"{row['reference_role']} \u2192 {row['candidate_role']}"
        cell: dict[str, Any] = {"model": model, "dataset": row["dataset"], "compression": row["compression_id"], "error": row.get("error")}
        if "error" not in row:
            cell.update(n=row["n"], flips=row["flips"], quantities=[_quantity_cells(change, row["compression_id"]) for change in row["changes"]])
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
        sides=list(sides),
        sign=CHANGE_SIGN[0].upper() + CHANGE_SIGN[1:],
        css=Markup(static_text("comparison.css")),
    )


def _quantity_cells(change: QuantityChange, compression_id: str) -> dict[str, str]:
    value, interval = change_text(change)
    return {
        "label": quantity_label(change, compression_id),
        "reference": quantity_value(change, "reference"),
        "candidate": quantity_value(change, "candidate"),
        "change": value,
        "interval": interval,
        "p": f"{change['p_value']:.3g}",
        "verdict": change["verdict"],
    }


def comparison_pages(
    side_by_side: Sequence[ComparisonRow],
    against_baseline: Sequence[ComparisonRow],
    baseline_name: str | None,
    sides: Sequence[tuple[str, str]] = (),
) -> dict[str, str]:
    """The report folder's comparison pages with something to show: ``models.html`` (the run's models side by
    side) and ``baseline.html`` (the run against the baseline file ``baseline_name``). ``sides`` name
    the checkpoints (``baseline``, ``this run`` and each model id, with model and weights)."""
    pages: dict[str, str] = {}
    margin = next((row["margin"] for row in [*side_by_side, *against_baseline] if "margin" in row), 0.01)
    if side_by_side:
        pages["models.html"] = comparison_html(
            side_by_side, old_label="first model", new_label="other model", title="Models side by side", back="index.html", margin=margin, sides=sides
        )
    if against_baseline:
        title = f"Against the baseline {baseline_name}"
        pages["baseline.html"] = comparison_html(
            against_baseline, old_label="baseline", new_label="this run", title=title, back="index.html", margin=margin, sides=sides
        )
    return pages
