"""Integrated Gradients for the images a test's compression flipped: which images, which baseline.

Picks up to ``--clip-ig-samples`` flipped images (correct uncompressed, wrong compressed; most
confident flips first), attributes the zero-shot loss from the baseline (by default the same
image uncompressed; the seed paper's released code uses its quality-100 JPEG, ``jpeg-q100``) to
the compressed image, and returns an :class:`~.records.AttributionSet` (numbers and PNG pictures,
no markup) that travels with the test report, also from pytest-xdist workers. The controller
renders it (:mod:`.render`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageFilter

from .records import (
    AttributionItem,
    AttributionSet,
    attribution_item,
    attribution_set,
    unique_results,
)

if TYPE_CHECKING:
    from .attribution import ImageAttribution
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


def explain(results: list[EvalResult], evaluator: Evaluator, deadline: float | None = None) -> tuple[AttributionSet, int]:
    """Attribute up to ``--clip-ig-samples`` flipped images across a test's evaluations (failed floors first).

    Returns the attributions and how many images were chosen: fewer are explained when the
    ``time.perf_counter()`` ``deadline`` passes (checked before each image).
    """
    from .attribution import (
        aggregate,
        auto_steps_integrated_gradients,
        block_boundary_mask,
        integrated_gradients,
        summarize_attribution,
    )
    from .render.attribution_figure import render_attribution_png

    settings = evaluator.settings
    unique = unique_results(results)
    failing = [r for r in unique if any(not check["passed"] for check in r.checks)]
    chosen = [(result, int(position)) for result in failing or unique for position in result.flipped]
    chosen = chosen[: settings.ig_samples]
    items: list[AttributionItem] = []
    pngs: list[bytes] = []
    infos = []
    started = time.perf_counter()
    for result, position in chosen:
        if deadline is not None and time.perf_counter() >= deadline:
            break
        dataset = evaluator.dataset_named(result.dataset)
        classifier = evaluator.classifier_for(result)
        loaded = evaluator.model(result.model_id)
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
        heatmap = attributions.numpy()
        geometry = _geometry(loaded.preprocess, original, inputs.shape[-2:])
        summary = summarize_attribution(heatmap, block_boundary_mask((original.height, original.width), geometry))
        info = _image_attribution(result, position, index, label, steps, method, f_input, f_baseline, summary, time.perf_counter() - image_started)
        pngs.append(
            render_attribution_png(
                original, compressed, heatmap, class_names=result.classes, info=info, compression_label=result.compression.id, geometry=geometry
            )
        )
        infos.append(info)
        items.append(
            attribution_item(
                info.to_dict(),
                model=result.model,
                dataset=result.dataset,
                compression_id=result.compression.id,
                baseline=settings.ig_baseline,
                classes=result.classes,
            )
        )
    return attribution_set(items, pngs, aggregate(infos), time.perf_counter() - started), len(chosen)


def _image_attribution(
    result: EvalResult,
    position: int,
    index: int,
    label: int,
    steps: int,
    method: str,
    f_input: float,
    f_baseline: float,
    summary: dict[str, float],
    seconds: float,
) -> ImageAttribution:
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
