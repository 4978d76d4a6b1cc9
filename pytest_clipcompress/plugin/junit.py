"""What a test's JUnit XML entry carries: properties per floor check, and attachment lines for CI.

Pytest-free: the plugin adds :func:`check_properties` to the item's ``user_properties`` and
:func:`attachment_lines` to the section that JUnit writes to ``system-out``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..engine.result import EvalResult
    from ..results.schema import CheckRecord


def property_prefix(result: EvalResult) -> str:
    """The name part every JUnit property of an evaluation shares: ``clip[<model id>|<dataset>|<compression>]``.

    The model id (role, else model name) keeps two roles evaluated by one test apart. ``|`` joins the
    parts because no compression id and no registered dataset or open_clip name has one; where a user's
    role-less model name or image folder path does, it is written ``%7C`` (and ``%`` as ``%25``), so
    the name always splits back into its three parts.
    """
    parts = (result.model_id, result.dataset, result.compression.id)
    return "clip[" + "|".join(part.replace("%", "%25").replace("|", "%7C") for part in parts) + "]"


def metric_properties(result: EvalResult) -> list[tuple[str, str]]:
    """An evaluation's numbers: one property per registered metric (``.accuracy``, ``.drop``, ``.top5``,
    ``.mean_per_class_recall``, ...) and ``.n``; an undefined one (top-5 with fewer than 5 classes) is left out."""
    from ..engine.metrics import METRICS

    prefix = property_prefix(result)
    values = [(metric, metric.value(result)) for metric in METRICS.values()]
    properties = [(f"{prefix}.{metric.junit_property}", f"{value:.6f}") for metric, value in values if not math.isnan(value)]
    return [*properties, (f"{prefix}.n", str(result.n))]


def check_properties(results: Iterable[EvalResult]) -> list[tuple[str, str]]:
    """Each check's figures and verdict, every property name used once in the test case.

    A floor check: ``clip[<case>].min_accuracy``, ``.max_drop`` and ``.check`` (``passed``/``failed``);
    a further floor check on the same evaluation with other floors numbers its names (``.check[2]``); a floor
    on another metric than top-1 is named after it (``clip[<case>].top5.min_accuracy``, ``.top5.check``).
    A gate check against a reference (the baseline file's name, or the other model's id):
    ``clip[<case>].vs[<reference>].verdict``, ``.max_regression`` and, per quantity,
    ``.<quantity>.change`` (negative: this run is worse), ``.ci_low``, ``.ci_high``, ``.p`` and ``.verdict``.
    A check repeated with the same figures (hypothesis replays) is written once.
    """
    properties: list[tuple[str, str]] = []
    seen: set[tuple] = set()
    floors: dict[str, int] = {}  # floor checks written so far per case
    for result in results:
        prefix = property_prefix(result)
        for check in result.checks:
            if "changes" in check:
                key: tuple = (prefix, "vs", check.get("reference"))
                if key not in seen:
                    properties += _gate_properties(f"{prefix}.vs[{_escape(check.get('reference', 'baseline'))}]", check)
            else:
                # Floors on another metric than top-1 (assert_accuracy(metric="top5")) are named after it: ``...].top5.min_accuracy``.
                case = prefix + (f".{check['metric']}" if "metric" in check else "")
                key = (case, check.get("min_accuracy"), check.get("max_drop"), check["passed"])
                if key not in seen:
                    floors[case] = floors.get(case, 0) + 1
                    name = case if floors[case] == 1 else f"{case}.check[{floors[case]}]"
                    properties += [(f"{name}.{floor}", f"{value:.6f}") for floor in ("min_accuracy", "max_drop") if (value := check.get(floor)) is not None]
                    properties.append((f"{case}.check" if floors[case] == 1 else name, "passed" if check["passed"] else "failed"))
            seen.add(key)
    return properties


def _gate_properties(name: str, check: CheckRecord) -> list[tuple[str, str]]:
    """A gate check's verdict and margin, and each quantity's change, interval, p and verdict."""
    properties = [(f"{name}.verdict", str(check.get("verdict", ""))), (f"{name}.max_regression", f"{check.get('max_regression', 0.0):.6f}")]
    for change in check.get("changes") or []:
        low, high = change["change_ci95"]
        quantity = f"{name}.{change['quantity']}"
        properties += [(f"{quantity}.change", f"{change['change']:.6f}"), (f"{quantity}.ci_low", f"{low:.6f}"), (f"{quantity}.ci_high", f"{high:.6f}")]
        properties += [(f"{quantity}.p", f"{change['p_value']:.6g}"), (f"{quantity}.verdict", change["verdict"])]
    return properties


def _escape(text: str) -> str:
    return text.replace("%", "%25").replace("|", "%7C").replace("]", "%5D")


def attachment_lines(report_dir: Path, figures: Iterable[str]) -> list[str]:
    """GitLab's ``[[ATTACHMENT|path]]`` lines for attribution figures in the report folder.

    ``figures`` are paths relative to the folder, as the report folder names them.
    """
    return [f"[[ATTACHMENT|{report_dir / figure}]]" for figure in figures]
