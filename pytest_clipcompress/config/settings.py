"""The run's validated settings: plain, frozen data built once from :data:`~.options.OPTIONS`.

Grouped by who reads them, so each layer gets its own part and nothing more: the models to load
(:class:`ModelOptions`), the images and prompts (:class:`DataOptions`), how evaluations run
(:class:`EvaluationOptions`), Integrated Gradients (:class:`IGOptions`), the files written and
read (:class:`OutputOptions`) and the configured floors (:class:`FloorOptions`). The same values
on every xdist worker. Nothing here loads a model or reads a file: model names, prompt files and
the baseline are checked where they are used (the plugin's session start).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..demo import DEMO_MODEL_NAME
from ..errors import ConfigError
from .model_entries import ModelEntry, parse_model_entries
from .options import FAST_PREPROCESS_RETIRED, OPTIONS, PAPER_PROTOCOL, QUICK_GELU_MODES, Option


@dataclass(frozen=True)
class ModelOptions:
    """Which models to load (``--clip-model`` entries) and how (weights, activation, configs)."""

    entries: tuple[ModelEntry, ...]
    pretrained: str | None  # --clip-pretrained: weights of every entry without its own
    quick_gelu: str  # the activation mode of every model without its own
    quick_gelu_by_model: tuple[tuple[str, str], ...]  # (model id, mode) pairs from ROLE=MODE values
    configs: tuple[str, ...]  # --clip-model-config paths
    offline: bool

    @property
    def ids(self) -> tuple[str, ...]:
        """The model ids (role, else model name), in the order given."""
        return tuple(entry.id for entry in self.entries)

    @property
    def uses_demo_model(self) -> bool:
        """Only the bundled demo model with its bundled weights (no --clip-model, no --clip-pretrained)."""
        return self.ids == (DEMO_MODEL_NAME,) and self.entries[0].weights is None and self.pretrained is None

    def entry(self, model_id: str) -> ModelEntry:
        for entry in self.entries:
            if entry.id == model_id:
                return entry
        raise ConfigError(f"no --clip-model has the id {model_id!r}; this run's models: {', '.join(self.ids)}")

    def quick_gelu_of(self, model_id: str) -> str:
        """The ``--clip-quick-gelu`` mode of a model id: its own ``ROLE=MODE``, else the default."""
        return dict(self.quick_gelu_by_model).get(model_id, self.quick_gelu)


@dataclass(frozen=True)
class DataOptions:
    """Where the datasets are, which images of them and which prompts."""

    root: Path
    offline: bool
    max_image_pixels: int
    samples: int | None  # None: every image
    seed: int
    templates: str  # clip, paper or a JSON file


@dataclass(frozen=True)
class EvaluationOptions:
    """How evaluations run: device, precision, batches, the image pipeline and the logits cache."""

    device: str
    precision: str
    batch_size: int
    workers: int | None  # codec worker processes; None: one per core of the process's share
    cache_dir: Path
    no_cache: bool
    cache_clear: bool


@dataclass(frozen=True)
class IGOptions:
    """Integrated Gradients on the images compression flipped."""

    samples: int
    steps: int | str  # a number, or auto
    baseline: str
    on: str
    budget: float | None


@dataclass(frozen=True)
class OutputOptions:
    """The files the run writes, and the baseline it reads."""

    results: Path | None
    report: Path | None
    summary: Path | None
    baseline: Path | None
    baseline_save: Path | None


@dataclass(frozen=True)
class FloorOptions:
    """The configured floors (``clip_min_accuracy`` / ``clip_max_drop``)."""

    min_accuracy: float | None
    max_drop: float | None


@dataclass(frozen=True)
class Settings:
    """Validated run settings; plain values only, so they are the same on every xdist worker."""

    models: ModelOptions
    data: DataOptions
    evaluation: EvaluationOptions
    ig: IGOptions
    outputs: OutputOptions
    floors: FloorOptions
    protocol: str
    strict: bool  # a clip case that skips fails the run
    deprecations: tuple[str, ...] = ()  # one message per deprecated option value the run was given


def number_settings(settings: Settings) -> dict[str, Any]:
    """The settings that change a run's numbers, for the results file's run block: shards of one run
    agree on them, and ``python -m pytest_clipcompress merge`` refuses files that do not. Paths are
    left out (a checkpoint's weights hash and a prompt file's content digest stand for them), and so
    is what changes only speed (batch size, workers, cache)."""
    templates = settings.data.templates
    if templates not in ("clip", "paper"):
        templates = "file sha256:" + hashlib.sha256(Path(templates).read_bytes()).hexdigest()[:16]
    return {
        "samples": settings.data.samples,
        "seed": settings.data.seed,
        "templates": templates,
        "preprocess": "exact",  # always the model's own since --clip-preprocess fast was retired; kept so older shards still merge
        "precision": settings.evaluation.precision,
        "quick_gelu": [settings.models.quick_gelu_of(model_id) for model_id in settings.models.ids],
        "models": list(settings.models.ids),
    }


def build_settings(lookup: Callable[[Option], Any]) -> Settings:
    """Build settings from ``lookup(option)``, which returns the CLI value, else the ini value, else None."""
    raw = {option.name: lookup(option) for option in OPTIONS}
    protocol = next(option for option in OPTIONS if option.name == "protocol").value(raw["protocol"])
    if protocol == "paper":  # explicit options still win
        raw.update({name: value for name, value in PAPER_PROTOCOL.items() if not (raw[name].strip() if isinstance(raw[name], str) else raw[name])})
    value = {option.name: option.value(raw[option.name]) for option in OPTIONS}
    entries = parse_model_entries(value["model"] or (DEMO_MODEL_NAME,))
    quick_gelu, quick_gelu_by_model = _quick_gelu_modes(value["quick-gelu"], tuple(entry.id for entry in entries))
    return Settings(
        models=ModelOptions(entries, value["pretrained"], quick_gelu, quick_gelu_by_model, value["model-config"], value["offline"]),
        data=DataOptions(value["data-root"], value["offline"], value["max-image-pixels"], value["samples"], value["seed"], value["templates"]),
        evaluation=EvaluationOptions(
            value["device"],
            value["precision"],
            value["batch-size"],
            value["workers"],
            value["cache-dir"],
            value["no-cache"],
            value["cache-clear"],
        ),
        ig=IGOptions(value["ig-samples"], value["ig-steps"], value["ig-baseline"], value["ig-on"], value["ig-budget"]),
        outputs=OutputOptions(value["results"], value["report"], value["summary"], value["baseline"], value["baseline-save"]),
        floors=FloorOptions(value["min-accuracy"], value["max-drop"]),
        protocol=protocol,
        strict=value["strict"],
        deprecations=(FAST_PREPROCESS_RETIRED,) if value["preprocess"] == "fast" else (),
    )


def _quick_gelu_modes(values: tuple[str, ...], model_ids: tuple[str, ...]) -> tuple[str, tuple[tuple[str, str], ...]]:
    """``--clip-quick-gelu [ROLE=]MODE`` values: (the default mode, (model id, mode) pairs in the models' order).

    A mode alone is the default for every model without its own. The text after the last ``=`` is
    the mode (modes hold no ``=``), so a role-less model name keeps any ``=`` of its own.
    """
    modes = ", ".join(QUICK_GELU_MODES)
    default: str | None = None
    own: dict[str, str] = {}
    for raw in values:
        text = raw.strip()
        model_id, separator, mode = text.rpartition("=")
        model_id, mode = model_id.strip(), mode.strip()
        if mode not in QUICK_GELU_MODES:
            raise ConfigError(f"--clip-quick-gelu {text!r}: choose one of {modes}, for one model as ROLE=MODE (e.g. release=on)")
        if not separator:
            if default is not None and default != mode:
                raise ConfigError(f"--clip-quick-gelu is given as {default!r} and {mode!r} for every model; give one mode alone, and ROLE=MODE for the others")
            default = mode
            continue
        if model_id not in model_ids:
            raise ConfigError(
                f"--clip-quick-gelu {text!r}: no --clip-model has the id {model_id!r}; this run's models: {', '.join(model_ids)} "
                f"(give ROLE=MODE with one of them, or a mode alone for every model; modes: {modes})"
            )
        if own.get(model_id, mode) != mode:
            raise ConfigError(f"--clip-quick-gelu sets {model_id} to both {own[model_id]} and {mode}; give it once")
        own[model_id] = mode
    return default or "auto", tuple((model_id, own[model_id]) for model_id in model_ids if model_id in own)
