"""Official archives: where a dataset's files come from, their checksums, and the one download path
(torchvision's utilities, one download per machine however many xdist workers ask)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from ..errors import DatasetError, DatasetMissingError


@dataclass(frozen=True)
class Download:
    """An official archive and what it unpacks to."""

    url: str
    filename: str
    md5: str
    folder: str
    files: tuple[str, ...]  # test-split files the loader reads
    checksums: dict[str, str]  # md5 of the official full-size test files


def md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_official(path: Path, download: Download, full_size: bool) -> None:
    """A full-size test file must have the official checksum; smaller well-formed subsets pass."""
    expected = download.checksums[path.name]
    if full_size and md5(path) != expected:
        raise DatasetError(
            f"{path} has the size of the official file but the wrong checksum (expected md5 {expected}); it is corrupt: delete {path.parent} and download again"
        )


def _missing_files(root: Path, download: Download) -> list[Path]:
    folder = root / download.folder
    return [folder / name for name in download.files if not (folder / name).is_file()]


def ensure_downloaded(root: Path, download: Download, name: str, offline: bool) -> Path:
    """The folder holding the dataset's files under ``root``, downloaded first unless ``offline``."""
    folder = root / download.folder
    if not _missing_files(root, download):
        return folder
    if offline:
        missing = ", ".join(str(p) for p in _missing_files(root, download))
        raise DatasetMissingError(
            f"{name} is not in {root} (missing: {missing}). Download {download.url} (md5 {download.md5}) and unpack it "
            f"there, point --clip-data-root (or $CLIPCOMPRESS_DATA) at the folder that holds {download.folder}/, "
            f"or run without --clip-offline to download it automatically"
        )
    from filelock import FileLock
    from torchvision.datasets.utils import download_and_extract_archive

    root.mkdir(parents=True, exist_ok=True)
    # One download per machine even with several xdist workers; the others wait, then find the files.
    with FileLock(str(root / f".{name}.lock")):
        if _missing_files(root, download):
            try:
                download_and_extract_archive(download.url, str(root), filename=download.filename, md5=download.md5, remove_finished=True)
            except Exception as error:  # network errors come in many types; all mean the same to the user
                partial = root / download.filename
                partial.unlink(missing_ok=True)
                raise DatasetError(
                    f"downloading {name} from {download.url} failed ({error}); check the network, or download it yourself and unpack it under {root}"
                ) from None
    if _missing_files(root, download):
        raise DatasetError(f"the {name} archive did not contain the expected files under {folder}")
    return folder
