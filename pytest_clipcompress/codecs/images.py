"""The one way images come in and go through a codec: checked, decoded to RGB, or a DatasetError.

Image files are untrusted input. Every decode goes through :func:`open_image` (or :func:`check_image`
when a folder is scanned): only the formats the plugin lists are opened (no EPS, which would run
Ghostscript), the pixel count is checked against the run's limit before any pixel is decoded, and
whatever a decoder raises becomes ``cannot decode <path> (<reason>)``. :func:`round_trip` does the
same for a codec round trip, checking the codec's size limit before encoding.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from ..errors import DatasetError
from ..inputs import DEFAULT_MAX_IMAGE_PIXELS, display_text

if TYPE_CHECKING:
    from .compression import Compression

# Pillow format names for the extensions image folders may hold (data.folder.IMAGE_EXTENSIONS).
DECODABLE_FORMATS = ("JPEG", "PNG", "BMP", "GIF", "WEBP", "TIFF", "PPM", "AVIF", "JPEG2000")


def open_image(source: Path | str | bytes, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS, name: str | None = None) -> Image.Image:
    """Decode an image file (or its bytes) to 8-bit RGB; any failure is a DatasetError naming the file."""
    shown = display_text(name if name is not None else "image bytes" if isinstance(source, bytes) else str(source))
    try:
        with _open(source, max_pixels) as image:
            _check_pixels(image, shown, max_pixels)
            image.load()
            return to_rgb(image, shown)
    except DatasetError:
        raise
    # Decoders raise OSError, ValueError, SyntaxError, struct.error, EOFError, IndexError, MemoryError...
    # for damaged or hostile files; each means only that this file cannot be decoded.
    except Exception as error:
        raise DatasetError(f"cannot decode {shown} ({reason(error)}); replace or remove the file") from None


def check_image(path: Path, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> str | None:
    """Why ``path`` is not a usable image (format, size, structure), or None; cheap: no pixels are decoded."""
    try:
        with _open(path, max_pixels) as image:
            _check_pixels(image, display_text(str(path)), max_pixels)
            image.verify()
    except DatasetError as error:
        return str(error)
    except Exception as error:  # as in open_image: anything a decoder raises
        return f"cannot decode {display_text(str(path))} ({reason(error)})"
    return None


def round_trip(compression: Compression, image: Image.Image, name: str) -> tuple[Image.Image, int]:
    """``compression.apply(image)``, with the codec's size limit checked first and codec errors made clean."""
    from .registry import CODECS

    limit = CODECS[compression.codec].max_side
    if limit is not None and max(image.size) > limit:
        raise DatasetError(
            f"cannot compress {name} with {compression.id} ({compression.codec} images are at most {limit} px per side; "
            f"this one is {image.width}x{image.height}); resize it or choose another codec"
        )
    try:
        return compression.apply(image)
    except Exception as error:  # encoders raise OSError, ValueError, RuntimeError... for images they cannot take
        raise DatasetError(f"cannot compress {name} with {compression.id} ({reason(error)})") from None


def reason(error: BaseException) -> str:
    """One short line about ``error`` for a message."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return display_text(f"{type(error).__name__}: {text}" if text else type(error).__name__)[:200]


def _open(source: Path | str | bytes, max_pixels: int) -> Image.Image:
    if Image.MAX_IMAGE_PIXELS is not None and max_pixels > Image.MAX_IMAGE_PIXELS:
        # Pillow refuses large images in Image.open, before we see the size, by a process-wide limit:
        # raise it (never lower it) when the user asked for a higher limit with --clip-max-image-pixels.
        Image.MAX_IMAGE_PIXELS = max_pixels
    return Image.open(io.BytesIO(source) if isinstance(source, bytes) else source, formats=DECODABLE_FORMATS)


def _check_pixels(image: Image.Image, shown: str, max_pixels: int) -> None:
    width, height = image.size
    if width < 1 or height < 1:
        raise DatasetError(f"cannot decode {shown} (it claims a size of {width}x{height}); replace or remove the file")
    if width * height > max_pixels:
        raise DatasetError(
            f"cannot decode {shown} (it claims {width}x{height} = {width * height} pixels, above the limit of "
            f"{max_pixels}: a decompression bomb?); if the image is genuine, raise --clip-max-image-pixels"
        )


def to_rgb(image: Image.Image, path: Path | str = "image") -> Image.Image:
    """Convert any common mode to 8-bit RGB: alpha over white, palettes expanded, 16-bit scaled."""
    if image.mode == "RGB":
        return image.copy() if image.readonly else image.convert("RGB")
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0, posinf=65535.0, neginf=0.0)
        peak = 65535.0 if image.mode.startswith("I") else max(float(values.max()), 1.0)
        gray = np.clip(np.rint(values / peak * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    try:
        return image.convert("RGB")
    except (ValueError, OSError) as error:
        raise DatasetError(f"cannot convert {display_text(str(path))} (mode {image.mode}) to RGB: {error}; save it as 8-bit RGB or remove it") from None
