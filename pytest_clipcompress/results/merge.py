"""Joining the results files of one run's shards (``python -m pytest_clipcompress merge``).

A CI matrix splits a run's tests across machines (pytest-split's ``--splits/--group``, or ``-k`` and
``--deselect`` selections); every test evaluates whole (model, dataset, compression) evaluations, so
each shard's results file holds complete records. The merged file is what one machine running every
test would have written, apart from the run block: the same evaluations in the same order, the
same checks and searches.

Files of different runs are refused: another plugin version, other settings that change the numbers
(the run block's ``settings``), other weights for the same model (its weights hash), other library
versions or another commit; and one evaluation with different numbers in two files.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ..errors import ClipCompressError
from .collector import ResultsCollector
from .file import ResultsFile
from .schema import EvaluationRecord, record_key


class MergeError(ClipCompressError):
    """Results files that are not shards of one run."""


def merge_results(files: Sequence[ResultsFile]) -> ResultsCollector:
    """One collector holding every file's records, ready to write (``to_json``); a :class:`MergeError` for files of different runs."""
    if not files:
        raise MergeError("merge needs at least one results file")
    first = files[0]
    for other in files[1:]:
        _check_same_run(first, other)
    collector = ResultsCollector()
    for results in files:
        _add(collector, results)
    runs = [results.run for results in files if results.run is not None]
    if runs:
        # The models every shard loaded, each once (with_models sorts them when the file is written).
        collector.run = {**runs[0], "models": [], "started_utc": min(run["started_utc"] for run in runs), "shards": len(files)}
        collector.models = [facts for run in runs for facts in run["models"]]
    return collector


def _add(collector: ResultsCollector, results: ResultsFile) -> None:
    for record in results.evaluations:
        key = record_key(record)
        plain = _without_probe(record)
        held = collector.records.get(key)
        if held is not None and held != plain:
            raise MergeError(
                f"{results.path} and an earlier file both hold {record.get('role') or record['model']} on {record['dataset']} under "
                f"{record['compression_id']} with different numbers; shards of one run evaluate the same images to the same predictions"
            )
        collector.records[key] = plain
        (collector.probe_keys if record.get("probe") else collector.grid_keys).add(key)
    for check in results.checks:
        if check not in collector.checks:
            collector.checks.append(check)
    collector.breaking_points += results.breaking_points


def _without_probe(record: EvaluationRecord) -> EvaluationRecord:
    plain = dict(record)
    plain.pop("probe", None)
    return plain  # type: ignore[return-value]  # the same record without its optional key


def _check_same_run(first: ResultsFile, other: ResultsFile) -> None:
    def refuse(what: str, mine: Any, theirs: Any) -> MergeError:
        return MergeError(
            f"{other.path} is not a shard of the same run as {first.path}: {what} differ ({_text(mine)} against {_text(theirs)}); "
            "merge only the results files of one run (same weights, settings, versions and commit)"
        )

    if first.version != other.version:
        raise refuse("the pytest-clipcompress versions", first.version, other.version)
    if (first.run is None) != (other.run is None):
        raise MergeError(f"only one of {first.path} and {other.path} has a run block; write both with the same pytest-clipcompress version")
    if first.run is None or other.run is None:
        return
    for name in ("settings", "versions", "precision", "device"):
        if first.run.get(name) != other.run.get(name):
            raise refuse(f"the {name}", first.run.get(name), other.run.get(name))
    commits = [git["commit"] if (git := run["git"]) else None for run in (first.run, other.run)]
    if None not in commits and commits[0] != commits[1]:
        raise refuse("the git commits", commits[0], commits[1])
    weights = {facts["label"]: facts["weights_hash"] for facts in first.run["models"]}
    for facts in other.run["models"]:
        if weights.get(facts["label"], facts["weights_hash"]) != facts["weights_hash"]:
            raise refuse(f"the weights of {facts['label']}", weights[facts["label"]], facts["weights_hash"])


def _text(value: Any) -> str:
    return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else str(value)
