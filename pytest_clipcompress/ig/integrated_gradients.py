"""Integrated Gradients explanations of compression-induced CLIP failures.

Following Chen et al. 2023, "Understanding the Vulnerability of CLIP to Image Compression":
the attributed function is the cross-entropy of the zero-shot logits against the true label
and the IG *input* is the compressed image. The IG *baseline* is by default the uncompressed
image (the paper's released code uses its quality-100 JPEG instead; see ``--clip-ig-baseline``).
The attributions then sum (up to quadrature error) to ``F(compressed) - F(baseline)``, the
change of loss caused by compression, and show which pixel changes made the model worse
(positive) or better (negative).

Everything here works in the model-input grid, i.e. on tensors already produced by the
model's preprocessing (resize, crop, normalisation; the geometry module maps it back to the source).
This module is imported lazily because it pulls in torch and captum. It holds the maths only;
:mod:`.explain` chooses the images and makes their records, and the picture of an explained image
is drawn by :mod:`..render.attribution_figure`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from captum.attr import IntegratedGradients

from ..results.schema import AttributionItem, AttributionSummary
from .geometry import block_boundary_mask

__all__ = [
    "DEFAULT_INTERNAL_BATCH_SIZE",
    "IG_METHODS",
    "aggregate",
    "auto_steps_integrated_gradients",
    "block_boundary_mask",
    "integrated_gradients",
    "summarize_attribution",
]

Classifier = Callable[[torch.Tensor], torch.Tensor]

#: Interpolation points evaluated per forward/backward pass, by device type. On CPU, 25 runs the
#: default 50 steps in two equal passes (ViT-B-32 at 224 px: +0.7 GiB peak memory, against
#: +1.5 GiB for one pass of 50, and larger models need far more); a GPU takes all 50 at once.
DEFAULT_INTERNAL_BATCH_SIZE: dict[str, int] = {"cpu": 25, "cuda": 64}
_FALLBACK_INTERNAL_BATCH_SIZE = 25

#: Quadrature rules accepted by captum's ``IntegratedGradients``.
IG_METHODS = ("riemann_trapezoid", "gausslegendre", "riemann_left", "riemann_right", "riemann_middle")


def _device_of(classifier: Classifier, fallback: torch.device) -> torch.device:
    if isinstance(classifier, torch.nn.Module):
        for parameter in classifier.parameters():
            return parameter.device
        for buffer in classifier.buffers():
            return buffer.device
    return fallback


def _resolve_batch_size(internal_batch_size: int | None, device: torch.device) -> int:
    if internal_batch_size is not None:
        if internal_batch_size < 1:
            raise ValueError(f"internal_batch_size must be at least 1, got {internal_batch_size}")
        return internal_batch_size
    return DEFAULT_INTERNAL_BATCH_SIZE.get(device.type, _FALLBACK_INTERNAL_BATCH_SIZE)


@contextmanager
def _frozen_eval(classifier: Classifier) -> Iterator[None]:
    """Eval mode and no parameter gradients for the duration; restores both afterwards.

    Gradients are only needed with respect to the pixels; freezing the parameters keeps
    autograd from also computing weight gradients at every step. Modes are saved per submodule
    because a module may mix training and eval children.
    """
    if not isinstance(classifier, torch.nn.Module):
        yield
        return
    modes = [(module, module.training) for module in classifier.modules()]
    flags = [(parameter, parameter.requires_grad) for parameter in classifier.parameters()]
    classifier.eval()
    for parameter, _ in flags:
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter, flag in flags:
            parameter.requires_grad_(flag)
        for module, training in modes:
            module.training = training


def _loss_function(classifier: Classifier, label: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """Per-sample ``F(x) = CE(classifier(x), label)``, shape (B,), as captum expects."""

    def loss(batch: torch.Tensor) -> torch.Tensor:
        logits = classifier(batch)
        target = torch.full((batch.shape[0],), label, dtype=torch.long, device=logits.device)
        return F.cross_entropy(logits, target, reduction="none")

    return loss


def _endpoint_losses(classifier: Classifier, inputs: torch.Tensor, baseline: torch.Tensor, label: int) -> tuple[float, float]:
    with torch.no_grad():
        losses = _loss_function(classifier, label)(torch.stack([inputs, baseline]))
    return float(losses[0]), float(losses[1])


def _captum_ig(
    classifier: Classifier,
    inputs: torch.Tensor,
    baseline: torch.Tensor,
    label: int,
    steps: int,
    method: str,
    internal_batch_size: int,
) -> torch.Tensor:
    if method not in IG_METHODS:
        raise ValueError(f"unknown IG method {method!r}; choose one of {', '.join(IG_METHODS)}")
    minimum_steps = 1 if method == "gausslegendre" else 2
    if steps < minimum_steps:
        raise ValueError(f"IG with {method} needs at least {minimum_steps} steps, got {steps}")
    ig = IntegratedGradients(_loss_function(classifier, label))
    attributions = ig.attribute(
        inputs.unsqueeze(0),
        baselines=baseline.unsqueeze(0),
        n_steps=steps,
        method=method,
        internal_batch_size=internal_batch_size,
    )[0]
    if method == "riemann_trapezoid":
        # captum's trapezoid weights are 1/n with halved endpoints, summing to (n-1)/n instead
        # of 1 (a 2% shortfall at 50 steps); rescale to the true trapezoid weights 1/(n-1) so the
        # attributions satisfy completeness up to quadrature error only.
        attributions = attributions * (steps / (steps - 1))
    return attributions.detach().cpu()


def _prepare(classifier: Classifier, inputs: torch.Tensor, baseline: torch.Tensor, internal_batch_size: int | None) -> tuple[torch.Tensor, torch.Tensor, int]:
    if inputs.shape != baseline.shape or inputs.dim() != 3:
        raise ValueError(f"inputs and baseline must both be (3, H, W) tensors, got {tuple(inputs.shape)} and {tuple(baseline.shape)}")
    device = _device_of(classifier, inputs.device)
    batch_size = _resolve_batch_size(internal_batch_size, device)
    return inputs.detach().to(device), baseline.detach().to(device), batch_size


def integrated_gradients(
    classifier: Classifier,
    inputs: torch.Tensor,
    baseline: torch.Tensor,
    label: int,
    *,
    steps: int = 50,
    method: str = "riemann_trapezoid",
    internal_batch_size: int | None = None,
) -> tuple[torch.Tensor, float, float]:
    """Integrated Gradients of the zero-shot cross-entropy from ``baseline`` to ``inputs``.

    ``classifier`` maps a normalised batch (B, 3, H, W) to zero-shot logits (B, C); ``inputs``
    (the compressed image) and ``baseline`` (e.g. the uncompressed image) are (3, H, W) tensors in
    that same normalised model-input space. The steps run ``internal_batch_size`` at a time
    (default: :data:`DEFAULT_INTERNAL_BATCH_SIZE` for the classifier's device).

    Returns ``(attributions, F(inputs), F(baseline))`` with the (3, H, W) attributions as a
    detached CPU tensor; ``attributions.sum()`` approximates ``F(inputs) - F(baseline)``.
    """
    inputs, baseline, batch_size = _prepare(classifier, inputs, baseline, internal_batch_size)
    with _frozen_eval(classifier):
        f_input, f_baseline = _endpoint_losses(classifier, inputs, baseline, label)
        attributions = _captum_ig(classifier, inputs, baseline, label, steps, method, batch_size)
    return attributions, f_input, f_baseline


def auto_steps_integrated_gradients(
    classifier: Classifier,
    inputs: torch.Tensor,
    baseline: torch.Tensor,
    label: int,
    *,
    tolerance: float = 0.01,
    max_steps: int = 256,
    absolute_tolerance: float = 1e-4,
    internal_batch_size: int | None = None,
) -> tuple[torch.Tensor, float, float, int, str]:
    """IG with the fewest steps whose completeness gap is within tolerance.

    Tries Gauss-Legendre quadrature with 4, 8, 16, ... (< ``max_steps``) points, then the
    trapezoid rule with ``max_steps`` points, and stops at the first result with
    ``|sum(IG) - (F(inputs) - F(baseline))| <= max(tolerance * |F(inputs) - F(baseline)|,
    absolute_tolerance)``; the absolute floor keeps near-zero loss changes from demanding
    ever more steps. If none qualifies, the result with the smallest gap is returned.

    Returns ``(attributions, F(inputs), F(baseline), steps, method)``.
    """
    if max_steps < 2:
        raise ValueError(f"max_steps must be at least 2, got {max_steps}")
    inputs, baseline, batch_size = _prepare(classifier, inputs, baseline, internal_batch_size)
    schedule: list[tuple[str, int]] = []
    points = 4
    while points < max_steps:
        schedule.append(("gausslegendre", points))
        points *= 2
    schedule.append(("riemann_trapezoid", max_steps))
    with _frozen_eval(classifier):
        f_input, f_baseline = _endpoint_losses(classifier, inputs, baseline, label)
        allowed = max(tolerance * abs(f_input - f_baseline), absolute_tolerance)
        best: tuple[float, torch.Tensor, int, str] | None = None
        for method, steps in schedule:
            attributions = _captum_ig(classifier, inputs, baseline, label, steps, method, batch_size)
            gap = abs(float(attributions.sum()) - (f_input - f_baseline))
            if best is None or gap < best[0]:
                best = (gap, attributions, steps, method)
            if gap <= allowed:
                break
    assert best is not None  # the schedule always holds the trapezoid fallback
    _, attributions, steps, method = best
    return attributions, f_input, f_baseline, steps, method


def summarize_attribution(attributions: np.ndarray, boundary_mask: np.ndarray) -> dict[str, float]:
    """Sum, positive/negative mass and block-boundary concentration of (3, H, W) attributions."""
    values = np.asarray(attributions, dtype=np.float64)
    if values.shape[1:] != boundary_mask.shape:
        raise ValueError(f"attributions {values.shape} do not match boundary mask {boundary_mask.shape}")
    magnitude = np.abs(values).sum(axis=0)
    total = float(magnitude.sum())
    return {
        "sum_attributions": float(values.sum()),
        "positive_mass": float(values[values > 0].sum()),
        "negative_mass": float(-values[values < 0].sum()),
        "boundary_share": float(magnitude[boundary_mask].sum()) / total if total > 0 else 0.0,
        "boundary_area_share": float(boundary_mask.mean()),
    }


def aggregate(items: list[AttributionItem]) -> AttributionSummary:
    """Per-test summary of the explained images; means are ``None`` when there are none."""
    count = len(items)

    def mean(values: list[float]) -> float | None:
        return sum(values) / count if count else None

    return {
        "count": count,
        "mean_completeness_gap": mean([item["completeness_gap"] for item in items]),
        "mean_abs_delta_f": mean([abs(item["delta_f"]) for item in items]),
        "total_positive_mass": sum(item["positive_mass"] for item in items),
        "total_negative_mass": sum(item["negative_mass"] for item in items),
        "mean_boundary_share": mean([item["boundary_share"] for item in items]),
        "mean_boundary_area_share": mean([item["boundary_area_share"] for item in items]),
        "total_seconds": sum(item["seconds"] for item in items),
    }
