"""The codec stage: dataset images through the codec at their native size, in worker processes.

This is the part of an evaluation whose pixels must be Pillow's: the dataset's image (decoded from
its file, or taken from its array) and the codec's round trip (encode, decode), whose bytes are what
the evaluation measures. A :class:`CodecJob` names the images of one batch and the codecs each goes
through; the original is decoded once for all of them (the uncompressed pass shares it). What comes
back is a :class:`PreparedBatch`: per codec, the images' uint8 RGB pixels in one flat buffer (a
torch tensor, so DataLoader hands it over through shared memory) with each image's height and
width, and the bits the codec spent. Resizing, cropping and normalising happen after, on the model's
device (:mod:`.device_transform`).

:class:`CodecTasks` is what torch's DataLoader runs in its worker processes (``tasks[job]``); it
holds the dataset, so the dataset is sent to each worker once, when the worker starts (an image
folder sends its paths; a memory-mapped array its file name). Nothing here raises for a bad image:
the batch carries the error, naming the image, and the main process raises it, so a worker never
dies of a user's file and the message is the plugin's own one line.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ..codecs.compression import Compression
from ..codecs.images import reason, round_trip, to_rgb
from ..codecs.registry import CODECS, CodecSpec, register_codec
from ..data.base import ImageDataset
from ..errors import ClipCompressError, DatasetError

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class CodecJob:
    """One batch of the codec stage: the dataset's images at ``indices``, each through every codec of ``compressions``.

    ``codecs`` carries the registry entries of the codecs used, so that a codec registered in a
    ``conftest.py`` is known in a worker process too.
    """

    indices: np.ndarray
    compressions: tuple[Compression, ...]
    codecs: tuple[CodecSpec, ...] = field(default=())

    @classmethod
    def of(cls, indices: np.ndarray, compressions: tuple[Compression, ...]) -> CodecJob:
        names = dict.fromkeys(compression.codec for compression in compressions)
        return cls(indices, compressions, tuple(CODECS[name] for name in names))


@dataclass
class PreparedBatch:
    """The codec stage's output for one job.

    ``pixels[k]`` holds the images through ``compressions[k]`` as one flat uint8 buffer, image after
    image, each (height, width, 3) as given by ``shapes``; ``bits[k]`` is the sum over the images of
    the bits per pixel the codec spent. ``error`` is set instead when an image could not be prepared.
    """

    shapes: np.ndarray  # (images, 2): height, width
    pixels: list[torch.Tensor]
    bits: list[float]
    error: ClipCompressError | None = None
    #: Why the pixels travel through the worker's pipe rather than shared memory (no room in /dev/shm), or None.
    piped: str | None = None

    def pin_memory(self) -> PreparedBatch:
        """Page-locked copies of the buffers (DataLoader's ``pin_memory`` calls this), for asynchronous copies to a GPU."""
        return replace(self, pixels=[buffer.pin_memory() for buffer in self.pixels])

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if self.piped is not None:
            # As arrays: torch would try to put tensors in shared memory again, and fail unseen in the
            # queue's feeder thread (the batch lost, the evaluation waiting for it for ever).
            state["pixels"] = [buffer.numpy() for buffer in self.pixels]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if state.get("piped") is not None:
            import torch

            state = {**state, "pixels": [torch.from_numpy(buffer) for buffer in state["pixels"]]}
        self.__dict__.update(state)


class CodecTasks:
    """The codec stage as a map-style dataset for torch's DataLoader: ``tasks[job]`` is the job's PreparedBatch."""

    def __init__(self, dataset: ImageDataset) -> None:
        self.dataset = dataset

    def __getitem__(self, job: CodecJob) -> PreparedBatch:
        try:
            return prepare(self.dataset, job)
        except ClipCompressError as error:
            return PreparedBatch(np.empty((0, 2), dtype=np.int64), [], [], error)


def prepare(dataset: ImageDataset, job: CodecJob) -> PreparedBatch:
    """Decode each image of the job once and round-trip it through each codec; a failure names the image."""
    for spec in job.codecs:
        if spec.name not in CODECS:  # a codec registered in the main process only (a conftest.py)
            register_codec(spec)
    arrays: list[list[np.ndarray]] = [[] for _ in job.compressions]
    bits = [0.0 for _ in job.compressions]
    shapes = np.empty((len(job.indices), 2), dtype=np.int64)
    for position, index in enumerate(job.indices.tolist()):
        name = dataset.describe(index)
        try:
            image = dataset.image(index)
            if image.mode != "RGB":  # the datasets hand over RGB; anything else is converted as the decoder does
                image = to_rgb(image, name)
            shapes[position] = image.height, image.width
            for k, compression in enumerate(job.compressions):
                compressed, size = round_trip(compression, image, name)
                if compressed.size != image.size:
                    raise DatasetError(
                        f"codec {compression.id} turned {name} ({image.width}x{image.height}) into a {compressed.width}x{compressed.height} image; "
                        "a codec must keep the image's size"
                    )
                bits[k] += 8.0 * size / (image.width * image.height)
                arrays[k].append(np.asarray(compressed).reshape(-1))
        except ClipCompressError:
            raise
        except Exception as error:  # a dataset's or a library's bug: still one line, naming the image
            raise DatasetError(f"cannot prepare {name} ({reason(error)})") from None
    from torch.utils.data import get_worker_info

    shared = get_worker_info() is not None  # in a worker process: handed over through shared memory
    piped = None
    pixels = []
    for flat in arrays:
        buffer, problem = _buffer(sum(image.size for image in flat), shared and piped is None)
        piped = piped or problem
        if flat:
            np.concatenate(flat, out=buffer.numpy())
        pixels.append(buffer)
    return PreparedBatch(shapes, pixels, bits, piped=piped)


def _buffer(size: int, shared: bool) -> tuple[torch.Tensor, str | None]:
    """A uint8 buffer of ``size`` bytes; in shared memory when ``shared``, made there at once, so that DataLoader hands
    it over without copying it there first (a megabyte per 500-px photograph). The reason when shared memory has no room
    (a container's /dev/shm is 64 MiB by default): then an ordinary buffer, for the pipe."""
    import torch

    buffer = torch.empty(size, dtype=torch.uint8)
    if not shared:
        return buffer, None
    try:
        buffer.share_memory_()
    except RuntimeError as error:  # torch: "unable to allocate shared memory(shm) for file ...: No space left on device"
        return buffer, reason(error)
    return buffer, None
