"""CLIP models through open_clip: resolving names, tags and checkpoints, loading, zero-shot heads."""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, ModelError

if TYPE_CHECKING:
    import torch

DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
LOGIT_SCALE = 100.0  # zero-shot logits are 100 x cosine similarity, as in CLIP's evaluation code
REQUIRED_CONFIG_KEYS = ("embed_dim", "vision_cfg", "text_cfg")
QUICK_GELU_MODES = ("auto", "on", "off")


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


@dataclass
class LoadedModel:
    """A loaded CLIP model with its own preprocessing and tokenizer."""

    spec: ModelSpec
    model: Any
    preprocess: Callable
    tokenizer: Callable
    device: str
    precision: str
    _weights_hash: str | None = field(default=None, init=False, repr=False)

    @property
    def preprocess_id(self) -> str:
        return repr(self.preprocess)

    @property
    def activation(self) -> str:
        """The activation the built model really uses, read from its modules (hf-hub configs say their own)."""
        from open_clip.transformer import QuickGELU

        return activation_name(any(isinstance(module, QuickGELU) for module in self.model.modules()))

    def weights_hash(self) -> str:
        """A digest of every parameter and buffer, so a changed checkpoint never reuses stale results.

        Computed once: the plugin never changes a loaded model's weights. SHA-256 (with the CPU's SHA
        instructions where it has them) over the tensors' memory, without copying it to ``bytes``,
        hashes ViT-B-32's 600 MB in about half a second; blake2b over copies took 1.0-1.3 s.
        """
        if self._weights_hash is None:
            import torch

            digest = hashlib.sha256()
            for name, tensor in sorted(self.model.state_dict().items()):
                digest.update(name.encode())
                digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
            self._weights_hash = digest.hexdigest()[:32]
        return self._weights_hash


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
    tag_config = _tag_config(name, pretrained)
    if not tag_config:
        return None
    return bool(tag_config["quick_gelu"]) if "quick_gelu" in tag_config else config_quick_gelu(name)


def _tag_config(name: str, pretrained: str | None) -> dict[str, Any]:
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


def resolve_device(option: str, worker_index: int | None) -> str:
    """``auto``: CUDA when present (xdist worker i on GPU i mod count), else CPU."""
    import torch

    if option == "auto":
        if torch.cuda.is_available():
            return f"cuda:{(worker_index or 0) % torch.cuda.device_count()}"
        return "cpu"
    if option.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--clip-device {option}: CUDA is not available here (torch {torch.__version__}); use --clip-device cpu or auto")
    if option.startswith("cuda:") and int(option[5:]) >= torch.cuda.device_count():
        raise ConfigError(f"--clip-device {option}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    if option == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("--clip-device mps: Apple's MPS backend is not available here; use --clip-device cpu or auto")
    return option


def load_arguments(spec: ModelSpec, download: Callable[[dict[str, Any]], str] | None = None) -> dict[str, Any]:
    """Keyword arguments for ``open_clip.create_model_and_transforms`` that build ``spec`` as published.

    A tag's weights load through the tag, so open_clip applies the tag's own preprocessing (mean,
    std, interpolation, resize mode). ``force_quick_gelu`` makes a GELU config (``ViT-B-32``) match
    QuickGELU weights (``openai``), which open_clip would otherwise only warn about. Building
    deliberately against the tag's activation loads the tag's file as a checkpoint with the tag's
    preprocessing, so that open_clip has no tag to compare with and nothing to warn about (also
    where open_clip's own tables disagree, as for ``roberta-ViT-B-32``). ``download`` resolves
    the tag's file (default: ``open_clip.download_pretrained``, which honours the hub cache).
    """
    import open_clip

    arguments: dict[str, Any] = {"pretrained": spec.pretrained}
    if spec.quick_gelu is True:
        arguments["force_quick_gelu"] = True
    elif spec.quick_gelu is False:
        arguments["quick_gelu"] = False  # a model keyword, applied after open_clip's tag check
    tag_config = _tag_config(spec.name, spec.pretrained)
    builds = config_quick_gelu(spec.name) if spec.quick_gelu is None else spec.quick_gelu
    if tag_config and builds != bool(tag_config.get("quick_gelu", False)):
        arguments["pretrained"] = (download or open_clip.download_pretrained)(tag_config)
        arguments.update(
            image_mean=tag_config["mean"],
            image_std=tag_config["std"],
            image_interpolation=tag_config["interpolation"],
            image_resize_mode=tag_config["resize_mode"],
        )
    return arguments


def load_model(spec: ModelSpec, device: str, precision: str = "fp32", offline: bool = False) -> LoadedModel:
    """Load through ``open_clip.create_model_and_transforms`` with the model's own preprocessing and tokenizer."""
    import open_clip
    import torch

    try:
        # Random initialisation is seeded so that every process (xdist workers too) builds the same model.
        with torch.random.fork_rng(devices=[]), _hub_offline(offline):
            torch.manual_seed(0)
            model, _, preprocess = open_clip.create_model_and_transforms(spec.name, device=device, pretrained_text=False, **load_arguments(spec))
        tokenizer = open_clip.get_tokenizer(spec.name)
    except Exception as error:  # open_clip raises many types for bad files and failed downloads
        raise ModelError(_load_failure_message(spec, error, offline)) from None
    model.eval()
    return LoadedModel(spec, model, preprocess, tokenizer, device, precision)


@contextlib.contextmanager
def _hub_offline(offline: bool) -> Iterator[None]:
    """Under --clip-offline, weights come from the local Hugging Face cache or not at all."""
    if not offline:
        yield
        return
    import huggingface_hub.constants as hub

    saved = (os.environ.get("HF_HUB_OFFLINE"), hub.HF_HUB_OFFLINE)
    os.environ["HF_HUB_OFFLINE"], hub.HF_HUB_OFFLINE = "1", True
    try:
        yield
    finally:
        hub.HF_HUB_OFFLINE = saved[1]
        if saved[0] is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = saved[0]


def _load_failure_message(spec: ModelSpec, error: Exception, offline: bool) -> str:
    first_line = next((line for line in str(error).splitlines() if line.strip()), "")
    detail = f"{type(error).__name__}: {first_line.strip()}"[:300]  # the gist; library errors run to pages
    if spec.pretrained and Path(spec.pretrained).is_file():
        return f"cannot load checkpoint {spec.pretrained} into {spec.name} ({detail}); the file is corrupt or belongs to another architecture"
    if offline:
        return (
            f"weights for {spec.label} are not in the local cache and --clip-offline forbids downloading them ({detail}); "
            "run once with network access to fill the cache, or pass --clip-pretrained PATH to a checkpoint file"
        )
    return f"cannot load {spec.label} ({detail}); check the network, or pass --clip-pretrained PATH to a local checkpoint"


def class_text_features(loaded: LoadedModel, classes: tuple[str, ...], templates: tuple[str, ...]) -> torch.Tensor:
    """Per-class text embedding: the mean of L2-normalised template embeddings, renormalised. Shape (C, D)."""
    import torch

    model = loaded.model
    features = []
    with torch.no_grad():
        for name in classes:
            tokens = loaded.tokenizer([template.replace("{}", name) for template in templates]).to(loaded.device)
            embedded = torch.nn.functional.normalize(model.encode_text(tokens).float(), dim=-1)
            features.append(torch.nn.functional.normalize(embedded.mean(dim=0), dim=-1))
    return torch.stack(features)


def zero_shot_classifier(loaded: LoadedModel, text_features: torch.Tensor) -> torch.nn.Module:
    """A module mapping preprocessed image batches to zero-shot logits (used for evaluation and IG)."""
    import torch

    class ZeroShotClassifier(torch.nn.Module):
        text_features: torch.Tensor  # a registered buffer

        def __init__(self) -> None:
            super().__init__()
            self.clip = loaded.model
            self.register_buffer("text_features", text_features)

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            image_features = torch.nn.functional.normalize(self.clip.encode_image(images).float(), dim=-1)
            return LOGIT_SCALE * image_features @ self.text_features.T

    return ZeroShotClassifier().eval()
