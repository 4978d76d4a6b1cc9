"""Train the bundled micro CLIP ("clipcompress-demo") on the procedural demo dataset.

Usage (the shipped weights were made with the defaults):

    python scripts/train_demo_model.py --output pytest_clipcompress/demo/clipcompress-demo.pt

Training is contrastive (open_clip's ``ClipLoss``) on captions built from
``DEMO_TEMPLATES`` and the class names. Every epoch draws a fresh train split
(seed ``seed * 1000 + epoch``), which is the only augmentation: the model never
sees JPEG-compressed images, so, like real CLIP, it is vulnerable to them.

Reproducibility: torch and numpy are seeded, deterministic algorithms are
enforced and the thread count is fixed by ``--threads`` (default 1). CPU matmul
results can depend on the thread count, so rerun with the same ``--threads``
to get the same weights bit for bit; other counts agree to within noise.
Single-threaded is also no slower on a small machine whose cores are shared.
About 5 minutes on one core.
"""

from __future__ import annotations

import argparse
import io
import math
import sys
import time
from pathlib import Path

import numpy as np
import open_clip
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_clipcompress.demo import (
    DEMO_CLASSES,
    DEMO_MODEL_CONFIG,
    DEMO_MODEL_NAME,
    DEMO_TEMPLATES,
    DEMO_WEIGHTS,
    generate_demo_images,
)
from pytest_clipcompress.files import atomic_write_bytes

QUALITIES = (None, 100, 75, 50, 25)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEMO_WEIGHTS, help="where to save the state_dict")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (fixed for reproducibility)")
    parser.add_argument("--train-per-class", type=int, default=320, help="fresh train images per class per epoch")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    return parser.parse_args(argv)


def to_tensor(images: np.ndarray, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> normalized float (N, 3, H, W), as open_clip's preprocess does at native size."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255)
    return (x - mean) / std


def zero_shot_accuracies(weights: Path) -> dict[str, float]:
    """Accuracy of the saved weights on the demo test split, through the plugin's own evaluation."""
    from pytest_clipcompress.codecs.compression import Compression
    from pytest_clipcompress.config.settings import build_settings
    from pytest_clipcompress.engine.evaluator import Evaluator

    values = {"pretrained": str(weights), "device": "cpu", "no-cache": True}
    evaluator = Evaluator(build_settings(lambda option: values.get(option.name)))
    results = {}
    for quality in QUALITIES:
        compression = Compression("none") if quality is None else Compression("jpeg", quality=quality)
        results["none" if quality is None else f"jpeg{quality}"] = evaluator.evaluate(DEMO_MODEL_NAME, "demo", compression).accuracy
    return results


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    rng = np.random.default_rng(args.seed)

    open_clip.add_model_config(DEMO_MODEL_CONFIG)
    model, _, _ = open_clip.create_model_and_transforms(DEMO_MODEL_NAME)
    tokenizer = open_clip.get_tokenizer(DEMO_MODEL_NAME)
    cfg = open_clip.get_model_preprocess_cfg(model)
    mean = torch.tensor(cfg["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(cfg["std"]).view(1, 3, 1, 1)

    # Every (class, template) caption, tokenized once: row class * T + template.
    captions = tokenizer([t.format(name) for name in DEMO_CLASSES for t in DEMO_TEMPLATES])
    n_templates = len(DEMO_TEMPLATES)

    # Standard CLIP recipe: no weight decay on gains, biases and the temperature.
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}], lr=args.lr)
    steps_per_epoch = args.train_per_class * len(DEMO_CLASSES) // args.batch_size
    total_steps = args.epochs * steps_per_epoch
    warmup = max(1, total_steps // 20)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: (s + 1) / warmup if s < warmup else 0.5 * (1 + math.cos(math.pi * (s - warmup) / (total_steps - warmup))),
    )
    loss_fn = open_clip.ClipLoss()

    start = time.perf_counter()
    model.train()
    for epoch in range(args.epochs):
        images, labels = generate_demo_images("train", args.train_per_class, seed=args.seed * 1000 + epoch)
        order = rng.permutation(labels.size)
        template_ids = rng.integers(n_templates, size=labels.size)
        running = 0.0
        for step in range(steps_per_epoch):
            idx = order[step * args.batch_size : (step + 1) * args.batch_size]
            x = to_tensor(images[idx], mean, std)
            text = captions[torch.from_numpy(labels[idx] * n_templates + template_ids[idx])]
            image_feats, text_feats, logit_scale = model(x, text)
            loss = loss_fn(image_feats, text_feats, logit_scale)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            with torch.no_grad():  # same temperature cap as open_clip's trainer
                model.logit_scale.clamp_(0, math.log(100))
            running += loss.item()
        print(f"epoch {epoch + 1:3d}/{args.epochs}  loss {running / steps_per_epoch:.4f}  {time.perf_counter() - start:6.1f}s", flush=True)

    model.eval()
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    atomic_write_bytes(args.output, buffer.getvalue())  # an interrupted save never leaves half a file
    print(f"saved {args.output} ({args.output.stat().st_size / 1e6:.2f} MB) after {time.perf_counter() - start:.1f}s")

    results = zero_shot_accuracies(args.output)
    for name, accuracy in results.items():
        print(f"zero-shot accuracy {name:>7}: {accuracy:.3f}")
    return results


if __name__ == "__main__":
    main()
