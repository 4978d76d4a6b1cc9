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
    """Each floor check's floors and verdict, e.g. ``clip[clipcompress-demo|demo|jpeg-q25].min_accuracy = 0.850000`` and ``.check = failed``
    (``clip[...].top5.min_accuracy`` and ``.top5.check`` for a floor on top-5 accuracy).

    A test that checks the same evaluation with the same floors several times (hypothesis replays)
    gets one set of properties for it.
    """
    properties: list[tuple[str, str]] = []
    seen: set[tuple] = set()
    for result in results:
        for check in result.checks:
            # Floors on another metric than top-1 (assert_accuracy(metric="top5")) are named after it: ``...].top5.min_accuracy``.
            prefix = property_prefix(result) + (f".{check['metric']}" if "metric" in check else "")
            key = (prefix, check.get("min_accuracy"), check.get("max_drop"), check["passed"])
            if key in seen:
                continue
            seen.add(key)
            properties += [(f"{prefix}.{name}", f"{check[name]:.6f}") for name in ("min_accuracy", "max_drop") if check.get(name) is not None]
            properties.append((f"{prefix}.check", "passed" if check["passed"] else "failed"))
    return properties


def attachment_lines(report_dir: Path, figures: Iterable[str]) -> list[str]:
    """GitLab's ``[[ATTACHMENT|path]]`` lines for attribution figures in the report folder.

    ``figures`` are paths relative to the folder, as the report folder names them.
    """
    return [f"[[ATTACHMENT|{report_dir / figure}]]" for figure in figures]
