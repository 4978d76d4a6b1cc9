"""Everything the plugin shows a person, rendered late from the typed records of :mod:`..results.schema`.

One module per output, each reading the same records and the shared :mod:`.view` (statuses,
counts, triage): :mod:`.terminal` (the summary tables), :mod:`.markdown` (``--clip-summary``),
:mod:`.charts` (matplotlib PNGs), :mod:`.html` (Jinja2 templates in ``templates/`` and
``static/report.css``, autoescaped; the pytest-html summary section), :mod:`.folder` (the
``--clip-report`` folder), :mod:`.comparison` (two runs or two models side by side) and
:mod:`.attribution_figure` (the Integrated Gradients picture). A new output format is one new
module here that reads the records and :mod:`.view`, called from the plugin's controller.

Imports only the record types (and the codec registry's labels), matplotlib and Jinja2: never
pytest, torch, captum, the engine or IG.
"""

from __future__ import annotations

from .charts import Chart, accuracy_charts
from .folder import write_report_dir
from .format import safe_name
from .html import summary_html, summary_table_html
from .terminal import breaking_point_lines, terminal_table

__all__ = ["Chart", "accuracy_charts", "breaking_point_lines", "safe_name", "summary_html", "summary_table_html", "terminal_table", "write_report_dir"]
