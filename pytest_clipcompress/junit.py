"""What a test's JUnit XML entry carries: properties per floor check, and attachment lines for CI.

Pytest-free: the plugin adds :func:`check_properties` to the item's ``user_properties`` and
:func:`attachment_lines` to the section that JUnit writes to ``system-out``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .evaluation import EvalResult


def property_prefix(result: EvalResult) -> str:
    return f"clip[{result.dataset}-{result.compression.id}]"


def check_properties(results: Iterable[EvalResult]) -> list[tuple[str, str]]:
    """Each floor check's floors and verdict, e.g. ``clip[demo-jpeg-q25].min_accuracy = 0.850000`` and ``.check = failed``.

    A test that checks the same evaluation with the same floors several times (hypothesis replays)
    gets one set of properties for it.
    """
    properties: list[tuple[str, str]] = []
    seen: set[tuple] = set()
    for result in results:
        prefix = property_prefix(result)
        for check in result.checks:
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
