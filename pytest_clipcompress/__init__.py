"""pytest-clipcompress: assert CLIP's zero-shot robustness to image compression in pytest."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__

__all__ = ["Compression", "EvalResult", "__version__", "assert_accuracy", "assert_no_regression", "assert_not_worse"]

if TYPE_CHECKING:
    from .assertions import assert_accuracy, assert_no_regression, assert_not_worse
    from .codecs.compression import Compression
    from .engine.result import EvalResult

_LAZY = {
    "assert_accuracy": "assertions",
    "assert_no_regression": "assertions",
    "assert_not_worse": "assertions",
    "Compression": "codecs.compression",
    "EvalResult": "engine.result",
}


def __getattr__(name: str) -> Any:
    # Lazy so that importing the plugin (``pytest --help``) does not import numpy, PIL or torch.
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
