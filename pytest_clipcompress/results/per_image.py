"""Per-image outcomes in the results file, so two runs on the same images can be compared pairwise.

A record's ``outcomes`` hold the evaluated dataset indices, the true labels and the predicted labels
with and without compression, each a little-endian integer array, zlib-compressed (level 9) and
base64-encoded: compact, and the same bytes for the same predictions. Its ``data`` says what the
images were (dataset files, classes, prompts, subset), which a pairwise comparison must check first.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ClipCompressError
from .schema import EvaluationRecord

OUTCOMES_FORMAT = 1
_ARRAYS = {"indices": "<u4", "labels": "<u2", "predicted": "<u2", "predicted_uncompressed": "<u2"}


class OutcomesError(ClipCompressError):
    """A record's per-image outcomes are missing, malformed, or not comparable with another's."""


def templates_digest(templates: Sequence[str]) -> str:
    """A short digest of the prompt templates (the text, not the setting's name)."""
    return hashlib.sha256(json.dumps(list(templates)).encode("utf-8")).hexdigest()[:16]


def indices_digest(indices: np.ndarray) -> str:
    return hashlib.sha256(np.asarray(indices, dtype="<u4").tobytes()).hexdigest()[:16]


def _pack(values: np.ndarray, dtype: str) -> str:
    return base64.b64encode(zlib.compress(np.ascontiguousarray(values, dtype=dtype).tobytes(), 9)).decode("ascii")


def _unpack(text: Any, dtype: str, n: int, name: str) -> np.ndarray:
    try:
        array = np.frombuffer(zlib.decompress(base64.b64decode(text, validate=True)), dtype=dtype)
    except (TypeError, ValueError, binascii.Error, zlib.error):
        raise OutcomesError(f"outcomes.{name} is not valid packed data") from None
    if array.size != n:
        raise OutcomesError(f"outcomes.{name} holds {array.size} values, the record says n={n}")
    return array.astype(np.int64)


@dataclass(frozen=True)
class Outcomes:
    """Which images were evaluated and what the model predicted for each, with and without compression."""

    indices: np.ndarray
    labels: np.ndarray
    predicted: np.ndarray
    predicted_uncompressed: np.ndarray
    classes: tuple[str, ...]
    fingerprint: str
    templates_digest: str
    seed: int

    @property
    def n(self) -> int:
        return int(self.labels.size)

    @property
    def hits(self) -> np.ndarray:
        return self.predicted == self.labels

    @property
    def hits_uncompressed(self) -> np.ndarray:
        return self.predicted_uncompressed == self.labels

    def record_fields(self) -> dict[str, Any]:
        """The ``data`` and ``outcomes`` entries of a results record."""
        arrays = {"indices": self.indices, "labels": self.labels, "predicted": self.predicted, "predicted_uncompressed": self.predicted_uncompressed}
        return {
            "data": {
                "fingerprint": self.fingerprint,
                "classes": list(self.classes),
                "templates_digest": self.templates_digest,
                "seed": self.seed,
                "n": self.n,
                "indices_digest": indices_digest(self.indices),
            },
            "outcomes": {"format": OUTCOMES_FORMAT, **{name: _pack(arrays[name], dtype) for name, dtype in _ARRAYS.items()}},
        }

    @classmethod
    def from_record(cls, record: EvaluationRecord) -> Outcomes:
        data, packed = record.get("data"), record.get("outcomes")
        if not isinstance(data, dict) or not isinstance(packed, dict):
            raise OutcomesError("the record has no per-image outcomes (it was written by an older pytest-clipcompress); write it again with this version")
        if packed.get("format") != OUTCOMES_FORMAT:
            raise OutcomesError(f"outcomes format {packed.get('format')!r} is not {OUTCOMES_FORMAT}; write the file again with this version")
        try:
            n, classes = int(data["n"]), tuple(str(name) for name in data["classes"])
            arrays = {name: _unpack(packed.get(name), dtype, n, name) for name, dtype in _ARRAYS.items()}
            return cls(classes=classes, fingerprint=str(data["fingerprint"]), templates_digest=str(data["templates_digest"]), seed=int(data["seed"]), **arrays)
        except (KeyError, TypeError, ValueError) as error:
            if isinstance(error, OutcomesError):
                raise
            raise OutcomesError(f"the record's data section is malformed ({type(error).__name__}: {error})") from None

    def flip_confusion(self) -> list[dict[str, Any]]:
        """Images right uncompressed and wrong compressed, counted by (true, predicted) class, most first."""
        flipped = self.hits_uncompressed & ~self.hits
        pairs = Counter(zip(self.labels[flipped].tolist(), self.predicted[flipped].tolist(), strict=True))
        rows = [{"true": self.classes[t], "predicted": self.classes[p], "count": count} for (t, p), count in pairs.items()]
        return sorted(rows, key=lambda row: (-row["count"], row["true"], row["predicted"]))


def check_same_images(reference: Outcomes, candidate: Outcomes, reference_name: str, candidate_name: str) -> None:
    """Raise a clear error unless both evaluated the same images with the same classes and prompts."""
    problems = []
    if reference.fingerprint != candidate.fingerprint:
        problems.append(f"dataset files differ (fingerprint {reference.fingerprint} vs {candidate.fingerprint})")
    if reference.classes != candidate.classes:
        problems.append(f"classes differ ({len(reference.classes)} vs {len(candidate.classes)} classes, or other names or order)")
    if reference.templates_digest != candidate.templates_digest:
        problems.append("prompt templates differ (--clip-templates)")
    if reference.n != candidate.n or not np.array_equal(reference.indices, candidate.indices):
        problems.append(
            f"the image subsets differ (n={reference.n}, seed {reference.seed} vs n={candidate.n}, seed {candidate.seed}; "
            "keep --clip-samples and --clip-seed equal)"
        )
    if problems:
        raise OutcomesError(f"{candidate_name} and {reference_name} are not comparable image by image: " + "; ".join(problems))
