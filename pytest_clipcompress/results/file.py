"""Reading a results file (``--clip-results``, ``--clip-baseline-save``): the JSON boundary where plain
JSON becomes typed records, with a clear error for anything that is not such a file.

A baseline is an ordinary results file; it is read once per run (the plugin's session start) and
handed to whoever compares with it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from ..errors import ClipCompressError, ConfigError
from .schema import PLUGIN_NAME, BreakingPoint, CaseKey, CheckRecord, EvaluationRecord, RunBlock, case_key, record_id


class GateError(ClipCompressError):
    """A comparison that cannot be made: no matching entry, or different images."""


@dataclass(frozen=True)
class ResultsFile:
    """A results file's records, typed."""

    path: Path
    evaluations: list[EvaluationRecord] = field(repr=False)
    checks: list[CheckRecord] = field(default_factory=list, repr=False)
    breaking_points: list[BreakingPoint] = field(default_factory=list, repr=False)
    run: RunBlock | None = field(default=None, repr=False)
    version: str | None = None  # the pytest-clipcompress version that wrote the file

    def checkpoints(self) -> str:
        """The models the file's numbers came from, with their weights hashes (``label, weights <hash>``)."""
        models = self.run["models"] if self.run else []
        named = [f"{facts['label']}, weights {facts['weights_hash'][:12]}" for facts in models]
        return "; ".join(named) or ", ".join(sorted({f"{r['model']}/{r['pretrained']}" for r in self.evaluations})) or "no models"

    def entry_for(self, key: CaseKey, fingerprint: str) -> EvaluationRecord:
        """The evaluation for ``key``, or a :class:`GateError` that lists what the file holds."""
        record = find_record(self.evaluations, key, fingerprint)
        if record is None:
            held = sorted({f"{record_id(r)} on {r['dataset']} ({r['compression_id']})" for r in self.evaluations})
            listing = "; ".join(held[:8]) + (f"; and {len(held) - 8} more" if len(held) > 8 else "") if held else "nothing"
            raise GateError(
                f"baseline {self.path} has no entry for {key.role} on {key.dataset} under {key.compression_id}; it holds: {listing}. "
                "Save a baseline that evaluates this case (--clip-baseline-save), or name the baseline's model with baseline_model=..."
            )
        return record


def find_record(records: Iterable[EvaluationRecord], key: CaseKey, fingerprint: str | None) -> EvaluationRecord | None:
    """The record for ``key``; the dataset matches by name or by its files' fingerprint.

    Matching by fingerprint lets an ``imagefolder:`` dataset be found from another checkout path.
    """
    for record in records:
        found = case_key(record)
        if found.role != key.role or found.compression_id != key.compression_id:
            continue
        data = record.get("data") or {}
        if found.dataset == key.dataset or (fingerprint and data.get("fingerprint") == fingerprint):
            return record
    return None


def load_results_file(path: Path, what: str = "results file") -> ResultsFile:
    """Read a results file written by this plugin; a clear :class:`ConfigError` for anything else."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{what} {path} does not exist; write one with --clip-results or --clip-baseline-save")
    if not path.is_file():
        raise ConfigError(f"{what} {path} is not a file; give the path of a results JSON file")
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"{what} {path} cannot be read ({error.strerror or error})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"{what} {path} is not JSON ({error}); give a file written by --clip-results or --clip-baseline-save") from None
    if not isinstance(payload, dict) or payload.get("plugin") != PLUGIN_NAME or not isinstance(payload.get("evaluations"), list):
        raise ConfigError(f'{what} {path} is JSON but not a pytest-clipcompress results file (no "plugin": "{PLUGIN_NAME}" with "evaluations")')
    if not all(isinstance(record, dict) and {"model", "dataset", "compression_id", "n"} <= record.keys() for record in payload["evaluations"]):
        raise ConfigError(f"{what} {path} has malformed evaluation records; write it again with --clip-results")
    return ResultsFile(
        path,
        cast("list[EvaluationRecord]", payload["evaluations"]),
        cast("list[CheckRecord]", _rows(payload, "checks")),
        [BreakingPoint.from_dict(point) for point in _rows(payload, "breaking_points")],
        cast("RunBlock | None", payload.get("run")),
        str(payload["version"]) if payload.get("version") is not None else None,
    )


def _rows(payload: dict[str, Any], name: str) -> list[dict[str, Any]]:
    rows = payload.get(name, [])
    return [row for row in rows if isinstance(row, dict)] if isinstance(rows, list) else []
