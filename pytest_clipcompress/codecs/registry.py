"""The codec registry: each codec's Pillow format, its parameters (kind, range or choices, which way is
milder, chart label, Pillow keyword) and its decoder. One entry per codec in :data:`CODECS`; a new
codec is one :func:`register_codec` call (e.g. in a ``conftest.py``) and the markers, strategies,
the breaking-point search and the charts pick it up. Pure data: no Pillow import until a codec's
availability is asked.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import ConfigError
from ..inputs import is_finite, real_number

# Pillow's ``subsampling`` codes, mildest first (4:4:4 keeps all colour detail).
JPEG_SUBSAMPLING = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}


@dataclass(frozen=True)
class ParamSpec:
    """One codec parameter: its kind, range or choices, which way is milder, and how Pillow takes it.

    ``milder`` says which direction compresses less: ``"higher"`` (quality), ``"lower"`` (a
    compression ratio), or ``None`` for parameters that trade speed, not fidelity (WebP ``method``).
    ``choices`` are listed mildest first. ``label`` names the parameter on chart axes (with its unit);
    ``pillow`` is the ``Image.save`` keyword it becomes and ``to_pillow`` converts the value for it.
    """

    kind: type
    short: str
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()
    milder: Literal["higher", "lower"] | None = None
    label: str = ""
    pillow: str | None = None
    to_pillow: Callable[[Any], Any] | None = None

    def __post_init__(self) -> None:
        if not self.choices and (self.low is None or self.high is None or self.low > self.high):
            raise ConfigError(f"parameter {self.short!r} needs choices, or a range low <= high")

    @property
    def bounds(self) -> tuple[float, float]:
        """``(low, high)`` of a numeric parameter."""
        assert self.low is not None and self.high is not None  # __post_init__ ensures it for numeric parameters
        return self.low, self.high

    @property
    def searchable(self) -> bool:
        """A numeric parameter with a milder direction: bisection and mild-first strategies apply."""
        return not self.choices and self.milder is not None

    def check(self, codec: str, name: str, value: Any) -> Any:
        if self.choices:
            if value not in self.choices:
                raise ConfigError(f"{codec} {name}={value!r} is not supported; choose one of {', '.join(repr(c) for c in self.choices)}")
            return value
        low, high = self.bounds
        number = real_number(value)  # numpy, Decimal and 0-d tensors too; never bool or str
        if number is None or not is_finite(number):
            raise ConfigError(f"{codec} {name}={value!r} must be a number from {low:g} to {high:g}")
        value = number
        if self.kind is int and value != int(value):
            raise ConfigError(f"{codec} {name}={value!r} must be a whole number from {low:g} to {high:g}")
        if not low <= value <= high:
            raise ConfigError(f"{codec} {name}={value!r} is out of range; use {low:g} to {high:g}")
        return self.kind(value)

    def describe(self) -> str:
        """``1-100`` or ``'4:4:4'|'4:2:0'``, for help texts."""
        if self.choices:
            return "|".join(repr(choice) for choice in self.choices)
        low, high = self.bounds
        return f"{low:g}-{high:g}"


@dataclass(frozen=True)
class CodecSpec:
    """A codec: Pillow format name, feature flag, the parameters it accepts and its fixed save options.

    ``primary`` is the parameter charts draw against (default: the first required one);
    ``label`` is the codec's display name. Register new codecs with :func:`register_codec`.
    """

    name: str
    pil_format: str | None
    feature: str | None
    params: Mapping[str, ParamSpec] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    label: str = ""
    primary: str | None = None
    save_options: Mapping[str, Any] = field(default_factory=dict)
    max_side: int | None = None  # the encoder's (or its decoder's) largest width or height, checked before encoding
    # Pillow's decoder name and arguments for this codec's RGB output, called straight through
    # ``Image.frombytes``: the decoder and arguments ``Image.open``'s file parser would pass, without
    # the parser (for a 32 px JPEG the parser costs more than the decode itself).
    raw_decoder: tuple[str, tuple[str, ...]] | None = None

    def available(self) -> bool:
        if self.feature is None:
            return True
        from PIL import features

        return bool(features.check(self.feature))

    @property
    def primary_param(self) -> str | None:
        return self.primary or next(iter(self.required), None)

    def axis_label(self, param: str) -> str:
        """The chart axis title for ``param``, e.g. ``JPEG quality (harsher →)``."""
        return f"{self.label or self.name} {self.params[param].label or param} (harsher \u2192)"

    def save_kwargs(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Pillow ``Image.save`` keywords for these (validated) parameter values."""
        kwargs = dict(self.save_options)
        for name, value in params.items():
            spec = self.params[name]
            kwargs[spec.pillow or name] = spec.to_pillow(value) if spec.to_pillow else value
        return kwargs


def _layers(rate: float) -> list[float]:
    # JPEG 2000 is rate-driven: one quality layer at the requested compression ratio.
    return [rate]


CODECS: dict[str, CodecSpec] = {}
_BUILTIN_CODECS: set[str] = set()


def register_codec(spec: CodecSpec) -> CodecSpec:
    """Add a codec to the registry (e.g. from a ``conftest.py``); markers, strategies, the breaking-point
    search and the charts pick it up. Registering a name again replaces the entry (a re-imported
    conftest does that), except for the built-in codecs."""
    if not isinstance(spec, CodecSpec):
        raise ConfigError(f"register_codec takes a CodecSpec, not {type(spec).__name__}")
    name = spec.name.lower()
    if spec.name != name or not name.replace("_", "").isalnum():
        raise ConfigError(f"codec name {spec.name!r} must be lower-case letters, digits or underscores")
    if name in _BUILTIN_CODECS and CODECS[name] != spec:
        raise ConfigError(f"codec {name!r} is built in; give yours another name")
    unknown = [param for param in (*spec.required, *filter(None, [spec.primary])) if param not in spec.params]
    if unknown:
        raise ConfigError(f"codec {name!r} names parameter(s) {', '.join(unknown)} that are not in its params")
    decoder = spec.raw_decoder
    if decoder is not None and not (
        isinstance(decoder, tuple)
        and len(decoder) == 2
        and isinstance(decoder[0], str)
        and isinstance(decoder[1], tuple)
        and all(isinstance(a, str) for a in decoder[1])
    ):
        raise ConfigError(
            f"codec {name!r} has raw_decoder={decoder!r}; give (decoder name, (arguments, ...)) as Image.open passes them, e.g. "
            "('jpeg', ('RGB', '')), or leave it None to decode with Image.open"
        )
    CODECS[name] = spec
    return spec


for _spec in (
    CodecSpec("none", None, None),
    CodecSpec(
        "jpeg",
        "JPEG",
        "jpg",
        {
            "quality": ParamSpec(int, "q", 1, 100, milder="higher", label="quality"),
            "subsampling": ParamSpec(str, "s", choices=tuple(JPEG_SUBSAMPLING), to_pillow=JPEG_SUBSAMPLING.__getitem__),
        },
        required=("quality",),
        label="JPEG",
        max_side=65500,  # libjpeg's JPEG_MAX_DIMENSION
        raw_decoder=("jpeg", ("RGB", "")),  # JpegImagePlugin's tile for a 3-component (YCbCr) JPEG: rawmode RGB, no jpegmode
    ),
    CodecSpec(
        "webp",
        "WEBP",
        "webp",
        {"quality": ParamSpec(int, "q", 0, 100, milder="higher", label="quality"), "method": ParamSpec(int, "m", 0, 6)},
        required=("quality",),
        label="WebP",
        max_side=16383,  # libwebp's WEBP_MAX_DIMENSION
    ),
    CodecSpec(
        "avif",
        "AVIF",
        "avif",
        {"quality": ParamSpec(int, "q", 0, 100, milder="higher", label="quality"), "speed": ParamSpec(int, "speed", 0, 10)},
        required=("quality",),
        label="AVIF",
        max_side=32768,  # libavif's default decoder dimension limit; its encoder takes up to 65500
    ),
    # ``rate`` is the compression ratio (20 means 20:1): 10:1 is milder than 100:1.
    CodecSpec(
        "jpeg2000",
        "JPEG2000",
        "jpg_2000",
        {"rate": ParamSpec(float, "r", 1, 1000, milder="lower", label="compression ratio", pillow="quality_layers", to_pillow=_layers)},
        required=("rate",),
        label="JPEG 2000",
        save_options={"quality_mode": "rates", "irreversible": True},
    ),
):
    register_codec(_spec)
_BUILTIN_CODECS.update(CODECS)


def searchable_params() -> list[tuple[str, str]]:
    """``(codec, parameter)`` pairs with a milder direction, in registry order."""
    return [(codec, name) for codec, spec in CODECS.items() for name, param in spec.params.items() if param.searchable]


def milder_when_higher(codec: str, param: str | None) -> bool:
    """Whether a higher ``param`` of ``codec`` is milder (quality): charts invert such axes, harsher to the right."""
    spec = CODECS.get(codec)
    return spec is not None and param is not None and param in spec.params and spec.params[param].milder == "higher"


def marker_help() -> str:
    """The ``compression`` marker's help line, from the registry."""
    codecs = ", ".join(
        f"{name}({', '.join(f'{param} {spec.describe()}' for param, spec in codec.params.items())})" if codec.params else name for name, codec in CODECS.items()
    )
    return (
        "compression(codec, **params): evaluate under a codec; list-valued params expand into one case per value "
        f"(cartesian product, stable order). Codecs: {codecs}."
    )


def available_codecs() -> list[str]:
    """Codec names the installed Pillow can encode and decode."""
    return [name for name, spec in CODECS.items() if spec.available()]
