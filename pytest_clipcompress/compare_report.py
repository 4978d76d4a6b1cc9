"""An HTML page of a comparison: two runs (or two models) side by side with the paired change.

Rendered with Jinja2 (autoescaped) from the rows :func:`.gate.compare_files` or
:func:`.gate.roles_side_by_side` return; the page has its own CSS and no scripts, dates or paths,
so the same comparison gives the same bytes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .gate import Comparison, GateError, record_id
from .outcomes import flip_text

_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{ title }}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; }
th, td { padding: 0.3em 0.7em; border-bottom: 1px solid #ddd; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.worse { color: #b00020; font-weight: 600; }
.better { color: #1b7f3b; }
.error { color: #b00020; }
</style>
</head>
<body>
<h1>{{ title }}</h1>
<p>Change = {{ new_label }} minus {{ old_label }} on the same images, in points, with Newcombe's paired 95% interval;
b = right in {{ old_label }} only, c = right in {{ new_label }} only; p = exact McNemar test.
{%- if margin is not none %} Regressed: lost more than {{ "%.2f"|format(margin * 100) }} points with p &lt; {{ alpha }}.{% endif %}</p>
<table>
<thead><tr><th>model</th><th>dataset</th><th>compression</th><th>n</th><th>{{ old_label }}</th><th>{{ new_label }}</th>
<th>change</th><th>95% CI</th><th>b</th><th>c</th><th>p</th><th>verdict</th><th>top flips ({{ new_label }})</th></tr></thead>
<tbody>
{%- for row in rows %}
<tr>
<td>{{ row.model }}</td><td>{{ row.dataset }}</td><td>{{ row.compression }}</td>
{%- if row.error %}
<td colspan="10" class="error">not comparable: {{ row.error }}</td>
{%- else %}
<td class="num">{{ row.n }}</td><td class="num">{{ row.old }}</td><td class="num">{{ row.new }}</td>
<td class="num {{ row.direction }}">{{ row.change }}</td><td class="num">{{ row.interval }}</td>
<td class="num">{{ row.b }}</td><td class="num">{{ row.c }}</td><td class="num">{{ row.p }}</td>
<td class="{{ 'worse' if row.regressed else '' }}">{{ row.verdict }}</td><td>{{ row.flips }}</td>
{%- endif %}
</tr>
{%- endfor %}
</tbody>
</table>
</body>
</html>
"""


def comparison_html(
    rows: list[tuple[Mapping[str, Any], Mapping[str, Any], Comparison | GateError]],
    *,
    old_label: str = "old",
    new_label: str = "new",
    title: str = "pytest-clipcompress comparison",
    margin: float | None = None,
    alpha: float = 0.05,
) -> str:
    """A standalone HTML page: one row per pair, with the change, its interval, b, c, p and a verdict."""
    from jinja2 import Environment

    cells = []
    for reference, candidate, outcome in rows:
        model = record_id(candidate) if record_id(candidate) == record_id(reference) else f"{record_id(reference)} \u2192 {record_id(candidate)}"
        cell: dict[str, Any] = {"model": model, "dataset": candidate["dataset"], "compression": candidate["compression_id"]}
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
    template = Environment(autoescape=True, keep_trailing_newline=True).from_string(_TEMPLATE)
    return template.render(rows=cells, old_label=old_label, new_label=new_label, title=title, margin=margin, alpha=alpha)


def write_comparison_pages(directory: Path, records: Sequence[Mapping[str, Any]], model_order: Sequence[str], baseline: Path | None) -> list[Path]:
    """Beside the report folder's index.html: ``models.html`` (the run's models side by side) and
    ``baseline.html`` (the run against ``--clip-baseline``), each only when there is something to pair."""
    from .gate import BaselineFile, compare_files, roles_side_by_side
    from .results import atomic_write_text

    pages: dict[str, str] = {}
    side_by_side = roles_side_by_side(records, model_order)
    if side_by_side:
        pages["models.html"] = comparison_html(side_by_side, old_label="first model", new_label="other model", title="Models side by side")
    if baseline is not None:
        rows = compare_files(BaselineFile.load(baseline).records, records).rows
        if rows:
            pages["baseline.html"] = comparison_html(rows, old_label="baseline", new_label="this run", title=f"Against the baseline {baseline.name}")
    written = []
    for name, text in pages.items():
        atomic_write_text(Path(directory) / name, text)
        written.append(Path(directory) / name)
    return written
