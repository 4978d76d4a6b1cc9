"""The results file: one record per evaluation, written atomically and in a stable order."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from . import __version__


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file beside ``path``, then rename: readers see the old or the new file, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes private files; results are ordinary ones
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def record_key(record: dict[str, Any]) -> tuple:
    compression = json.dumps(record["compression"], sort_keys=True)
    role = record.get("role") or record["model"]  # two roles may share a model name and a weights label
    return (record["model"], record["pretrained"], record["dataset"], record["compression"]["codec"], compression, record["n"], record["seed"], record["templates"], role)


class ResultsCollector:
    """Evaluation records and floor checks gathered from test reports (serial runs and xdist alike)."""

    def __init__(self) -> None:
        self.records: dict[tuple, dict[str, Any]] = {}
        self.checks: list[dict[str, Any]] = []
        self.breaking_points: list[dict[str, Any]] = []
        self.grid_keys: set[tuple] = set()  # evaluations a test asked for (markers, clip_eval calls)
        self.probe_keys: set[tuple] = set()  # evaluations of hypothesis examples and breaking-point searches
        self.models: list[dict[str, str]] = []  # facts of the models that produced the records (metadata.model_facts)
        self.run: dict[str, Any] | None = None  # the run block (metadata.run_metadata), set by the controller

    def add(self, nodeid: str, data: dict[str, Any]) -> None:
        search = bool(data.get("search") or data.get("breaking_points"))
        for record in data.get("evaluations", []):
            self.records.setdefault(record_key(record), record)
            (self.probe_keys if search else self.grid_keys).add(record_key(record))
        for check in data.get("checks", []):
            row = {"test": nodeid, **check}
            if row not in self.checks:  # hypothesis replays the same check many times while shrinking
                self.checks.append(row)
        for point in data.get("breaking_points", []):
            self.breaking_points.append({"test": nodeid, **point})
        self.models += [facts for facts in data.get("models", []) if facts not in self.models]

    def __bool__(self) -> bool:
        return bool(self.records)

    def sorted_records(self) -> list[dict[str, Any]]:
        return [self.records[key] for key in sorted(self.records)]

    def grid_and_probes(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Sorted records split into the tests' own evaluations and those only searches made."""
        records = self.sorted_records()
        grid = [r for r in records if record_key(r) in self.grid_keys or record_key(r) not in self.probe_keys]
        return grid, [r for r in records if record_key(r) not in self.grid_keys and record_key(r) in self.probe_keys]

    def to_json(self) -> str:
        payload: dict[str, Any] = {
            "plugin": "pytest-clipcompress",
            "version": __version__,
            "evaluations": self.sorted_records(),
            "checks": _stable(self.checks),
            "breaking_points": _stable(self.breaking_points),
        }
        if self.run is not None:
            from .metadata import with_models

            payload["run"] = with_models(self.run, self.models)
        return json.dumps(payload, indent=2, sort_keys=True) + "\n"

    def write(self, path: Path) -> None:
        atomic_write_text(path, self.to_json())


def _stable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Order rows by test id and content, so serial and xdist runs write the same bytes."""
    return sorted(rows, key=lambda row: (row["test"], json.dumps(row, sort_keys=True)))
