"""Performance benchmark of pytest-clipcompress against plain hand-written equivalents.

Run from the repository root::

    .venv/bin/python benchmarks/bench.py --model both            # full run (~10 min on 2 CPU cores)
    .venv/bin/python benchmarks/bench.py --quick                 # smoke run (~2 min)
    .venv/bin/python benchmarks/bench.py --model tiny --markdown # also print a markdown block for docs

Measurements (all in one run, same model weights and images):

(a)  ``Evaluator.evaluate`` over N images x JPEG quality 100/75/50/25 (cache disabled, a fresh
     Evaluator per repetition) against a plain batched loop doing the same work; identical
     predictions are checked.
(b)  Integrated Gradients for one image at 50 steps: the plugin's ``integrated_gradients`` against
     the seed paper's per-step procedure (rewritten plainly) and against a lean per-step loop.
(b2) ``auto_steps_integrated_gradients`` (1% tolerance) against fixed 50 steps.
(c)  Disk cache: cold run (compute + store) against warm run (new Evaluator, reads the cache).
(d)  Peak RSS of a full evaluation for a small and a 4x larger N, each in a fresh subprocess.
(e)  A whole pytest session (small 224-px ViT, 200 CIFAR-10 images, uncompressed + JPEG 100/75/50/25,
     --clip-no-cache), as pytest reports its time (and with the plugin's imports added), against a
     plain script timed after its imports.
(f)  Ratio to the limit: plugin throughput / the zero-shot head's forward on pre-made tensors (same
     batch size, same run); IG against its own limit.
(h)  The codec stage (worker processes) against Pillow's own decode + encode + decode of the same
     images in one process, with 1 and 2 worker processes: its cost per image and its scaling.

No network and no pretrained weights are needed: models are randomly initialised (seeded, as the
plugin does) and the images are the 200 real CIFAR-10 test images of
``../shared/datasets/cifar10-test-sample``, tiled to N when N > 200.
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import codec_stage_speed  # noqa: E402  (benchmarks/codec_stage_speed.py: measurement h)
import limits  # noqa: E402  (benchmarks/limits.py: measurements e, f)
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image  # noqa: E402
from timing import alternated  # noqa: E402  (benchmarks/timing.py)

from pytest_clipcompress.codecs.compression import Compression  # noqa: E402
from pytest_clipcompress.config.settings import build_settings  # noqa: E402
from pytest_clipcompress.data.base import ArrayDataset, ImageDataset  # noqa: E402
from pytest_clipcompress.data.cifar10 import load_cifar10  # noqa: E402
from pytest_clipcompress.engine.evaluator import Evaluator  # noqa: E402
from pytest_clipcompress.engine.pipeline import ImagePipeline  # noqa: E402
from pytest_clipcompress.models.load import LoadedModel  # noqa: E402
from pytest_clipcompress.models.prompts import PAPER_TEMPLATES  # noqa: E402
from pytest_clipcompress.models.resolve import register_model_configs  # noqa: E402
from pytest_clipcompress.models.zero_shot import LOGIT_SCALE  # noqa: E402

QUALITIES = (100, 75, 50, 25)  # the seed paper's JPEG qualities
IG_STEPS = 50
TINY_CONFIG = ROOT / "tests" / "assets" / "tiny-clip.json"
DATA_ROOT = ROOT.parent / "shared" / "datasets" / "cifar10-test-sample"
if not DATA_ROOT.exists():
    DATA_ROOT = Path("/work/shared/datasets/cifar10-test-sample")

SMALL_VIT_CONFIG = ROOT / "benchmarks" / "small-vit-224.json"
FEATHERWEIGHT_CONFIG = ROOT / "benchmarks" / "featherweight-vit-224.json"
MODEL_CONFIGS = [str(TINY_CONFIG), str(SMALL_VIT_CONFIG), str(FEATHERWEIGHT_CONFIG)]
DEMO_MODEL = "clipcompress-demo"
MODELS = {
    # key: (open_clip name, default N, default N with --quick)
    "tiny": ("tiny-clip", 1000, 200),
    "demo": (DEMO_MODEL, 1000, 200),  # its bundled trained weights
    "featherweight": ("featherweight-vit-224", 1000, 200),  # 224 px, 1 layer, width 64: a forward as cheap as on a GPU
    "small-vit": ("small-vit-224", 200, 200),
    "vit-b-32": ("ViT-B-32", 48, 16),
}
LIMIT_TARGETS = {"demo": 0.9, "featherweight": 0.6, "small-vit": 0.9}  # (f) on the CPU: issue 15 (demo), issue 22; others are reported


# --- helpers --------------------------------------------------------------------------------------


def now() -> float:
    return time.perf_counter()


def median(values: list[float]) -> float:
    return statistics.median(values)


def machine_info(args: argparse.Namespace) -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    import open_clip
    import PIL

    return {
        "cpu": cpu,
        "cores": f"{os.cpu_count()} logical ({usable} usable)",
        "memory": _meminfo_total(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "open_clip": open_clip.__version__,
        "pillow": PIL.__version__,
        "torch threads": f"intra-op {torch.get_num_threads()}, inter-op {torch.get_num_interop_threads()}",
        "plugin workers": str(args.workers if args.workers is not None else "default"),
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "command": " ".join(shlex.quote(a) for a in [".venv/bin/python", "benchmarks/bench.py", *sys.argv[1:]]),
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
    }


def _meminfo_total() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def current_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# --- data and model -------------------------------------------------------------------------------


class TiledDataset(ImageDataset):
    """The CIFAR-10 sample repeated to ``n`` images without materialising an (n, 32, 32, 3) array."""

    def __init__(self, base: ArrayDataset, n: int) -> None:
        labels = np.resize(base.labels, n)
        super().__init__(f"cifar10-sample-x{n}", base.classes, labels, f"{base.fingerprint}-tiled-{n}", base.templates)
        self.base = base

    def image(self, index: int) -> Image.Image:
        return self.base.image(index % len(self.base))


def base_dataset() -> ArrayDataset:
    if not DATA_ROOT.exists():
        sys.exit(f"missing {DATA_ROOT}: the benchmark needs the 200-image CIFAR-10 sample (see ../shared/datasets/README.md)")
    return load_cifar10(DATA_ROOT, offline=True)


def tiled_array_dataset(base: ArrayDataset, n: int) -> ArrayDataset:
    """An ArrayDataset of ``n`` images: the 200 real images repeated (np.resize) when n > 200."""
    images = np.resize(base.images, (n, *base.images.shape[1:])) if n != len(base) else base.images
    labels = np.resize(base.labels, n)
    return ArrayDataset(f"cifar10-sample-x{n}", base.classes, images, labels, f"{base.fingerprint}-tiled-{n}", base.templates)


def make_settings(model_name: str, args: argparse.Namespace, *, cache_dir: Path | None = None) -> Any:
    overrides: dict[str, Any] = {
        "model": [model_name],
        "pretrained": None if model_name == DEMO_MODEL else "none",
        "model-config": MODEL_CONFIGS,
        "device": "cpu",
        "batch-size": str(args.batch_size),
        "offline": True,
        "data-root": str(DATA_ROOT),
    }
    if args.workers is not None:
        overrides["workers"] = str(args.workers)
    if cache_dir is None:
        overrides["no-cache"] = True
    else:
        overrides["cache-dir"] = str(cache_dir)
    return build_settings(lambda option: overrides.get(option.name))


def fresh_evaluator(settings: Any, model_name: str, loaded: LoadedModel, pipeline: ImagePipeline | None = None) -> Evaluator:
    """A new Evaluator (empty in-memory state) sharing the already-loaded model, so that model
    loading (identical for the plugin and the loop) is outside every timing; and sharing
    ``pipeline``, whose worker processes a session starts once and keeps for all its evaluations."""
    evaluator = Evaluator.from_settings(settings)
    evaluator._models[model_name] = loaded
    evaluator._pipeline = pipeline
    return evaluator


def shared_pipeline(settings: Any) -> ImagePipeline:
    """One pipeline for every fresh evaluator of a measurement, as a session has."""
    return Evaluator.from_settings(settings).pipeline


# --- (a) evaluation: plugin vs plain loop ---------------------------------------------------------


def plugin_evaluate(evaluator: Evaluator, model_name: str, dataset: ImageDataset, qualities: tuple[int, ...] = QUALITIES) -> dict[Any, np.ndarray]:
    predictions: dict[Any, np.ndarray] = {}
    for quality in qualities:
        result = evaluator.evaluate(model_name, dataset, Compression("jpeg", quality=quality))
        predictions[quality] = result.predictions
        predictions["none"] = result.baseline_predictions
    return predictions


def loop_evaluate(loaded: LoadedModel, dataset: ImageDataset, batch_size: int, qualities: tuple[int, ...] = QUALITIES) -> dict[Any, np.ndarray]:
    """The same evaluation written plainly: no threads, no caches, one pass per quality."""
    model, preprocess = loaded.model, loaded.preprocess
    with torch.no_grad():
        per_class = []
        for name in dataset.classes:
            tokens = loaded.tokenizer([template.format(name) for template in dataset.templates])
            embedded = F.normalize(model.encode_text(tokens).float(), dim=-1)
            per_class.append(F.normalize(embedded.mean(dim=0), dim=-1))
        text = torch.stack(per_class)

        def roundtrip(image: Image.Image, quality: int) -> Image.Image:
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=quality)
            buffer.seek(0)
            return Image.open(buffer).convert("RGB")

        predictions: dict[Any, np.ndarray] = {}
        for quality in ("none", *qualities):
            out = []
            for start in range(0, len(dataset), batch_size):
                tensors = []
                for index in range(start, min(start + batch_size, len(dataset))):
                    image = dataset.image(index)
                    if quality != "none":
                        image = roundtrip(image, quality)
                    tensors.append(preprocess(image))
                features = F.normalize(model.encode_image(torch.stack(tensors)).float(), dim=-1)
                out.append((LOGIT_SCALE * features @ text.T).argmax(dim=1).numpy())
            predictions[quality] = np.concatenate(out)
    return predictions


@dataclass
class EvalFigures:
    n: int
    plugin_s: list[float] = field(default_factory=list)
    loop_s: list[float] = field(default_factory=list)
    identical: bool = True
    mismatches: int = 0
    extra: dict[str, list[float]] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return median(self.plugin_s) / median(self.loop_s)


def bench_evaluation(model_name: str, loaded: LoadedModel, dataset: ImageDataset, args: argparse.Namespace, repeats: int) -> EvalFigures:
    settings = make_settings(model_name, args)
    pipeline = shared_pipeline(settings)
    figures = EvalFigures(n=len(dataset))
    # Warm-up (first-call allocations, lazy imports, the codec's worker processes) outside the timings.
    plugin_evaluate(fresh_evaluator(settings, model_name, loaded, pipeline), model_name, dataset, qualities=(75,))
    loop_evaluate(loaded, tiled_array_dataset(base_dataset(), min(len(dataset), 8)), args.batch_size, qualities=(75,))
    variants: dict[str, Callable[[], dict]] = {
        "plugin": lambda: plugin_evaluate(fresh_evaluator(settings, model_name, loaded, pipeline), model_name, dataset),
        "loop": lambda: loop_evaluate(loaded, dataset, args.batch_size),
    }
    for extra_workers in args.extra_workers:
        extra_settings = make_settings(model_name, argparse.Namespace(**{**vars(args), "workers": extra_workers}))
        extra_pipeline = shared_pipeline(extra_settings)
        plugin_evaluate(fresh_evaluator(extra_settings, model_name, loaded, extra_pipeline), model_name, dataset, qualities=(75,))
        variants[f"plugin workers={extra_workers}"] = lambda s=extra_settings, p=extra_pipeline: plugin_evaluate(
            fresh_evaluator(s, model_name, loaded, p), model_name, dataset
        )
    names = list(variants)
    results: dict[str, dict] = {}
    for rep in range(repeats):
        for name in alternated(names, rep):
            started = now()
            results[name] = variants[name]()
            elapsed = now() - started
            if name == "plugin":
                figures.plugin_s.append(elapsed)
            elif name == "loop":
                figures.loop_s.append(elapsed)
            else:
                figures.extra.setdefault(name, []).append(elapsed)
            log(f"  (a) rep {rep + 1}/{repeats} {name}: {elapsed:.2f} s")
    for name in names:
        if name == "loop":
            continue
        for key, loop_predictions in results["loop"].items():
            mismatched = int((results[name][key] != loop_predictions).sum())
            if name == "plugin":
                figures.mismatches += mismatched
            figures.identical &= mismatched == 0
    return figures


# --- (b) Integrated Gradients ---------------------------------------------------------------------


def paper_text_features(loaded: LoadedModel, classes: tuple[str, ...]) -> torch.Tensor:
    """Per-class features from the seed paper's single prompt (grad mode as the caller has it)."""
    tokens = loaded.tokenizer([PAPER_TEMPLATES[0].format(name) for name in classes])
    return F.normalize(loaded.model.encode_text(tokens).float(), dim=-1)


def trapezoid(steps: int) -> tuple[list[float], list[float]]:
    """The plugin's quadrature: alphas linspace(0, 1, steps), weights [0.5, 1, ..., 1, 0.5] / (steps - 1)."""
    alphas = torch.linspace(0, 1, steps).tolist()
    weights = [1.0 / (steps - 1)] * steps
    weights[0] = weights[-1] = 0.5 / (steps - 1)
    return alphas, weights


def seed_procedure_ig(loaded: LoadedModel, classes: tuple[str, ...], inputs: torch.Tensor, baseline: torch.Tensor, label: int, steps: int) -> torch.Tensor:
    """The seed paper's IG code, rewritten plainly.

    Our reading of the seed code: at every interpolation point it calls a helper that rebuilds the
    zero-shot head by re-encoding the class prompts (``encode_text``) and then
    1. runs a no-grad forward to record the loss / probabilities at that point,
    2. computes the gradient of the cross-entropy w.r.t. the interpolated image once (a full
       forward and ``loss.backward()``; the model's parameters keep ``requires_grad=True`` as in
       the seed code, so the backward also fills every weight's ``.grad``), whose value is only
       used for the loss it reports, and
    3. computes the same gradient a second time, through a fresh forward and backward; this
       second gradient is the one accumulated into the Riemann sum.
    Both gradients are the same quantity, so "use the second" is the simplest faithful reading.
    One interpolation point per pass (unbatched); same alphas and trapezoid weights as the plugin.
    """
    model = loaded.model
    target = torch.tensor([label])
    alphas, weights = trapezoid(steps)
    delta = inputs - baseline
    total = torch.zeros_like(inputs)

    def gradient(point: torch.Tensor) -> torch.Tensor:
        x = point.clone().unsqueeze(0).requires_grad_(True)
        text = paper_text_features(loaded, classes)  # re-encoded on every call, as the seed code did
        image = F.normalize(model.encode_image(x).float(), dim=-1)
        loss = F.cross_entropy(LOGIT_SCALE * image @ text.T, target)
        model.zero_grad(set_to_none=True)
        loss.backward()
        return x.grad[0]

    for alpha, weight in zip(alphas, weights, strict=True):
        point = baseline + alpha * delta
        with torch.no_grad():
            text = paper_text_features(loaded, classes)
            image = F.normalize(model.encode_image(point.unsqueeze(0)).float(), dim=-1)
            F.cross_entropy(LOGIT_SCALE * image @ text.T, target)  # the logged loss value
        _first = gradient(point)  # pass 1 (feeds the reported loss in the seed code)
        second = gradient(point)  # pass 2: the gradient that is summed
        total += weight * second
    model.zero_grad(set_to_none=True)
    return (total * delta).detach()


def lean_loop_ig(classifier: torch.nn.Module, inputs: torch.Tensor, baseline: torch.Tensor, label: int, steps: int) -> torch.Tensor:
    """One forward + backward per interpolation point, text encoded once, weights frozen."""
    target = torch.tensor([label])
    alphas, weights = trapezoid(steps)
    delta = inputs - baseline
    total = torch.zeros_like(inputs)
    for alpha, weight in zip(alphas, weights, strict=True):
        x = (baseline + alpha * delta).unsqueeze(0).requires_grad_(True)
        loss = F.cross_entropy(classifier(x), target)
        (grad,) = torch.autograd.grad(loss, x)
        total += weight * grad[0]
    return total * delta


class frozen:
    """Parameters without requires_grad for the duration (as the plugin's IG does internally)."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.module = module

    def __enter__(self) -> None:
        self.flags = [(p, p.requires_grad) for p in self.module.parameters()]
        for p, _ in self.flags:
            p.requires_grad_(False)

    def __exit__(self, *exc: Any) -> None:
        for p, flag in self.flags:
            p.requires_grad_(flag)


@dataclass
class IGFigures:
    steps: int = IG_STEPS
    plugin_s: list[float] = field(default_factory=list)
    seed_s: list[float] = field(default_factory=list)
    lean_s: list[float] = field(default_factory=list)
    rel_diff_seed: float = float("nan")
    rel_diff_lean: float = float("nan")
    completeness: float = float("nan")
    auto: list[dict[str, Any]] = field(default_factory=list)


def ig_inputs(loaded: LoadedModel, base: ArrayDataset, index: int, quality: int = 25) -> tuple[torch.Tensor, torch.Tensor, int]:
    image = base.image(index)
    compressed, _ = Compression("jpeg", quality=quality).apply(image)
    return loaded.preprocess(compressed), loaded.preprocess(image), int(base.labels[index])


def relative_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


def bench_ig(loaded: LoadedModel, base: ArrayDataset, args: argparse.Namespace, repeats: int, auto_images: int, steps: int) -> IGFigures:
    from pytest_clipcompress.ig.integrated_gradients import auto_steps_integrated_gradients, integrated_gradients
    from pytest_clipcompress.models.zero_shot import zero_shot_classifier

    figures = IGFigures(steps=steps)
    with torch.no_grad():
        classifier = zero_shot_classifier(loaded, paper_text_features(loaded, base.classes))
    inputs, baseline, label = ig_inputs(loaded, base, 0)
    # Warm-up outside the timings.
    integrated_gradients(classifier, inputs, baseline, label, steps=4)
    plugin_attr = seed_attr = lean_attr = None
    f_in = f_base = 0.0
    for rep in range(repeats):
        started = now()
        plugin_attr, f_in, f_base = integrated_gradients(classifier, inputs, baseline, label, steps=steps)
        figures.plugin_s.append(now() - started)
        started = now()
        with frozen(classifier):
            lean_attr = lean_loop_ig(classifier, inputs, baseline, label, steps)
        figures.lean_s.append(now() - started)
        if rep < args.seed_repeats:
            started = now()
            seed_attr = seed_procedure_ig(loaded, base.classes, inputs, baseline, label, steps)
            figures.seed_s.append(now() - started)
        log(
            f"  (b) rep {rep + 1}/{repeats}: plugin {figures.plugin_s[-1]:.2f} s, lean {figures.lean_s[-1]:.2f} s"
            + (f", seed {figures.seed_s[-1]:.2f} s" if rep < args.seed_repeats else "")
        )
    figures.rel_diff_seed = relative_difference(plugin_attr, seed_attr)
    figures.rel_diff_lean = relative_difference(plugin_attr, lean_attr)
    figures.completeness = abs(float(plugin_attr.sum()) - (f_in - f_base)) / max(abs(f_in - f_base), 1e-12)

    # (b2) auto steps vs fixed 50 on a few images (indices spread over the sample).
    for index in np.linspace(0, len(base) - 1, auto_images).astype(int):
        x, b, y = ig_inputs(loaded, base, int(index))
        started = now()
        fixed_attr, fi, fb = integrated_gradients(classifier, x, b, y, steps=IG_STEPS)
        fixed_s = now() - started
        started = now()
        auto_attr, ai, ab, steps, method = auto_steps_integrated_gradients(classifier, x, b, y, tolerance=0.01)
        auto_s = now() - started
        delta_f = fi - fb
        scale = max(abs(delta_f), 1e-12)
        row = {
            "index": int(index),
            "delta_f": delta_f,
            "fixed_s": fixed_s,
            "auto_s": auto_s,
            "auto_steps": steps,
            "auto_method": method,
            "fixed_gap": abs(float(fixed_attr.sum()) - delta_f) / scale,
            "auto_gap": abs(float(auto_attr.sum()) - (ai - ab)) / scale,
        }
        figures.auto.append(row)
        log(f"  (b2) image {index}: fixed {fixed_s:.2f} s gap {row['fixed_gap']:.2e}, auto {auto_s:.2f} s ({method} {steps}) gap {row['auto_gap']:.2e}")
    return figures


# --- (c) disk cache -------------------------------------------------------------------------------


@dataclass
class CacheFigures:
    cold_s: float = float("nan")
    warm_s: list[float] = field(default_factory=list)
    hash_s: float = float("nan")
    identical: bool = True

    @property
    def warm_share(self) -> float:
        return median(self.warm_s) / self.cold_s


def bench_cache(model_name: str, loaded: LoadedModel, dataset: ImageDataset, args: argparse.Namespace, repeats: int) -> CacheFigures:
    """Cold (compute + store) against warm (a new Evaluator reading the cache), as two sessions would.

    Each session hashes the model's weights once for the cache key (the hash is memoised on the
    loaded model, so it is forgotten before every timed run to count it as a new process would).
    """
    figures = CacheFigures()
    loaded._weights_hash = None
    started = now()
    loaded.weights_hash()
    figures.hash_s = now() - started
    with tempfile.TemporaryDirectory(prefix="clipcompress-bench-cache-") as directory:
        settings = make_settings(model_name, args, cache_dir=Path(directory))
        loaded._weights_hash = None
        started = now()
        cold = plugin_evaluate(fresh_evaluator(settings, model_name, loaded), model_name, dataset)  # a session: its workers start in it
        figures.cold_s = now() - started
        log(f"  (c) cold: {figures.cold_s:.2f} s")
        for _ in range(repeats):
            loaded._weights_hash = None
            started = now()
            warm = plugin_evaluate(fresh_evaluator(settings, model_name, loaded), model_name, dataset)
            figures.warm_s.append(now() - started)
            log(f"  (c) warm: {figures.warm_s[-1]:.3f} s")
        figures.identical = all(np.array_equal(cold[k], warm[k]) for k in cold)
    return figures


# --- (d) peak RSS ---------------------------------------------------------------------------------


def rss_child(args: argparse.Namespace) -> None:
    """Runs in a fresh process: one full evaluation (4 qualities + baseline), prints JSON."""
    key = args.model[0]
    model_name = MODELS[key][0]
    register_model_configs(MODEL_CONFIGS)
    base = base_dataset()
    dataset = TiledDataset(base, args.rss_child)
    settings = make_settings(model_name, args)
    evaluator = Evaluator.from_settings(settings)
    evaluator.model(model_name)
    before = current_rss_mib()
    started = now()
    plugin_evaluate(evaluator, model_name, dataset)
    print(
        json.dumps(
            {
                "n": args.rss_child,
                "rss_before_mib": before,
                "peak_mib": peak_rss_mib(),
                "seconds": now() - started,
                "array_mib": args.rss_child * 32 * 32 * 3 / 2**20,
            }
        )
    )


def bench_rss(key: str, sizes: tuple[int, int], args: argparse.Namespace) -> list[dict[str, float]]:
    rows = []
    for n in sizes:
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--rss-child",
            str(n),
            "--model",
            key,
            "--batch-size",
            str(args.batch_size),
            "--threads",
            str(torch.get_num_threads()),
        ]
        if args.workers is not None:
            command += ["--workers", str(args.workers)]
        output = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT).stdout
        rows.append(json.loads(output.strip().splitlines()[-1]))
        log(f"  (d) N={n}: peak {rows[-1]['peak_mib']:.0f} MiB ({rows[-1]['seconds']:.1f} s)")
    return rows


# --- report ---------------------------------------------------------------------------------------


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True))  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def markdown_table(rows: list[list[str]], header: list[str]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def fmt_s(values: list[float] | float) -> str:
    """Seconds; several repetitions as their median and range (the machine is shared: the spread is part of the figure)."""
    if isinstance(values, list):
        if not values:
            return "-"
        text = f"{median(values):.3f} s" if median(values) < 1 else f"{median(values):.2f} s"
        return text + (f" (median of {len(values)}, {min(values):.3g}-{max(values):.3g})" if len(values) > 1 else "")
    return f"{values:.3f} s" if values < 1 else f"{values:.2f} s"


def spread(ratios: list[float]) -> str:
    """Ratios measured within each repetition: median [lowest, highest]."""
    return f"{median(ratios):.2f} [{min(ratios):.2f}, {max(ratios):.2f}]" if ratios else "-"


def run_model(key: str, args: argparse.Namespace, base: ArrayDataset) -> dict[str, Any]:
    model_name, default_n, quick_n = MODELS[key]
    n = args.images or (quick_n if args.quick else default_n)
    log(f"== {model_name}: N={n}")
    settings = make_settings(model_name, args)
    started = now()
    loaded = Evaluator.from_settings(settings).model(model_name)
    load_s = now() - started
    dataset = tiled_array_dataset(base, n)
    heavy = key == "vit-b-32"
    out: dict[str, Any] = {"key": key, "model": model_name, "n": n, "load_s": load_s, "tiled": n > len(base)}
    if "a" in args.only:
        out["a"] = bench_evaluation(model_name, loaded, dataset, args, repeats=args.repeats or (1 if args.quick or heavy else 3))
    if "b" in args.only:
        # ViT-B-32's seed procedure (3 text encodings + 2 full weight backwards per step) takes minutes
        # at 50 steps on 2 shared cores, so the heavy model runs fewer steps: the ratios are per step.
        auto = args.auto_images if args.auto_images is not None else (0 if heavy else (1 if args.quick else 3))
        out["b"] = bench_ig(
            loaded,
            base,
            args,
            repeats=args.ig_repeats or (1 if args.quick or heavy else 3),
            auto_images=auto,
            steps=args.ig_steps or (10 if heavy else IG_STEPS),
        )
    if "c" in args.only:
        out["c"] = bench_cache(model_name, loaded, dataset, args, repeats=3)
    if "d" in args.only and key == "tiny":
        out["d"] = bench_rss(key, (500, 2000) if args.quick else (2000, 8000), args)
    if "f" in args.only:
        limit_n = args.limit_images or {"vit-b-32": 32, "featherweight": 1000}.get(key, len(base))
        limit_batch = min(args.batch_size, limit_n)
        limit_settings = make_settings(model_name, argparse.Namespace(**{**vars(args), "batch_size": limit_batch}))
        limit_pipeline = shared_pipeline(limit_settings)

        def make_evaluator() -> Evaluator:
            return fresh_evaluator(limit_settings, model_name, loaded, limit_pipeline)

        out["f"] = limits.bench_limit(
            model_name,
            loaded,
            tiled_array_dataset(base, limit_n),
            make_evaluator,
            plugin_evaluate,
            limit_batch,
            repeats=args.repeats or (1 if args.quick else 3),
            ig_steps=args.ig_steps or (10 if heavy else IG_STEPS),
            qualities=QUALITIES,
        )
    return out


def report(info: dict[str, Any], runs: list[dict[str, Any]], markdown: bool) -> str:
    qualities = "/".join(map(str, QUALITIES))
    sections = []
    summary: list[list[str]] = []
    for run in runs:
        label = f"{run['model']} ({'bundled weights' if run['key'] == 'demo' else 'random init'})"
        rows: list[list[str]] = []
        if "a" in run:
            a: EvalFigures = run["a"]
            passes = a.n * (len(QUALITIES) + 1)
            rows += [
                [
                    "(a) plugin Evaluator.evaluate, no cache",
                    f"{a.n} img x JPEG q{qualities} + uncompressed",
                    fmt_s(a.plugin_s),
                    f"{passes / median(a.plugin_s):.0f} img/s",
                ],
                ["(a) plain batched loop", "same work", fmt_s(a.loop_s), f"{passes / median(a.loop_s):.0f} img/s"],
            ]
            for name, times in a.extra.items():
                rows.append([f"(a) {name}", "same work", fmt_s(times), f"ratio to loop {median(times) / median(a.loop_s):.2f}"])
            rows += [
                ["(a) ratio plugin / loop", "target <= 1.0", f"{a.ratio:.2f}", ""],
                ["(a) identical predictions", f"{passes} predictions", "yes" if a.identical else f"no ({a.mismatches} differ)", ""],
            ]
            summary.append([label, "(a) plugin/loop time <= 1.0", f"{a.ratio:.2f}", met(a.ratio <= 1.0)])
            summary.append([label, "(a) identical predictions", "yes" if a.identical else "no", met(a.identical)])
        if "b" in run:
            b: IGFigures = run["b"]
            seed_ratio = median(b.seed_s) / median(b.plugin_s)
            lean_ratio = median(b.lean_s) / median(b.plugin_s)
            rows += [
                [f"(b) plugin integrated_gradients, {b.steps} steps", "captum, batched, trapezoid", fmt_s(b.plugin_s), ""],
                ["(b) seed-paper procedure", "per step: 1 no-grad fwd + 2 fwd/bwd, text re-encoded", fmt_s(b.seed_s), ""],
                ["(b) lean loop", "per step: 1 fwd/bwd, text once", fmt_s(b.lean_s), ""],
                ["(b) ratio seed / plugin", "target >= 3", f"{seed_ratio:.1f}x", ""],
                ["(b) ratio lean / plugin", "target >= 1.0", f"{lean_ratio:.2f}x", ""],
                ["(b) attribution difference plugin vs seed", "||a-b|| / ||b||, target <= 1e-4", f"{b.rel_diff_seed:.1e}", f"vs lean {b.rel_diff_lean:.1e}"],
                [f"(b) completeness gap, {b.steps}-step trapezoid", "|sum IG - dF| / |dF|", f"{b.completeness:.1e}", ""],
            ]
            summary.append([label, f"(b) seed/plugin time >= 3x ({b.steps} steps)", f"{seed_ratio:.1f}x", met(seed_ratio >= 3)])
            summary.append([label, f"(b) lean/plugin time >= 1.0 ({b.steps} steps)", f"{lean_ratio:.2f}x", met(lean_ratio >= 1.0)])
            summary.append([label, "(b) plugin vs seed attributions <= 1e-4", f"{b.rel_diff_seed:.1e}", met(b.rel_diff_seed <= 1e-4)])
            for r in b.auto:
                rows.append(
                    [
                        f"(b2) image #{r['index']} (dF={r['delta_f']:+.3g})",
                        f"auto: {r['auto_method']} {r['auto_steps']} steps",
                        f"auto {fmt_s(r['auto_s'])} / fixed {fmt_s(r['fixed_s'])} = {r['auto_s'] / r['fixed_s']:.2f}",
                        f"gap/|dF| auto {r['auto_gap']:.1e}, fixed-50 {r['fixed_gap']:.1e}",
                    ]
                )
            if b.auto:
                ratio = sum(r["auto_s"] for r in b.auto) / sum(r["fixed_s"] for r in b.auto)
                summary.append(
                    [
                        label,
                        "(b2) auto (1%) vs fixed 50: time ratio (info)",
                        f"{ratio:.2f}",
                        "auto gaps within 1%: " + met(all(r["auto_gap"] <= 0.01 for r in b.auto)),
                    ]
                )
        if "c" in run:
            c: CacheFigures = run["c"]
            rows += [
                ["(c) cold run, cache enabled", "compute + store", fmt_s(c.cold_s), ""],
                ["(c) warm run, new Evaluator", "reads the cache", fmt_s(c.warm_s), f"includes one weights hash ({fmt_s(c.hash_s)})"],
                ["(c) warm / cold", "target <= 10%", f"{100 * c.warm_share:.1f}%", "identical" if c.identical else "DIFFERENT"],
            ]
            summary.append([label, "(c) warm/cold <= 10%", f"{100 * c.warm_share:.1f}%", met(c.warm_share <= 0.10)])
        if "d" in run:
            small, large = run["d"]
            growth = large["peak_mib"] / small["peak_mib"] - 1
            for r in run["d"]:
                rows.append(
                    [
                        f"(d) peak RSS, N={r['n']}",
                        "fresh process, lazy tiled dataset",
                        f"{r['peak_mib']:.0f} MiB",
                        f"{r['rss_before_mib']:.0f} MiB before evaluating; raw array would be {r['array_mib']:.1f} MiB",
                    ]
                )
            rows.append(
                [
                    f"(d) growth N={small['n']} -> {large['n']}",
                    "target <= 15%",
                    f"{100 * growth:+.1f}%",
                    f"eval increment {small['peak_mib'] - small['rss_before_mib']:.0f} -> {large['peak_mib'] - large['rss_before_mib']:.0f} MiB",
                ]
            )
            summary.append([label, f"(d) peak RSS growth N={small['n']}->{large['n']} <= 15%", f"{100 * growth:+.1f}%", met(growth <= 0.15)])
        if "f" in run:
            f: limits.LimitFigures = run["f"]
            target = LIMIT_TARGETS.get(run["key"])
            rows += [
                [
                    "(f) pure forward on pre-made tensors",
                    f"{f.n} img x {f.passes} passes, batch {f.batch_size}",
                    fmt_s(f.forward_s),
                    f"{f.images_per_s(f.forward_s):.0f} img/s (the limit)",
                ],
                ["(f) plugin", "decode + JPEG + preprocess + forward", fmt_s(f.plugin_s), f"{f.images_per_s(f.plugin_s):.0f} img/s"],
                ["(f) ratio to the limit", f"target >= {target}" if target else "reported", f"{f.ratio:.2f}", f"per repetition: {spread(f.paired_ratios)}"],
            ]
            summary.append(
                [
                    label,
                    f"(f) plugin / pure forward{f' >= {target}' if target else ' (info)'}",
                    f"{f.ratio:.2f} ({spread(f.paired_ratios)})",
                    met(f.ratio >= target) if target else "-",
                ]
            )
            if f.ig_plugin_s:
                rows += [
                    [
                        f"(f) IG {f.ig_steps} steps: plugin / one fwd+bwd per internal batch",
                        "target >= 0.8",
                        f"{f.ig_ratio:.2f}",
                        f"plugin {fmt_s(f.ig_plugin_s)}, limit {fmt_s(f.ig_limit_s)}",
                    ]
                ]
                summary.append([label, "(f) IG / its limit >= 0.8", f"{f.ig_ratio:.2f}", met(f.ig_ratio >= 0.8)])
        header = ["measurement", "what", "figure", "notes"]
        title = f"{label}, N={run['n']}" + (" (200 real CIFAR-10 images tiled)" if run["tiled"] else " real CIFAR-10 images")
        title += f", batch size {ARGS.batch_size}, model load {run['load_s']:.1f} s (not timed)"
        sections.append((title, header, rows))
    session: limits.SessionFigures | None = info.pop("_session", None)
    if session is not None:
        rows = [
            ["(e) pytest session, as pytest reports it", "after the plugin's sessionstart (its imports)", fmt_s(session.reported_s), "'5 passed in ...s'"],
            [
                "(e) the same with the plugin's sessionstart",
                "session_timer: sessionstart -> sessionfinish",
                fmt_s(session.session_s),
                f"of which sessionstart (imports torch, open_clip) {fmt_s(session.sessionstart_s)}",
            ],
            ["(e) plain loop, after its imports", "model load + prompts + 5 passes", fmt_s(session.loop_s), ""],
            ["(e) ratio session / loop", "target <= 1.0", f"{session.ratio:.2f}", "identical predictions" if session.identical else "PREDICTIONS DIFFER"],
            paired_row(session),
            ["(e) ratio with the plugin's imports / loop", "reported", f"{session.ratio_with_imports:.2f}", "the loop imports before its clock"],
            [
                "(e) whole processes, wall clock",
                "pytest / python plain_loop.py, imports on both sides",
                f"{session.wall_ratio:.2f}",
                f"pytest {fmt_s(session.pytest_wall_s)}, loop {fmt_s(session.loop_wall_s)}",
            ],
        ]
        sections.insert(
            0,
            (
                "(e) whole pytest session: small-vit-224, 200 CIFAR-10 images, none + JPEG 100/75/50/25, --clip-no-cache " + " ".join(session.extra_args),
                ["measurement", "what", "figure", "notes"],
                rows,
            ),
        )
        summary.insert(0, ["small-vit-224 (random init)", "(e) identical predictions", "yes" if session.identical else "no", met(session.identical)])
        summary.insert(0, ["small-vit-224 (random init)", "(e) session / plain loop <= 1.0", f"{session.ratio:.2f}", met(session.ratio <= 1.0)])
    stages: list[codec_stage_speed.StageFigures] = info.pop("_stage", [])
    if stages:
        rows = []
        for h in stages:
            rows += [
                [
                    f"(h) {h.kind}: Pillow alone, 1 process",
                    f"{h.images} img: decode, JPEG q{codec_stage_speed.QUALITY} encode + decode",
                    fmt_s(h.pillow_s),
                    f"{h.per_second(h.pillow_s):.0f} img/s",
                ],
                [
                    f"(h) {h.kind}: codec stage, 1 worker",
                    "the same, plus the uncompressed pixels, to this process",
                    fmt_s(h.stage_s[1]),
                    f"{h.per_second(h.stage_s[1]):.0f} img/s",
                ],
                [f"(h) {h.kind}: codec stage, 2 workers", "", fmt_s(h.stage_s[2]), f"{h.per_second(h.stage_s[2]):.0f} img/s"],
                [f"(h) {h.kind}: cost per image, stage (1 worker) / Pillow", "reported (1.00: no overhead)", f"{h.cost_ratio:.2f}", ""],
                [f"(h) {h.kind}: 2 workers / Pillow alone", f"target >= {2 * codec_stage_speed.TARGET_SCALING:.1f}", f"{h.scaling:.2f}", ""],
            ]
            target = 2 * codec_stage_speed.TARGET_SCALING
            summary.append(["codec stage", f"(h) {h.kind}: 2 workers / Pillow alone >= {target:.1f}", f"{h.scaling:.2f}", met(h.scaling >= target)])
        sections.insert(0, ("(h) the codec stage against Pillow alone (repetitions interleaved)", ["measurement", "what", "figure", "notes"], rows))
    out = ["Machine"]
    out += [f"  {k}: {v}" for k, v in info.items()]
    for title, header, rows in sections:
        out += ["", title, table(rows, header)]
    out += ["", "Summary", table(summary, ["model", "target", "measured", "met"])]
    text = "\n".join(out)
    if markdown:
        md = ["", "----- markdown -----", "", "| machine | |", "|---|---|"]
        md += [f"| {k} | {v} |" for k, v in info.items()]
        for title, header, rows in sections:
            md += ["", f"**{title}**", "", markdown_table(rows, header)]
        md += ["", "**Summary**", "", markdown_table(summary, ["model", "target", "measured", "met"])]
        text += "\n" + "\n".join(md)
    return text


def paired_row(session: limits.SessionFigures) -> list[str]:
    """The ratio within each repetition: the noise of a shared machine, stated rather than hidden in a median."""
    ratios = session.paired_ratios
    interval = session.paired_interval()
    slower = sum(ratio > 1.0 for ratio in ratios)
    figure = f"{median(ratios):.2f}" + (f" [{interval[0]:.2f}, {interval[1]:.2f}]" if interval else "")
    what = "median" + (", 95% bootstrap interval (BCa)" if interval else " (an interval needs 3 or more repetitions)")
    return ["(e) per repetition: session / the loop next to it", what, figure, f"session slower in {slower} of {len(ratios)} repetitions"]


def met(ok: bool) -> str:
    return "met" if ok else "NOT MET"


ARGS: argparse.Namespace


def main() -> None:
    global ARGS
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model",
        choices=("tiny", "demo", "featherweight", "small-vit", "vit-b-32", "both"),
        nargs="+",
        default=["tiny"],
        help="models for a-d and f (both: tiny and vit-b-32)",
    )
    parser.add_argument("--images", type=int, help="N images (default: 1000 tiny, 48 ViT-B-32; --quick: 200 / 16)")
    parser.add_argument("--quick", action="store_true", help="small N and single repetitions (~2 min)")
    parser.add_argument("--markdown", action="store_true", help="also print the tables as markdown")
    parser.add_argument("--batch-size", type=int, default=64, help="batch size of plugin and loop (plugin default: 64)")
    parser.add_argument("--workers", type=int, help="the plugin's --clip-workers: codec worker processes, always started (default: the plugin's default)")
    parser.add_argument("--extra-workers", type=int, nargs="*", default=[], help="also time the plugin with these --clip-workers values")
    parser.add_argument("--threads", type=int, help="torch intra-op threads for everything (default: torch's default)")
    parser.add_argument("--repeats", type=int, help="repetitions of (a)")
    parser.add_argument("--ig-repeats", type=int, help="repetitions of (b) plugin and lean loop")
    parser.add_argument("--seed-repeats", type=int, default=1, help="repetitions of the (slow) seed procedure")
    parser.add_argument("--auto-images", type=int, help="images for (b2) (default: 3 tiny, 0 ViT-B-32)")
    parser.add_argument("--ig-steps", type=int, help="IG steps for (b) (default: 50 tiny, 10 ViT-B-32)")
    parser.add_argument("--only", default="abcd", help="subset of measurements a-f and h, e.g. ab or efh")
    parser.add_argument("--stage-repeats", type=int, help="repetitions of (h), interleaved (default: 5)")
    parser.add_argument("--session-repeats", type=int, help="pytest sessions and plain loops for (e), alternating (default: 3)")
    parser.add_argument("--session-args", nargs="*", default=[], help="extra pytest arguments for the session of (e)")
    parser.add_argument("--limit-images", type=int, help="N for (f) (default: 200; 1000 for the featherweight ViT, 32 for ViT-B-32)")
    parser.add_argument("--rss-child", type=int, help=argparse.SUPPRESS)
    args = ARGS = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.rss_child:
        rss_child(args)
        return
    info = machine_info(args)
    register_model_configs(MODEL_CONFIGS)
    base = base_dataset()
    keys = [k for key in args.model for k in (("tiny", "vit-b-32") if key == "both" else (key,))]
    started = now()
    if "e" in args.only:
        info["_session"] = limits.bench_session(DATA_ROOT, args.session_repeats or (1 if args.quick else 3), tuple(args.session_args))
    if "h" in args.only:
        info["_stage"] = codec_stage_speed.bench_stage(args.stage_repeats or (2 if args.quick else 5), log)
    runs = [run_model(key, args, base) for key in keys if set(args.only) - {"e", "h"}]
    info["total benchmark time"] = f"{now() - started:.0f} s"
    info["load average at end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(report(info, runs, args.markdown))


if __name__ == "__main__":
    main()
