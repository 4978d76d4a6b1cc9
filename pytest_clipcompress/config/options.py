"""Every ``--clip-*`` option (also a ``clip_*`` ini key): its help, its default and how its text is parsed.

One table, :data:`OPTIONS`, is what the plugin registers with pytest and what the reference
documents; each :class:`Option` parses its own raw value (the command line's, else the ini
file's, else None) into the plain value the settings hold, defaults included, and raises a
:class:`~..errors.ConfigError` naming the option for anything else. Pytest-free, and free of the
package's domain modules: the choices the options offer are stated here.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..errors import ConfigError
from ..inputs import DEFAULT_MAX_IMAGE_PIXELS, check_fraction

DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
QUICK_GELU_MODES = ("auto", "on", "off")
IG_BASELINES = ("uncompressed", "jpeg-q100", "black", "blur")
IG_ON = ("failed", "xfailed", "all", "never")
PROTOCOLS = ("default", "paper")
#: What ``--clip-protocol paper`` sets, each unless given explicitly: the released code's single
#: prompt, its IG baseline (the quality-100 JPEG of the image) and its 51 trapezoid points.
PAPER_PROTOCOL = {"templates": "paper", "ig-baseline": "jpeg-q100", "ig-steps": "51"}
PRECISIONS = ("fp32", "fp16", "bf16")
#: ``--clip-preprocess``: ``fast`` is retired (see :data:`FAST_PREPROCESS_RETIRED`) but still accepted.
PREPROCESS_MODES = ("exact", "fast")
FAST_PREPROCESS_RETIRED = (
    "--clip-preprocess fast is deprecated and ignored: the model's own preprocessing now runs batched on its device, "
    "bit-identical, with the resize on the device as fast did (docs/performance.md); drop the option"
)
#: Which test outcomes ``--clip-ig-on`` explains.
IG_OUTCOMES = {"never": (), "failed": ("failed",), "xfailed": ("failed", "xfailed"), "all": ("failed", "xfailed", "passed")}


def default_data_root() -> Path:
    """``$CLIPCOMPRESS_DATA``, else a per-user cache folder."""
    if os.environ.get("CLIPCOMPRESS_DATA"):
        return Path(os.environ["CLIPCOMPRESS_DATA"]).expanduser()
    return _user_cache() / "data"


def default_cache_dir() -> Path:
    return _user_cache() / "logits"


def _user_cache() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "pytest-clipcompress"


def cpu_share(processes: int = 1) -> int:
    """The CPU cores one of ``processes`` processes sharing this machine may use (pytest-xdist's workers
    split them): the cores this process may run on (its affinity, as containers and CI runners set it)
    divided among them, at least one."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity call
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, processes))


# --- parsers: raw text (None or "" when the option is not set) -> the setting's value ---------


def _text(raw: Any) -> str:
    return raw.strip() if isinstance(raw, str) else ""


def whole(default: int | Callable[[], int] | None, minimum: int, none_word: str | None = None) -> Callable[[str, Any], int | None]:
    """A whole number of at least ``minimum``; ``default`` (or what it returns) when unset; ``none_word`` (``all``) means None."""

    def parse(name: str, raw: Any) -> int | None:
        text = _text(raw)
        if not text:
            return default() if callable(default) else default
        if text == none_word:
            return None
        try:
            number = int(text)
        except (TypeError, ValueError):
            raise ConfigError(f"--clip-{name} {text!r} is not a whole number") from None
        if number < minimum:
            raise ConfigError(f"--clip-{name} {number} is too small; it must be at least {minimum}")
        return number

    return parse


def choice(choices: tuple[str, ...], default: str, problem: str | None = None) -> Callable[[str, Any], str]:
    """One of ``choices``; ``default`` when unset; ``problem`` is the message's tail after the value."""

    def parse(name: str, raw: Any) -> str:
        text = _text(raw) or default
        if text not in choices:
            raise ConfigError(f"--clip-{name} {text!r}: {problem or 'choose one of ' + ', '.join(choices)}")
        return text

    return parse


def _number(name: str, text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"--clip-{name} {text!r} is not a number{what}") from None


def _fraction(name: str, raw: Any) -> float | None:
    text = _text(raw)
    if not text:
        return None
    return check_fraction(name.replace("-", "_"), _number(name, text, "; floors are fractions (0.8 means 80%)"))


def _seconds(name: str, raw: Any) -> float | None:
    text = _text(raw)
    if not text:
        return None
    number = _number(name, text, " of seconds")
    if not math.isfinite(number) or number < 0:
        raise ConfigError(f"--clip-{name} {text!r} must be a finite number of seconds, 0 or more")
    return number


def _device(name: str, raw: Any) -> str:
    device = _text(raw) or "auto"
    if not DEVICE_PATTERN.match(device):
        raise ConfigError(f"--clip-{name} {device!r} is not a device; use auto, cpu, cuda, cuda:N or mps")
    return device


def _ig_steps(name: str, raw: Any) -> int | str | None:
    text = _text(raw)
    return "auto" if text == "auto" else whole(50, 2)(name, text)


def _templates(name: str, raw: Any) -> str:
    """``clip``, ``paper`` or a prompt file, which is read now: a bad file fails at the start, not mid-run."""
    text = _text(raw) or "clip"
    if text not in ("clip", "paper"):
        load_template_file(Path(text))
    return text


def load_template_file(path: Path) -> tuple[str, ...]:
    hint = 'it must be a JSON list of strings with "{}" where the class name goes, e.g. ["a photo of a {}."]'
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"--clip-templates: {path} does not exist; use clip, paper or a JSON file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"--clip-templates: cannot read {path} ({error}); {hint}") from None
    if not isinstance(data, list) or not data or not all(isinstance(t, str) and "{}" in t for t in data):
        raise ConfigError(f"--clip-templates: {path} is not a usable template list; {hint}")
    for template in data:
        check_template(template, f"--clip-templates: {path}")
    return tuple(data)


def check_template(template: str, source: str) -> None:
    """Exactly one ``{}`` and no other brace: the class name is substituted with ``str.replace``, never ``format``."""
    if template.count("{}") != 1 or "{" in template.replace("{}", "") or "}" in template.replace("{}", ""):
        raise ConfigError(
            f"{source}: template {template!r} must hold exactly one {{}} where the class name goes and no other "
            "braces (format fields such as {0} or {name} are not supported)"
        )


def _path(name: str, raw: Any) -> Path | None:
    text = _text(raw)
    return Path(text).expanduser() if text else None


def _plain_path(name: str, raw: Any) -> Path | None:
    text = _text(raw)
    return Path(text) if text else None


def _output_file(name: str, raw: Any) -> Path | None:
    path = _path(name, raw)
    if path is not None and path.is_dir():
        raise ConfigError(f"--clip-{name} {path} is a folder; give the path of a JSON file to write")
    return path


def _path_or(default: Callable[[], Path]) -> Callable[[str, Any], Path]:
    def parse(name: str, raw: Any) -> Path:
        return _path(name, raw) or default()

    return parse


def _optional_text(name: str, raw: Any) -> str | None:
    return _text(raw) or None


def _values(name: str, raw: Any) -> tuple[str, ...]:
    """A repeatable option's values (a single string is one value)."""
    return (raw,) if isinstance(raw, str) else tuple(raw or ())


def _flag(name: str, raw: Any) -> bool:
    return bool(raw)


@dataclass(frozen=True)
class Option:
    """One option: ``--clip-<name>`` on the command line and ``clip_<name>`` in the ini file.

    ``parse(name, raw)`` turns the raw value (the command line's, else the ini file's; None or an
    empty value when neither sets it) into the setting, its default included.
    """

    name: str
    help: str
    metavar: str | None = None
    kind: Literal["string", "flag", "list"] = "string"
    parse: Callable[[str, Any], Any] = _optional_text

    @property
    def flag(self) -> str:
        return f"--clip-{self.name}"

    @property
    def ini(self) -> str:
        return f"clip_{self.name.replace('-', '_')}"

    @property
    def dest(self) -> str:
        return self.ini

    def value(self, raw: Any) -> Any:
        return self.parse(self.name, raw)


OPTIONS: tuple[Option, ...] = (
    Option(
        "model",
        "[ROLE=]NAME[:WEIGHTS]: open_clip model name or hf-hub:org/repo, with an optional role (the id in results and test names) "
        "and its own weights (tag, checkpoint file or none); repeat for several models (default: the bundled demo model)",
        "[ROLE=]NAME[:WEIGHTS]",
        "list",
        _values,
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
        _values,
    ),
    Option("model-config", "JSON model config (or folder of them) registered with open_clip before loading; repeatable", "PATH", "list", _values),
    Option("device", "auto (CUDA when present, xdist worker i on GPU i mod count), cpu, cuda, cuda:N or mps (default: auto)", "DEVICE", parse=_device),
    Option("batch-size", "images per forward pass (default: 64)", "N", parse=whole(64, 1)),
    Option(
        "workers",
        "processes that decode and compress images ahead of the model; 0 does it in this process "
        "(default: one per CPU core this process may use, the cores split among pytest-xdist's workers; "
        "with a model on the CPU, started only when a dataset's codec work outweighs their start)",
        "N",
        parse=whole(None, 0),
    ),
    Option(
        "preprocess",
        "deprecated: preprocessing is always the model's own, bit for bit, batched on its device; fast is ignored (default: exact)",
        "exact|fast",
        parse=choice(PREPROCESS_MODES, "exact", "choose exact (the default: the model's own preprocessing)"),
    ),
    Option("precision", "fp32, or fp16/bf16 autocast on CUDA (default: fp32)", "PRECISION", parse=choice(PRECISIONS, "fp32")),
    Option("data-root", "folder holding the datasets (default: $CLIPCOMPRESS_DATA, else a per-user cache folder)", "DIR", parse=_path_or(default_data_root)),
    Option(
        "max-image-pixels",
        f"refuse images with more pixels than N, as decompression bombs (default: {DEFAULT_MAX_IMAGE_PIXELS})",
        "N",
        parse=whole(DEFAULT_MAX_IMAGE_PIXELS, 1),
    ),
    Option(
        "offline",
        "never touch the network: weights only from the local cache; missing datasets skip with a message saying where to put them",
        kind="flag",
        parse=_flag,
    ),
    Option("samples", "evaluate a class-stratified, seeded subset of N test images per dataset (default: all)", "N", parse=whole(None, 1, none_word="all")),
    Option("seed", "seed of the subset (default: 0)", "N", parse=whole(0, 0)),
    Option(
        "templates",
        "prompts: clip (CLIP's ensemble for the dataset), paper (the seed paper's single prompt) or a JSON file (default: clip)",
        "clip|paper|FILE",
        parse=_templates,
    ),
    Option(
        "protocol",
        "paper: the seed paper's released settings (paper prompt, jpeg-q100 IG baseline, 51 IG steps) wherever no option sets them; "
        "default: ours (default: default)",
        "|".join(PROTOCOLS),
        parse=choice(PROTOCOLS, "default"),
    ),
    Option("results", "write a JSON file with one record per evaluation", "PATH", parse=_plain_path),
    Option(
        "baseline",
        "results file of an earlier run (e.g. the last release) that assert_no_regression compares with, image by image",
        "PATH",
        parse=_path,
    ),
    Option("baseline-save", "at the end of the run, write the results file to PATH for later use as --clip-baseline", "PATH", parse=_output_file),
    Option("min-accuracy", "default floor for assert_accuracy(min_accuracy=...), in [0, 1]", "FLOAT", parse=_fraction),
    Option("max-drop", "default floor for assert_accuracy(max_drop=...), in [0, 1]", "FLOAT", parse=_fraction),
    Option("ig-samples", "Integrated Gradients for up to K flipped images of each failing test; 0 disables (default: 4)", "K", parse=whole(4, 0)),
    Option("ig-steps", "integration steps for IG, or auto for the fewest steps meeting the completeness tolerance (default: 50)", "N|auto", parse=_ig_steps),
    Option(
        "ig-baseline",
        "IG's reference input (captum's baseline; not the --clip-baseline file): uncompressed (the image itself), jpeg-q100 (its quality-100 "
        "JPEG, the paper's released code), black or blur (default: uncompressed)",
        "|".join(IG_BASELINES),
        parse=choice(IG_BASELINES, "uncompressed"),
    ),
    Option(
        "ig-on",
        "which tests get IG: failed (unexpected failures), xfailed (failures and xfails), all (also passing tests) or never (default: failed)",
        "|".join(IG_ON),
        parse=choice(IG_ON, "failed"),
    ),
    Option(
        "ig-budget",
        "stop explaining more images once IG has spent SECONDS in this process (each xdist worker has its own; default: no limit)",
        "SECONDS",
        parse=_seconds,
    ),
    Option("report", "write charts, attribution images and index.html to DIR (works without pytest-html)", "DIR", parse=_plain_path),
    Option(
        "summary",
        "write a Markdown summary (failures first, a table per model and dataset) to PATH; it is also appended to $GITHUB_STEP_SUMMARY when that is set",
        "PATH",
        parse=_plain_path,
    ),
    Option("cache-dir", "folder of the per-image logits cache (default: a per-user cache folder)", "DIR", parse=_path_or(default_cache_dir)),
    Option(
        "strict",
        "fail every clip case that skips (missing data, no baseline): in CI a case that could not run is not a pass",
        kind="flag",
        parse=_flag,
    ),
    Option("no-cache", "neither read nor write the logits cache", kind="flag", parse=_flag),
    Option("cache-clear", "empty the logits cache at the start of the run", kind="flag", parse=_flag),
)
