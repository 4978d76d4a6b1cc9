"""Everything the plugin shows a person, rendered late from plain records (the JSON-form dicts of the results file).

One module per output, each reading the same records and the shared :mod:`.view` (statuses,
counts, triage): :mod:`.terminal` (the summary table), :mod:`.charts` (matplotlib PNGs),
:mod:`.html` (Jinja2 templates in ``templates/`` and ``static/report.css``, autoescaped; the
pytest-html summary section), :mod:`.folder` (the ``--clip-report`` folder) and
:mod:`.attribution_figure` (the Integrated Gradients picture and table) and :mod:`.comparison`
(the pages of two runs or two models side by side; imported on its own, since it needs scipy). A new output format is one
new module here that reads the records and :mod:`.view`, called from the plugin's integration.

Nothing here imports pytest, torch or captum at import time (the attribution figure imports the IG
module's geometry helpers when it is imported).
"""

from __future__ import annotations

from .charts import Chart, accuracy_charts
from .folder import write_report_dir
from .format import safe_name
from .html import summary_html, summary_table_html
from .terminal import breaking_point_lines, terminal_table

__all__ = ["Chart", "accuracy_charts", "breaking_point_lines", "safe_name", "summary_html", "summary_table_html", "terminal_table", "write_report_dir"]
