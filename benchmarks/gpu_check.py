"""GPU paths of the plugin, checked and timed on a CUDA machine (not part of the test suite).

Usage: python benchmarks/gpu_check.py [--images N] [--cifar-root DIR]

Checks that ``--clip-device auto`` picks CUDA (worker i on GPU i mod count), that fp16/bf16 autocast
keep predictions (agreement with fp32), times the plugin against a plain batched loop on CUDA, and
runs Integrated Gradients on CUDA (completeness, batched steps against one pass per step).

Ratio to the limit (issue 15): plugin throughput over the zero-shot head's own forward on
pre-made tensors already on the GPU (same batch size 256, same run), fp32 and fp16 autocast, with
``--clip-preprocess exact`` and ``fast``; target >= 0.8 for fp16. IG against one batched forward and
backward of its steps (target >= 0.8).
ViT-B-32 has random weights here (no downloads), so accuracies mean nothing; agreement and
speed do.
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pytest_clipcompress.codecs.compression import Compression
from pytest_clipcompress.config.settings import build_settings
from pytest_clipcompress.data.base import ArrayDataset
from pytest_clipcompress.data.cifar10 import CIFAR10_TEMPLATES, load_cifar10
from pytest_clipcompress.engine.evaluator import Evaluator
from pytest_clipcompress.ig.integrated_gradients import integrated_gradients
from pytest_clipcompress.models.load import resolve_device
from pytest_clipcompress.models.zero_shot import LOGIT_SCALE

QUALITIES = (100, 75, 50, 25)


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def settings_for(precision: str, workers: int = 4, batch_size: int = 256, preprocess: str = "exact") -> object:
    values = {
        "model": ["ViT-B-32"],
        "pretrained": "none",
        "precision": precision,
        "no-cache": True,
        "workers": str(workers),
        "batch-size": str(batch_size),
        "preprocess": preprocess,
    }
    return build_settings(lambda option: values.get(option.name))


def plugin_run(settings: object, dataset: ArrayDataset) -> tuple[dict[int, np.ndarray], float]:
    evaluator = Evaluator.from_settings(settings)
    evaluator.model("ViT-B-32")  # load outside the timing, as a session does once
    synchronize()
    started = time.perf_counter()
    predictions = {q: evaluator.evaluate("ViT-B-32", dataset, Compression("jpeg", quality=q)).predictions for q in QUALITIES}
    synchronize()
    return predictions, time.perf_counter() - started


def plain_loop(evaluator: Evaluator, dataset: ArrayDataset, batch_size: int) -> tuple[dict[int, np.ndarray], float]:
    loaded = evaluator.model("ViT-B-32")
    model, device = loaded.model, loaded.device
    started = time.perf_counter()
    with torch.no_grad():
        text = []
        for name in dataset.classes:
            features = model.encode_text(loaded.tokenizer([t.format(name) for t in CIFAR10_TEMPLATES]).to(device)).float()
            features = features / features.norm(dim=-1, keepdim=True)
            text.append(features.mean(0) / features.mean(0).norm())
        text_features = torch.stack(text)
        predictions = {}
        for quality in (None, *QUALITIES):
            out = []
            for start in range(0, len(dataset), batch_size):
                tensors = []
                for index in range(start, min(start + batch_size, len(dataset))):
                    image = dataset.image(index)
                    if quality is not None:
                        buffer = io.BytesIO()
                        image.save(buffer, "JPEG", quality=quality)
                        image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
                    tensors.append(loaded.preprocess(image))
                features = model.encode_image(torch.stack(tensors).to(device)).float()
                features = features / features.norm(dim=-1, keepdim=True)
                out.append((LOGIT_SCALE * features @ text_features.T).argmax(1).cpu().numpy())
            predictions[quality] = np.concatenate(out)
    synchronize()
    return predictions, time.perf_counter() - started


def lean_ig(classifier: torch.nn.Module, inputs: torch.Tensor, baseline: torch.Tensor, label: int, steps: int) -> torch.Tensor:
    """One forward and backward pass per step, trapezoid weights."""
    weights = torch.ones(steps, device=inputs.device)
    weights[0] = weights[-1] = 0.5
    weights /= steps - 1
    total = torch.zeros_like(inputs)
    for alpha, weight in zip(torch.linspace(0, 1, steps), weights, strict=True):
        point = (baseline + alpha * (inputs - baseline)).unsqueeze(0).requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(classifier(point), torch.tensor([label], device=inputs.device))
        (gradient,) = torch.autograd.grad(loss, point)
        total += weight * gradient[0]
    return (total * (inputs - baseline)).cpu()


def autocast(precision: str) -> object:
    return torch.autocast("cuda", dtype=torch.float16, enabled=precision == "fp16")


def pure_forward(classifier: torch.nn.Module, tensors: torch.Tensor, batch_size: int, passes: int, precision: str) -> float:
    """The limit: the zero-shot head on pre-made tensors already on the GPU."""
    synchronize()
    started = time.perf_counter()
    with torch.inference_mode(), autocast(precision):
        for _ in range(passes):
            for start in range(0, len(tensors), batch_size):
                classifier(tensors[start : start + batch_size])
    synchronize()
    return time.perf_counter() - started


def limit_ratios(dataset: ArrayDataset, workers: int) -> None:
    """Plugin images/s over pure-forward images/s, per precision and preprocess path, interleaved."""
    evaluator = Evaluator.from_settings(settings_for("fp32", workers))
    loaded = evaluator.model("ViT-B-32")
    classifier = evaluator.classifier("ViT-B-32", dataset)
    tensors = torch.stack([loaded.preprocess(dataset.image(i)) for i in range(len(dataset))]).to(loaded.device)
    passes = len(QUALITIES) + 1
    for precision in ("fp32", "fp16"):
        pure_forward(classifier, tensors, 256, 1, precision)  # warm-up
        forward_s = []
        plugin_s: dict[str, list[float]] = {"exact": [], "fast": []}
        for _ in range(2):
            forward_s.append(pure_forward(classifier, tensors, 256, passes, precision))
            for mode, times in plugin_s.items():
                times.append(plugin_run(settings_for(precision, workers, preprocess=mode), dataset)[1])
        limit = len(dataset) * passes / min(forward_s)
        for mode, times in plugin_s.items():
            rate = len(dataset) * passes / min(times)
            target = " (target >= 0.8: " + ("met" if rate / limit >= 0.8 else "NOT MET") + ")" if precision == "fp16" else ""
            print(f"ratio to the limit, {precision}, {mode}: {rate:.0f} / {limit:.0f} images/s = {rate / limit:.2f}{target}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--cifar-root", default=".gpu")
    parser.add_argument("--workers", type=int, default=4, help="--clip-workers for the plugin runs")
    args = parser.parse_args()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    print(f"torch {torch.__version__}, {gpu}, {torch.cuda.device_count()} GPU(s)")
    print("device auto ->", resolve_device("auto", None), "; xdist worker 3 ->", resolve_device("auto", 3))

    sample = load_cifar10(Path(args.cifar_root), offline=True)
    reps = -(-args.images // len(sample))
    images = np.concatenate([sample.images] * reps)[: args.images]
    labels = np.concatenate([sample.labels] * reps)[: args.images]
    dataset = ArrayDataset("cifar10-tiled", sample.classes, images, labels, f"tiled-{args.images}", CIFAR10_TEMPLATES)
    print(f"{len(dataset)} images (the 200-image CIFAR-10 sample, tiled) x JPEG {QUALITIES} + uncompressed")

    limit_ratios(dataset, args.workers)
    runs = {}
    for precision in ("fp32", "fp16", "bf16"):
        plugin_run(settings_for(precision), dataset)  # warm-up: cuDNN autotuning, allocator
        runs[precision] = plugin_run(settings_for(precision), dataset)
        print(f"plugin {precision}: {runs[precision][1]:.2f} s ({len(dataset) * 5 / runs[precision][1]:.0f} images/s incl. uncompressed)")
    for precision in ("fp16", "bf16"):
        agreement = np.mean([np.mean(runs[precision][0][q] == runs["fp32"][0][q]) for q in QUALITIES])
        print(f"prediction agreement {precision} vs fp32: {agreement:.4%}")

    evaluator = Evaluator.from_settings(settings_for("fp32"))
    loop_predictions, loop_seconds = plain_loop(evaluator, dataset, 256)
    same = all(np.array_equal(loop_predictions[q], runs["fp32"][0][q]) for q in QUALITIES)
    print(f"plain loop fp32: {loop_seconds:.2f} s; plugin/loop time ratio {runs['fp32'][1] / loop_seconds:.2f}; identical predictions: {same}")

    classifier = evaluator.classifier("ViT-B-32", dataset)
    loaded = evaluator.model("ViT-B-32")
    original = dataset.image(0)
    compressed, _ = Compression("jpeg", quality=25).apply(original)
    inputs, baseline = loaded.preprocess(compressed).to(loaded.device), loaded.preprocess(original).to(loaded.device)
    label = int(dataset.labels[0])
    for _ in range(2):  # the first of each is a warm-up
        synchronize()
        started = time.perf_counter()
        attributions, f_input, f_baseline = integrated_gradients(classifier, inputs, baseline, label, steps=50)
        synchronize()
        batched = time.perf_counter() - started
        started = time.perf_counter()
        lean = lean_ig(classifier, inputs, baseline, label, 50)
        synchronize()
        loop = time.perf_counter() - started
    gap = abs(float(attributions.sum()) - (f_input - f_baseline))
    difference = float((attributions - lean).norm() / lean.norm())
    print(f"IG on CUDA, 50 steps: batched {batched:.3f} s, one pass per step {loop:.3f} s, speed-up {loop / batched:.1f}x")
    internal = 64  # the plugin's internal batch size on CUDA
    alphas = torch.linspace(0, 1, 50, device=inputs.device).view(-1, 1, 1, 1)
    for _ in range(2):  # the first is a warm-up
        synchronize()
        started = time.perf_counter()
        points = (baseline + alphas * (inputs - baseline)).requires_grad_(True)
        for start in range(0, 50, internal):
            x = points[start : start + internal]
            loss = torch.nn.functional.cross_entropy(classifier(x), torch.full((len(x),), label, device=inputs.device), reduction="sum")
            torch.autograd.grad(loss, points)
        synchronize()
        limit = time.perf_counter() - started
    verdict = "met" if limit / batched >= 0.8 else "NOT MET"
    print(
        "IG ratio to its limit (one batched forward + backward of the 50 steps): "
        f"{limit:.3f} / {batched:.3f} s = {limit / batched:.2f} (target >= 0.8: {verdict})"
    )
    print(f"IG completeness gap {gap:.2e} (|F(in)-F(base)| = {abs(f_input - f_baseline):.3e}); batched vs loop relative difference {difference:.2e}")


if __name__ == "__main__":
    main()
