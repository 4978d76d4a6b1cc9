"""Loading the official python pickles (CIFAR) without running code: only what rebuilds a numpy array."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, ClassVar

from ..errors import DatasetError


class _ForbiddenGlobal(pickle.UnpicklingError):
    """The pickle asks for something other than a numpy array: a tampered file."""


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, strings, numbers and numpy arrays; any other global is refused."""

    ALLOWED: ClassVar[frozenset[tuple[str, str]]] = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("_codecs", "encode"),
        }
    )

    def find_class(self, module: str, name: str) -> Any:  # pickle API: any class or function
        if (module, name) not in self.ALLOWED:
            raise _ForbiddenGlobal(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def unpickle_dict(path: Path, what: str) -> dict:
    """The dictionary in an official pickle, keys as ``str``; ``what`` names the dataset in messages."""
    try:
        with open(path, "rb") as handle:
            data = _ArrayOnlyUnpickler(handle, encoding="bytes").load()
    except _ForbiddenGlobal as error:
        raise DatasetError(f"{path} is not a {what} data file ({error}); it may be tampered with: delete it and download the dataset again") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as error:
        raise DatasetError(f"{path} is truncated or corrupt ({type(error).__name__}); delete it and download the dataset again") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{path} does not hold a {what} dictionary; delete it and download the dataset again")
    # Official files are Python 2 pickles with bytes keys; accept str keys from re-saved copies too.
    return {key.decode() if isinstance(key, bytes) else key: value for key, value in data.items()}
