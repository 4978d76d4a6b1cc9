"""A disk cache of per-image logits, keyed by everything that changes them.

Entries are ``.npz`` files (numpy arrays, loaded with ``allow_pickle=False``: nothing in the cache
can run code), written to a temporary file and renamed, so parallel workers and interrupted runs
never leave a half-written entry.

The cache is an optimisation and its files are untrusted: an entry that cannot be read, is not
ours, or holds arrays of the wrong shape is recomputed; a folder that cannot be written (full,
read-only, a file, cleared by another process meanwhile) only costs the speed-up. Either way the
run shows one :class:`CacheWarning` and carries on.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..files import atomic_write_bytes
from ..inputs import display_text

_ENTRY_NAME = re.compile(r"[0-9a-f]{64}\.npz")
_FOLDER_NAME = re.compile(r"[0-9a-f]{2}")
_TEMPORARY_NAME = re.compile(r"\.[0-9a-f]{64}\.npz\.[A-Za-z0-9_]+\.tmp")  # atomic_write_bytes


class CacheWarning(UserWarning):
    """The logits cache could not be used; results were computed instead (filter with this category)."""


class LogitsCache:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._warned = False

    def path_for(self, key: dict[str, Any]) -> Path:
        digest = _digest(_key_text(key))
        return self.directory / digest[:2] / f"{digest}.npz"

    def load(self, key: dict[str, Any], shapes: dict[str, tuple[int, ...]] | None = None) -> dict[str, np.ndarray] | None:
        """The stored arrays, or None when absent or not trustworthy (a bad entry is recomputed, never trusted).

        ``shapes`` names the arrays the caller needs and their shapes: an entry lacking one, or holding
        one of another shape, a non-float type or non-finite values, is refused.
        """
        path = self.path_for(key)
        try:
            with np.load(path, allow_pickle=False) as stored:
                if str(stored["key"]) != _key_text(key):
                    raise ValueError("its key does not match its name")
                arrays = {name: stored[name] for name in stored.files if name != "key"}
        except FileNotFoundError:
            return None  # the ordinary miss
        # A damaged or hostile file can make numpy and zipfile raise nearly anything (BadZipFile,
        # ValueError, OSError, EOFError, RuntimeError for encrypted members, MemoryError...).
        except Exception as error:
            self.warn(f"ignoring unreadable cache entry {display_text(str(path))} ({type(error).__name__}: {error})")
            return None
        problem = _shape_problem(arrays, shapes or {})
        if problem:
            self.warn(f"ignoring cache entry {display_text(str(path))} ({problem})")
            return None
        return arrays

    def store(self, key: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Save an entry; a failure to write is a warning, never an error (the cache only saves time)."""
        buffer = io.BytesIO()
        # Any: numpy's stub lets a ** mapping fill savez's allow_pickle flag, so dict[str, ndarray] is refused
        entries: dict[str, Any] = {"key": np.array(_key_text(key)), **arrays}
        np.savez(buffer, **entries)
        try:
            atomic_write_bytes(self.path_for(key), buffer.getvalue())  # removes its temporary file on failure
        except OSError as error:  # full disk, read-only folder, a file in the way, a concurrent --clip-cache-clear
            self.warn(f"cannot write to the logits cache in {display_text(str(self.directory))} ({type(error).__name__}: {error})")

    def clear(self) -> None:
        """Delete this cache's entries only, so a cache folder shared with other files is safe to clear.

        An entry is ours when its folder and file names are digests and the file is an npz whose
        stored key hashes to its name; anything else (another tool's ``v1/embeddings.npz``, a look-alike)
        is left alone.
        """
        if not self.directory.is_dir():
            return
        try:
            folders = [f for f in sorted(self.directory.iterdir()) if _FOLDER_NAME.fullmatch(f.name) and f.is_dir()]
            for folder in folders:
                for entry in sorted(folder.iterdir()):
                    if (_TEMPORARY_NAME.fullmatch(entry.name) and entry.is_file()) or self._is_ours(entry):
                        _unlink(entry, self)
                with contextlib.suppress(OSError):
                    folder.rmdir()  # only succeeds when nothing else is left in it
        except OSError as error:  # an unreadable folder, or another process clearing at the same time
            self.warn(f"cannot clear the logits cache in {display_text(str(self.directory))} ({type(error).__name__}: {error})")

    def warn(self, message: str) -> None:
        """One warning per run: the first failure says what is wrong; the rest would only repeat it."""
        if self._warned:
            return
        self._warned = True
        with contextlib.suppress(CacheWarning):  # under -W error: the cache still must not fail a test
            warnings.warn(f"{message}; results are computed without the cache", CacheWarning, stacklevel=2)

    def _is_ours(self, entry: Path) -> bool:
        if not (_ENTRY_NAME.fullmatch(entry.name) and entry.name.startswith(entry.parent.name) and entry.is_file()):
            return False
        try:
            with np.load(entry, allow_pickle=False) as stored:
                return _digest(str(stored["key"])) == entry.name[:-4]
        except Exception:  # not an npz, no key, unreadable: not provably ours, so kept
            return False


def _key_text(key: dict[str, Any]) -> str:
    return json.dumps(key, sort_keys=True)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _shape_problem(arrays: dict[str, np.ndarray], shapes: dict[str, tuple[int, ...]]) -> str | None:
    for name, shape in shapes.items():
        array = arrays.get(name)
        if array is None:
            return f"no {name}"
        if array.shape != shape or array.dtype.kind != "f":
            return f"{name} is {array.dtype} of shape {array.shape}, expected floats of shape {shape}"
        if array.ndim == 0 and not math.isfinite(float(array)):
            return f"{name} is {float(array)}"
    return None


def _unlink(path: Path, cache: LogitsCache | None = None) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as error:
        if cache is not None:
            cache.warn(f"cannot delete cache entry {display_text(str(path))} ({type(error).__name__}: {error})")
