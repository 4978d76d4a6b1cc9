"""The results file: one record per evaluation, written atomically and in a stable order; and the
checks, at the start of a run, that every output path can be written."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Literal

from . import __version__
from .errors import ConfigError
from .records import (
    BreakingPointRecord,
    CheckRecord,
    EvalKey,
    EvaluationRecord,
    ReportData,
    record_key,
)


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


def report_outcome(report: Any) -> str:
    """``passed``, ``failed``, ``xfailed`` or ``xpassed``: what the test's call report says, xfail included."""
    if hasattr(report, "wasxfail"):
        return "xfailed" if report.skipped else "xpassed" if report.passed else "failed"
    return "failed" if report.failed else "skipped" if report.skipped else "passed"


class ResultsCollector:
    """Evaluation records and floor checks gathered from test reports (serial runs and xdist alike)."""

    def __init__(self) -> None:
        self.records: dict[EvalKey, EvaluationRecord] = {}
        self.checks: list[CheckRecord] = []
        self.breaking_points: list[BreakingPointRecord] = []
        self.grid_keys: set[EvalKey] = set()  # evaluations a test asked for (markers, clip_eval calls)
        self.probe_keys: set[EvalKey] = set()  # evaluations of hypothesis examples and breaking-point searches
        self.models: list[dict[str, str]] = []  # facts of the models that produced the records (metadata.model_facts)
        self.run: dict[str, Any] | None = None  # the run block (metadata.run_metadata), set by the controller

    def add(self, nodeid: str, data: ReportData, outcome: str | None = None) -> None:
        """``outcome`` is the test's (see :func:`report_outcome`); each floor check row records it."""
        search = bool(data.get("search") or data["breaking_points"])
        for record in data["evaluations"]:
            self.records.setdefault(record_key(record), record)
            (self.probe_keys if search else self.grid_keys).add(record_key(record))
        for check in data["checks"]:
            row: CheckRecord = {"test": nodeid, **check, "outcome": outcome}
            if row not in self.checks:  # hypothesis replays the same check many times while shrinking
                self.checks.append(row)
        for point in data["breaking_points"]:
            self.breaking_points.append({"test": nodeid, **point})
        self.models += [facts for facts in data.get("models", []) if facts not in self.models]

    def __bool__(self) -> bool:
        return bool(self.records)

    def sorted_records(self) -> list[EvaluationRecord]:
        return [self.records[key] for key in sorted(self.records)]

    def grid_and_probes(self) -> tuple[list[EvaluationRecord], list[EvaluationRecord]]:
        """Sorted records split into the tests' own evaluations and those only searches made."""
        records = self.sorted_records()
        probe_only = [record_key(r) not in self.grid_keys and record_key(r) in self.probe_keys for r in records]
        return [r for r, probe in zip(records, probe_only, strict=True) if not probe], [r for r, probe in zip(records, probe_only, strict=True) if probe]

    def to_json(self) -> str:
        """Strict JSON (a NaN is an error, not a bare ``NaN``); ``evaluations`` is ``[]`` when nothing ran."""
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
        return json.dumps(payload, indent=2, sort_keys=True, allow_nan=False) + "\n"

    def write(self, path: Path) -> None:
        atomic_write_text(path, self.to_json())


def _stable(rows: list[Any]) -> list[Any]:
    """Order rows by test id and content, so serial and xdist runs write the same bytes."""
    return sorted(rows, key=lambda row: (row["test"], json.dumps(row, sort_keys=True)))


def check_output_path(flag: str, path: Path, kind: Literal["file", "dir", "tree"]) -> None:
    """Raise a one-line :class:`ConfigError` unless the plugin can write ``path``.

    ``file``: a file in an existing folder (the results file); ``dir``: a folder, made if missing,
    in an existing folder (the report); ``tree``: a folder made with its parents as needed (the
    cache). Writability is probed with a real temporary file, which also catches read-only mounts.
    """
    path = Path(path)
    if kind == "file" and path.is_dir():
        raise ConfigError(f"{flag} {path} is a folder; give a file path, e.g. {path / 'results.json'}")
    if kind != "file" and path.exists() and not path.is_dir():
        raise ConfigError(f"{flag} {path} is a file; give a folder path or move the file away")
    folder = path if kind != "file" and path.is_dir() else path.parent
    if kind == "tree":
        while not folder.exists() and not folder.is_symlink() and folder != folder.parent:
            folder = folder.parent
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{flag} {path}: {folder} is a file, not a folder")
    if not folder.exists():
        raise ConfigError(f"{flag} {path}: the folder {folder} does not exist; create it or choose another path")
    try:
        probe_write(folder)
    except OSError as error:
        raise ConfigError(f"{flag} {path}: cannot write in {folder} ({error.strerror or error}); choose a writable path") from None


def probe_write(folder: Path) -> None:
    """Create and remove a temporary file in ``folder`` (raises OSError when that fails)."""
    with tempfile.TemporaryFile(dir=folder):
        pass
