"""The seed paper's released protocol: the jpeg-q100 IG baseline and the --clip-protocol paper preset."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pytest_clipcompress.config.options import PAPER_PROTOCOL
from pytest_clipcompress.config.settings import Settings, build_settings
from pytest_clipcompress.errors import ConfigError
from pytest_clipcompress.ig.explain import reference_image


def settings_from(values: dict[str, object]) -> Settings:
    return build_settings(lambda option: values.get(option.name))


def test_paper_preset_sets_prompt_baseline_and_steps_and_explicit_options_win() -> None:
    default = settings_from({})
    assert (default.protocol, default.data.templates, default.ig.baseline, default.ig.steps) == ("default", "clip", "uncompressed", 50)
    paper = settings_from({"protocol": "paper"})
    assert (paper.data.templates, paper.ig.baseline, paper.ig.steps) == ("paper", "jpeg-q100", 51)
    assert PAPER_PROTOCOL == {"templates": "paper", "ig-baseline": "jpeg-q100", "ig-steps": "51"}
    mixed = settings_from({"protocol": "paper", "ig-baseline": "uncompressed", "ig-steps": "auto"})
    assert (mixed.data.templates, mixed.ig.baseline, mixed.ig.steps) == ("paper", "uncompressed", "auto")
    with pytest.raises(ConfigError, match="--clip-protocol 'exact': choose one of default, paper"):
        settings_from({"protocol": "exact"})


def test_jpeg_q100_baseline_is_pillows_quality_100_round_trip() -> None:
    pixels = np.random.default_rng(0).integers(0, 256, size=(32, 40, 3), dtype=np.uint8)
    image = Image.fromarray(pixels, "RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=100)  # the released code: Pillow's other defaults
    expected = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    baseline = reference_image("jpeg-q100", image, image)
    assert np.array_equal(np.asarray(baseline), expected)
    assert not np.array_equal(np.asarray(baseline), pixels)  # q100 is not lossless (4:2:0 chroma)
    assert reference_image("uncompressed", image, image) is image


def test_paper_protocol_explains_from_the_q100_jpeg_with_51_points(tmp_path: Path) -> None:
    import torch
    import torch.nn.functional as F

    from pytest_clipcompress.codecs.compression import Compression
    from pytest_clipcompress.demo import DEMO_MODEL_NAME as DEMO_MODEL
    from pytest_clipcompress.engine.evaluator import Evaluator
    from pytest_clipcompress.ig.explain import explain

    settings = settings_from({"protocol": "paper", "device": "cpu", "workers": "0", "no-cache": True, "samples": "60", "ig-samples": "1"})
    evaluator = Evaluator.from_settings(settings)
    result = evaluator.evaluate(DEMO_MODEL, "demo", Compression("jpeg", quality=25))
    assert result.templates == "paper" and len(result.flipped) > 0
    data, _ = explain([result], evaluator, settings.ig)
    item = data["items"][0]
    assert (item["reference_input"], item["steps"], item["method"]) == ("jpeg-q100", 51, "riemann_trapezoid")
    # F(baseline) is the cross-entropy of the q100 JPEG of the image, computed here without the plugin's baseline code.
    original = evaluator.dataset("demo").image(item["index"])
    buffer = io.BytesIO()
    original.save(buffer, format="JPEG", quality=100)
    q100 = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    loaded = evaluator.model(DEMO_MODEL)
    with torch.no_grad():
        logits = evaluator.classifier_for(result)(loaded.preprocess(q100).unsqueeze(0))
    expected = float(F.cross_entropy(logits, torch.tensor([item["label"]])))
    assert item["f_reference"] == pytest.approx(expected, rel=1e-5, abs=1e-6)
    assert item["completeness_gap"] < 0.05 * abs(item["delta_f"]) + 1e-3


EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "test_paper_protocol.py"


def published_in_example() -> dict[tuple[str, str, str], float]:
    import importlib.util

    spec = importlib.util.spec_from_file_location("paper_protocol_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.PUBLISHED_ACCURACY


def test_reference_numbers_in_the_docs_are_the_ones_the_example_checks() -> None:
    import re

    text = (Path(__file__).resolve().parents[1] / "docs" / "paper-protocol.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([^`]+)` \| `([^`]+)` \| (0\.\d+) \| (0\.\d+) \|$", text, flags=re.MULTILINE)
    documented = {}
    for model, tag, cifar, stl in rows:
        documented[(model, tag, "cifar10")] = float(cifar)
        documented[(model, tag, "stl10")] = float(stl)
    assert documented == published_in_example()
    assert documented[("ViT-B-32", "openai", "cifar10")] == 0.8983  # open_clip's results table


def test_published_accuracy_check_skips_other_models_with_a_reason(pytester: pytest.Pytester, cifar_sample_root: Path) -> None:
    pytester.makepyfile(test_paper_protocol=EXAMPLE.read_text(encoding="utf-8"))
    result = pytester.runpytest(
        "-k", "published", "--clip-offline", f"--clip-data-root={cifar_sample_root}", "--clip-device=cpu", "--clip-no-cache", "-rs", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(
        [
            "*no published accuracy for clipcompress-demo/clipcompress-demo.pt on cifar10; references exist for RN50/openai, ViT-B-32/openai*",
            "*stl10 is not in*",
        ]
    )
