"""Codecs: the registry (parameters, which way is milder, Pillow arguments), :class:`Compression` and
its Pillow round trip, and the one guarded way images are decoded (:mod:`.images`).

The names below are the extension API (docs/extending.md); knows no model, dataset or test.
"""

from .compression import Compression, expand
from .registry import CODECS, CodecSpec, ParamSpec, available_codecs, register_codec

__all__ = ["CODECS", "CodecSpec", "Compression", "ParamSpec", "available_codecs", "expand", "register_codec"]
