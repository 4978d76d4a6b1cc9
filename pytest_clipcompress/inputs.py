"""Numbers and text at the boundary: what users pass in, checked once and turned into plain Python values.

Floors, marker values, ini keys and options all go through :func:`real_number`, so numpy scalars,
``Decimal`` and 0-d tensors are accepted everywhere, strings, booleans, NaN and infinities nowhere,
and nothing but ``int``/``float`` reaches the results file. Pytest-free.
"""

from __future__ import annotations

import math
import numbers
import operator
import os
import re
from typing import Any

from .errors import ConfigError

# Images with more pixels are refused as decompression bombs unless --clip-max-image-pixels says otherwise.
# Pillow's own default (1024**3 // 4 // 3), stated here so that no global setting changes it silently.
DEFAULT_MAX_IMAGE_PIXELS = 89_478_485
_UNSAFE_ID = re.compile(r"[^A-Za-z0-9._-]")


def real_number(value: Any) -> int | float | None:
    """``value`` as a plain int or float, or None when it is not a single real number."""
    if isinstance(value, (bool, str, bytes)) or value is None:
        return None
    if getattr(value, "ndim", 0) != 0 or str(getattr(value, "dtype", "")) in ("bool", "torch.bool"):
        return None  # arrays and tensors with elements, numpy/torch booleans
    if isinstance(value, numbers.Complex) and not isinstance(value, numbers.Real):
        return None
    try:
        return operator.index(value)  # Python, numpy and integer 0-d tensor ints, exactly
    except TypeError:
        pass
    try:
        return float(value)  # floats of any kind, Decimal, Fraction, float 0-d tensors
    except (TypeError, ValueError, ArithmeticError, RuntimeError):
        return None


def is_finite(number: float) -> bool:
    """``math.isfinite`` for ints of any size too (it converts them to float, which overflows)."""
    return isinstance(number, int) or math.isfinite(number)


def check_fraction(name: str, value: Any) -> float:
    """A floor (a fraction in [0, 1]) as a plain float, else the one message every entry point shows."""
    number = real_number(value)
    if number is None or not is_finite(number) or not 0.0 <= number <= 1.0:
        shown = value if number is None else number
        problem = "is not a number" if number is None else "is not finite" if not is_finite(number) else "is outside [0, 1]"
        # A value such as 85 was meant as a percentage: show its fraction.
        example = f"{number / 100:g} means {number:g}%" if number is not None and 1 < number <= 100 else "0.8 means 80%"
        raise ConfigError(f"{name}={shown!r} {problem}; floors are fractions ({example})")
    return float(number)


def safe_id(text: str) -> str:
    """A test id part with only ``[A-Za-z0-9._-]``: pytest-html and other tools print ids unescaped."""
    return _UNSAFE_ID.sub("_", text)


def display_text(text: str) -> str:
    """A name as the OS gave it, printable and encodable: undecodable bytes become ``\\xNN``."""
    try:
        raw = os.fsencode(text)
    except UnicodeError:  # lone surrogates that are not escaped bytes
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")
