"""Loading a resolved model through open_clip as its publishers ran it (the tag's preprocessing and
activation), on a device, offline when asked; the loaded model's weights hash and activation."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ModelError
from ..results.schema import ModelFacts
from .resolve import ModelSpec, activation_name, config_quick_gelu, pretrained_config


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

    def facts(self) -> ModelFacts:
        """What identifies this model's numbers: its label, a hash of its weights, device and precision."""
        return {"label": self.spec.label, "weights_hash": self.weights_hash(), "device": self.device, "precision": self.precision}

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
    tag_config = pretrained_config(spec.name, spec.pretrained)
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
