"""Writing files a user keeps: atomically (a reader sees the old file or the new one, never half,
and missing folders are made on the way), and checks at the start of a run that every output
path can be written.

Foundation: imports nothing else of the package but its errors, so the results file, the report
folder, the cache and the Markdown summary all write the same way.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Literal

from .errors import ConfigError

OutputKind = Literal["file", "dir"]


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


def check_output_path(flag: str, path: Path, kind: OutputKind) -> None:
    """Raise a one-line :class:`ConfigError` unless the plugin can write ``path``.

    ``file``: a file (the results file, the summary, the baseline); ``dir``: a folder (the report,
    the cache). Missing folders are allowed, as for pytest's ``--junitxml``: they are made when the
    output is first written, so a run refused at its start leaves none behind. What is checked
    now is that they can be made: the nearest folder on the way that exists is a folder, and a real
    temporary file can be written in it (which also catches read-only mounts).
    """
    path = Path(path)
    if kind == "file" and path.is_dir():
        raise ConfigError(f"{flag} {path} is a folder; give a file path, e.g. {path / 'results.json'}")
    if kind == "dir" and path.exists() and not path.is_dir():
        raise ConfigError(f"{flag} {path} is a file; give a folder path or move the file away")
    folder = path if kind == "dir" else path.parent
    existing = folder
    while not existing.exists() and not existing.is_symlink() and existing != existing.parent:
        existing = existing.parent
    if existing.is_symlink() and not existing.exists():
        raise ConfigError(f"{flag} {path}: {existing} is a link to nothing; point it at a folder or choose another path")
    if not existing.is_dir():
        raise ConfigError(f"{flag} {path}: {existing} is a file, not a folder")
    try:
        probe_write(existing)
    except OSError as error:
        reason = error.strerror or str(error)
        if existing == folder:
            raise ConfigError(f"{flag} {path}: cannot write in {folder} ({reason}); choose a writable path") from None
        raise ConfigError(f"{flag} {path}: cannot create {folder} in {existing} ({reason}); choose a writable path") from None


def probe_write(folder: Path) -> None:
    """Create and remove a temporary file in ``folder`` (raises OSError when that fails)."""
    with tempfile.TemporaryFile(dir=folder):
        pass
