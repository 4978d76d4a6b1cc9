"""Image codecs as in-memory Pillow round trips.

A :class:`Compression` is a codec name plus its parameters. ``apply`` encodes an RGB image to bytes
with Pillow and decodes it back, so the pixels are exactly those of Pillow's own
``save(...)`` / ``open(...)`` round trip with the same arguments.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, features

from .errors import ConfigError
from .values import is_finite, real_number, safe_id

JPEG_SUBSAMPLING = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}


@dataclass(frozen=True)
class ParamSpec:
    """One codec parameter: its kind, allowed range or choices, and its short id prefix."""

    kind: type
    short: str
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()

    def check(self, codec: str, name: str, value: Any) -> Any:
        if self.choices:
            if value not in self.choices:
                raise ConfigError(
                    f"{codec} {name}={value!r} is not supported; choose one of "
                    f"{', '.join(repr(c) for c in self.choices)}"
                )
            return value
        number = real_number(value)  # numpy, Decimal and 0-d tensors too; never bool or str
        if number is None or not is_finite(number):
            raise ConfigError(f"{codec} {name}={value!r} must be a number from {self.low:g} to {self.high:g}")
        value = number
        if self.kind is int and value != int(value):
            raise ConfigError(f"{codec} {name}={value!r} must be a whole number from {self.low:g} to {self.high:g}")
        if not self.low <= value <= self.high:
            raise ConfigError(f"{codec} {name}={value!r} is out of range; use {self.low:g} to {self.high:g}")
        return self.kind(value)


@dataclass(frozen=True)
class CodecSpec:
    """A codec: Pillow format name, feature flag and the parameters it accepts."""

    name: str
    pil_format: str | None
    feature: str | None
    params: Mapping[str, ParamSpec] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    max_side: int | None = None  # the encoder's (or its decoder's) largest width or height, checked before encoding

    def available(self) -> bool:
        return self.feature is None or bool(features.check(self.feature))


CODECS: dict[str, CodecSpec] = {
    spec.name: spec
    for spec in (
        CodecSpec("none", None, None),
        CodecSpec(
            "jpeg",
            "JPEG",
            "jpg",
            {
                "quality": ParamSpec(int, "q", 1, 100),
                "subsampling": ParamSpec(str, "s", choices=tuple(JPEG_SUBSAMPLING)),
            },
            required=("quality",),
            max_side=65500,  # libjpeg's JPEG_MAX_DIMENSION
        ),
        CodecSpec(
            "webp",
            "WEBP",
            "webp",
            {"quality": ParamSpec(int, "q", 0, 100), "method": ParamSpec(int, "m", 0, 6)},
            required=("quality",),
            max_side=16383,  # libwebp's WEBP_MAX_DIMENSION
        ),
        CodecSpec(
            "avif",
            "AVIF",
            "avif",
            {"quality": ParamSpec(int, "q", 0, 100), "speed": ParamSpec(int, "speed", 0, 10)},
            required=("quality",),
            max_side=32768,  # libavif's default decoder dimension limit; its encoder takes up to 65500
        ),
        # JPEG 2000 is rate-driven: ``rate`` is the compression ratio (e.g. 20 means 20:1).
        CodecSpec("jpeg2000", "JPEG2000", "jpg_2000", {"rate": ParamSpec(float, "r", 1, 1000)}, required=("rate",)),
    )
}


@dataclass(frozen=True, order=True)
class Compression:
    """A codec with fixed parameters, e.g. ``Compression("jpeg", quality=75)``.

    Instances are hashable, ordered and have a short readable ``id`` (``jpeg-q75``) used in test ids,
    caches and reports.
    """

    codec: str
    params: tuple[tuple[str, Any], ...] = ()

    def __init__(self, codec: str, params: Mapping[str, Any] | Iterable[tuple[str, Any]] = (), **kwargs: Any):
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
        image.save(buffer, CODECS[self.codec].pil_format, **self._save_kwargs())
        return buffer.getvalue()

    def apply(self, image: Image.Image) -> tuple[Image.Image, int]:
        """Round-trip ``image`` through the codec; returns the decoded RGB image and the encoded size in bytes."""
        if self.is_identity:
            return image, 0
        data = self.encode(image)
        with Image.open(io.BytesIO(data)) as decoded:
            decoded.load()
            return decoded.convert("RGB"), len(data)

    def _save_kwargs(self) -> dict[str, Any]:
        params = dict(self.params)
        if self.codec == "jpeg" and "subsampling" in params:
            params["subsampling"] = JPEG_SUBSAMPLING[params["subsampling"]]
        if self.codec == "jpeg2000":
            return {"quality_mode": "rates", "quality_layers": [params["rate"]], "irreversible": True}
        return params


def _validate(codec: Any, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    if not isinstance(codec, str) or codec.lower() not in CODECS:
        raise ConfigError(f"unknown codec {codec!r}; choose one of {', '.join(CODECS)}")
    spec = CODECS[codec.lower()]
    if not spec.available():
        raise ConfigError(
            f"codec {spec.name!r} is not supported by the installed Pillow ({spec.feature} missing); "
            f"available codecs: {', '.join(available_codecs())}"
        )
    unknown = sorted(set(params) - set(spec.params))
    if unknown:
        allowed = ", ".join(spec.params) or "none"
        raise ConfigError(f"unknown {spec.name} parameter(s) {', '.join(unknown)}; allowed: {allowed}")
    missing = [name for name in spec.required if name not in params]
    if missing:
        raise ConfigError(f"{spec.name} needs {', '.join(missing)}, e.g. compression({spec.name!r}, {missing[0]}=...)")
    return spec.name, {name: spec.params[name].check(spec.name, name, value) for name, value in params.items()}


def available_codecs() -> list[str]:
    """Codec names the installed Pillow can encode and decode."""
    return [name for name, spec in CODECS.items() if spec.available()]


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
    return [Compression(codec, dict(zip(names, combo))) for combo in itertools.product(*value_lists)]
