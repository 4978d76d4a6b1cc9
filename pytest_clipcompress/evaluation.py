"""Zero-shot evaluation under compression, with every expensive step done once per run.

:class:`Evaluator` owns the run's models, datasets, text features and results. Images stream
through a thread pool (decode, compress, preprocess) while the model runs, so memory stays flat
and the codec overlaps the forward passes.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from . import __version__
from .cache import LogitsCache
from .compression import Compression
from .datasets import ImageDataset, load_dataset, validate_dataset_name
from .errors import ClipCompressError
from .images import round_trip
from .models import LoadedModel, ModelSpec, class_text_features, load_model, register_model_configs, resolve_device, zero_shot_classifier
from .outcomes import Outcomes, templates_digest
from .preprocess import BatchPreprocess, batch_preprocess, check_fast_supported
from .records import CheckRecord, EvalKey, EvaluationRecord, eval_key, evaluation_record
from .settings import Settings
from .stats import PairedDifference, wilson_interval
from .templates import resolve_templates

if TYPE_CHECKING:
    import torch

NO_COMPRESSION = Compression("none")
ProgressCallback = Callable[[str, int, int, float], None]


@dataclass
class EvalResult:
    """Zero-shot accuracy of one model on one dataset subset under one compression."""

    model: str
    pretrained: str
    dataset: str
    compression: Compression
    classes: tuple[str, ...]
    indices: np.ndarray
    labels: np.ndarray
    logits: np.ndarray
    baseline_logits: np.ndarray
    bits_per_pixel: float
    templates: str
    seed: int
    min_accuracy_default: float | None = None
    max_drop_default: float | None = None
    checks: list[CheckRecord] = field(default_factory=list)
    activation: str = "GELU"  # the built model's activation, QuickGELU for OpenAI's weights
    role: str = ""  # the --clip-model id (role, else model name): the comparison key
    fingerprint: str = ""
    templates_digest: str = ""
    stored_baseline: Any = field(default=None, repr=False)  # the --clip-baseline file (gate.BaselineFile), if any

    @property
    def n(self) -> int:
        return len(self.labels)

    @property
    def model_id(self) -> str:
        """The id the evaluator knows this model by (its role, else its name)."""
        return self.role or self.model

    @property
    def predictions(self) -> np.ndarray:
        return self.logits.argmax(axis=1)

    @property
    def baseline_predictions(self) -> np.ndarray:
        return self.baseline_logits.argmax(axis=1)

    @property
    def correct(self) -> int:
        return int((self.predictions == self.labels).sum())

    @property
    def accuracy(self) -> float:
        return self.correct / self.n

    @property
    def baseline_accuracy(self) -> float:
        return int((self.baseline_predictions == self.labels).sum()) / self.n

    @property
    def drop(self) -> float:
        return self.baseline_accuracy - self.accuracy

    @property
    def ci_low(self) -> float:
        return wilson_interval(self.correct, self.n)[0]

    @property
    def ci_high(self) -> float:
        return wilson_interval(self.correct, self.n)[1]

    def accuracy_interval(self, confidence: float = 0.95) -> tuple[float, float]:
        return wilson_interval(self.correct, self.n, confidence)

    def paired_drop(self, confidence: float = 0.95) -> PairedDifference:
        """The drop as a paired difference: uncompressed minus compressed accuracy on the same images."""
        return PairedDifference.from_hits(self.baseline_predictions == self.labels, self.predictions == self.labels, confidence)

    @property
    def outcomes(self) -> Outcomes:
        return Outcomes(
            self.indices, self.labels, self.predictions, self.baseline_predictions, self.classes, self.fingerprint, self.templates_digest, self.seed
        )

    @property
    def per_class(self) -> dict[str, float]:
        """Accuracy per class name, for the classes present in the subset."""
        hits = self.predictions == self.labels
        return {name: float(hits[self.labels == c].mean()) for c, name in enumerate(self.classes) if (self.labels == c).any()}

    @property
    def flipped(self) -> np.ndarray:
        """Positions (into ``labels``) correct uncompressed and wrong compressed, most confident flips first."""
        positions = np.flatnonzero((self.baseline_predictions == self.labels) & (self.predictions != self.labels))
        confidence = softmax(self.logits[positions]).max(axis=1) if len(positions) else np.empty(0)
        return positions[np.lexsort((positions, -confidence))]

    @property
    def key(self) -> EvalKey:
        return eval_key(self.model, self.pretrained, self.dataset, self.compression.to_dict(), self.n, self.seed, self.templates, self.model_id)

    def worst_classes(self, count: int = 3) -> list[tuple[str, float]]:
        return sorted(self.per_class.items(), key=lambda item: (item[1], item[0]))[:count]

    def to_record(self) -> EvaluationRecord:
        """One JSON-able record for the results file and the reports."""
        return evaluation_record(self)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Class probabilities along the last axis (one image's logits, or a batch of them)."""
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


@dataclass
class _Scored:
    logits: np.ndarray
    bits_per_pixel: float


class Evaluator:
    """Run-wide state: loaded models, datasets, text features and evaluations, each made once."""

    def __init__(self, settings: Settings, worker_index: int | None = None, progress: ProgressCallback | None = None, cpu_threads: int | None = None) -> None:
        self.settings = settings
        self.worker_index = worker_index
        self.cpu_threads = cpu_threads
        self.progress = progress
        self.cache = None if settings.no_cache else LogitsCache(settings.cache_dir)
        self._specs: dict[str, ModelSpec] = {}
        self._models: dict[str, LoadedModel] = {}
        self._datasets: dict[str, ImageDataset | ClipCompressError] = {}
        self._datasets_by_name: dict[str, ImageDataset] = {}
        self._classifiers: dict[tuple, torch.nn.Module] = {}
        self._scored: dict[tuple, _Scored] = {}
        self._results: dict[tuple[EvalKey, str], EvalResult] = {}
        self._plans: dict[str, BatchPreprocess | None] = {}
        self._device: str | None = None
        self._stored_baseline: Any = None

    @property
    def stored_baseline(self) -> Any:
        """The ``--clip-baseline`` file (a :class:`~.gate.BaselineFile`), read once; None without the option."""
        if self.settings.baseline is not None and self._stored_baseline is None:
            from .gate import BaselineFile

            self._stored_baseline = BaselineFile.load(self.settings.baseline)
        return self._stored_baseline

    # --- loading ----------------------------------------------------------------------------

    @property
    def device(self) -> str:
        if self._device is None:
            self._device = resolve_device(self.settings.device, self.worker_index)
        return self._device

    def model_spec(self, name: str) -> ModelSpec:
        if name not in self._specs:
            if not self._specs:
                register_model_configs(self.settings.model_config_paths)  # before the first model is resolved
            self._specs[name] = self.settings.model_spec(name)
        return self._specs[name]

    def model(self, name: str) -> LoadedModel:
        if name not in self._models:
            if self.cpu_threads and self.device == "cpu":
                import torch

                # Several processes sharing the cores (pytest-xdist) must not each spin up a thread
                # per core: oversubscribed OpenMP barriers make small models many times slower.
                torch.set_num_threads(self.cpu_threads)
            self._models[name] = load_model(self.model_spec(name), self.device, self.settings.precision, self.settings.offline)
        return self._models[name]

    def dataset(self, spec: str) -> ImageDataset:
        """Load once; a failure is remembered so every test that needs the dataset reports it at once."""
        spec = validate_dataset_name(spec)  # one entry per dataset, however its name is spelled
        if spec not in self._datasets:
            try:
                self._datasets[spec] = load_dataset(spec, self.settings.data_root, self.settings.offline, self.settings.max_image_pixels)
            except ClipCompressError as error:
                self._datasets[spec] = error
        loaded = self._datasets[spec]
        if isinstance(loaded, ClipCompressError):
            raise loaded
        return loaded

    def dataset_named(self, name: str) -> ImageDataset:
        """A dataset this run evaluated, by its result name (``imagefolder:`` paths are resolved ones)."""
        return self._datasets_by_name.get(name) or self.dataset(name)

    def templates_for(self, dataset: ImageDataset) -> tuple[str, ...]:
        return resolve_templates(self.settings.templates, dataset.templates)

    def classifier_for(self, result: EvalResult) -> torch.nn.Module:
        return self.classifier(result.model_id, self.dataset_named(result.dataset))

    def classifier(self, model_name: str, dataset: ImageDataset) -> torch.nn.Module:
        """The zero-shot head for the dataset's classes; text prompts are encoded once per run."""
        templates = self.templates_for(dataset)
        key = (model_name, dataset.classes, templates)
        if key not in self._classifiers:
            loaded = self.model(model_name)
            self._classifiers[key] = zero_shot_classifier(loaded, class_text_features(loaded, dataset.classes, templates))
        return self._classifiers[key]

    # --- evaluation -------------------------------------------------------------------------

    def evaluate(self, model_name: str, dataset: str | ImageDataset, compression: Compression) -> EvalResult:
        """Accuracy under ``compression`` and on the same images uncompressed (computed once, shared)."""
        if isinstance(dataset, str):
            dataset = self.dataset(dataset)
        self._datasets_by_name[dataset.name] = dataset
        indices = dataset.subset(self.settings.samples, self.settings.seed)
        spec = self.model_spec(model_name)
        # The evaluation's key, plus the files' fingerprint: a dataset object passed in may reuse a name.
        key = (
            eval_key(
                spec.name, spec.pretrained_label, dataset.name, compression.to_dict(), len(indices), self.settings.seed, self.settings.templates, model_name
            ),
            dataset.fingerprint,
        )
        if key not in self._results:
            baseline = self._score(model_name, dataset, indices, NO_COMPRESSION)
            scored = baseline if compression.is_identity else self._score(model_name, dataset, indices, compression)
            self._results[key] = EvalResult(
                model=spec.name,
                pretrained=spec.pretrained_label,
                dataset=dataset.name,
                compression=compression,
                classes=dataset.classes,
                indices=indices,
                labels=dataset.labels[indices],
                logits=scored.logits,
                baseline_logits=baseline.logits,
                bits_per_pixel=scored.bits_per_pixel,
                templates=self.settings.templates,
                seed=self.settings.seed,
                min_accuracy_default=self.settings.min_accuracy,
                max_drop_default=self.settings.max_drop,
                role=model_name,
                fingerprint=dataset.fingerprint,
                templates_digest=templates_digest(self.templates_for(dataset)),
                stored_baseline=self.stored_baseline,
                activation=self.model(model_name).activation,
            )
        # Each caller gets its own copy so the floors it checks are recorded per test.
        return replace(self._results[key], checks=[])

    def _score(self, model_name: str, dataset: ImageDataset, indices: np.ndarray, compression: Compression) -> _Scored:
        key = (model_name, dataset.name, dataset.fingerprint, compression.id)
        if key in self._scored:
            return self._scored[key]
        cache = self.cache
        cache_key = self._cache_key(model_name, dataset, indices, compression) if cache else None
        # An entry is trusted only with logits of this evaluation's shape and a finite bits-per-pixel.
        shapes = {"logits": (len(indices), len(dataset.classes)), "bits_per_pixel": ()}
        cached = cache.load(cache_key, shapes) if cache is not None and cache_key else None
        if cached is not None:
            scored = _Scored(cached["logits"], float(cached["bits_per_pixel"]))
        else:
            scored = self._compute(model_name, dataset, indices, compression)
            if cache is not None and cache_key:
                cache.store(cache_key, {"logits": scored.logits, "bits_per_pixel": np.float64(scored.bits_per_pixel)})
        self._scored[key] = scored
        return scored

    def _cache_key(self, model_name: str, dataset: ImageDataset, indices: np.ndarray, compression: Compression) -> dict[str, Any]:
        loaded = self.model(model_name)
        key = {
            "version": __version__,
            "model": loaded.spec.name,
            "weights": loaded.weights_hash(),
            "activation": loaded.activation,  # GELU and QuickGELU share weights but not logits
            "preprocess": loaded.preprocess_id,
            "device_type": self.device.split(":")[0],
            "precision": self.settings.precision,
            "dataset": dataset.name,
            "dataset_files": dataset.fingerprint,
            "indices": _digest(indices.astype(np.int64).tobytes()),
            "compression": compression.id,
            "classes": list(dataset.classes),
            "templates": list(self.templates_for(dataset)),
        }
        if self.settings.preprocess != "exact":  # exact tensors equal the per-image pipeline's: same entries
            key["preprocess_path"] = self.settings.preprocess
        return key

    def _compute(self, model_name: str, dataset: ImageDataset, indices: np.ndarray, compression: Compression) -> _Scored:
        import torch

        loaded = self.model(model_name)
        classifier = self.classifier(model_name, dataset)
        logits = np.empty((len(indices), len(dataset.classes)), dtype=np.float32)
        total_bits = 0.0
        done = 0
        started = time.perf_counter()
        label = f"{loaded.spec.label} {dataset.name} {compression.id}"
        with torch.inference_mode(), self._autocast():
            for batch, bits in self.prepared_batches(loaded, dataset, indices, compression):
                batch = batch.to(self.device, non_blocking=True)
                logits[done : done + len(batch)] = classifier(batch).float().cpu().numpy()
                total_bits += bits
                done += len(batch)
                if self.progress:
                    self.progress(label, done, len(indices), time.perf_counter() - started)
        return _Scored(logits, total_bits / len(indices) if not compression.is_identity else 24.0)

    def _autocast(self) -> Any:
        import torch

        if self.settings.precision == "fp32" or not self.device.startswith("cuda"):
            return torch.autocast("cpu", enabled=False)
        return torch.autocast("cuda", dtype=torch.float16 if self.settings.precision == "fp16" else torch.bfloat16)

    def prepared_batches(
        self, loaded: LoadedModel, dataset: ImageDataset, indices: np.ndarray, compression: Compression
    ) -> Iterator[tuple[torch.Tensor, float]]:
        """Preprocessed batches (in order) and the bits the codec spent on each.

        The Pillow work (decode, codec round trip, the model's resize and crop) runs per image and the
        conversion to normalised floats once per batch in numpy (see preprocess.py), ahead
        in threads; no torch call runs there, so the threads never start OpenMP teams of their own.
        """
        import torch

        plan = self._batch_plan(loaded)
        fast = self.settings.preprocess == "fast"
        pin = self.device.startswith("cuda")

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
                else:  # a pipeline this module cannot split: the model's own transform, image by image
                    images.append(loaded.preprocess(compressed))
            if fast:
                return images, bits
            return (plan.normalise_arrays(images) if plan is not None else torch.stack(images)), bits

        def finish(prepared: tuple[Any, float]) -> tuple[torch.Tensor, float]:
            images, bits = prepared
            if fast:
                assert plan is not None  # _batch_plan's check_fast_supported refuses fast mode without one
                return plan.fast(images, self.device), bits
            batch = torch.from_numpy(images) if plan is not None else images
            return (batch.pin_memory() if pin else batch), bits

        size = self.settings.batch_size
        chunks = [indices[start : start + size] for start in range(0, len(indices), size)]
        workers = self._prepare_workers()
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

    def _batch_plan(self, loaded: LoadedModel) -> BatchPreprocess | None:
        """The model's preprocessing split for batching (once per model); fast mode checks it is supported."""
        key = loaded.preprocess_id  # the transform's repr: size, interpolation, mean and std
        if key not in self._plans:
            plan = batch_preprocess(loaded.preprocess)
            if self.settings.preprocess == "fast":
                check_fast_supported(plan, loaded.spec.label)
            self._plans[key] = plan
        return self._plans[key]

    def _prepare_workers(self) -> int:
        return self.settings.workers


def _digest(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()[:16]
