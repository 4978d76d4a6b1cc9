"""A run's records as the controller gathers them from test reports, and the results file they make.

The results file is one record per evaluation in a stable order (:func:`~.schema.record_key`),
the checks and breaking-point searches in test-id order, and the run block: the same run gives the
same bytes, serial or under pytest-xdist, apart from the run block's start time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .._version import __version__
from ..files import atomic_write_text
from .metadata import with_models
from .schema import PLUGIN_NAME, BreakingPoint, CheckRecord, EvalKey, EvaluationRecord, ModelFacts, ReportData, RunBlock, record_key


class ResultsCollector:
    """Evaluation records, checks and searches gathered from test reports (serial runs and xdist alike)."""

    def __init__(self) -> None:
        self.records: dict[EvalKey, EvaluationRecord] = {}
        self.checks: list[CheckRecord] = []
        self.breaking_points: list[BreakingPoint] = []
        self.grid_keys: set[EvalKey] = set()  # evaluations a test asked for (markers, clip_eval calls)
        self.probe_keys: set[EvalKey] = set()  # evaluations of hypothesis examples and breaking-point searches
        self.models: list[ModelFacts] = []  # facts of the models that produced the records
        self.run: RunBlock | None = None  # the run block (metadata.run_metadata), set by the controller

    def add(self, nodeid: str, data: ReportData, outcome: str | None = None) -> None:
        """``outcome`` is the test's (passed, failed, xfailed, ...); each check row records it."""
        search = bool(data.get("search") or data["breaking_points"])
        for record in data["evaluations"]:
            self.records.setdefault(record_key(record), record)
            (self.probe_keys if search else self.grid_keys).add(record_key(record))
        for check in data["checks"]:
            row: CheckRecord = {"test": nodeid, **check, "outcome": outcome}
            if row not in self.checks:  # hypothesis replays the same check many times while shrinking
                self.checks.append(row)
        for point in data["breaking_points"]:
            self.breaking_points.append(BreakingPoint.from_dict({**point, "test": nodeid}))
        self.models += [facts for facts in data.get("models", []) if facts not in self.models]

    def __bool__(self) -> bool:
        return bool(self.records)

    def sorted_records(self) -> list[EvaluationRecord]:
        """Every evaluation in the results file's order, each saying whether only a search made it."""
        return [{**self.records[key], "probe": key not in self.grid_keys and key in self.probe_keys} for key in sorted(self.records)]

    def to_json(self) -> str:
        """Strict JSON (a NaN is an error, not a bare ``NaN``); ``evaluations`` is ``[]`` when nothing ran."""
        payload: dict[str, Any] = {
            "plugin": PLUGIN_NAME,
            "version": __version__,
            "evaluations": self.sorted_records(),
            "checks": _stable(self.checks),
            "breaking_points": _stable([point.to_dict() for point in self.breaking_points]),
        }
        if self.run is not None:
            payload["run"] = with_models(self.run, self.models)
        return json.dumps(payload, indent=2, sort_keys=True, allow_nan=False) + "\n"

    def write(self, path: Path) -> None:
        atomic_write_text(path, self.to_json())


def _stable(rows: list[Any]) -> list[Any]:
    """Order rows by test id and content, so serial and xdist runs write the same bytes."""
    return sorted(rows, key=lambda row: (row["test"], json.dumps(row, sort_keys=True)))
