"""Issue 22's workload on a GPU, as whole processes, and the device transform's exactness on CUDA.

Usage (from the repository root, on a CUDA machine):

    python benchmarks/gpu_check.py --cifar-root ../shared/datasets/cifar10-test-sample
    python benchmarks/gpu_check.py --small   # the same steps on the CPU at a tiny size: a smoke test, figures mean nothing

The workload: ViT-B-32 with random weights (speed only), fp16 autocast, batch 256, the 200-image
CIFAR-10 sample tiled to 9,800 images (written as a CIFAR-10 python file), uncompressed + JPEG
100/75/50/25: 49,000 evaluations. Three ways, each a fresh process, alternated over ``--repeats``:

1. **the plugin with its defaults**: ``pytest`` on a five-test suite (``--clip-model ViT-B-32
   --clip-pretrained none --clip-precision fp16 --clip-batch-size 256 --clip-no-cache``), timed as
   pytest reports its session (after the plugin's imports, model load and prompts inside);
2. **a DataLoader loop**: what a user would write, torch's DataLoader with ``--loop-workers`` (16)
   worker processes each doing the Pillow JPEG round trip and open_clip's preprocess per image,
   batches to the GPU, fp16 autocast; timed after its imports (model load and prompts inside);
3. **the limit**: the zero-shot head's forward on tensors already on the GPU, fp16 autocast, batch 256.

It prints a table (way, images/s, share of the limit; target: the plugin >= 0.8 of the limit and
>= 5x the loop) and checks that the device transform on the GPU equals each model's own Pillow
transform, bit for bit, on the CIFAR-10 sample, the image-folder sample (when present) and images
of random sizes, for every resize mode and interpolation open_clip's configs use. Finally
Integrated Gradients against one batched forward and backward of its steps (target >= 0.8).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pickle
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
from timing import alternated  # noqa: E402  (benchmarks/timing.py, beside this script)

from pytest_clipcompress.data.cifar10 import CIFAR10_TEMPLATES  # noqa: E402 - importable only after the sys.path line

QUALITIES = (100, 75, 50, 25)
WORKLOAD_SUITE = """
import pytest

@pytest.mark.clip_dataset("cifar10")
@pytest.mark.compression("none")
@pytest.mark.compression("jpeg", quality=[100, 75, 50, 25])
def test_workload(clip_eval):
    clip_eval()
"""


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def cifar_arrays(root: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    folder = root / "cifar-10-batches-py"
    with open(folder / "test_batch", "rb") as handle:
        batch = pickle.load(handle, encoding="bytes")
    with open(folder / "batches.meta", "rb") as handle:
        classes = [name.decode("ascii") for name in pickle.load(handle, encoding="bytes")[b"label_names"]]
    return np.asarray(batch[b"data"], dtype=np.uint8), np.asarray(batch[b"labels"]), classes


def write_tiled_cifar(source: Path, target: Path, count: int) -> None:
    """The sample repeated to ``count`` images, in the official python layout (a subset: no checksum applies)."""
    data, labels, _ = cifar_arrays(source)
    reps = -(-count // len(data))
    folder = target / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batch = {b"data": np.concatenate([data] * reps)[:count], b"labels": np.concatenate([labels] * reps)[:count].tolist()}
    (folder / "test_batch").write_bytes(pickle.dumps(batch, protocol=2))
    (folder / "batches.meta").write_bytes((source / "cifar-10-batches-py" / "batches.meta").read_bytes())


# --- the three ways, each in its own process ----------------------------------------------------------


class RoundTrip(torch.utils.data.Dataset):
    """The loop's dataset: Pillow JPEG round trip and the model's preprocess per image, in DataLoader workers."""

    def __init__(self, data: np.ndarray, quality: int | None, preprocess: Any) -> None:
        self.data, self.quality, self.preprocess = data, quality, preprocess

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> torch.Tensor:
        image = Image.fromarray(np.ascontiguousarray(self.data[index].reshape(3, 32, 32).transpose(1, 2, 0)))
        if self.quality is not None:
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=self.quality)
            image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
        return self.preprocess(image)


def load_model(args: argparse.Namespace, device: str) -> tuple[Any, Any, Any]:
    import open_clip

    if args.model_config:
        open_clip.add_model_config(args.model_config)
    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms(args.model, pretrained=None)
    return model.eval().to(device), preprocess, open_clip.get_tokenizer(args.model)


def text_features(model: Any, tokenizer: Any, classes: list[str], device: str) -> torch.Tensor:
    with torch.no_grad():
        per_class = []
        for name in classes:
            features = model.encode_text(tokenizer([t.format(name) for t in CIFAR10_TEMPLATES]).to(device)).float()
            features = features / features.norm(dim=-1, keepdim=True)
            per_class.append(features.mean(0) / features.mean(0).norm())
    return torch.stack(per_class)


def autocast(device: str, precision: str) -> Any:
    return torch.autocast("cuda", dtype=torch.float16) if device.startswith("cuda") and precision == "fp16" else torch.autocast("cpu", enabled=False)


def run_loop(args: argparse.Namespace) -> dict[str, float]:
    """The DataLoader loop a user would write (a child process: timed after its imports)."""
    device = args.device
    started = time.perf_counter()
    model, preprocess, tokenizer = load_model(args, device)
    data, _, classes = cifar_arrays(Path(args.data_root))
    text = text_features(model, tokenizer, classes, device)
    for quality in (None, *QUALITIES):
        loader = torch.utils.data.DataLoader(
            RoundTrip(data, quality, preprocess), batch_size=args.batch_size, num_workers=args.loop_workers, pin_memory=device.startswith("cuda")
        )
        with torch.no_grad(), autocast(device, args.precision):
            for inputs in loader:
                features = model.encode_image(inputs.to(device, non_blocking=True)).float()
                (100.0 * (features / features.norm(dim=-1, keepdim=True)) @ text.T).argmax(1)
    synchronize()
    return {"seconds": time.perf_counter() - started, "images": len(data) * (len(QUALITIES) + 1)}


def run_limit(args: argparse.Namespace) -> dict[str, float]:
    """The zero-shot head's forward on tensors already on the device (a child process)."""
    from pytest_clipcompress.models.zero_shot import LOGIT_SCALE

    device = args.device
    model, preprocess, tokenizer = load_model(args, device)
    data, _, classes = cifar_arrays(Path(args.data_root))
    text = text_features(model, tokenizer, classes, device)
    tensors = torch.stack([preprocess(Image.fromarray(np.ascontiguousarray(row.reshape(3, 32, 32).transpose(1, 2, 0)))) for row in data]).to(device)

    def passes(count: int) -> None:
        with torch.inference_mode(), autocast(device, args.precision):
            for _ in range(count):
                for start in range(0, len(tensors), args.batch_size):
                    features = model.encode_image(tensors[start : start + args.batch_size]).float()
                    LOGIT_SCALE * (features / features.norm(dim=-1, keepdim=True)) @ text.T
        synchronize()

    passes(1)  # warm-up: kernels chosen, memory allocated
    started = time.perf_counter()
    passes(len(QUALITIES) + 1)
    return {"seconds": time.perf_counter() - started, "images": len(data) * (len(QUALITIES) + 1)}


def run_plugin(args: argparse.Namespace, folder: Path) -> dict[str, float]:
    (folder / "test_workload.py").write_text(WORKLOAD_SUITE, encoding="utf-8")
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "test_workload.py",
        f"--clip-model={args.model}",
        "--clip-pretrained=none",
        f"--clip-precision={args.precision}",
        f"--clip-batch-size={args.batch_size}",
        f"--clip-data-root={args.data_root}",
        "--clip-offline",
        "--clip-no-cache",
        *([f"--clip-model-config={args.model_config}", "--clip-device=cpu"] if args.small else []),
    ]
    done = subprocess.run(command, cwd=folder, capture_output=True, text=True, check=False, env={**os.environ, "PYTHONPATH": str(ROOT)})
    reported = re.search(r"(\d+) passed in ([0-9.]+)s", done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "")
    if done.returncode != 0 or reported is None or reported.group(1) != "5":
        raise SystemExit(f"the plugin's session failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    images = len(cifar_arrays(Path(args.data_root))[0]) * (len(QUALITIES) + 1)
    return {"seconds": float(reported.group(2)), "images": images}


def child(args: argparse.Namespace, way: str) -> dict[str, float]:
    command = [sys.executable, str(Path(__file__).resolve()), f"--run-{way}", *forwarded(args)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the {way} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def forwarded(args: argparse.Namespace) -> list[str]:
    values = {
        "--model": args.model,
        "--model-config": args.model_config,
        "--device": args.device,
        "--precision": args.precision,
        "--batch-size": args.batch_size,
        "--loop-workers": args.loop_workers,
        "--data-root": args.data_root,
    }
    return [f"{flag}={value}" for flag, value in values.items() if value is not None]


def workload(args: argparse.Namespace) -> None:
    rates: dict[str, list[float]] = {"limit": [], "plugin": [], "loop": []}
    with tempfile.TemporaryDirectory(prefix="clipcompress-gpu-") as directory:
        folder = Path(directory)
        write_tiled_cifar(Path(args.cifar_root), folder / "data", args.images)
        args.data_root = str(folder / "data")
        for rep in range(args.repeats):
            for way in alternated(["limit", "plugin", "loop"], rep):
                figures = run_plugin(args, folder) if way == "plugin" else child(args, way)
                rates[way].append(figures["images"] / figures["seconds"])
                print(f"  repetition {rep + 1}: {way} {rates[way][-1]:,.0f} images/s", file=sys.stderr, flush=True)
    limit = statistics.median(rates["limit"])
    plugin, loop = statistics.median(rates["plugin"]), statistics.median(rates["loop"])
    print(f"\n{args.model}, {args.precision}, batch {args.batch_size}, {args.images:,} images x uncompressed + JPEG {'/'.join(map(str, QUALITIES))}")
    print("medians of", args.repeats, "alternated repetitions (range in brackets)\n")
    print("| way | images/s | of the limit |")
    print("|---|---|---|")
    rows = [
        ("limit: the zero-shot head's forward on tensors already on the device", rates["limit"]),
        ("plugin, defaults (whole pytest session)", rates["plugin"]),
        (f"DataLoader loop, {args.loop_workers} worker processes (whole process after imports)", rates["loop"]),
    ]
    for label, values in rows:
        low, high = min(values), max(values)
        print(f"| {label} | {statistics.median(values):,.0f} [{low:,.0f}-{high:,.0f}] | {statistics.median(values) / limit:.2f} |")
    print(f"\nplugin / limit: {plugin / limit:.2f} (target >= 0.8: {'met' if plugin / limit >= 0.8 else 'NOT MET'})")
    print(f"plugin / loop: {plugin / loop:.2f} (target >= 5: {'met' if plugin / loop >= 5 else 'NOT MET'})")


# --- exactness and IG, in this process -----------------------------------------------------------------


def exactness(args: argparse.Namespace) -> bool:
    """The device transform on ``args.device`` against each transform's own Pillow run, image by image."""
    import open_clip

    from pytest_clipcompress.engine.device_transform import plan_device_transform

    data, _, _ = cifar_arrays(Path(args.cifar_root))
    samples = [data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)]
    folder = Path(args.cifar_root).parent / "cifar10-test-jpeg-q75-folder"
    if folder.is_dir():
        samples.append(np.stack([np.asarray(Image.open(path).convert("RGB")) for path in sorted(folder.glob("*/*.jpg"))[: args.folder_images]]))
    rng = np.random.default_rng(0)
    for _ in range(args.random_sizes):
        samples.append(rng.integers(0, 256, size=(2, int(np.exp(rng.uniform(0, np.log(1001)))), int(np.exp(rng.uniform(0, np.log(1001)))), 3), dtype=np.uint8))
    equal = total = 0
    for mode in ("shortest", "squash", "longest"):
        for interpolation in ("bicubic", "bilinear"):
            preprocess = open_clip.image_transform(224, is_train=False, resize_mode=mode, interpolation=interpolation, fill_color=0)
            plan = plan_device_transform(preprocess)
            assert plan is not None
            for arrays in samples:
                arrays = np.ascontiguousarray(arrays)
                try:
                    expected = torch.stack([preprocess(Image.fromarray(array, "RGB")) for array in arrays])
                except ValueError:  # Pillow refuses a side rounded to 0 pixels ('longest' on 1000x1): not a case
                    continue
                actual = plan(torch.from_numpy(arrays).to(args.device)).cpu()
                total += 1
                equal += int(torch.equal(actual, expected))
    print(
        f"\nexact on {args.device} ({'dense float64 products' if args.device.startswith('cuda') else 'banded integer sums'}): {equal} of {total} batches equal"
    )
    return equal == total


def ig_ratio(args: argparse.Namespace) -> None:
    from pytest_clipcompress.codecs.compression import Compression
    from pytest_clipcompress.config.settings import build_settings
    from pytest_clipcompress.data.cifar10 import load_cifar10
    from pytest_clipcompress.engine.evaluator import Evaluator
    from pytest_clipcompress.ig.integrated_gradients import DEFAULT_INTERNAL_BATCH_SIZE, integrated_gradients

    values = {"model": [args.model], "pretrained": "none", "device": args.device, "model-config": [args.model_config] if args.model_config else []}
    evaluator = Evaluator.from_settings(build_settings(lambda option: values.get(option.name)))
    dataset = load_cifar10(Path(args.cifar_root), offline=True)
    classifier, preprocess = evaluator.classifier(args.model, dataset), evaluator.model(args.model).preprocess
    original = dataset.image(0)
    inputs = preprocess(Compression("jpeg", quality=25).apply(original)[0]).to(args.device)
    baseline, label, steps = preprocess(original).to(args.device), int(dataset.labels[0]), args.ig_steps
    internal = DEFAULT_INTERNAL_BATCH_SIZE["cuda" if args.device.startswith("cuda") else "cpu"]
    for parameter in classifier.parameters():
        parameter.requires_grad_(False)
    times: dict[str, list[float]] = {"plugin": [], "limit": []}
    for _ in range(3):  # the first is a warm-up
        synchronize()
        started = time.perf_counter()
        integrated_gradients(classifier, inputs, baseline, label, steps=steps)
        synchronize()
        times["plugin"].append(time.perf_counter() - started)
        started = time.perf_counter()
        points = baseline + torch.linspace(0, 1, steps, device=args.device).view(-1, 1, 1, 1) * (inputs - baseline)
        for start in range(0, steps, internal):
            x = points[start : start + internal].clone().requires_grad_(True)
            loss = torch.nn.functional.cross_entropy(classifier(x), torch.full((len(x),), label, device=args.device), reduction="sum")
            torch.autograd.grad(loss, x)
        synchronize()
        times["limit"].append(time.perf_counter() - started)
    ratio = statistics.median(times["limit"][1:]) / statistics.median(times["plugin"][1:])
    print(f"IG, {steps} steps: plugin / one batched forward + backward of its steps = {ratio:.2f} (target >= 0.8: {'met' if ratio >= 0.8 else 'NOT MET'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cifar-root", default=str(ROOT.parent / "shared" / "datasets" / "cifar10-test-sample"))
    parser.add_argument("--small", action="store_true", help="on the CPU, a 224-px featherweight ViT, 24 images, 2 loop workers: a smoke test")
    parser.add_argument("--images", type=int, default=9800)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--model-config", help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--precision", default="fp16")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--loop-workers", type=int, default=16)
    parser.add_argument("--random-sizes", type=int, default=300, help="random-size batches in the exactness check")
    parser.add_argument("--folder-images", type=int, default=1000)
    parser.add_argument("--ig-steps", type=int, default=50)
    parser.add_argument("--data-root", help=argparse.SUPPRESS)
    for way in ("loop", "limit"):
        parser.add_argument(f"--run-{way}", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.small:
        args.model, args.model_config = "featherweight-vit-224", str(HERE / "featherweight-vit-224.json")
        args.device, args.precision, args.batch_size, args.loop_workers = "cpu", "fp32", 8, 2
        args.images, args.repeats, args.random_sizes, args.folder_images, args.ig_steps = 24, 1, 3, 8, 4
    if args.run_loop or args.run_limit:
        print(json.dumps(run_loop(args) if args.run_loop else run_limit(args)))
        return
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU'}, {os.cpu_count()} CPU cores")
    workload(args)
    exact = exactness(args)
    ig_ratio(args)
    if not exact:
        raise SystemExit("the device transform differs from Pillow on this device")


if __name__ == "__main__":
    main()
