"""The zero-shot head: class text embeddings from prompt templates, and the module that turns image
batches into zero-shot logits (evaluation and Integrated Gradients use the same one)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from .load import LoadedModel

LOGIT_SCALE = 100.0  # zero-shot logits are 100 x cosine similarity, as in CLIP's evaluation code


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
