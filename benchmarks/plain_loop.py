"""The plain sequential loop that a whole pytest session is compared with (issue 15).

Run as a script in a fresh process; it times itself after its imports: loading the open_clip model
(random weights, seeded as the plugin seeds them), reading the CIFAR-10 python files, encoding the
prompts, then for the uncompressed images and each JPEG quality: a Pillow round trip per image, the
model's own preprocess, ``encode_image`` in batches of 50 under ``torch.no_grad``, 100 x cosine,
argmax. It shares no code with the plugin (the prompt templates are data). Prints one JSON line:
the seconds and the predictions per pass.
"""

from __future__ import annotations

import argparse
import io
import json
import pickle
import sys
import time
from pathlib import Path

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from pytest_clipcompress.data.cifar10 import CIFAR10_TEMPLATES  # noqa: E402 - importable only after the sys.path line

QUALITIES = (100, 75, 50, 25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--model-config", required=True)
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--batch-size", type=int, default=50)
    args = parser.parse_args()

    started = time.perf_counter()
    open_clip.add_model_config(args.model_config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model, _, preprocess = open_clip.create_model_and_transforms(args.model, pretrained=None)
    model.eval()
    tokenizer = open_clip.get_tokenizer(args.model)
    folder = Path(args.data_root) / "cifar-10-batches-py"
    with open(folder / "test_batch", "rb") as handle:
        batch = pickle.load(handle, encoding="bytes")
    with open(folder / "batches.meta", "rb") as handle:
        classes = [name.decode("ascii") for name in pickle.load(handle, encoding="bytes")[b"label_names"]]
    images = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    predictions: dict[str, list[int]] = {}
    with torch.no_grad():
        # Per class: the mean of the L2-normalised template embeddings, renormalised.
        text_features = torch.stack(
            [F.normalize(F.normalize(model.encode_text(tokenizer([t.format(name) for t in CIFAR10_TEMPLATES])), dim=-1).mean(dim=0), dim=0) for name in classes]
        )
        for quality in (None, *QUALITIES):
            out = []
            for start in range(0, len(images), args.batch_size):
                tensors = []
                for array in images[start : start + args.batch_size]:
                    image = Image.fromarray(np.ascontiguousarray(array))
                    if quality is not None:
                        buffer = io.BytesIO()
                        image.save(buffer, "JPEG", quality=quality)
                        image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
                    tensors.append(preprocess(image))
                features = F.normalize(model.encode_image(torch.stack(tensors)), dim=-1)
                out.append((100.0 * features @ text_features.T).argmax(dim=1).numpy())
            predictions["none" if quality is None else f"jpeg-q{quality}"] = np.concatenate(out).tolist()
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "predictions": predictions}))


if __name__ == "__main__":
    main()
