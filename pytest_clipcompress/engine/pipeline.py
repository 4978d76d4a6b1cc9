"""The image pipeline: dataset images through the codec and the model's preprocessing, in batches, ahead
of the model.

The Pillow work (decode, codec round trip, the model's resize and crop) runs per image and the
conversion to normalised floats once per batch in numpy (see :mod:`.preprocess`), ahead in
threads; no torch call runs there, so the threads never start OpenMP teams of their own. Memory
stays bounded by the batch size times the look-ahead.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from ..codecs.compression import Compression
from ..codecs.images import round_trip
from ..data.base import ImageDataset
from .preprocess import BatchPreprocess

if TYPE_CHECKING:
    import torch

    from ..models.load import LoadedModel


def prepared_batches(
    loaded: LoadedModel,
    dataset: ImageDataset,
    indices: np.ndarray,
    compression: Compression,
    plan: BatchPreprocess | None,
    *,
    fast: bool,
    batch_size: int,
    workers: int,
    device: str,
) -> Iterator[tuple[torch.Tensor, float]]:
    """Preprocessed batches (in order) and the bits the codec spent on each.

    ``plan`` is the model's preprocessing split for batching (None: its own transform, image by
    image); ``fast`` resizes on tensors instead (``--clip-preprocess fast``); ``workers`` threads
    prepare batches ahead (0: inline).
    """
    import torch

    pin = device.startswith("cuda")

    def prepare(chunk: np.ndarray) -> tuple[Any, float]:
        images: list[Any] = []  # HWC arrays (fast, batch plan) or the model's own tensors
        bits = 0.0
        for index in chunk:
            image = dataset.image(int(index))
            compressed, size = round_trip(compression, image, dataset.describe(int(index)))
            bits += 8.0 * size / (image.width * image.height)
            if fast:
                images.append(np.asarray(compressed))
            elif plan is not None:
                images.append(plan.pil_array(compressed))
            else:  # a pipeline the plan cannot split: the model's own transform, image by image
                images.append(loaded.preprocess(compressed))
        if fast:
            return images, bits
        return (plan.normalise_arrays(images) if plan is not None else torch.stack(images)), bits

    def finish(prepared: tuple[Any, float]) -> tuple[torch.Tensor, float]:
        images, bits = prepared
        if fast:
            assert plan is not None  # check_fast_supported refuses fast mode without one
            return plan.fast(images, device), bits
        batch = torch.from_numpy(images) if plan is not None else images
        return (batch.pin_memory() if pin else batch), bits

    chunks = [indices[start : start + batch_size] for start in range(0, len(indices), batch_size)]
    if workers == 0:
        for chunk in chunks:
            yield finish(prepare(chunk))
        return
    # A bounded look-ahead keeps at most workers + 1 batches in memory.
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="clipcompress") as pool:
        pending: deque = deque()
        chunk_iter = iter(chunks)
        for chunk in chunk_iter:
            pending.append(pool.submit(prepare, chunk))
            if len(pending) > workers:
                break
        while pending:
            prepared = pending.popleft().result()
            next_chunk = next(chunk_iter, None)
            if next_chunk is not None:
                pending.append(pool.submit(prepare, next_chunk))
            yield finish(prepared)
