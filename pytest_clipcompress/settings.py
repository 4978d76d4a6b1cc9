"""Every ``--clip-*`` option (also an ini key) and the validated :class:`Settings` built from them.

Pytest-free: the plugin registers :data:`OPTIONS` and passes a lookup function to
:func:`build_settings`, so the same parsing is testable on its own and documented from one table.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .models import DEVICE_PATTERN, QUICK_GELU_MODES, ModelSpec, resolve_model_spec
from .roles import ModelEntry, parse_model_entries
from .values import DEFAULT_MAX_IMAGE_PIXELS, check_fraction

IG_BASELINES = ("uncompressed", "jpeg-q100", "black", "blur")
IG_ON = ("failed", "xfailed", "all", "never")
PROTOCOLS = ("default", "paper")
#: What ``--clip-protocol paper`` sets, each unless given explicitly: the released code's single
#: prompt, its IG baseline (the quality-100 JPEG of the image) and its 51 trapezoid points.
PAPER_PROTOCOL = {"templates": "paper", "ig-baseline": "jpeg-q100", "ig-steps": "51"}
PRECISIONS = ("fp32", "fp16", "bf16")
PREPROCESS_MODES = ("exact", "fast")  # see preprocess.py


@dataclass(frozen=True)
class Option:
    """One option: ``--clip-<name>`` on the command line and ``clip_<name>`` in the ini file."""

    name: str
    help: str
    metavar: str | None = None
    kind: str = "string"  # string | flag | list

    @property
    def flag(self) -> str:
        return f"--clip-{self.name}"

    @property
    def ini(self) -> str:
        return f"clip_{self.name.replace('-', '_')}"

    @property
    def dest(self) -> str:
        return self.ini


OPTIONS: tuple[Option, ...] = (
    Option(
        "model",
        "[ROLE=]NAME[:WEIGHTS]: open_clip model name or hf-hub:org/repo, with an optional role (the id in results and test names) "
        "and its own weights (tag, checkpoint file or none); repeat for several models (default: the bundled demo model)",
        "[ROLE=]NAME[:WEIGHTS]",
        "list",
    ),
    Option(
        "pretrained",
        "open_clip pretrained tag, a checkpoint file, or none for random weights (default: openai where available, else the first tag)",
        "TAG|PATH|none",
    ),
    Option(
        "quick-gelu",
        "activation: auto (what the pretrained tag was trained with, else the model config's own), "
        "on (QuickGELU, e.g. for a checkpoint fine-tuned from openai weights) or off (GELU); ROLE=MODE sets one --clip-model's, "
        "a mode alone every other model's; repeatable (default: auto)",
        f"[ROLE=]{'|'.join(QUICK_GELU_MODES)}",
        "list",
    ),
    Option("model-config", "JSON model config (or folder of them) registered with open_clip before loading; repeatable", "PATH", "list"),
    Option("device", "auto (CUDA when present, xdist worker i on GPU i mod count), cpu, cuda, cuda:N or mps (default: auto)", "DEVICE"),
    Option("batch-size", "images per forward pass (default: 64)", "N"),
    Option("workers", "threads that decode, compress and preprocess images ahead of the model; 0 runs them inline (default: up to 4)", "N"),
    Option(
        "preprocess",
        "exact (bit-identical to the model's own preprocessing) or fast (batched tensor resize; pixels differ slightly) (default: exact)",
        "exact|fast",
    ),
    Option("precision", "fp32, or fp16/bf16 autocast on CUDA (default: fp32)", "PRECISION"),
    Option("data-root", "folder holding the datasets (default: $CLIPCOMPRESS_DATA, else a per-user cache folder)", "DIR"),
    Option("max-image-pixels", f"refuse images with more pixels than N, as decompression bombs (default: {DEFAULT_MAX_IMAGE_PIXELS})", "N"),
    Option("offline", "never touch the network: weights only from the local cache; missing datasets skip with a message saying where to put them", kind="flag"),
    Option("samples", "evaluate a class-stratified, seeded subset of N test images per dataset (default: all)", "N"),
    Option("seed", "seed of the subset (default: 0)", "N"),
    Option(
        "templates", "prompts: clip (CLIP's ensemble for the dataset), paper (the seed paper's single prompt) or a JSON file (default: clip)", "clip|paper|FILE"
    ),
    Option(
        "protocol",
        "paper: the seed paper's released settings (paper prompt, jpeg-q100 IG baseline, 51 IG steps) wherever no option sets them; "
        "default: ours (default: default)",
        "|".join(PROTOCOLS),
    ),
    Option("results", "write a JSON file with one record per evaluation", "PATH"),
    Option("baseline", "results file of an earlier run (e.g. the last release) that assert_no_regression compares with, image by image", "PATH"),
    Option("baseline-save", "at the end of the run, write the results file to PATH for later use as --clip-baseline", "PATH"),
    Option("min-accuracy", "default floor for assert_accuracy(min_accuracy=...), in [0, 1]", "FLOAT"),
    Option("max-drop", "default floor for assert_accuracy(max_drop=...), in [0, 1]", "FLOAT"),
    Option("ig-samples", "Integrated Gradients for up to K flipped images of each failing test; 0 disables (default: 4)", "K"),
    Option("ig-steps", "integration steps for IG, or auto for the fewest steps meeting the completeness tolerance (default: 50)", "N|auto"),
    Option(
        "ig-baseline",
        "IG baseline: uncompressed (the image itself), jpeg-q100 (its quality-100 JPEG, the paper's released code), black or blur (default: uncompressed)",
        "|".join(IG_BASELINES),
    ),
    Option(
        "ig-on",
        "which tests get IG: failed (unexpected failures), xfailed (failures and xfails), all (also passing tests) or never (default: failed)",
        "|".join(IG_ON),
    ),
    Option("ig-budget", "stop explaining more images once IG has spent SECONDS in this process (each xdist worker has its own; default: no limit)", "SECONDS"),
    Option("report", "write charts, attribution images and index.html to DIR (works without pytest-html)", "DIR"),
    Option(
        "summary",
        "write a Markdown summary (failures first, a table per model and dataset) to PATH; it is also appended to $GITHUB_STEP_SUMMARY when that is set",
        "PATH",
    ),
    Option("cache-dir", "folder of the per-image logits cache (default: a per-user cache folder)", "DIR"),
    Option("no-cache", "neither read nor write the logits cache", kind="flag"),
    Option("cache-clear", "empty the logits cache at the start of the run", kind="flag"),
)

DEMO_MODEL = "clipcompress-demo"


@dataclass(frozen=True)
class Settings:
    """Validated run settings; plain values only, so they are the same on every xdist worker."""

    models: tuple[str, ...]
    pretrained: str | None
    quick_gelu: str  # the activation mode of every model without its own
    quick_gelu_by_model: tuple[tuple[str, str], ...]  # (model id, mode) pairs from ROLE=MODE values
    model_configs: tuple[str, ...]
    device: str
    batch_size: int
    workers: int
    preprocess: str
    precision: str
    data_root: Path
    max_image_pixels: int
    offline: bool
    samples: int | None
    seed: int
    templates: str
    protocol: str
    results: Path | None
    baseline: Path | None
    baseline_save: Path | None
    model_entries: tuple[ModelEntry, ...]
    min_accuracy: float | None
    max_drop: float | None
    ig_samples: int
    ig_steps: int | str
    ig_baseline: str
    ig_on: str
    ig_budget: float | None
    report: Path | None
    summary: Path | None
    cache_dir: Path
    no_cache: bool
    cache_clear: bool

    @property
    def model_config_paths(self) -> list[str]:
        """The bundled demo config and the user's ``--clip-model-config`` files, to register with open_clip."""
        from .demo import DEMO_MODEL_CONFIG

        return [str(DEMO_MODEL_CONFIG), *self.model_configs]

    @property
    def uses_demo_model(self) -> bool:
        return self.models == (DEMO_MODEL,) and self.model_entries[0].weights is None

    def model_entry(self, model_id: str) -> ModelEntry:
        for entry in self.model_entries:
            if entry.id == model_id:
                return entry
        raise ConfigError(f"no --clip-model has the id {model_id!r}; this run's models: {', '.join(self.models)}")

    def quick_gelu_of(self, model_id: str) -> str:
        """The ``--clip-quick-gelu`` mode of a model id: its own ``ROLE=MODE``, else the default."""
        return dict(self.quick_gelu_by_model).get(model_id, self.quick_gelu)

    def model_spec(self, model_id: str) -> ModelSpec:
        """The weights to load for a model id (role or name); the demo model defaults to its bundled checkpoint."""
        entry = self.model_entry(model_id)
        pretrained = entry.weights if entry.weights is not None else self.pretrained
        quick_gelu = self.quick_gelu_of(model_id)
        if entry.name == DEMO_MODEL and pretrained is None:
            from .demo import DEMO_WEIGHTS

            return resolve_model_spec(DEMO_MODEL, str(DEMO_WEIGHTS), quick_gelu)
        return resolve_model_spec(entry.name, pretrained, quick_gelu)


def default_cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "pytest-clipcompress" / "logits"


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def build_settings(lookup: Callable[[Option], Any]) -> Settings:
    """Build settings from ``lookup(option)``, which returns the CLI value, else the ini value, else None."""
    from .datasets import default_data_root

    values = {option.name: lookup(option) for option in OPTIONS}
    text = {name: (value.strip() if isinstance(value, str) else value) for name, value in values.items()}
    protocol = text["protocol"] or "default"
    if protocol not in PROTOCOLS:
        raise ConfigError(f"--clip-protocol {protocol!r}: choose one of {', '.join(PROTOCOLS)}")
    if protocol == "paper":  # explicit options still win
        text.update({name: value for name, value in PAPER_PROTOCOL.items() if not text[name]})

    device = text["device"] or "auto"
    if not DEVICE_PATTERN.match(device):
        raise ConfigError(f"--clip-device {device!r} is not a device; use auto, cpu, cuda, cuda:N or mps")
    preprocess = text["preprocess"] or "exact"
    if preprocess not in PREPROCESS_MODES:
        raise ConfigError(f"--clip-preprocess {preprocess!r}: choose exact (the default, identical to the model's own preprocessing) or fast")
    precision = text["precision"] or "fp32"
    if precision not in PRECISIONS:
        raise ConfigError(f"--clip-precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    ig_steps_text = text["ig-steps"] or "50"
    ig_steps: int | str = "auto" if ig_steps_text == "auto" else _integer("ig-steps", ig_steps_text, minimum=2)
    ig_baseline = text["ig-baseline"] or "uncompressed"
    if ig_baseline not in IG_BASELINES:
        raise ConfigError(f"--clip-ig-baseline {ig_baseline!r}: choose one of {', '.join(IG_BASELINES)}")
    ig_on = text["ig-on"] or "failed"
    if ig_on not in IG_ON:
        raise ConfigError(f"--clip-ig-on {ig_on!r}: choose one of {', '.join(IG_ON)}")
    templates = text["templates"] or "clip"
    if templates not in ("clip", "paper"):
        from .templates import load_template_file

        load_template_file(Path(templates))  # fail now, not in the middle of the run
    samples_text = text["samples"]
    model_entries = parse_model_entries(tuple(values["model"] or ()) or (DEMO_MODEL,))
    quick_gelu, quick_gelu_by_model = _quick_gelu_modes(values["quick-gelu"], tuple(entry.id for entry in model_entries))
    baseline = Path(text["baseline"]).expanduser() if text["baseline"] else None
    if baseline is not None:
        from .gate import BaselineFile

        BaselineFile.load(baseline)  # a missing or foreign file is a usage error now, not a failure per test
    return Settings(
        models=tuple(entry.id for entry in model_entries),
        pretrained=text["pretrained"] or None,
        quick_gelu=quick_gelu,
        quick_gelu_by_model=quick_gelu_by_model,
        model_configs=tuple(values["model-config"] or ()),
        device=device,
        batch_size=_integer("batch-size", text["batch-size"] or "64", minimum=1),
        workers=_integer("workers", text["workers"], minimum=0) if text["workers"] else default_workers(),
        preprocess=preprocess,
        precision=precision,
        data_root=Path(text["data-root"]).expanduser() if text["data-root"] else default_data_root(),
        max_image_pixels=_integer("max-image-pixels", text["max-image-pixels"], minimum=1) if text["max-image-pixels"] else DEFAULT_MAX_IMAGE_PIXELS,
        offline=bool(values["offline"]),
        samples=_integer("samples", samples_text, minimum=1) if samples_text and samples_text != "all" else None,
        seed=_integer("seed", text["seed"] or "0", minimum=0),
        templates=templates,
        protocol=protocol,
        results=Path(text["results"]) if text["results"] else None,
        baseline=baseline,
        baseline_save=_output_file("baseline-save", text["baseline-save"]),
        model_entries=model_entries,
        min_accuracy=_fraction("min-accuracy", text["min-accuracy"]),
        max_drop=_fraction("max-drop", text["max-drop"]),
        ig_samples=_integer("ig-samples", text["ig-samples"] or "4", minimum=0),
        ig_steps=ig_steps,
        ig_baseline=ig_baseline,
        ig_on=ig_on,
        ig_budget=_seconds("ig-budget", text["ig-budget"]),
        report=Path(text["report"]) if text["report"] else None,
        summary=Path(text["summary"]) if text["summary"] else None,
        cache_dir=Path(text["cache-dir"]).expanduser() if text["cache-dir"] else default_cache_dir(),
        no_cache=bool(values["no-cache"]),
        cache_clear=bool(values["cache-clear"]),
    )


def _quick_gelu_modes(value: str | list[str] | tuple[str, ...] | None, model_ids: tuple[str, ...]) -> tuple[str, tuple[tuple[str, str], ...]]:
    """``--clip-quick-gelu [ROLE=]MODE`` values: (the default mode, (model id, mode) pairs in the models' order).

    A mode alone is the default for every model without its own. The text after the last ``=`` is
    the mode (modes hold no ``=``), so a role-less model name keeps any ``=`` of its own.
    """
    modes = ", ".join(QUICK_GELU_MODES)
    default: str | None = None
    own: dict[str, str] = {}
    for raw in [value] if isinstance(value, str) else list(value or ()):
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


def _output_file(name: str, value: str | None) -> Path | None:
    if not value:
        return None
    path = Path(value).expanduser()
    if path.is_dir():
        raise ConfigError(f"--clip-{name} {path} is a folder; give the path of a JSON file to write")
    return path


def _integer(name: str, value: str, minimum: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"--clip-{name} {value!r} is not a whole number") from None
    if number < minimum:
        raise ConfigError(f"--clip-{name} {number} is too small; it must be at least {minimum}")
    return number


def _fraction(name: str, value: str | None) -> float | None:
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"--clip-{name} {value!r} is not a number; floors are fractions (0.8 means 80%)") from None
    return check_fraction(name.replace("-", "_"), number)


def _seconds(name: str, value: str | None) -> float | None:
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"--clip-{name} {value!r} is not a number of seconds") from None
    if not math.isfinite(number) or number < 0:
        raise ConfigError(f"--clip-{name} {value!r} must be a finite number of seconds, 0 or more")
    return number
