"""A user's image folder (``imagefolder:PATH``): one sub-folder per class, the folder names are the
class names; every file is checked (format, size, structure) before the run uses it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..codecs.images import check_image, open_image
from ..errors import DatasetError
from ..inputs import DEFAULT_MAX_IMAGE_PIXELS, display_text
from .base import DatasetSpec, ImageDataset, formats_of, hash_files

#: The single prompt used for a user's classes (CLIP's generic template).
GENERIC_TEMPLATES = ("a photo of a {}.",)


class ImageFolderDataset(ImageDataset):
    """Image files under ``root`` (``files`` are their relative paths), decoded when asked for.

    Only names and labels are held, as plain strings and one array: a 50,000-image split costs a
    few megabytes and pickles cheaply to worker processes; the pixels are read per image.
    """

    def __init__(
        self,
        name: str,
        classes: tuple[str, ...],
        root: Path,
        files: tuple[str, ...],
        labels: np.ndarray,
        fingerprint: str,
        templates: tuple[str, ...] = GENERIC_TEMPLATES,
        max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    ) -> None:
        super().__init__(name, classes, labels, fingerprint, templates)
        self.root = root
        self.files = files
        self.max_pixels = max_pixels
        self.source_format = formats_of({Path(name).suffix for name in files})

    def image(self, index: int) -> Image.Image:
        return open_image(self.root / self.files[index], self.max_pixels)

    def describe(self, index: int) -> str:
        return display_text(str(self.root / self.files[index]))


IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".avif", ".jp2"}


def load_image_folder(root: Path, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> ImageFolderDataset:
    try:
        return _load_image_folder(root, max_pixels)
    except OSError as error:  # a folder or file that cannot be listed or read (permissions, I/O errors)
        raise DatasetError(
            f"cannot read image folder {display_text(str(root))} ({type(error).__name__}: {display_text(str(error))}); check its permissions"
        ) from None


def _load_image_folder(root: Path, max_pixels: int) -> ImageFolderDataset:
    if not root.is_dir():
        raise DatasetError(f"image folder {root} does not exist; give imagefolder:PATH with one sub-folder per class")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise DatasetError(f"image folder {root} has no class sub-folders; lay it out as {root}/<class name>/<image>")
    paths: list[Path] = []
    labels: list[int] = []
    unreadable: list[str] = []
    for label, class_dir in enumerate(class_dirs):
        files = sorted(p for p in class_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise DatasetError(f"class folder {class_dir} has no images; add images or remove the folder")
        for path in files:
            problem = check_image(path, max_pixels)
            if problem:
                unreadable.append(problem)
                continue
            paths.append(path)
            labels.append(label)
    if unreadable:
        shown = "; ".join(unreadable[:5]) + (f"; and {len(unreadable) - 5} more" if len(unreadable) > 5 else "")
        raise DatasetError(f"{len(unreadable)} file(s) in {display_text(str(root))} are not readable images: {shown}; fix or remove them")
    # Folder names as the OS gives them: undecodable bytes are shown as \xNN, never passed on raw.
    classes = tuple(display_text(d.name).replace("_", " ") for d in class_dirs)
    fingerprint = hash_files(paths, relative_to=root)
    relative = tuple(str(path.relative_to(root)) for path in paths)
    return ImageFolderDataset(f"imagefolder:{root}", classes, root, relative, np.asarray(labels, dtype=np.int64), fingerprint, max_pixels=max_pixels)


def _folder_path(argument: str) -> str:
    return str(Path(argument).expanduser())


SPEC = DatasetSpec(
    "imagefolder", lambda source: load_image_folder(Path(source.argument or ""), source.max_image_pixels), argument="PATH", canonical=_folder_path
)
