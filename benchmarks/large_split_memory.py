"""Peak memory of a large split: 50,000 images against 5,000 (issue 23's target: within 10%).

Writes a synthetic folder of ~500-px JPEGs (smooth shapes on gradients, about ImageNet's size and
file size) in a temporary directory, in ``<class>/<image>.jpg`` folders, and a second folder ten
times as large whose files are hard links to the first's under other names (the loader opens,
checks and decodes every file just the same; the disk holds one copy). Each folder is then
evaluated whole, each in a fresh subprocess, through the plugin's own ``Evaluator`` (bundled demo
model, CPU, no cache, the folder loaded as ``imagefolder:DIR`` or ``imagenet1k:DIR``), under JPEG
quality 75 and uncompressed; the child also builds the evaluation's results-file record. Each child
reports its peak RSS (``ru_maxrss``), and the script prints both figures, their ratio and met /
NOT MET.

    .venv/bin/python benchmarks/large_split_memory.py                      # 5,000 vs 50,000 (about 10 min on 2 cores)
    .venv/bin/python benchmarks/large_split_memory.py --small 500 --factor 4 --loader imagenet1k
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TARGET_RATIO = 1.10
CLASSES = 10
# Ten ImageNet-1k WordNet ids (labels 0..9), for --loader imagenet1k.
WNIDS = ("n01440764", "n01443537", "n01484850", "n01491361", "n01494475", "n01496331", "n01498041", "n01514668", "n01514859", "n01518878")


def synthetic_jpeg(rng: np.random.Generator, path: Path, side: int) -> None:
    """A ~side x 3/4 side JPEG: a colour gradient with a few filled ellipses, saved at quality 90."""
    from PIL import Image, ImageDraw

    height = side * 3 // 4
    ramp = np.linspace(0, 1, side, dtype=np.float32)[None, :, None] * rng.uniform(60, 200, size=3)
    image = Image.fromarray(np.broadcast_to(ramp + rng.uniform(0, 50, size=3), (height, side, 3)).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x, y = rng.integers(0, side), rng.integers(0, height)
        radius = int(rng.integers(side // 20, side // 5))
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=tuple(int(v) for v in rng.integers(0, 256, size=3)))
    image.save(path, quality=90)


def make_folders(root: Path, small: int, factor: int, side: int, loader: str) -> tuple[Path, Path]:
    names = WNIDS if loader == "imagenet1k" else tuple(f"class{c}" for c in range(CLASSES))
    rng = np.random.default_rng(0)
    small_dir, large_dir = root / "small", root / "large"
    for index in range(small):
        folder = small_dir / names[index % CLASSES]
        folder.mkdir(parents=True, exist_ok=True)
        synthetic_jpeg(rng, folder / f"{index:06d}.jpg", side)
    for path in sorted(small_dir.rglob("*.jpg")):
        target = large_dir / path.parent.name
        target.mkdir(parents=True, exist_ok=True)
        for copy in range(factor):
            os.link(path, target / f"{copy}-{path.name}")
    return small_dir, large_dir


def child(folder: Path, loader: str) -> None:
    """Evaluate ``folder`` whole; print one JSON line with the peak RSS and timings."""
    from pytest_clipcompress.codecs.compression import Compression
    from pytest_clipcompress.config.settings import build_settings
    from pytest_clipcompress.engine.evaluator import Evaluator

    values = {"no-cache": True, "device": "cpu", "offline": True}
    evaluator = Evaluator.from_settings(build_settings(lambda option: values.get(option.name)), cpu_share=1)
    started = time.perf_counter()
    dataset = evaluator.dataset(f"{loader}:{folder}")
    loaded = time.perf_counter()
    result = evaluator.evaluate("clipcompress-demo", dataset, Compression("jpeg", quality=75))
    record = json.dumps(result.to_record(), allow_nan=False)  # what the controller gathers and writes
    done = time.perf_counter()
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(
        json.dumps({"images": result.n, "peak_rss_mib": peak_kib / 1024, "load_s": loaded - started, "evaluate_s": done - loaded, "record_bytes": len(record)})
    )


def measure(folder: Path, loader: str) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(folder), "--loader", loader],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    if done.returncode != 0:
        raise SystemExit(f"child failed on {folder}:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(label: str, row: dict) -> dict:
    print(
        f"{label}: {row['images']} images, peak RSS {row['peak_rss_mib']:.1f} MiB, load {row['load_s']:.1f} s, "
        f"evaluate (uncompressed + jpeg-q75) {row['evaluate_s']:.1f} s, record {row['record_bytes'] / 1024:.0f} KiB",
        flush=True,
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=5000, help="images in the small folder (default 5000)")
    parser.add_argument("--factor", type=int, default=10, help="the large folder has this many times more (default 10: 50,000)")
    parser.add_argument("--side", type=int, default=500, help="image width in pixels (height 3/4 of it; default 500)")
    parser.add_argument("--loader", choices=("imagefolder", "imagenet1k"), default="imagefolder")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, args.loader)
        return
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, python {platform.python_version()}")
    print(f"command: {' '.join(sys.argv)}")
    print(f"date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}", flush=True)
    with tempfile.TemporaryDirectory(prefix="clipcompress-bench-") as temp:
        started = time.perf_counter()
        small_dir, large_dir = make_folders(Path(temp), args.small, args.factor, args.side, args.loader)
        sizes = [path.stat().st_size for path in small_dir.rglob("*.jpg")]
        seconds = time.perf_counter() - started
        print(f"wrote {len(sizes)} JPEGs of {args.side}x{args.side * 3 // 4} px (median {np.median(sizes) / 1024:.0f} KiB) in {seconds:.0f} s")
        small = report("small", measure(small_dir, args.loader))  # printed at once: the large run takes ten times longer
        large = report("large", measure(large_dir, args.loader))
    ratio = large["peak_rss_mib"] / small["peak_rss_mib"]
    verdict = "met" if ratio <= TARGET_RATIO else "NOT MET"
    print(f"peak RSS ratio {large['images']} / {small['images']} images: {ratio:.3f} (target <= {TARGET_RATIO:.2f}): {verdict}")


if __name__ == "__main__":
    main()
