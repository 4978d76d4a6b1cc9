"""Integrated Gradients on a tiny random open_clip model, block masks and rendering."""

from __future__ import annotations

import io
import json
from typing import NamedTuple

import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms import CenterCrop, InterpolationMode, Resize

from pytest_clipcompress.ig.geometry import display_grid
from pytest_clipcompress.ig.integrated_gradients import (
    aggregate,
    auto_steps_integrated_gradients,
    block_boundary_mask,
    integrated_gradients,
    summarize_attribution,
)
from pytest_clipcompress.render.attribution_figure import render_attribution_png
from pytest_clipcompress.render.html import ig_table_html

from .helpers import attribution_info

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # many small torch operations

CLASS_NAMES = ["cat", "dog", "truck", "ship"]
TINY_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


class ZeroShot(torch.nn.Module):
    """logits = 100 * cos(image, class text), as CLIP zero-shot classification."""

    def __init__(self, model: torch.nn.Module, text_features: torch.Tensor) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("text_features", text_features)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return 100 * F.normalize(self.model.encode_image(images), dim=-1) @ self.text_features.T


class Case(NamedTuple):
    classifier: ZeroShot
    original: Image.Image
    compressed: Image.Image
    baseline: torch.Tensor  # preprocessed original
    inputs: torch.Tensor  # preprocessed JPEG-10 version
    label: int  # the class whose loss compression changes most


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> Case:
    config = tmp_path_factory.mktemp("clip") / "tiny-attribution-clip.json"
    config.write_text(json.dumps(TINY_CONFIG))
    open_clip.add_model_config(config)
    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms("tiny-attribution-clip", pretrained=None)
    tokenizer = open_clip.get_tokenizer("tiny-attribution-clip")
    with torch.no_grad():
        text = F.normalize(model.encode_text(tokenizer([f"a photo of a {n}" for n in CLASS_NAMES])), dim=-1)
    classifier = ZeroShot(model, text)

    # Smooth patterns plus noise, so JPEG at quality 10 changes the pixels a lot.
    yy, xx = np.mgrid[0:32, 0:32]
    pixels = np.stack([128 + 100 * np.sin(xx / 4), 128 + 100 * np.cos(yy / 5), (xx * yy) % 256], axis=-1)
    pixels += np.random.default_rng(0).normal(0, 20, pixels.shape)
    original = Image.fromarray(pixels.clip(0, 255).astype(np.uint8))
    encoded = io.BytesIO()
    original.save(encoded, "JPEG", quality=10)
    compressed = Image.open(io.BytesIO(encoded.getvalue())).convert("RGB")

    baseline, inputs = preprocess(original), preprocess(compressed)
    with torch.no_grad():
        log_probs = classifier(torch.stack([inputs, baseline])).log_softmax(dim=-1)
    label = int((log_probs[0] - log_probs[1]).abs().argmax())  # CE change = -(log p_input - log p_baseline)
    return Case(classifier, original, compressed, baseline, inputs, label)


def relative_gap(attributions: torch.Tensor, f_input: float, f_baseline: float) -> float:
    delta = f_input - f_baseline
    return abs(float(attributions.sum()) - delta) / abs(delta)


def test_default_ig_is_complete_and_converges(case: Case) -> None:
    attributions, f_input, f_baseline = integrated_gradients(case.classifier, case.inputs, case.baseline, case.label)
    assert attributions.shape == case.inputs.shape
    assert abs(f_input - f_baseline) > 0.1  # a real change of loss, so the relative gap means something
    # Measured ~7e-5 on this smooth model; 1% still catches a wrong quadrature weight (captum's own
    # trapezoid weights alone would be 2% short at 50 steps).
    assert relative_gap(attributions, f_input, f_baseline) <= 0.01
    coarse = integrated_gradients(case.classifier, case.inputs, case.baseline, case.label, steps=10)
    assert relative_gap(*coarse) > relative_gap(attributions, f_input, f_baseline)


def test_matches_a_plain_trapezoid_loop(case: Case) -> None:
    steps = 50
    attributions, _, _ = integrated_gradients(case.classifier, case.inputs, case.baseline, case.label, steps=steps)

    # Independent IG: trapezoid rule over alphas = linspace(0, 1, steps), one backward per alpha.
    weights = torch.ones(steps) / (steps - 1)
    weights[[0, -1]] /= 2
    total_gradient = torch.zeros_like(case.inputs)
    case.classifier.eval()
    for alpha, weight in zip(torch.linspace(0, 1, steps), weights, strict=True):
        point = (case.baseline + alpha * (case.inputs - case.baseline)).unsqueeze(0).requires_grad_()
        loss = F.cross_entropy(case.classifier(point), torch.tensor([case.label]))
        (gradient,) = torch.autograd.grad(loss, point)
        total_gradient += weight * gradient[0]
    expected = total_gradient * (case.inputs - case.baseline)

    assert float((attributions - expected).norm() / expected.norm()) <= 1e-4


def test_internal_batch_size_does_not_change_the_result(case: Case) -> None:
    results = [integrated_gradients(case.classifier, case.inputs, case.baseline, case.label, internal_batch_size=size)[0] for size in (1, 7, 50)]
    for other in results[1:]:
        assert float((other - results[0]).norm() / results[0].norm()) <= 1e-5


def test_module_state_is_restored(case: Case) -> None:
    classifier = case.classifier
    classifier.train()
    classifier.model.transformer.eval()  # a mixed-mode module keeps its per-submodule modes
    frozen = next(classifier.model.parameters())
    frozen.requires_grad_(False)
    try:
        integrated_gradients(classifier, case.inputs, case.baseline, case.label, steps=4)
        assert classifier.training and classifier.model.visual.training
        assert not classifier.model.transformer.training
        assert not frozen.requires_grad
        assert all(p.requires_grad for p in list(classifier.model.parameters())[1:])
        assert all(p.grad is None for p in classifier.parameters())
    finally:
        frozen.requires_grad_(True)
        classifier.eval()


def test_auto_steps_meets_tolerance_with_few_steps(case: Case) -> None:
    attributions, f_input, f_baseline, steps, method = auto_steps_integrated_gradients(case.classifier, case.inputs, case.baseline, case.label, tolerance=0.01)
    assert relative_gap(attributions, f_input, f_baseline) <= 0.01
    assert steps < 50
    assert method == "gausslegendre"


def test_block_boundary_mask_identity() -> None:
    mask = block_boundary_mask((32, 32), 32)
    on_boundary = np.isin(np.arange(32) % 8, [0, 7])
    assert mask.dtype == bool
    np.testing.assert_array_equal(mask, on_boundary[:, None] | on_boundary[None, :])
    # 8 of 32 rows and 8 of 32 columns: 1 - (24/32)^2 of the pixels.
    assert mask.mean() == 1 - (24 / 32) ** 2 == 0.4375


def test_block_boundary_mask_upscaled_marks_seven_pixel_bands() -> None:
    mask = block_boundary_mask((32, 32), 224)
    np.testing.assert_array_equal(mask, np.kron(block_boundary_mask((32, 32), 32), np.ones((7, 7), dtype=bool)))
    assert mask[0:7].all() and not mask[7:49, 7:49].any() and mask[49:63].all()


@pytest.mark.parametrize(("source_hw", "input_size"), [((32, 32), 224), ((24, 36), 64), ((100, 80), 32)])
def test_block_boundary_mask_follows_the_val_transform(source_hw: tuple[int, int], input_size: int) -> None:
    # Trace source coordinates through torchvision's own Resize + CenterCrop (as in open_clip's val
    # transform, with NEAREST so indices survive). These shapes have no pixel centre exactly on a
    # source pixel edge, where PIL's float rounding is arbitrary.
    height, width = source_hw
    transform = [Resize(input_size, interpolation=InterpolationMode.NEAREST), CenterCrop(input_size)]

    def traced(index: np.ndarray) -> np.ndarray:
        image = Image.fromarray(index.astype(np.int32), "I")
        for step in transform:
            image = step(image)
        return np.asarray(image)

    rows = traced(np.repeat(np.arange(height)[:, None], width, axis=1))
    cols = traced(np.repeat(np.arange(width)[None, :], height, axis=0))
    expected = np.isin(rows % 8, [0, 7]) | np.isin(cols % 8, [0, 7])
    np.testing.assert_array_equal(block_boundary_mask(source_hw, input_size), expected)


def test_summarize_attribution() -> None:
    attributions = np.zeros((3, 4, 4))
    attributions[0, 0, 0] = 2.0
    attributions[1, 1, 1] = -1.0
    attributions[2, 2, 2] = 1.0
    mask = np.zeros((4, 4), dtype=bool)
    mask[0, :] = True
    summary = summarize_attribution(torch.from_numpy(attributions), mask)
    assert summary == {
        "sum_attributions": 2.0,
        "positive_mass": 3.0,
        "negative_mass": 1.0,
        "boundary_share": 0.5,
        "boundary_area_share": 0.25,
    }


def test_aggregate_and_to_dict() -> None:
    items = [attribution_info(0), attribution_info(1, delta_f=-0.4, completeness_gap=0.03, boundary_share=0.4)]
    summary = aggregate(items)
    assert summary["count"] == 2
    assert summary["mean_completeness_gap"] == pytest.approx(0.02)
    assert summary["mean_abs_delta_f"] == pytest.approx(1.0)
    assert summary["total_positive_mass"] == pytest.approx(4.0)
    assert summary["mean_boundary_share"] == pytest.approx(0.5)
    assert summary["total_seconds"] == pytest.approx(1.0)
    assert aggregate([])["mean_completeness_gap"] is None
    assert json.loads(json.dumps(items[0]))["method"] == "riemann_trapezoid"


def test_render_png_and_html_table(case: Case) -> None:
    attributions, f_input, f_baseline = integrated_gradients(case.classifier, case.inputs, case.baseline, case.label)
    info = attribution_info(
        3,
        label=case.label,
        f_input=f_input,
        f_reference=f_baseline,
        delta_f=f_input - f_baseline,
        sum_attributions=float(attributions.sum()),
        true_name=CLASS_NAMES[case.label],
        compression_id="jpeg-q10",
    )
    size = case.inputs.shape[-1]
    pictures = (display_grid(case.original, size), display_grid(case.compressed, size))
    png = render_attribution_png(*pictures, attributions.numpy(), info)
    assert png == render_attribution_png(*pictures, attributions.numpy(), info)
    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG"
        assert 600 <= image.width <= 900 and 200 <= image.height <= 350

    table = ig_table_html([attribution_info(0, true_name="<script>", pred_compressed_name="dog")])
    assert "<script>" not in table and "&lt;script&gt;" in table
    assert table.count("<tr>") == 2
