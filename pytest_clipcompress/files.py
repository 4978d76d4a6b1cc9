"""Writing files a user keeps: atomically (a reader sees the old file or the new one, never half),
and checks at the start of a run that every output path can be written.

Foundation: imports nothing else of the package but its errors, so the results file, the report
folder, the cache and the Markdown summary all write the same way.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Literal

from .errors import ConfigError

OutputKind = Literal["file", "dir", "tree"]


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
