"""Integrated Gradients for the images a failing test's compression flipped.

Picks up to ``--clip-ig-samples`` flipped images (correct uncompressed, wrong compressed; most
confident flips first), attributes the zero-shot loss from the baseline (by default the same
image uncompressed; the seed paper's released code uses its quality-100 JPEG, ``jpeg-q100``) to
the compressed image, and returns JSON-able numbers,
a table and PNG pictures that travel with the test report (also from pytest-xdist workers).
"""

from __future__ import annotations

import base64
import time
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageFilter

if TYPE_CHECKING:
    from .evaluation import EvalResult, Evaluator


def baseline_image(kind: str, uncompressed: Image.Image, compressed: Image.Image) -> Image.Image:
    """The IG baseline in pixel space (``--clip-ig-baseline``).

    ``uncompressed``: the image itself; ``jpeg-q100``: its quality-100 JPEG through Pillow with
    Pillow's other defaults, the baseline of the seed paper's released ``compute_IG.py``;
    ``black``; ``blur``: a Gaussian blur of the compressed input.
    """
    if kind == "uncompressed":
        return uncompressed
    if kind == "jpeg-q100":
        from .compression import Compression

        return Compression("jpeg", quality=100).apply(uncompressed)[0]
    if kind == "black":
        return Image.new("RGB", uncompressed.size)
    radius = max(1.0, min(compressed.size) / 16)
    return compressed.filter(ImageFilter.GaussianBlur(radius))


def _geometry(preprocess: Any, image: Image.Image, input_hw: Any) -> Any:
    """Where the model's own preprocessing puts the image's pixels; centre crop if it cannot be measured."""
    from .geometry import InputGeometry, measured_geometry

    try:
        return measured_geometry(preprocess, (image.height, image.width))
    except ValueError:
        return InputGeometry.centre_crop((image.height, image.width), int(input_hw[-1]))


def explain_failures(results: list[EvalResult], evaluator: Evaluator) -> dict[str, Any]:
    """Attribute up to K flipped images across the test's evaluations (failed floors first)."""
    from .attribution import aggregate, attribution_table_html, auto_steps_integrated_gradients, block_boundary_mask
    from .attribution import integrated_gradients, render_attribution_png, summarize_attribution

    settings = evaluator.settings
    unique = list({result.key: result for result in results}.values())
    failing = [r for r in unique if any(not check["passed"] for check in r.checks)]
    budget = settings.ig_samples
    items: list[dict[str, Any]] = []
    images: list[str] = []
    infos = []
    started = time.perf_counter()
    for result in failing or unique:
        if budget <= 0:
            break
        dataset = evaluator.dataset_named(result.dataset)
        classifier = evaluator.classifier_for(result)
        loaded = evaluator.model(result.model_id)
        for position in result.flipped[:budget]:
            index = int(result.indices[position])
            label = int(result.labels[position])
            original = dataset.image(index)
            compressed, _ = result.compression.apply(original)
            inputs = loaded.preprocess(compressed)
            baseline = loaded.preprocess(baseline_image(settings.ig_baseline, original, compressed))
            image_started = time.perf_counter()
            if settings.ig_steps == "auto":
                attributions, f_input, f_baseline, steps, method = auto_steps_integrated_gradients(classifier, inputs, baseline, label)
            else:
                steps, method = int(settings.ig_steps), "riemann_trapezoid"
                attributions, f_input, f_baseline = integrated_gradients(classifier, inputs, baseline, label, steps=steps)
            attributions = attributions.numpy()
            geometry = _geometry(loaded.preprocess, original, inputs.shape[-2:])
            summary = summarize_attribution(attributions, block_boundary_mask((original.height, original.width), geometry))
            info = _image_attribution(result, position, index, label, steps, method, f_input, f_baseline, summary, time.perf_counter() - image_started)
            png = render_attribution_png(original, compressed, attributions, class_names=result.classes, info=info, compression_label=result.compression.id, geometry=geometry)
            infos.append(info)
            items.append(
                {
                    **info.to_dict(),
                    "model": result.model,
                    "dataset": result.dataset,
                    "compression_id": result.compression.id,
                    "baseline": settings.ig_baseline,
                    "true_name": result.classes[label],
                    "pred_uncompressed_name": result.classes[info.pred_uncompressed],
                    "pred_compressed_name": result.classes[info.pred_compressed],
                }
            )
            images.append(base64.b64encode(png).decode("ascii"))
            budget -= 1
    classes = unique[0].classes if unique else ()
    return {
        "items": items,
        "images": images,
        "table_html": attribution_table_html(infos, classes) if infos else "",
        "summary": aggregate(infos),
        "seconds": time.perf_counter() - started,
    }


def _image_attribution(result: EvalResult, position: int, index: int, label: int, steps: int, method: str, f_input: float, f_baseline: float, summary: dict[str, float], seconds: float):  # noqa: ANN202
    from .attribution import ImageAttribution
    from .evaluation import softmax

    before = softmax(result.baseline_logits[position].astype(np.float64))
    after = softmax(result.logits[position].astype(np.float64))
    delta_f = f_input - f_baseline
    return ImageAttribution(
        index=index,
        label=label,
        pred_uncompressed=int(before.argmax()),
        pred_compressed=int(after.argmax()),
        prob_true_uncompressed=float(before[label]),
        prob_true_compressed=float(after[label]),
        steps=steps,
        method=method,
        f_input=f_input,
        f_baseline=f_baseline,
        delta_f=delta_f,
        completeness_gap=abs(summary["sum_attributions"] - delta_f),
        seconds=seconds,
        **summary,
    )


# A completeness gap above this share of |ΔF| makes an image's attributions unreliable (docs/attributions.md).
IG_GAP_FLAG = 0.05
IG_GAP_FLOOR = 1e-4  # below this absolute gap (auto's own floor) a tiny ΔF is not flagged


def gap_warning(item: dict[str, Any]) -> str | None:
    """``IG gap 7% of ΔF: ...`` when an image's quadrature error is too large to trust its attributions."""
    gap, delta = item["completeness_gap"], abs(item["delta_f"])
    if gap <= max(IG_GAP_FLAG * delta, IG_GAP_FLOOR):
        return None
    share = f"{gap / delta:.0%}" if delta > 0 else "more than all"
    return f"image {item['index']}: IG gap {share} of ΔF: raise --clip-ig-steps or use auto"


def attribution_text(data: dict[str, Any]) -> str:
    """Plain-text IG numbers for a failing test's report section (terminal and JUnit)."""
    lines = [
        f"Integrated Gradients ({len(data['items'])} flipped images, {data['seconds']:.1f} s); "
        "F = cross-entropy of the true class; IG from baseline to compressed input"
    ]
    lines.append(f"{'index':>6} {'true':<12} {'before':<12} {'after':<12} {'F(in)-F(base)':>13} {'sum IG':>9} {'gap':>9} {'+mass':>8} {'-mass':>8} {'on 8x8 edges':>12}")
    for item in data["items"]:
        lines.append(
            f"{item['index']:>6} {item['true_name'][:12]:<12} {item['pred_uncompressed_name'][:12]:<12} {item['pred_compressed_name'][:12]:<12} "
            f"{item['delta_f']:>13.4f} {item['sum_attributions']:>9.4f} {item['completeness_gap']:>9.2e} {item['positive_mass']:>8.3f} "
            f"{item['negative_mass']:>8.3f} {item['boundary_share']:>5.0%} of |IG| on {item['boundary_area_share']:.0%} of pixels"
        )
    lines += [warning for warning in map(gap_warning, data["items"]) if warning]
    lines.append(aggregate_text(data["summary"]))
    return "\n".join(lines)


def aggregate_text(summary: dict[str, Any]) -> str:
    """One line of per-test totals: how faithful the attributions are and where their mass sits."""
    return (
        f"all {summary['count']}: mean completeness gap {summary['mean_completeness_gap']:.2e} against mean |F(in)-F(base)| "
        f"{summary['mean_abs_delta_f']:.3f}; +mass {summary['total_positive_mass']:.3f}, -mass {summary['total_negative_mass']:.3f}; "
        f"{summary['mean_boundary_share']:.0%} of |IG| on JPEG 8x8 block edges, which are {summary['mean_boundary_area_share']:.0%} of pixels"
    )
