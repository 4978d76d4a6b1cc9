"""Measurements (e) and (f) of ``bench.py`` (issues 15 and 22): the whole pytest session against the
plain loop, and the pipeline against the model's own forward pass.

(e) A real pytest session (``benchmarks/small-vit-224.json``: a 224-px ViT, 4 layers, width 384,
    random weights; the 200 CIFAR-10 sample images, uncompressed + JPEG 100/75/50/25,
    ``--clip-no-cache``, the plugin's defaults otherwise), as pytest reports its duration and, by
    ``session_timer.py``, with the plugin's ``pytest_sessionstart`` (its imports) added, against
    ``plain_loop.py`` timed after its imports; alternating subprocesses, medians, identical
    predictions checked.
(f) Plugin throughput / pure forward of the zero-shot head on pre-made tensors (same batch size,
    same run): the "ratio to the limit", as the ratio of medians and within each repetition; and IG
    against one batched forward + backward per internal batch of its steps.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from timing import alternated, time_alternately

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SMALL_VIT_CONFIG = HERE / "small-vit-224.json"
SESSION_QUALITIES = (100, 75, 50, 25)
SESSION_SUITE = """
import numpy as np
import pytest
from pytest_clipcompress import assert_accuracy

@pytest.mark.clip_dataset("cifar10")
@pytest.mark.compression("none")
@pytest.mark.compression("jpeg", quality=[100, 75, 50, 25])
def test_zero_shot_under_jpeg(clip_eval, compression):
    result = clip_eval()
    np.save(f"predictions-{compression.id}.npy", result.predictions)
    assert_accuracy(result, min_accuracy=0.0, max_drop=1.0)
"""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def median(values: list[float]) -> float:
    return statistics.median(values)


# --- (e) whole pytest session vs the plain loop -----------------------------------------------------


@dataclass
class SessionFigures:
    # What pytest prints ("5 passed in 9.05s"): its clock starts in its own pytest_sessionstart, which
    # runs last (trylast), after the plugin's, where the plugin imports torch and open_clip; so, like
    # the loop's clock, it starts after the imports. The figures are these.
    reported_s: list[float] = field(default_factory=list)
    session_s: list[float] = field(default_factory=list)  # session_timer: the same with the plugin's sessionstart
    sessionstart_s: list[float] = field(default_factory=list)  # the plugin's start: importing torch and open_clip
    pytest_wall_s: list[float] = field(default_factory=list)
    loop_s: list[float] = field(default_factory=list)
    loop_wall_s: list[float] = field(default_factory=list)  # the loop's whole process, its imports included
    identical: bool = True
    extra_args: tuple[str, ...] = ()

    @property
    def ratio(self) -> float:
        """The issue's measure: pytest's reported session time over the loop's time after its imports."""
        return median(self.reported_s) / median(self.loop_s)

    @property
    def paired_ratios(self) -> list[float]:
        """Per repetition: the session over the loop run right before or after it, under the same load."""
        return [session / loop for session, loop in zip(self.reported_s, self.loop_s, strict=True)]

    def paired_interval(self, confidence: float = 0.95) -> tuple[float, float] | None:
        """A bootstrap interval (BCa) for the median of the paired ratios; None below 3 repetitions."""
        if len(self.paired_ratios) < 3:
            return None
        from scipy import stats

        result = stats.bootstrap((np.asarray(self.paired_ratios),), np.median, confidence_level=confidence, method="BCa", rng=np.random.default_rng(0))
        return float(result.confidence_interval.low), float(result.confidence_interval.high)

    @property
    def ratio_with_imports(self) -> float:
        """The session with the plugin's sessionstart (its imports) over the loop after its imports."""
        return median(self.session_s) / median(self.loop_s)

    @property
    def wall_ratio(self) -> float:
        """Both whole processes, imports included on both sides: what a user waits for."""
        return median(self.pytest_wall_s) / median(self.loop_wall_s)


def bench_session(data_root: Path, repeats: int, extra_args: tuple[str, ...] = ()) -> SessionFigures:
    figures = SessionFigures(extra_args=extra_args)
    # Both processes run as a user's Python does, with bytecode caches: under PYTHONDONTWRITEBYTECODE
    # pytest rewrites the asserts of every plugin's modules (hypothesis's 70 among them) at each start.
    inherited = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
    env = {**inherited, "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE), os.environ.get("PYTHONPATH", "")])}
    with tempfile.TemporaryDirectory(prefix="clipcompress-session-") as directory:
        folder = Path(directory)
        (folder / "test_session.py").write_text(SESSION_SUITE, encoding="utf-8")
        timing = folder / "timing.json"
        pytest_command = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "session_timer",
            "test_session.py",
            "--clip-model=small-vit-224",
            f"--clip-model-config={SMALL_VIT_CONFIG}",
            "--clip-pretrained=none",
            f"--clip-data-root={data_root}",
            "--clip-offline",
            "--clip-no-cache",
            "--clip-device=cpu",
            *extra_args,
        ]
        loop_command = [
            sys.executable,
            str(HERE / "plain_loop.py"),
            "--model",
            "small-vit-224",
            "--model-config",
            str(SMALL_VIT_CONFIG),
            "--data-root",
            str(data_root),
        ]
        loop_predictions: dict[str, list[int]] = {}

        def run_pytest() -> None:
            started = time.perf_counter()
            done = subprocess.run(
                pytest_command, cwd=folder, env={**env, "CLIPCOMPRESS_SESSION_TIMING": str(timing)}, capture_output=True, text=True, check=False
            )
            figures.pytest_wall_s.append(time.perf_counter() - started)
            if done.returncode != 0:
                raise SystemExit(f"(e) the pytest session failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
            timed = json.loads(timing.read_text())
            reported = re.search(r" in ([0-9.]+)s", done.stdout.strip().splitlines()[-1])
            if reported is None:
                raise SystemExit(f"(e) no session time in pytest's last line:\n{done.stdout[-500:]}")
            figures.reported_s.append(float(reported.group(1)))
            figures.session_s.append(timed["seconds"])
            figures.sessionstart_s.append(timed["sessionstart_seconds"])
            log(
                f"  (e) pytest session: {figures.reported_s[-1]:.2f} s as pytest reports it, {figures.session_s[-1]:.2f} s with the "
                f"plugin's sessionstart ({figures.sessionstart_s[-1]:.2f} s of it), {figures.pytest_wall_s[-1]:.2f} s wall"
            )

        def run_loop() -> None:
            started = time.perf_counter()
            done = subprocess.run(loop_command, cwd=folder, env=env, capture_output=True, text=True, check=True)
            figures.loop_wall_s.append(time.perf_counter() - started)
            out = json.loads(done.stdout.strip().splitlines()[-1])
            figures.loop_s.append(out["seconds"])
            loop_predictions.update(out["predictions"])
            log(f"  (e) plain loop: {figures.loop_s[-1]:.2f} s after imports, {figures.loop_wall_s[-1]:.2f} s wall")

        for rep in range(repeats):
            for step in alternated((run_pytest, run_loop), rep):
                step()
        for key, predictions in loop_predictions.items():
            figures.identical &= bool(np.array_equal(np.load(folder / f"predictions-{key}.npy"), np.asarray(predictions)))
    return figures


# --- (f) ratio to the limit ---------------------------------------------------------------------------


@dataclass
class LimitFigures:
    n: int
    batch_size: int
    passes: int
    plugin_s: list[float] = field(default_factory=list)
    forward_s: list[float] = field(default_factory=list)
    ig_steps: int = 0
    ig_plugin_s: list[float] = field(default_factory=list)
    ig_limit_s: list[float] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return median(self.forward_s) / median(self.plugin_s)

    @property
    def paired_ratios(self) -> list[float]:
        """Per repetition: the forward over the plugin run next to it, under the same load."""
        return [forward / plugin for forward, plugin in zip(self.forward_s, self.plugin_s, strict=True)]

    @property
    def ig_ratio(self) -> float:
        return median(self.ig_limit_s) / median(self.ig_plugin_s) if self.ig_plugin_s else float("nan")

    def images_per_s(self, times: list[float]) -> float:
        return self.n * self.passes / median(times)


def pure_forward(classifier: torch.nn.Module, tensors: torch.Tensor, batch_size: int, passes: int) -> None:
    """The limit: the zero-shot head on already-preprocessed tensors, batch by batch."""
    with torch.inference_mode():
        for _ in range(passes):
            for start in range(0, len(tensors), batch_size):
                classifier(tensors[start : start + batch_size])


def ig_limit(classifier: torch.nn.Module, inputs: torch.Tensor, baseline: torch.Tensor, label: int, steps: int, batch_size: int) -> None:
    """IG's limit: the steps' interpolated images through one forward + backward per internal batch."""
    alphas = torch.linspace(0, 1, steps).view(-1, 1, 1, 1)
    points = baseline + alphas * (inputs - baseline)
    for start in range(0, steps, batch_size):
        x = points[start : start + batch_size].clone().requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(classifier(x), torch.full((len(x),), label), reduction="sum")
        torch.autograd.grad(loss, x)


def bench_limit(
    model_name: str,
    loaded: Any,
    dataset: Any,
    make_evaluator: Callable[[], Any],
    plugin_evaluate: Callable,
    batch_size: int,
    repeats: int,
    ig_steps: int,
    qualities: tuple[int, ...],
) -> LimitFigures:
    from pytest_clipcompress.codecs.compression import Compression
    from pytest_clipcompress.ig.integrated_gradients import DEFAULT_INTERNAL_BATCH_SIZE, integrated_gradients

    figures = LimitFigures(n=len(dataset), batch_size=batch_size, passes=len(qualities) + 1, ig_steps=ig_steps)
    classifier = make_evaluator().classifier(model_name, dataset)
    # Pre-made tensors for every pass (uncompressed + each quality), made outside the timings.
    tensors = torch.stack([loaded.preprocess(dataset.image(i)) for i in range(len(dataset))])
    # Warm-up outside the timings: first-call allocations, lazy imports and the codec's worker
    # processes, which (as in a session) stay for the whole run: make_evaluator shares one pipeline.
    plugin_evaluate(make_evaluator(), model_name, dataset, qualities=qualities[:1])
    pure_forward(classifier, tensors[:batch_size], batch_size, 1)

    def ready() -> Any:
        # A fresh Evaluator (nothing computed yet) with its text features encoded outside the timing,
        # like the model load: once per run, and for ViT-B-32 on a few images the prompts would outweigh the images.
        evaluator = make_evaluator()
        evaluator.classifier(model_name, dataset)
        return evaluator

    variants = {
        "plugin": (lambda evaluator: plugin_evaluate(evaluator, model_name, dataset, qualities=qualities), figures.plugin_s),
        "forward": (lambda evaluator: pure_forward(classifier, tensors, batch_size, figures.passes), figures.forward_s),
    }
    time_alternately(variants, repeats, log, "(f)", before=ready)
    if ig_steps:
        image = dataset.image(0)
        compressed, _ = Compression("jpeg", quality=25).apply(image)
        inputs, baseline, label = loaded.preprocess(compressed), loaded.preprocess(image), int(dataset.labels[0])
        internal = DEFAULT_INTERNAL_BATCH_SIZE["cpu"]
        integrated_gradients(classifier, inputs, baseline, label, steps=4)  # warm-up
        for p in classifier.parameters():
            p.requires_grad_(False)
        ig_variants = {
            "plugin": (lambda _: integrated_gradients(classifier, inputs, baseline, label, steps=ig_steps), figures.ig_plugin_s),
            "limit": (lambda _: ig_limit(classifier, inputs, baseline, label, ig_steps, internal), figures.ig_limit_s),
        }
        # A few seconds each: more repetitions, so one noisy one cannot decide.
        time_alternately(ig_variants, max(repeats, 5), log, "(f) IG")
    return figures
