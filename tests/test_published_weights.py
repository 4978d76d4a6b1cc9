"""Pretrained tags load exactly as published: activation, preprocessing, offline from the hub cache.

OpenAI's CLIP weights were trained with QuickGELU; open_clip's ``ViT-B-32`` and ``RN50`` configs
say GELU and open_clip only warns when the two meet. These tests place seeded random weights of
the real architectures in a temporary Hugging Face cache, laid out the way open_clip's download
leaves them, and load ``openai`` from there under ``--clip-offline``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from pytest_clipcompress.errors import ConfigError
from pytest_clipcompress.models.load import load_arguments, load_model
from pytest_clipcompress.models.resolve import ModelSpec, register_model_configs, resolve_model_spec

from .helpers import TINY_CONFIG, TINY_MODEL

pytestmark = pytest.mark.filterwarnings("error:QuickGELU mismatch:UserWarning")

# (architecture, its weights file name in the hub cache): both names open_clip looks for.
PUBLISHED = {"ViT-B-32": "open_clip_pytorch_model.bin", "RN50": "open_clip_model.safetensors"}


def _hub_snapshot(cache: Path, repo_id: str) -> Path:
    """A snapshot folder in huggingface_hub's cache layout, with refs/main pointing at it."""
    revision = hashlib.sha1(repo_id.encode()).hexdigest()
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    return snapshot


@pytest.fixture(scope="session")
def published_cache(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A hub cache holding seeded random ``openai`` weights for ViT-B-32 and RN50, and reference outputs.

    The reference is open_clip's own ``<name>-quickgelu`` config with those weights, run on two
    seeded images and two prompts; the models are dropped right away to keep memory flat.
    """
    import open_clip
    import torch

    cache = tmp_path_factory.mktemp("hf") / "hub"
    references = {}
    for seed, (name, filename) in enumerate(PUBLISHED.items()):
        torch.manual_seed(seed)
        model, _, preprocess = open_clip.create_model_and_transforms(f"{name}-quickgelu", pretrained=None)
        model.eval()
        # The tag's hf_hub entry is "org/repo/" (a trailing slash: the default file names).
        repo_id = open_clip.get_pretrained_cfg(name, "openai")["hf_hub"].rstrip("/")
        path = _hub_snapshot(cache, repo_id) / filename
        if filename.endswith(".safetensors"):
            from safetensors.torch import save_file

            save_file({key: value.contiguous() for key, value in model.state_dict().items()}, str(path))
        else:
            torch.save(model.state_dict(), path)
        images = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(seed))
        tokens = open_clip.get_tokenizer(name)(["a photo of a cat.", "a photo of a dog."])
        with torch.no_grad():
            references[name] = (images, tokens, model.encode_image(images), model.encode_text(tokens), repr(preprocess))
        del model
    return cache, references


@pytest.fixture
def offline_hub(published_cache: tuple[Path, dict], monkeypatch: pytest.MonkeyPatch) -> dict:
    cache, references = published_cache
    monkeypatch.setenv("HF_HOME", str(cache.parent))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    return references


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_openai_weights_load_offline_with_quickgelu_as_published(name: str, offline_hub: dict) -> None:
    import open_clip
    import torch
    from open_clip.transformer import QuickGELU

    spec = resolve_model_spec(name, "openai")
    assert spec == ModelSpec(name, "openai", quick_gelu=True)
    assert spec.label == f"{name}/openai (QuickGELU)"
    loaded = load_model(spec, "cpu", offline=True)
    assert loaded.activation == "QuickGELU"
    assert any(isinstance(module, QuickGELU) for module in loaded.model.modules())
    images, tokens, image_features, text_features, reference_preprocess = offline_hub[name]
    with torch.no_grad():
        assert torch.equal(loaded.model.encode_image(images), image_features)
        assert torch.equal(loaded.model.encode_text(tokens), text_features)
    # The tag's preprocessing (OpenAI's mean/std, bicubic, shortest side) came through open_clip's API.
    cfg = open_clip.get_pretrained_cfg(name, "openai")
    normalize = loaded.preprocess.transforms[-1]
    assert tuple(normalize.mean) == tuple(cfg["mean"]) and tuple(normalize.std) == tuple(cfg["std"])
    assert repr(loaded.preprocess) == reference_preprocess


def test_gelu_on_purpose_loads_the_tag_file_without_a_mismatch_warning(offline_hub: dict) -> None:
    import torch

    spec = resolve_model_spec("RN50", "openai", "off")
    assert spec == ModelSpec("RN50", "openai") and spec.label == "RN50/openai"
    loaded = load_model(spec, "cpu", offline=True)
    assert loaded.activation == "GELU"
    _, tokens, _, text_features, reference_preprocess = offline_hub["RN50"]
    assert repr(loaded.preprocess) == reference_preprocess  # still the tag's preprocessing
    with torch.no_grad():
        # The weights are the published ones; only the activation differs, and with it the output.
        assert not torch.allclose(loaded.model.encode_text(tokens), text_features)


def test_no_published_model_and_tag_meets_open_clips_mismatch_check() -> None:
    """For every (model, tag) open_clip lists, the arguments we pass build the tag's activation.

    Mirrors open_clip's own check without building anything: the final config's ``quick_gelu``
    is the config's value, set to True by ``force_quick_gelu``; a model keyword applies after it.
    """
    import open_clip

    pairs = open_clip.list_pretrained()
    assert len(pairs) > 100
    wrong, as_files = [], []
    for name, tag in pairs:
        tag_config = open_clip.get_pretrained_cfg(name, tag)
        config = open_clip.get_model_config(name)
        # Where the tag is silent, the weights were trained with the model's own config.
        published = bool(tag_config.get("quick_gelu", config.get("quick_gelu", False)))
        arguments = load_arguments(resolve_model_spec(name, tag), download=lambda cfg: f"/cache/{cfg['hf_hub']}file.bin")
        checked = bool(arguments.get("force_quick_gelu")) or bool(config.get("quick_gelu", False))
        built = arguments.get("quick_gelu", checked)
        if arguments["pretrained"] == tag:  # open_clip compares the tag with the config and warns
            warns = checked != bool(tag_config.get("quick_gelu", False))
        else:  # the tag's own file, with the tag's own preprocessing
            as_files.append((name, tag))
            warns = False
            assert arguments["pretrained"] == f"/cache/{tag_config['hf_hub']}file.bin"
            assert arguments["image_mean"] == tag_config["mean"] and arguments["image_resize_mode"] == tag_config["resize_mode"]
        if warns or built != published:
            wrong.append((name, tag))
    assert not wrong, f"these would build another activation than published, or warn: {wrong}"
    # open_clip's tables disagree only for this one: its config is QuickGELU, its tag says nothing.
    assert set(as_files) <= {("roberta-ViT-B-32", "laion2b_s12b_b32k")}
    assert resolve_model_spec("ViT-B-32", "openai").quick_gelu is True
    assert resolve_model_spec("ViT-B-32-quickgelu", "openai").quick_gelu is None
    assert resolve_model_spec("ViT-B-32", "laion2b_s34b_b79k").quick_gelu is None


def test_checkpoint_files_take_the_config_activation_unless_told(tiny_checkpoint: Path) -> None:
    register_model_configs([str(TINY_CONFIG)])
    assert resolve_model_spec(TINY_MODEL, str(tiny_checkpoint)).quick_gelu is None
    on = resolve_model_spec(TINY_MODEL, str(tiny_checkpoint), "on")
    assert on.quick_gelu is True and on.label == "tiny-clip/tiny-clip.pt (QuickGELU)"
    assert load_model(on, "cpu").activation == "QuickGELU"
    assert load_model(resolve_model_spec(TINY_MODEL, str(tiny_checkpoint)), "cpu").activation == "GELU"
    assert resolve_model_spec("ViT-B-32-quickgelu", "none", "off").label == "ViT-B-32-quickgelu/random-init (GELU)"
    with pytest.raises(ConfigError, match="--clip-quick-gelu on does not apply to hf-hub:org/repo"):
        resolve_model_spec("hf-hub:org/repo", None, "on")
    with pytest.raises(ConfigError, match="--clip-quick-gelu 'maybe': choose one of auto, on, off"):
        resolve_model_spec(TINY_MODEL, str(tiny_checkpoint), "maybe")


def test_activation_is_in_the_record_and_the_cache_key(tiny_checkpoint: Path, tmp_path: Path) -> None:
    from pytest_clipcompress.codecs.compression import Compression
    from pytest_clipcompress.config.settings import Settings, build_settings
    from pytest_clipcompress.engine.evaluator import Evaluator

    def settings(mode: str) -> Settings:
        values = {
            "model": [TINY_MODEL],
            "model-config": [str(TINY_CONFIG)],
            "pretrained": str(tiny_checkpoint),
            "quick-gelu": mode,
            "device": "cpu",
            "cache-dir": str(tmp_path),
            "samples": "10",
            "data-root": str(tmp_path / "data"),
            "workers": "0",
        }
        return build_settings(lambda option: values.get(option.name))

    results = {}
    for mode in ("off", "on"):
        evaluator = Evaluator.from_settings(settings(mode))
        result = evaluator.evaluate(TINY_MODEL, "demo", Compression("jpeg", quality=50))
        results[mode] = result
        assert result.to_record()["activation"] == ("QuickGELU" if mode == "on" else "GELU")
    # Same weights and preprocessing, so only the activation keeps the cached logits apart.
    assert not (results["on"].logits == results["off"].logits).all()


def test_a_plugin_run_with_openai_weights_offline_builds_quickgelu_without_warnings(pytester: pytest.Pytester, offline_hub: dict) -> None:
    pytester.makepyfile(
        """
        def test_model(clip_model):
            assert clip_model.spec.label == "RN50/openai (QuickGELU)"
            assert clip_model.activation == "QuickGELU"
        """
    )
    result = pytester.runpytest("--clip-model=RN50", "--clip-offline", "--clip-device=cpu", "-W", "error::UserWarning", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "QuickGELU mismatch" not in result.stdout.str()
