"""Small formatting helpers shared by every renderer: numbers, names, codec and setting labels, flips.

Codec labels and which way is milder come from the codec registry (pure data), the one source of
those facts; everything else here reads the records alone."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any, TypeGuard

from ..codecs.registry import CODECS, milder_when_higher
from ..results.schema import EvaluationRecord, QuantityChange

DASH = "\u2014"

#: What Pillow does when a parameter is left out, where that is worth saying.
PILLOW_DEFAULTS: dict[tuple[str, str], str] = {("jpeg", "subsampling"): "4:2:0 (Pillow default)"}


def is_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def pct(value: Any, digits: int = 1) -> str:
    return f"{value * 100:.{digits}f}%" if is_number(value) else DASH


def num(value: Any) -> str:
    """A compact, generic rendering of a number (or anything else) for tables."""
    if value is None:
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.4g}"
    return str(value)


def sort_value(value: Any) -> str:
    """A ``data-sort`` value: numbers as plain decimal text (``parseFloat`` reads it), else text."""
    if is_number(value):
        return repr(float(value))
    if isinstance(value, float):  # nan/inf sort last
        return "Infinity"
    return "" if value is None else str(value)


def ci(record: EvaluationRecord) -> tuple[float, float] | None:
    bounds = record.get("ci95")
    if isinstance(bounds, (list, tuple)) and len(bounds) == 2 and all(is_number(v) for v in bounds):
        return float(bounds[0]), float(bounds[1])
    return None


def codec(record: EvaluationRecord) -> str:
    return str((record.get("compression") or {}).get("codec", "none"))


def params(record: EvaluationRecord) -> dict[str, Any]:
    return {k: v for k, v in (record.get("compression") or {}).items() if k != "codec"}


def codec_name(name: str) -> str:
    """The codec's display name from the registry (``JPEG 2000``); ``uncompressed`` for none."""
    spec = CODECS.get(name)
    return "uncompressed" if name == "none" else (spec.label if spec is not None and spec.label else name)


def primary_axis(codec_key: str) -> tuple[str, str, bool] | None:
    """The parameter a codec's per-setting chart is drawn against, its axis label, and whether a
    lower value is harsher (quality: the axis is inverted so harsher is to the right), from the registry."""
    spec = CODECS.get(codec_key)
    param = spec.primary_param if spec is not None else None
    if spec is None or param is None:
        return None
    return param, spec.axis_label(param), milder_when_higher(codec_key, param)


def param_label(codec_key: str, name: str, value: Any) -> str:
    """``4:4:4`` for a subsampling, ``4:2:0 (Pillow default)`` when it was left out, else ``name=value``."""
    if value is None:
        return PILLOW_DEFAULTS.get((codec_key, name), f"{name} default")
    if name == "subsampling":
        return str(value)
    return f"{name} {num(value)}"


def setting_label(name: str | None, value: Any) -> str:
    """A short label for one setting of the primary parameter: ``q75``, ``20:1``."""
    if name == "quality":
        return f"q{num(value)}"
    if name == "rate":
        return f"{num(value)}:1"
    return f"{name}={num(value)}"


def group_key(record: EvaluationRecord) -> tuple[str, str, str]:
    return (str(record.get("model")), str(record.get("pretrained")), str(record.get("dataset")))


def group_records(records: Iterable[EvaluationRecord]) -> dict[tuple[str, str, str, str], list[EvaluationRecord]]:
    """Records by (model, pretrained, dataset, codec), each group ordered from mild to harsh compression."""
    groups: dict[tuple[str, str, str, str], list[EvaluationRecord]] = defaultdict(list)
    for record in records:
        key = (*group_key(record), codec(record))
        groups[key].append(record)
    return {key: sorted(rows, key=_mild_first) for key, rows in sorted(groups.items())}


def _mild_first(record: EvaluationRecord) -> tuple[float, str]:
    bpp = record.get("bits_per_pixel")
    return (-(bpp if is_number(bpp) else 0.0), str(record.get("compression_id")))


def record_order(record: EvaluationRecord) -> tuple:
    """Model, dataset, then the uncompressed reference first and each codec from mild to harsh."""
    return (
        *group_key(record),
        codec(record) != "none",
        codec(record),
        *_mild_first(record),
        json.dumps([record.get("n"), record.get("seed"), record.get("templates")], sort_keys=True, default=str),
    )


def flip_text(rows: Sequence[dict[str, Any]], count: int = 3) -> str:
    """``checkered square -> plain square 31, ...`` for the most frequent flips (a record's ``flip_confusion``)."""
    return ", ".join(f"{row['true']} -> {row['predicted']} {row['count']}" for row in rows[:count])


#: How every output explains the sign of a gate's changes.
CHANGE_SIGN = "change: negative = the candidate is worse (accuracies: candidate minus reference; drop: reference minus candidate)"


def quantity_label(change: QuantityChange, compression_id: str) -> str:
    """``clean accuracy``, ``accuracy under jpeg-q90`` or ``drop (clean - jpeg-q90)``."""
    if change["quantity"] == "clean":
        return "clean accuracy"
    if change["quantity"] == "compressed":
        return f"accuracy under {compression_id}"
    return f"drop (clean - {compression_id})"


def quantity_value(change: QuantityChange, side: str) -> str:
    """The reference's or the candidate's value: a percentage, or a drop in points."""
    value = change["reference"] if side == "reference" else change["candidate"]
    return f"{value * 100:.2f} pts" if change["quantity"] == "drop" else f"{value:.2%}"


def change_text(change: QuantityChange) -> tuple[str, str]:
    """The change and its 95% interval, in signed points."""
    low, high = change["change_ci95"]
    return f"{change['change'] * 100:+.2f}", f"{low * 100:+.2f} to {high * 100:+.2f}"


def short_hash(value: Any) -> str:
    return hashlib.sha1(repr(value).encode("utf-8", "surrogatepass")).hexdigest()[:8]


def safe_name(text: str, *, max_length: int = 80, lower: bool = True, underscores: bool = False) -> str:
    """A file-name-safe version of ``text``: ``[a-z0-9.-]`` runs joined by ``-``, never empty or hidden.

    ``underscores`` keeps ``_`` too (test ids read better); otherwise ``_`` is free to join name
    parts. Long names are cut and suffixed with a short hash of the full text so they stay distinct.
    """
    name = str(text).lower() if lower else str(text)
    name = re.sub(r"[^A-Za-z0-9._]+" if underscores else r"[^A-Za-z0-9.]+", "-", name).strip("-._")
    name = re.sub(r"\.{2,}", ".", name) or "x"
    if len(name) > max_length:
        name = f"{name[:max_length].rstrip('-.')}-{short_hash(text)}"
    return name


def unique(name: str, key: Any, used: set[str]) -> str:
    """``name``, or ``name`` with a hash of ``key`` when another item already took it."""
    stem, dot, suffix = name.rpartition(".")
    candidate = name
    if candidate in used:
        candidate = f"{stem}-{short_hash(key)}{dot}{suffix}" if dot else f"{name}-{short_hash(key)}"
    counter = 2
    while candidate in used:  # pragma: no cover - a hash collision
        candidate = f"{stem}-{short_hash(key)}-{counter}{dot}{suffix}"
        counter += 1
    used.add(candidate)
    return candidate
