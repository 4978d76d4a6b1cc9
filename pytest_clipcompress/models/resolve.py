"""Which weights and activation to build each ``--clip-model`` entry with, decided without loading:
open_clip model names, pretrained tags, checkpoint files, QuickGELU, and the bundled demo model."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config.options import QUICK_GELU_MODES
from ..config.settings import ModelOptions
from ..demo import DEMO_MODEL_CONFIG, DEMO_MODEL_NAME, DEMO_WEIGHTS
from ..errors import ConfigError, ModelError

REQUIRED_CONFIG_KEYS = ("embed_dim", "vision_cfg", "text_cfg")


@dataclass(frozen=True)
class ModelSpec:
    """What to load: an open_clip model name and its weights (a tag, a checkpoint path, or None for random).

    ``quick_gelu`` is the activation to build with where it differs from the model config's own
    (True: QuickGELU, False: GELU); None builds the config as it is. OpenAI's weights, for one,
    were trained with QuickGELU while open_clip's ``ViT-B-32`` config says GELU.
    """

    name: str
    pretrained: str | None
    quick_gelu: bool | None = None

    @property
    def label(self) -> str:
        suffix = "" if self.quick_gelu is None else f" ({activation_name(self.quick_gelu)})"
        return f"{self.name}/{self.pretrained_label}{suffix}"

    @property
    def pretrained_label(self) -> str:
        if self.pretrained is None:
            schema = self.name.split(":", 1)[0]
            return schema if schema in ("hf-hub", "local-dir") else "random-init"
        return Path(self.pretrained).name if is_checkpoint_path(self.pretrained) else self.pretrained


def activation_name(quick_gelu: bool) -> str:
    return "QuickGELU" if quick_gelu else "GELU"


def is_checkpoint_path(value: str) -> bool:
    return Path(value).suffix in {".pt", ".pth", ".bin", ".safetensors", ".ckpt"} or "/" in value or "\\" in value


_REGISTERED_CONFIGS: set[Path] = set()  # open_clip rescans on every add: register each path once per process


def register_model_configs(paths: list[str]) -> list[str]:
    """Register JSON model configs (files or folders of them) with open_clip; returns the model names.

    A path already registered in this process is checked and named again but not re-added.
    """
    import open_clip

    names = []
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            raise ModelError(f"--clip-model-config: {path} does not exist; give a JSON model config or a folder of them")
        files = sorted(path.glob("*.json")) if path.is_dir() else [path]
        if not files:
            raise ModelError(f"--clip-model-config: {path} holds no .json model configs")
        for file in files:
            validate_model_config(file)
            names.append(file.stem)
        if path.resolve() not in _REGISTERED_CONFIGS:
            open_clip.add_model_config(path)
            _REGISTERED_CONFIGS.add(path.resolve())
    return names


def validate_model_config(path: Path) -> None:
    example = '{"embed_dim": 512, "vision_cfg": {...}, "text_cfg": {...}}'
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelError(f"--clip-model-config: {path} is not valid JSON ({error}); an open_clip config looks like {example}") from None
    missing = [key for key in REQUIRED_CONFIG_KEYS if not isinstance(config, dict) or key not in config]
    if missing:
        raise ModelError(f"--clip-model-config: {path} lacks {', '.join(missing)}; an open_clip config looks like {example}")


def resolve_model_spec(name: str, pretrained: str | None, quick_gelu: str = "auto") -> ModelSpec:
    """Check the model name and choose its weights and activation without loading anything.

    ``pretrained`` None means the default: ``openai`` where open_clip has it, else the first tag
    open_clip lists for the model. ``none`` means random initialisation. ``quick_gelu`` ``auto``
    takes the activation a tag's weights were trained with (open_clip's pretrained config), or
    the model config's own for a checkpoint file; ``on``/``off`` choose QuickGELU/GELU.
    """
    spec = _resolve_weights(name, pretrained)
    if quick_gelu not in QUICK_GELU_MODES:
        raise ConfigError(f"--clip-quick-gelu {quick_gelu!r}: choose one of {', '.join(QUICK_GELU_MODES)}")
    if spec.name.startswith(("hf-hub:", "local-dir:")):
        if quick_gelu != "auto":
            raise ConfigError(
                f"--clip-quick-gelu {quick_gelu} does not apply to {spec.name}: its open_clip_config.json says which "
                "activation it uses; leave --clip-quick-gelu at auto"
            )
        return spec
    own = config_quick_gelu(spec.name)
    if quick_gelu == "auto":
        wanted = published_quick_gelu(spec.name, spec.pretrained)
        wanted = own if wanted is None else wanted
    else:
        wanted = quick_gelu == "on"
    return ModelSpec(spec.name, spec.pretrained, None if wanted == own else wanted)


def config_quick_gelu(name: str) -> bool:
    """Whether the registered open_clip config of ``name`` builds QuickGELU (open_clip's default is GELU)."""
    import open_clip

    return bool((open_clip.get_model_config(name) or {}).get("quick_gelu", False))


def published_quick_gelu(name: str, pretrained: str | None) -> bool | None:
    """The activation a pretrained tag's weights were trained with; None if ``pretrained`` is not a tag.

    open_clip's pretrained config says ``quick_gelu`` where the weights need another activation
    than the base config (``openai`` on ``ViT-B-32``); where it says nothing, the weights were
    trained with the model's own config (``roberta-ViT-B-32``, whose config is QuickGELU).
    """
    tag_config = pretrained_config(name, pretrained)
    if not tag_config:
        return None
    return bool(tag_config["quick_gelu"]) if "quick_gelu" in tag_config else config_quick_gelu(name)


def pretrained_config(name: str, pretrained: str | None) -> dict[str, Any]:
    """open_clip's pretrained config of a tag ({} for a checkpoint file or random weights)."""
    import open_clip

    if pretrained is None or is_checkpoint_path(pretrained):
        return {}
    return open_clip.get_pretrained_cfg(name, pretrained)


def _resolve_weights(name: str, pretrained: str | None) -> ModelSpec:
    import open_clip

    if name.startswith(("hf-hub:", "local-dir:")):
        return ModelSpec(name, None)
    known = open_clip.list_models()
    if name not in known:
        close = difflib.get_close_matches(name, known, n=5, cutoff=0.6)
        hint = f"did you mean {', '.join(close)}?" if close else "see open_clip.list_models() for the names"
        raise ModelError(f"unknown model {name!r}: {hint} (a private architecture needs --clip-model-config)")
    tags = open_clip.list_pretrained_tags_by_model(name)
    if pretrained is None:
        if not tags:
            raise ModelError(f"open_clip has no pretrained weights for {name!r}; pass --clip-pretrained with a checkpoint file, or none for random weights")
        return ModelSpec(name, "openai" if "openai" in tags else tags[0])
    if pretrained.lower() == "none":
        return ModelSpec(name, None)
    if pretrained in tags:
        return ModelSpec(name, pretrained)
    path = Path(pretrained).expanduser()
    if path.is_file():
        return ModelSpec(name, str(path))
    if path.exists() or is_checkpoint_path(pretrained):
        raise ModelError(f"checkpoint file {path} does not exist; give the path to a .pt/.safetensors file")
    valid = ", ".join(tags) if tags else "none (this model has no published weights)"
    raise ModelError(f"unknown pretrained tag {pretrained!r} for {name}; valid tags: {valid}; or give a checkpoint file, or none")


def model_config_paths(configs: tuple[str, ...]) -> list[str]:
    """The bundled demo config and the user's ``--clip-model-config`` files, to register with open_clip."""
    return [str(DEMO_MODEL_CONFIG), *configs]


def spec_for(options: ModelOptions, model_id: str) -> ModelSpec:
    """The weights to load for a model id (role or name); the demo model defaults to its bundled checkpoint."""
    entry = options.entry(model_id)
    pretrained = entry.weights if entry.weights is not None else options.pretrained
    quick_gelu = options.quick_gelu_of(model_id)
    if entry.name == DEMO_MODEL_NAME and pretrained is None:
        return resolve_model_spec(DEMO_MODEL_NAME, str(DEMO_WEIGHTS), quick_gelu)
    return resolve_model_spec(entry.name, pretrained, quick_gelu)
