"""Run metadata: what produced a set of results (models and their weights, device, libraries, commit, time).

Pytest-free. Workers describe the models they loaded (``LoadedModel.facts``) with their test reports;
the controller merges those facts with its own (:func:`run_metadata`). This block is the only place
in our outputs that holds a timestamp, so equality checks between runs leave it out.
"""

from __future__ import annotations

import datetime
import subprocess
from importlib import metadata as distributions
from pathlib import Path
from typing import Any

from .._version import __version__
from .schema import GitState, ModelFacts, RunBlock

# Import name -> distribution name, in the order the Environment table lists them.
LIBRARIES = {"torch": "torch", "torchvision": "torchvision", "open_clip": "open_clip_torch", "Pillow": "pillow", "numpy": "numpy", "captum": "captum"}
GIT_TIMEOUT_SECONDS = 5.0


def library_versions() -> dict[str, str]:
    import platform

    versions = {"python": platform.python_version()}
    for name, distribution in LIBRARIES.items():
        try:
            versions[name] = distributions.version(distribution)
        except distributions.PackageNotFoundError:
            versions[name] = "not installed"
    versions["pytest-clipcompress"] = __version__
    return versions


def git_state(directory: Path) -> GitState | None:
    """The commit checked out at ``directory`` and whether the work tree has changes; None outside a repository."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=directory, capture_output=True, text=True, timeout=GIT_TIMEOUT_SECONDS, check=False)
        except (OSError, subprocess.SubprocessError):  # no git, or a hung file system
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return None
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def run_metadata(device: str, precision: str, rootdir: Path, settings: dict[str, Any] | None = None) -> RunBlock:
    """The ``run`` block of the results file, without models: JSON-able, no host name, no paths.

    ``device`` and ``precision`` are the requested settings; each model's facts say where it ran;
    ``settings`` are those that change the numbers (``config.settings.number_settings``).
    """
    run: RunBlock = {
        "models": [],
        "device": device,
        "precision": precision,
        "versions": library_versions(),
        "git": git_state(rootdir),
        "started_utc": utc_now(),
    }
    if settings is not None:
        run["settings"] = settings
    return run


def with_models(run: RunBlock, models: list[ModelFacts]) -> RunBlock:
    """The run block with the facts of every model loaded in this run (by any worker), in a stable order."""
    unique = {tuple(sorted(facts.items())): facts for facts in [*run["models"], *models]}
    return {**run, "models": [unique[key] for key in sorted(unique)]}


def environment_rows(run: RunBlock) -> dict[str, str]:
    """The run block as flat rows for pytest-html's Environment table."""
    rows = {"clipcompress device": run["device"], "clipcompress precision": run["precision"]}
    for facts in run["models"]:
        rows[f"clipcompress model {facts['label']}"] = f"weights {facts['weights_hash']} on {facts['device']} ({facts['precision']})"
    rows.update({f"version {name}": version for name, version in run["versions"].items()})
    git = run["git"]
    if git is not None:
        rows["git commit"] = git["commit"] + (" (uncommitted changes)" if git["dirty"] else "")
    rows["started (UTC)"] = run["started_utc"]
    return rows
