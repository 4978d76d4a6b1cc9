"""pytest-clipcompress: assert CLIP's zero-shot robustness to image compression in pytest."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Compression", "EvalResult", "__version__", "assert_accuracy", "assert_no_regression", "assert_not_worse"]

if TYPE_CHECKING:
    from .assertions import assert_accuracy
    from .compression import Compression
    from .evaluation import EvalResult
    from .gate import assert_no_regression, assert_not_worse

_LAZY = {
    "assert_accuracy": "assertions",
    "Compression": "compression",
    "EvalResult": "evaluation",
    "assert_no_regression": "gate",
    "assert_not_worse": "gate",
}


def __getattr__(name: str) -> Any:
    # Lazy so that importing the plugin (``pytest --help``) does not import numpy, PIL or torch.
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
