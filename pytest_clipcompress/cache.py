"""A disk cache of per-image logits, keyed by everything that changes them.

Entries are ``.npz`` files (numpy arrays, loaded with ``allow_pickle=False``: nothing in the cache
can run code), written to a temporary file and renamed, so parallel workers and interrupted runs
never leave a half-written entry.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .results import atomic_write_bytes


class LogitsCache:
    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def path_for(self, key: dict[str, Any]) -> Path:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
        return self.directory / digest[:2] / f"{digest}.npz"

    def load(self, key: dict[str, Any]) -> dict[str, np.ndarray] | None:
        """The stored arrays, or None when absent or unreadable (a bad entry is recomputed, never trusted)."""
        path = self.path_for(key)
        try:
            with np.load(path, allow_pickle=False) as stored:
                if str(stored["key"]) != json.dumps(key, sort_keys=True):
                    return None
                return {name: stored[name] for name in stored.files if name != "key"}
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
            return None

    def store(self, key: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        buffer = io.BytesIO()
        np.savez(buffer, key=np.array(json.dumps(key, sort_keys=True)), **arrays)
        atomic_write_bytes(self.path_for(key), buffer.getvalue())

    def clear(self) -> None:
        """Delete this cache's entries only, so a cache folder shared with other files is safe to clear."""
        for entry in [*self.directory.glob("??/*.npz"), *self.directory.glob("??/.*.npz.*.tmp")]:
            entry.unlink(missing_ok=True)
        for folder in self.directory.glob("??"):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
