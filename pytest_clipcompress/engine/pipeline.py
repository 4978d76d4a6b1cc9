"""The image pipeline: dataset images through the codec in worker processes, then the model's preprocessing
on the model's device, in batches, ahead of the model.

Two stages, split where the pixels must be Pillow's and where they only need Pillow's numbers:

1. **The codec stage** (:mod:`.codec_stage`), in torch DataLoader worker processes: decode the
   dataset's image and round-trip it through the codec at its native size with Pillow, for every
   codec of the evaluation at once (the original is decoded once; the uncompressed pass shares it).
   The workers hand over uint8 pixels (32x32x3 for CIFAR-10) through shared memory. One DataLoader
   per dataset keeps its workers for the whole run (``persistent_workers``), so a run starts them
   once per dataset; the workers start from a fork server on Linux (a clean process that imported
   torch once) and by spawning elsewhere, so they need the dataset to be picklable, which the
   built-in datasets are cheaply (an image folder sends paths, a memory-mapped array its file).
2. **The device stage**, in this process: the model's resize, crop, conversion and normalisation
   as one batched :class:`~.device_transform.DeviceTransform` on the model's device, bit-identical
   to its own Pillow transform (a transform it cannot reproduce is applied image by image). On CUDA
   the batches are pinned by DataLoader, copied with ``non_blocking`` on a side stream and
   transformed there, one batch ahead, while the model runs the previous one.

Memory stays bounded by the batch size times the look-ahead: DataLoader keeps at most two jobs per
worker in flight (``prefetch_factor``), plus the batch being transformed and the one on the model.
A worker that dies is found out by DataLoader (never a hang); the image that killed it is then named
by preparing the batch's images again one by one in a fresh worker.
"""

from __future__ import annotations

import contextlib
import pickle
import sys
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..codecs.compression import Compression
from ..codecs.images import reason
from ..data.base import ImageDataset
from ..errors import DatasetError
from .codec_stage import CodecJob, CodecTasks, PreparedBatch

if TYPE_CHECKING:
    import torch

    from .device_transform import DeviceTransform


class PipelineWarning(UserWarning):
    """The image pipeline falls back to a slower way (the run's results are the same)."""


#: DataLoaders (one per dataset, each with its worker processes) kept alive between evaluations.
KEPT_DATASETS = 2
#: Jobs in flight per worker process (DataLoader's ``prefetch_factor``).
PREFETCH = 2
#: Adaptive pipelines start worker processes for a dataset when its codec work left exceeds this
#: (seconds in this process): about what starting them costs on 2 cores, where the fork server imports torch.
WORKERS_PAY_AFTER_SECONDS = 2.0


@dataclass
class ModelBatch:
    """Model inputs for the images ``start`` to ``start + size`` of an evaluation: ``inputs[k]`` and
    ``bits[k]`` (the sum of the images' bits per pixel) are through ``compressions[k]``."""

    start: int
    size: int
    inputs: list[torch.Tensor]
    bits: list[float]


class ModelTransform:
    """A model's preprocessing applied to batches of decoded images on its device.

    The model's :class:`DeviceTransform` when its steps can be reproduced exactly, else its own
    transform, image by image (on Pillow images, as the model's authors run it).
    """

    def __init__(self, preprocess: Callable[[Any], torch.Tensor], plan: DeviceTransform | None) -> None:
        self.preprocess = preprocess
        self.plan = plan

    def __call__(self, pixels: torch.Tensor, shapes: np.ndarray, out: torch.Tensor | None = None) -> torch.Tensor:
        """Images as one flat uint8 buffer on a device (image after image, each (height, width, 3) as in
        ``shapes``) -> the (B, 3, h, w) model input there; ``out`` receives it when given and the right size."""
        import torch

        if self.plan is None:
            from PIL import Image

            own = [self.preprocess(Image.fromarray(image.numpy(), "RGB")) for image in _views(pixels.cpu(), shapes)]
            return torch.stack(own).to(pixels.device)
        if (shapes == shapes[0]).all():  # one size (an array dataset): the buffer is the batch
            height, width = (int(side) for side in shapes[0])
            size = self.plan.output_size(height, width)
            fits = out is not None and tuple(out.shape) == (len(shapes), 3, *size)
            return self.plan(pixels.view(len(shapes), height, width, 3), out=out if fits else None)
        return self._by_size(_views(pixels, shapes), shapes)

    def _by_size(self, images: list[torch.Tensor], shapes: np.ndarray) -> torch.Tensor:
        """Images of several sizes (an image folder): each size a batch of its own, put back in order."""
        import torch

        groups: dict[tuple[int, int], list[int]] = {}
        for position, (height, width) in enumerate(shapes.tolist()):
            groups.setdefault((height, width), []).append(position)
        batch: torch.Tensor | None = None
        for positions in groups.values():
            assert self.plan is not None
            part = self.plan(torch.stack([images[position] for position in positions]))
            if batch is None:
                batch = part.new_empty((len(images), *part.shape[1:]))
            elif part.shape[1:] != batch.shape[1:]:
                raise DatasetError(
                    f"the model's preprocessing turns images of different sizes into inputs of different sizes ({tuple(part.shape[1:])} and "
                    f"{tuple(batch.shape[1:])}), which cannot be batched; give it a crop to one size"
                )
            batch[torch.tensor(positions, device=batch.device)] = part
        assert batch is not None
        return batch


def _views(pixels: torch.Tensor, shapes: np.ndarray) -> list[torch.Tensor]:
    """The (height, width, 3) images of a flat buffer."""
    sizes = (shapes[:, 0] * shapes[:, 1] * 3).tolist()
    return [view.view(int(height), int(width), 3) for view, (height, width) in zip(pixels.split(sizes), shapes.tolist(), strict=True)]


class ImagePipeline:
    """The codec stage's worker processes (per dataset, kept between evaluations) and the device stage.

    ``workers`` processes prepare images ahead (0: in this process), for evaluations of more than two
    batches. ``adaptive``: only where they pay, as on the CPU, where the model runs on the same cores:
    the first batch of a dataset's first evaluation is prepared here, timed, and the workers start
    when the rest would take more than :data:`WORKERS_PAY_AFTER_SECONDS` (their start costs about
    that, once per dataset). Call :meth:`close` at the end of the run; the workers also end with this process.
    """

    def __init__(self, workers: int, device: str, adaptive: bool = False) -> None:
        self.workers = workers
        self.device = device
        self.adaptive = adaptive
        self._loaders: OrderedDict[int, tuple[ImageDataset, Any, _Jobs]] = OrderedDict()
        self._checked: dict[int, tuple[ImageDataset, bool]] = {}  # whether each dataset pickles (kept: ids stay unique)
        self._warned_piped = False

    @contextlib.contextmanager
    def batches(
        self, dataset: ImageDataset, indices: np.ndarray, compressions: tuple[Compression, ...], transform: ModelTransform, batch_size: int
    ) -> Iterator[Iterator[ModelBatch]]:
        """The evaluation's batches, in order: model inputs through each of ``compressions``, on the device.

        A context, as :meth:`codec_batches`. On the CPU a batch's inputs are reused for the next batch.
        """
        with self.codec_batches(dataset, indices, compressions, batch_size) as prepared:
            stage = _device_stage(prepared, transform, self.device)
            try:
                yield stage
            finally:
                stage.close()

    @contextlib.contextmanager
    def codec_batches(
        self, dataset: ImageDataset, indices: np.ndarray, compressions: tuple[Compression, ...], batch_size: int
    ) -> Iterator[Iterator[PreparedBatch]]:
        """The codec stage's batches, in order, as they arrive in this process.

        A context: a worker process that dies is reported as the DatasetError naming the image,
        however the failure reaches this process (DataLoader may raise it from a signal handler,
        anywhere in the loop).
        """
        jobs = [CodecJob.of(indices[start : start + batch_size], compressions) for start in range(0, len(indices), batch_size)]
        ahead: list[PreparedBatch] = []  # prepared here while deciding whether workers pay
        workers = self.workers > 0 and len(jobs) > 2 and self._sendable(dataset)
        if workers and self.adaptive and id(dataset) not in self._loaders:
            started = time.perf_counter()
            ahead.append(CodecTasks(dataset)[jobs[0]])
            workers = (time.perf_counter() - started) * (len(jobs) - 1) > WORKERS_PAY_AFTER_SECONDS
        rest = jobs[len(ahead) :]
        if workers:
            loader, queue = self._loader(dataset)
        else:  # a batch or two, or little codec work: prepared here, without starting processes for it
            queue = _Jobs()
            loader = _data_loader(dataset, queue, 0, pin=False)
        queue.jobs = rest
        handed = [0]  # jobs of the loader handed on
        stage = _prepared(ahead, iter(loader), handed, self._piped)  # the workers start on their first jobs now, while the caller gets ready
        del loader  # only the stage holds the running iterator: a failed loader ends when dropped below
        failure = None
        try:
            yield stage
        except RuntimeError as error:
            if not str(error).startswith("DataLoader worker"):
                raise
            failure = str(error).splitlines()[0]
        finally:
            stage.close()
        if failure is not None:
            self._loaders.pop(id(dataset), None)  # its workers end with it
            raise DatasetError(self._crash_message(dataset, rest[handed[0] : queue.sampled], failure))

    def warm_up(self, images: int | None, batch_size: int) -> None:
        """Let the processes the workers start from get ready in the background while the caller loads a model, when
        evaluations of ``images`` images (None: not known yet) will surely use them (not adaptive, more than two
        batches): on Linux the fork server starts now and imports torch once (about two seconds of one core), instead
        of at the first evaluation, in its way."""
        many = images is None or images > 2 * batch_size
        if self.workers > 0 and not self.adaptive and many and sys.platform.startswith("linux"):
            from multiprocessing import forkserver

            _worker_context()  # its preload list, before the server starts
            forkserver.ensure_running()  # starts the server and returns; the server imports on its own

    def close(self) -> None:
        """End the worker processes (dropping a DataLoader ends its workers)."""
        self._loaders.clear()

    def _piped(self, batch: PreparedBatch) -> None:
        """A batch came through a pipe, shared memory having no room for it: say so once per run (slower, same results)."""
        if self._warned_piped:
            return
        self._warned_piped = True
        with contextlib.suppress(PipelineWarning):  # under -W error: the run still goes on
            warnings.warn(
                f"the codec's worker processes cannot hand a batch of {len(batch.shapes)} images over through shared memory "
                f"({batch.piped}), so they send them through pipes: slower, the same results. Give the machine or container "
                "more shared memory (/dev/shm; docker run --shm-size=2g), or lower --clip-batch-size",
                PipelineWarning,
                stacklevel=2,
            )

    def _sendable(self, dataset: ImageDataset) -> bool:
        """Whether the dataset pickles (each worker receives it so); if not, one warning, and its images are prepared here."""
        key = id(dataset)
        if key not in self._checked:
            try:
                pickle.dumps(dataset)
                problem = None
            except Exception as error:  # pickle raises PicklingError, TypeError, AttributeError... for what it cannot take
                problem = reason(error)
            self._checked[key] = (dataset, problem is None)
            if problem is not None:
                with contextlib.suppress(PipelineWarning):  # under -W error: the run still goes on, in this process
                    warnings.warn(
                        f"dataset {dataset.name} cannot be sent to the codec's worker processes ({problem}); its images are prepared "
                        "in the test's own process: make the dataset picklable to prepare them in parallel",
                        PipelineWarning,
                        stacklevel=2,
                    )
        return self._checked[key][1]

    def _loader(self, dataset: ImageDataset) -> tuple[Any, _Jobs]:
        """The dataset's DataLoader with its worker processes (made at its first evaluation) and its sampler."""
        key = id(dataset)
        if key in self._loaders:
            self._loaders.move_to_end(key)
        else:
            queue = _Jobs()
            self._loaders[key] = (dataset, _data_loader(dataset, queue, self.workers, self.device.startswith("cuda")), queue)
            while len(self._loaders) > KEPT_DATASETS:
                self._loaders.popitem(last=False)
        _, loader, queue = self._loaders[key]
        return loader, queue

    def _crash_message(self, dataset: ImageDataset, in_flight: list[CodecJob], failure: str) -> str:
        """Which image made a worker process die: the images of the jobs in flight again, one per job, in one fresh worker."""
        singles = [CodecJob(job.indices[i : i + 1], job.compressions, job.codecs) for job in in_flight for i in range(len(job.indices))]
        queue = _Jobs()
        queue.jobs = [CodecJob(np.empty(0, dtype=np.int64), ()), *singles]  # first no image: does a fresh worker start at all?
        done = 0
        culprit = None
        try:
            for _ in _data_loader(dataset, queue, 1, pin=False, prefetch=1):
                done += 1  # one worker, one job at a time: the job that never comes back is the one that killed it
        except RuntimeError as error:
            if not str(error).startswith("DataLoader worker"):
                raise
            if done == 0:
                return (
                    f"the codec worker processes died ({failure}), and a fresh one dies before preparing any image: can a fresh Python "
                    f"process import and unpickle {dataset.name}'s dataset (its class importable by name)? Else run with --clip-workers 0"
                )
            culprit = dataset.describe(int(singles[done - 1].indices[0]))
        if culprit is not None:
            tried = ", ".join(compression.id for compression in in_flight[0].compressions)
            return f"a codec worker process died while preparing {culprit} ({tried}; {failure}); check or remove that image"
        which = f"the images from {dataset.describe(int(singles[0].indices[0]))} to {dataset.describe(int(singles[-1].indices[0]))}" if singles else "images"
        return (
            f"a codec worker process died while preparing {which} ({failure}), and none of them made a fresh worker die on its own: "
            "out of memory or shared memory (/dev/shm)? lower --clip-workers or --clip-batch-size"
        )


class _Jobs:
    """The DataLoader's sampler: each pass over the loader yields the jobs of the current evaluation;
    ``sampled`` counts those DataLoader has taken (sent to a worker, or about to be)."""

    def __init__(self) -> None:
        self.jobs: list[CodecJob] = []
        self.sampled = 0

    def __iter__(self) -> Iterator[CodecJob]:
        self.sampled = 0
        for job in self.jobs:
            self.sampled += 1
            yield job


def _prepared(
    ahead: list[PreparedBatch], batches: Iterator[PreparedBatch], handed: list[int], piped: Callable[[PreparedBatch], None]
) -> Generator[PreparedBatch, None, None]:
    """The codec stage's batches, in order (``ahead`` first); a batch that carries an error raises it (it names the image);
    ``piped`` hears of each batch that came through a pipe."""
    for batch in ahead:
        if batch.error is not None:
            raise batch.error
        yield batch
    for batch in batches:
        if batch.error is not None:
            raise batch.error
        if batch.piped is not None:
            piped(batch)
        yield batch
        handed[0] += 1


def _device_stage(prepared: Iterator[PreparedBatch], transform: ModelTransform, device: str) -> Generator[ModelBatch, None, None]:
    if device.startswith("cuda"):
        yield from _cuda_batches(prepared, transform, device)
        return
    buffers: dict[tuple[int, int], torch.Tensor] = {}  # outputs reused: fresh ones cost page faults on the CPU
    start = 0
    for batch in prepared:
        size = len(batch.shapes)
        inputs = []
        for k, pixels in enumerate(batch.pixels):
            out = transform(pixels, batch.shapes, buffers.get((k, size)))
            buffers.setdefault((k, size), out)
            inputs.append(out)
        yield ModelBatch(start, size, inputs, batch.bits)
        start += size


def _identity(batch: PreparedBatch) -> PreparedBatch:
    return batch


def _data_loader(dataset: ImageDataset, queue: _Jobs, workers: int, pin: bool, prefetch: int = PREFETCH) -> Any:
    """A DataLoader running the codec stage: one job per batch (no collation), in order."""
    from torch.utils.data import DataLoader

    return DataLoader(
        CodecTasks(dataset),  # type: ignore[arg-type]  # map-style without torch's base class: DataLoader only indexes it
        batch_size=None,
        sampler=queue,  # yields jobs, which CodecTasks takes as indices
        collate_fn=_identity,  # type: ignore[arg-type]  # without batching, each job's result is the batch
        num_workers=workers,
        persistent_workers=workers > 0,
        prefetch_factor=prefetch if workers > 0 else None,
        pin_memory=pin,
        multiprocessing_context=_worker_context() if workers > 0 else None,
    )


def _worker_context() -> Any:
    """Fork server on Linux (workers fork from a clean process that imported torch once, never from this
    process and its threads), spawn elsewhere (macOS and Windows, as Python itself does)."""
    import multiprocessing

    if sys.platform.startswith("linux"):
        context = multiprocessing.get_context("forkserver")
        # Imported once by the server, before it forks the first worker (ignored once it runs).
        context.set_forkserver_preload(["torch.utils.data", __name__.rpartition(".")[0] + ".codec_stage"])
        return context
    return multiprocessing.get_context("spawn")


def _cuda_batches(prepared: Iterator[PreparedBatch], transform: ModelTransform, device: str) -> Iterator[ModelBatch]:
    """Copy and transform each batch on a side stream while the model runs the previous one on the current stream."""
    import torch

    side = torch.cuda.Stream(device)
    current = torch.cuda.current_stream(device)
    ahead: tuple[ModelBatch, Any] | None = None
    start = 0
    for batch in prepared:
        with torch.cuda.stream(side):
            inputs = [transform(buffer.to(device, non_blocking=True), batch.shapes) for buffer in batch.pixels]
            ready = side.record_event()
        if ahead is not None:
            yield _handed_over(*ahead, current)
        ahead = (ModelBatch(start, len(batch.shapes), inputs, batch.bits), ready)
        start += len(batch.shapes)
    if ahead is not None:
        yield _handed_over(*ahead, current)


def _handed_over(batch: ModelBatch, ready: Any, current: Any) -> ModelBatch:
    current.wait_event(ready)
    for tensor in batch.inputs:
        tensor.record_stream(current)  # made on the side stream: its memory is not reused before the model is done with it
    return batch
