"""Integrated Gradients for the images a test lost: which images, from which reference input.

Picks up to ``--clip-ig-samples`` images: on a failed gate check those the candidate lost against
its reference, else the flipped ones (correct uncompressed, wrong compressed), most confident wrong
predictions first; attributes the zero-shot loss from IG's reference input (by default the same
image uncompressed; the seed paper's released code uses its quality-100 JPEG, ``jpeg-q100``) to
the compressed image, and returns an :class:`~..results.schema.AttributionSet` (numbers and PNG
pictures, no markup) that travels with the test report, also from pytest-xdist workers. The
controller renders its text (:mod:`..render`).
"""

from __future__ import annotations

import base64
import time
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageFilter

from ..config.settings import IGOptions
from ..engine.result import EvalResult, softmax, unique_results
from ..results.schema import AttributionItem, AttributionSet

if TYPE_CHECKING:
    from ..engine.evaluator import Evaluator
    from .geometry import InputGeometry


def reference_image(kind: str, uncompressed: Image.Image, compressed: Image.Image) -> Image.Image:
    """IG's reference input in pixel space (``--clip-ig-baseline``; captum calls it the baseline).

    ``uncompressed``: the image itself; ``jpeg-q100``: its quality-100 JPEG through Pillow with
    Pillow's other defaults, the baseline of the seed paper's released ``compute_IG.py``;
    ``black``; ``blur``: a Gaussian blur of the compressed input.
    """
    if kind == "uncompressed":
        return uncompressed
    if kind == "jpeg-q100":
        from ..codecs.compression import Compression

        return Compression("jpeg", quality=100).apply(uncompressed)[0]
    if kind == "black":
        return Image.new("RGB", uncompressed.size)
    radius = max(1.0, min(compressed.size) / 16)
    return compressed.filter(ImageFilter.GaussianBlur(radius))


def _geometry(preprocess: Any, image: Image.Image, input_hw: Any) -> InputGeometry:
    """Where the model's own preprocessing puts the image's pixels; centre crop if it cannot be measured."""
    from .geometry import InputGeometry, measured_geometry

    try:
        return measured_geometry(preprocess, (image.height, image.width))
    except ValueError:
        return InputGeometry.centre_crop((image.height, image.width), int(input_hw[-1]))


def explain(results: list[EvalResult], evaluator: Evaluator, options: IGOptions, deadline: float | None = None) -> tuple[AttributionSet, int]:
    """Attribute up to ``options.samples`` flipped images across a test's evaluations (failed checks first).

    Returns the attributions and how many images were chosen: fewer are explained when the
    ``time.perf_counter()`` ``deadline`` passes (checked before each image).
    """
    from ..render.attribution_figure import render_attribution_png
    from .geometry import display_grid

    unique = unique_results(results)
    failing = [r for r in unique if any(not check["passed"] for check in r.checks)]
    chosen = [(result, int(position), why) for result in failing or unique for position, why in _candidates(result)][: options.samples]
    items: list[AttributionItem] = []
    pngs: list[str] = []
    started = time.perf_counter()
    for result, position, why in chosen:
        if deadline is not None and time.perf_counter() >= deadline:
            break
        original = evaluator.dataset_named(result.dataset).image(int(result.indices[position]))
        compressed, _ = result.compression.apply(original)
        item, heatmap, geometry = _attribute(result, position, evaluator, options, original, compressed)
        item["chosen_as"] = why
        png = render_attribution_png(display_grid(original, geometry), display_grid(compressed, geometry), heatmap, item)
        pngs.append(base64.b64encode(png).decode("ascii"))
        items.append(item)
    from .integrated_gradients import aggregate

    return {"items": items, "images": pngs, "summary": aggregate(items), "seconds": time.perf_counter() - started}, len(chosen)


def _candidates(result: EvalResult) -> list[tuple[int, str]]:
    """The images to explain and why: those a failed gate check lost against its reference, else the compression flips."""
    failed_gate = next((check for check in result.checks if "changes" in check and not check["passed"]), None)
    if failed_gate is not None and result.lost is not None:
        return [(int(position), f"lost against {failed_gate.get('reference', 'the reference')}") for position in result.lost]
    return [(int(position), "compression flip") for position in result.flipped]


def _attribute(
    result: EvalResult, position: int, evaluator: Evaluator, options: IGOptions, original: Image.Image, compressed: Image.Image
) -> tuple[AttributionItem, np.ndarray, InputGeometry]:
    """IG of one flipped image: its record, its (3, H, W) attributions and where the model saw its pixels."""
    from .geometry import block_boundary_mask
    from .integrated_gradients import auto_steps_integrated_gradients, integrated_gradients, summarize_attribution

    classifier = evaluator.classifier_for(result)
    loaded = evaluator.model(result.model_id)
    label = int(result.labels[position])
    inputs = loaded.preprocess(compressed)
    reference = loaded.preprocess(reference_image(options.baseline, original, compressed))
    started = time.perf_counter()
    if options.steps == "auto":
        attributions, f_input, f_reference, steps, method = auto_steps_integrated_gradients(classifier, inputs, reference, label)
    else:
        steps, method = int(options.steps), "riemann_trapezoid"
        attributions, f_input, f_reference = integrated_gradients(classifier, inputs, reference, label, steps=steps)
    heatmap = attributions.numpy().astype(np.float64)
    geometry = _geometry(loaded.preprocess, original, inputs.shape[-2:])
    summary = summarize_attribution(heatmap, block_boundary_mask((original.height, original.width), geometry))
    before = softmax(result.baseline_logits[position].astype(np.float64))
    after = softmax(result.logits[position].astype(np.float64))
    delta_f = f_input - f_reference
    classes = result.classes
    item: AttributionItem = {
        "index": int(result.indices[position]),
        "label": label,
        "pred_uncompressed": int(before.argmax()),
        "pred_compressed": int(after.argmax()),
        "prob_true_uncompressed": float(before[label]),
        "prob_true_compressed": float(after[label]),
        "steps": steps,
        "method": method,
        "f_input": f_input,
        "f_reference": f_reference,
        "delta_f": delta_f,
        "sum_attributions": summary["sum_attributions"],
        "completeness_gap": abs(summary["sum_attributions"] - delta_f),
        "positive_mass": summary["positive_mass"],
        "negative_mass": summary["negative_mass"],
        "boundary_share": summary["boundary_share"],
        "boundary_area_share": summary["boundary_area_share"],
        "seconds": time.perf_counter() - started,
        "model": result.model,
        "dataset": result.dataset,
        "compression_id": result.compression.id,
        "reference_input": options.baseline,
        "chosen_as": "compression flip",
        "true_name": classes[label],
        "pred_uncompressed_name": classes[int(before.argmax())],
        "pred_compressed_name": classes[int(after.argmax())],
    }
    return item, heatmap, geometry
