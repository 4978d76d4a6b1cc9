"""Zero-shot evaluation under compression, with every expensive step done once per run.

:class:`Evaluator` owns the run's models, datasets, text features and results. It is built from
explicit inputs (which models, which data, how to evaluate) and nothing else; images stream
through :mod:`.pipeline` (the codec in worker processes, the model's preprocessing on its device)
while the model runs, so memory stays flat and the codec overlaps the forward passes.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from .._version import __version__
from ..codecs.compression import Compression
from ..config.options import cpu_share
from ..config.settings import DataOptions, EvaluationOptions, ModelOptions, Settings
from ..data.base import ImageDataset
from ..data.registry import load_dataset, validate_dataset_name
from ..errors import ClipCompressError
from ..models.load import LoadedModel, load_model, resolve_device
from ..models.prompts import resolve_templates
from ..models.resolve import ModelSpec, model_config_paths, register_model_configs, spec_for
from ..models.zero_shot import class_text_features, zero_shot_classifier
from ..results.per_image import templates_digest
from ..results.schema import EvalKey, eval_key
from .cache import LogitsCache
from .pipeline import ImagePipeline, ModelTransform
from .result import EvalResult

if TYPE_CHECKING:
    import torch

NO_COMPRESSION = Compression("none")
ProgressCallback = Callable[[str, int, int, float], None]


@dataclass
class _Scored:
    logits: np.ndarray
    bits_per_pixel: float


class Evaluator:
    """Run-wide state: loaded models, datasets, text features and evaluations, each made once."""

    def __init__(
        self,
        models: ModelOptions,
        data: DataOptions,
        options: EvaluationOptions,
        worker_index: int | None = None,
        progress: ProgressCallback | None = None,
        cpu_share: int | None = None,
    ) -> None:
        self.models = models
        self.data = data
        self.options = options
        self.worker_index = worker_index
        # The CPU cores this process may use; under pytest-xdist the processes split them (None: all of them).
        self.cpu_share = cpu_share
        self.progress = progress
        self.cache = None if options.no_cache else LogitsCache(options.cache_dir)
        self._specs: dict[str, ModelSpec] = {}
        self._models: dict[str, LoadedModel] = {}
        self._datasets: dict[str, ImageDataset | ClipCompressError] = {}
        self._datasets_by_name: dict[str, ImageDataset] = {}
        self._classifiers: dict[tuple, torch.nn.Module] = {}
        self._scored: dict[tuple, _Scored] = {}
        self._results: dict[tuple[EvalKey, str], EvalResult] = {}
        self._transforms: dict[str, ModelTransform] = {}
        self._pipeline: ImagePipeline | None = None
        self._device: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> Evaluator:
        """An evaluator with a run's models, data and evaluation options (scripts and benchmarks use this)."""
        return cls(settings.models, settings.data, settings.evaluation, **kwargs)

    # --- loading ----------------------------------------------------------------------------

    @property
    def device(self) -> str:
        if self._device is None:
            self._device = resolve_device(self.options.device, self.worker_index)
        return self._device

    def model_spec(self, name: str) -> ModelSpec:
        if name not in self._specs:
            if not self._specs:
                register_model_configs(model_config_paths(self.models.configs))  # before the first model is resolved
            self._specs[name] = spec_for(self.models, name)
        return self._specs[name]

    @property
    def workers(self) -> int:
        """Codec worker processes: ``--clip-workers``, else one per core of this process's share."""
        if self.options.workers is not None:
            return self.options.workers
        return self.cpu_share or cpu_share()

    @property
    def pipeline(self) -> ImagePipeline:
        if self._pipeline is None:
            # By default on the CPU, workers start only where they pay: the model needs the same cores.
            adaptive = self.options.workers is None and not self.device.startswith("cuda")
            self._pipeline = ImagePipeline(self.workers, self.device, adaptive)
        return self._pipeline

    def close(self) -> None:
        """End the pipeline's worker processes (a later evaluation starts them again)."""
        if self._pipeline is not None:
            self._pipeline.close()
            self._pipeline = None

    def model(self, name: str) -> LoadedModel:
        if name not in self._models:
            if self.cpu_share and self.device == "cpu":
                import torch

                # Several processes sharing the cores (pytest-xdist) must not each spin up a thread
                # per core: oversubscribed OpenMP barriers make small models many times slower.
                torch.set_num_threads(self.cpu_share)
            self.pipeline.warm_up(self.data.samples, self.options.batch_size)  # the codec's workers get ready while the model loads
            self._models[name] = load_model(self.model_spec(name), self.device, self.options.precision, self.models.offline)
        return self._models[name]

    def dataset(self, spec: str) -> ImageDataset:
        """Load once; a failure is remembered so every test that needs the dataset reports it at once."""
        spec = validate_dataset_name(spec)  # one entry per dataset, however its name is spelled
        if spec not in self._datasets:
            try:
                self._datasets[spec] = load_dataset(spec, self.data.root, self.data.offline, self.data.max_image_pixels)
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
        return resolve_templates(self.data.templates, dataset.templates)

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
        data = self.data
        indices = dataset.subset(data.samples, data.seed)
        spec = self.model_spec(model_name)
        # The evaluation's key, plus the files' fingerprint: a dataset object passed in may reuse a name.
        key = (
            eval_key(spec.name, spec.pretrained_label, dataset.name, compression.to_dict(), len(indices), data.seed, data.templates, model_name),
            dataset.fingerprint,
        )
        if key not in self._results:
            # One pass for both when neither is known: each original is decoded once for the two.
            passes = (NO_COMPRESSION,) if compression.is_identity else (NO_COMPRESSION, compression)
            scored_passes = self._score(model_name, dataset, indices, passes)
            baseline, scored = scored_passes[0], scored_passes[-1]
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
                templates=data.templates,
                seed=data.seed,
                role=model_name,
                fingerprint=dataset.fingerprint,
                templates_digest=templates_digest(self.templates_for(dataset)),
                source_format=dataset.source_format,
                activation=self.model(model_name).activation,
                weights=self.model(model_name).weights_hash(),
            )
        # Each caller gets its own copy so the checks it makes are recorded per test.
        return replace(self._results[key], checks=[])

    def _score(self, model_name: str, dataset: ImageDataset, indices: np.ndarray, compressions: tuple[Compression, ...]) -> list[_Scored]:
        """Each compression's logits: remembered, else from the disk cache, else computed (all those left in one pass)."""

        def remembered(compression: Compression) -> tuple[str, str, str, str]:
            return (model_name, dataset.name, dataset.fingerprint, compression.id)

        cache = self.cache
        # An entry is trusted only with logits of this evaluation's shape and a finite bits-per-pixel.
        shapes = {"logits": (len(indices), len(dataset.classes)), "bits_per_pixel": ()}
        cache_keys: dict[Compression, dict[str, Any]] = {}
        for compression in compressions:
            if cache is not None and remembered(compression) not in self._scored:
                cache_keys[compression] = self._cache_key(model_name, dataset, indices, compression)
                cached = cache.load(cache_keys[compression], shapes)
                if cached is not None:
                    self._scored[remembered(compression)] = _Scored(cached["logits"], float(cached["bits_per_pixel"]))
        missing = tuple(compression for compression in compressions if remembered(compression) not in self._scored)
        if missing:
            for compression, scored in zip(missing, self._compute(model_name, dataset, indices, missing), strict=True):
                self._scored[remembered(compression)] = scored
                if cache is not None:
                    cache.store(cache_keys[compression], {"logits": scored.logits, "bits_per_pixel": np.float64(scored.bits_per_pixel)})
        return [self._scored[remembered(compression)] for compression in compressions]

    def _cache_key(self, model_name: str, dataset: ImageDataset, indices: np.ndarray, compression: Compression) -> dict[str, Any]:
        loaded = self.model(model_name)
        key = {
            "version": __version__,
            "model": loaded.spec.name,
            "weights": loaded.weights_hash(),
            "activation": loaded.activation,  # GELU and QuickGELU share weights but not logits
            "preprocess": loaded.preprocess_id,
            "device_type": self.device.split(":")[0],
            "precision": self.options.precision,
            "dataset": dataset.name,
            "dataset_files": dataset.fingerprint,
            "indices": hashlib.sha256(indices.astype(np.int64).tobytes()).hexdigest()[:16],
            "compression": compression.id,
            "classes": list(dataset.classes),
            "templates": list(self.templates_for(dataset)),
        }
        # No word on how the pixels were prepared: the pipeline's tensors equal the model's own per-image
        # transform (tests/test_device_transform.py), so entries made by any version of it are shared.
        return key

    def _compute(self, model_name: str, dataset: ImageDataset, indices: np.ndarray, compressions: tuple[Compression, ...]) -> list[_Scored]:
        import torch

        loaded = self.model(model_name)
        # On the device until the end: copying each batch's logits back would wait for the model every batch.
        logits = [torch.empty((len(indices), len(dataset.classes)), dtype=torch.float32, device=self.device) for _ in compressions]
        total_bits = [0.0 for _ in compressions]
        started = time.perf_counter()
        label = f"{loaded.spec.label} {dataset.name} {'+'.join(compression.id for compression in compressions)}"
        with self.pipeline.batches(dataset, indices, compressions, self._transform(loaded), self.options.batch_size) as batches:
            classifier = self.classifier(model_name, dataset)  # the prompts are encoded while the codec workers start
            with torch.inference_mode(), self._autocast():
                for batch in batches:
                    for k, inputs in enumerate(batch.inputs):
                        logits[k][batch.start : batch.start + batch.size] = classifier(inputs).float()
                        total_bits[k] += batch.bits[k]
                    if self.progress:
                        self.progress(label, batch.start + batch.size, len(indices), time.perf_counter() - started)
        return [
            _Scored(scores.cpu().numpy(), 24.0 if compression.is_identity else bits / len(indices))
            for scores, bits, compression in zip(logits, total_bits, compressions, strict=True)
        ]

    def _autocast(self) -> Any:
        import torch

        if self.options.precision == "fp32" or not self.device.startswith("cuda"):
            return torch.autocast("cpu", enabled=False)
        return torch.autocast("cuda", dtype=torch.float16 if self.options.precision == "fp16" else torch.bfloat16)

    def _transform(self, loaded: LoadedModel) -> ModelTransform:
        """The model's preprocessing on batches, planned once per preprocessing (its repr names every step)."""
        from .device_transform import plan_device_transform

        key = loaded.preprocess_id
        if key not in self._transforms:
            self._transforms[key] = ModelTransform(loaded.preprocess, plan_device_transform(loaded.preprocess))
        return self._transforms[key]
