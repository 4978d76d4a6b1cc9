"""A codec with fixed parameters (:class:`Compression`) and its in-memory Pillow round trip.

``apply`` encodes an RGB image to bytes with Pillow and decodes it back, so the pixels are exactly
those of Pillow's own ``save(...)`` / ``open(...)`` round trip with the same arguments. A codec may
name the Pillow decoder ``open`` would call (``CodecSpec.raw_decoder``, JPEG's): then that decoder is
called with the same arguments, without the file parser.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..inputs import safe_id
from .registry import CODECS, available_codecs

if TYPE_CHECKING:
    from PIL import Image


@dataclass(frozen=True, order=True)
class Compression:
    """A codec with fixed parameters, e.g. ``Compression("jpeg", quality=75)``.

    Instances are hashable, ordered and have a short readable ``id`` (``jpeg-q75``) used in test ids,
    caches and reports.
    """

    codec: str
    params: tuple[tuple[str, Any], ...] = ()

    def __init__(self, codec: str, params: Mapping[str, Any] | Iterable[tuple[str, Any]] = (), **kwargs: Any) -> None:
        # A parameter given as None means the codec's default, exactly as if it were left out.
        merged = {name: value for name, value in {**dict(params), **kwargs}.items() if value is not None}
        codec, checked = _validate(codec, merged)
        object.__setattr__(self, "codec", codec)
        object.__setattr__(self, "params", tuple(sorted(checked.items())))

    @property
    def id(self) -> str:
        spec = CODECS[self.codec]
        parts = [self.codec]
        for name, value in self.params:
            text = value.replace(":", "") if isinstance(value, str) else f"{value:g}"
            parts.append(f"{spec.params[name].short}{text}")
        return safe_id("-".join(parts))

    @property
    def is_identity(self) -> bool:
        return self.codec == "none"

    def param(self, name: str, default: Any = None) -> Any:
        return dict(self.params).get(name, default)

    def to_dict(self) -> dict[str, Any]:
        return {"codec": self.codec, **dict(self.params)}

    def __str__(self) -> str:
        return self.id

    def __repr__(self) -> str:
        # Hypothesis prints falsifying examples with repr: make it read like the code that builds it.
        arguments = "".join(f", {name}={value!r}" for name, value in self.params)
        return f"Compression({self.codec!r}{arguments})"

    def encode(self, image: Image.Image) -> bytes:
        """Encode an RGB image to this codec's bytes (empty for ``none``)."""
        if self.is_identity:
            return b""
        buffer = io.BytesIO()
        spec = CODECS[self.codec]
        image.save(buffer, spec.pil_format, **spec.save_kwargs(dict(self.params)))
        return buffer.getvalue()

    def apply(self, image: Image.Image) -> tuple[Image.Image, int]:
        """Round-trip ``image`` through the codec; returns the decoded RGB image and the encoded size in bytes."""
        if self.is_identity:
            return image, 0
        from PIL import Image

        data = self.encode(image)
        raw_decoder = CODECS[self.codec].raw_decoder
        if raw_decoder is not None and image.mode == "RGB":  # an RGB image encodes to 3 components, decoded as RGB
            name, arguments = raw_decoder
            return Image.frombytes("RGB", image.size, data, name, *arguments), len(data)
        with Image.open(io.BytesIO(data)) as decoded:
            decoded.load()
            return decoded.convert("RGB"), len(data)


def _validate(codec: Any, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    if not isinstance(codec, str) or codec.lower() not in CODECS:
        raise ConfigError(f"unknown codec {codec!r}; choose one of {', '.join(CODECS)}")
    spec = CODECS[codec.lower()]
    if not spec.available():
        raise ConfigError(
            f"codec {spec.name!r} is not supported by the installed Pillow ({spec.feature} missing); available codecs: {', '.join(available_codecs())}"
        )
    unknown = sorted(set(params) - set(spec.params))
    if unknown:
        allowed = ", ".join(spec.params) or "none"
        raise ConfigError(f"unknown {spec.name} parameter(s) {', '.join(unknown)}; allowed: {allowed}")
    missing = [name for name in spec.required if name not in params]
    if missing:
        raise ConfigError(f"{spec.name} needs {', '.join(missing)}, e.g. compression({spec.name!r}, {missing[0]}=...)")
    return spec.name, {name: spec.params[name].check(spec.name, name, value) for name, value in params.items()}


def expand(codec: str, params: Mapping[str, Any]) -> list[Compression]:
    """Expand list-valued parameters into one :class:`Compression` per combination.

    The cartesian product keeps the order in which the values were written (first parameter
    varies slowest), so test ids come out in a stable, readable order.
    """
    names = list(params)
    value_lists = []
    for name in names:
        value = params[name]
        values = list(value) if isinstance(value, (list, tuple, range)) else [value]
        if not values:
            raise ConfigError(f"{codec} {name}=[] is empty; give at least one value")
        value_lists.append(values)
    return [Compression(codec, dict(zip(names, combo, strict=True))) for combo in itertools.product(*value_lists)]
