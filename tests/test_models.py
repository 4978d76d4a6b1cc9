"""Model names, pretrained tags, checkpoints and configs, resolved and loaded through open_clip."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_clipcompress.errors import ModelError
from pytest_clipcompress.models.load import load_model
from pytest_clipcompress.models.resolve import ModelSpec, model_config_paths, register_model_configs, resolve_model_spec, spec_for

from .helpers import TINY_CONFIG, TINY_MODEL


def test_default_weights_are_openai_where_available_else_the_first_tag() -> None:
    import open_clip

    assert resolve_model_spec("ViT-B-32", None) == ModelSpec("ViT-B-32", "openai", quick_gelu=True)  # as OpenAI trained it
    without_openai = next(
        m for m in open_clip.list_models() if open_clip.list_pretrained_tags_by_model(m) and "openai" not in open_clip.list_pretrained_tags_by_model(m)
    )
    assert resolve_model_spec(without_openai, None).pretrained == open_clip.list_pretrained_tags_by_model(without_openai)[0]


def test_none_tag_and_checkpoint_resolve(tiny_checkpoint: Path) -> None:
    register_model_configs([str(TINY_CONFIG)])
    assert resolve_model_spec(TINY_MODEL, "none") == ModelSpec(TINY_MODEL, None)
    assert resolve_model_spec("ViT-B-32", "laion2b_s34b_b79k").label == "ViT-B-32/laion2b_s34b_b79k"
    spec = resolve_model_spec(TINY_MODEL, str(tiny_checkpoint))
    assert spec.pretrained == str(tiny_checkpoint) and spec.label == "tiny-clip/tiny-clip.pt"
    assert resolve_model_spec("hf-hub:org/repo", "openai") == ModelSpec("hf-hub:org/repo", None)
    assert ModelSpec("local-dir:/models/mine", None).label == "local-dir:/models/mine/local-dir"


def test_a_model_without_published_weights_needs_an_explicit_choice() -> None:
    register_model_configs([str(TINY_CONFIG)])
    with pytest.raises(ModelError, match="open_clip has no pretrained weights for 'tiny-clip'; pass --clip-pretrained"):
        resolve_model_spec(TINY_MODEL, None)


def test_checkpoint_round_trip_gives_the_saved_weights(tiny_checkpoint: Path) -> None:
    import torch

    register_model_configs([str(TINY_CONFIG)])
    loaded = load_model(ModelSpec(TINY_MODEL, str(tiny_checkpoint)), "cpu")
    saved = torch.load(tiny_checkpoint, weights_only=True)
    assert all(torch.equal(loaded.model.state_dict()[name], tensor) for name, tensor in saved.items())
    assert loaded.weights_hash() == load_model(ModelSpec(TINY_MODEL, str(tiny_checkpoint)), "cpu").weights_hash()


def test_random_initialisation_is_the_same_in_every_process() -> None:
    register_model_configs([str(TINY_CONFIG)])
    first = load_model(ModelSpec(TINY_MODEL, None), "cpu").weights_hash()
    assert load_model(ModelSpec(TINY_MODEL, None), "cpu").weights_hash() == first


def test_corrupt_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    register_model_configs([str(TINY_CONFIG)])
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"PK\x03\x04 this is not a checkpoint")
    with pytest.raises(ModelError, match=r"cannot load checkpoint .*broken.pt into tiny-clip .*corrupt or belongs to another architecture"):
        load_model(ModelSpec(TINY_MODEL, str(broken)), "cpu")


def test_checkpoint_of_another_architecture_is_a_clear_error(tmp_path: Path, tiny_checkpoint: Path) -> None:
    import json

    other = tmp_path / "wider-clip.json"
    config = json.loads(TINY_CONFIG.read_text())
    config["embed_dim"] = 48
    other.write_text(json.dumps(config))
    register_model_configs([str(other)])
    with pytest.raises(ModelError, match=r"cannot load checkpoint .*tiny-clip\.pt into wider-clip"):
        load_model(ModelSpec("wider-clip", str(tiny_checkpoint)), "cpu")


def test_offline_tag_without_cached_weights_says_what_to_do(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-cache"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty-hf-cache" / "hub"))
    with pytest.raises(ModelError, match=r"weights for RN50/openai \(QuickGELU\) are not in the local cache and --clip-offline forbids downloading them"):
        load_model(resolve_model_spec("RN50", "openai"), "cpu", offline=True)
    import huggingface_hub.constants as hub

    assert hub.HF_HUB_OFFLINE is False  # the process-wide switch is restored


def test_failed_weights_download_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import open_clip.factory

    def interrupted(*args: object, **kwargs: object) -> str:
        raise ConnectionError("connection reset by peer")

    monkeypatch.setattr(open_clip.factory, "download_pretrained", interrupted)
    with pytest.raises(
        ModelError, match=r"cannot load RN50/openai \(QuickGELU\) .*connection reset by peer.*check the network, or pass --clip-pretrained PATH"
    ):
        load_model(resolve_model_spec("RN50", "openai"), "cpu")


def test_invalid_configs_are_clear_errors(tmp_path: Path) -> None:
    missing_keys = tmp_path / "partial.json"
    missing_keys.write_text('{"embed_dim": 8}')
    with pytest.raises(ModelError, match=r"partial\.json lacks vision_cfg, text_cfg"):
        register_model_configs([str(missing_keys)])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match=r"holds no \.json model configs"):
        register_model_configs([str(tmp_path / "empty")])


def test_demo_model_defaults_to_its_bundled_weights_and_takes_a_given_checkpoint(tiny_checkpoint: Path) -> None:
    from pytest_clipcompress.config.settings import build_settings
    from pytest_clipcompress.demo import DEMO_MODEL_NAME, DEMO_WEIGHTS

    default = build_settings(lambda option: None).models
    register_model_configs(model_config_paths(default.configs))
    assert spec_for(default, DEMO_MODEL_NAME) == ModelSpec(DEMO_MODEL_NAME, str(DEMO_WEIGHTS))
    retrained = build_settings(lambda option: str(tiny_checkpoint) if option.name == "pretrained" else None).models
    assert spec_for(retrained, DEMO_MODEL_NAME) == ModelSpec(DEMO_MODEL_NAME, str(tiny_checkpoint))


def test_quick_gelu_per_role_and_its_errors(tiny_checkpoint: Path) -> None:
    from pytest_clipcompress.config.settings import ModelOptions, build_settings
    from pytest_clipcompress.errors import ConfigError

    def settings(*modes: str, models: tuple[str, ...] = ("plain", "quick")) -> ModelOptions:
        values = {"model": [f"{role}={TINY_MODEL}:{tiny_checkpoint}" for role in models], "quick-gelu": list(modes) or None}
        return build_settings(lambda option: values.get(option.name)).models

    register_model_configs([str(TINY_CONFIG)])
    both = settings("quick=on", "auto")
    assert spec_for(both, "quick") == ModelSpec(TINY_MODEL, str(tiny_checkpoint), quick_gelu=True)
    assert spec_for(both, "plain") == ModelSpec(TINY_MODEL, str(tiny_checkpoint))  # auto: the config's own (GELU)
    assert spec_for(both, "quick").label == "tiny-clip/tiny-clip.pt (QuickGELU)" and spec_for(both, "plain").label == "tiny-clip/tiny-clip.pt"
    assert spec_for(settings("on"), "plain").quick_gelu is True  # one mode alone: every model, as before
    assert spec_for(settings("on", "plain=off"), "plain").quick_gelu is None and spec_for(settings("on", "plain=off"), "quick").quick_gelu is True
    assert settings().quick_gelu_of("quick") == "auto"
    assert settings(" quick = on ").quick_gelu_of("quick") == "on"  # ini values and shells may leave spaces
    with pytest.raises(ConfigError) as unknown:
        settings("nightly=on")
    assert str(unknown.value) == (
        "--clip-quick-gelu 'nightly=on': no --clip-model has the id 'nightly'; this run's models: plain, quick "
        "(give ROLE=MODE with one of them, or a mode alone for every model; modes: auto, on, off)"
    )
    with pytest.raises(ConfigError, match=r"--clip-quick-gelu 'quick=yes': choose one of auto, on, off, for one model as ROLE=MODE"):
        settings("quick=yes")
    with pytest.raises(ConfigError, match="--clip-quick-gelu 'yes': choose one of auto, on, off"):
        settings("yes")
    with pytest.raises(ConfigError, match="--clip-quick-gelu sets quick to both on and off; give it once"):
        settings("quick=on", "quick=off")
    with pytest.raises(ConfigError, match="--clip-quick-gelu is given as 'on' and 'off' for every model"):
        settings("on", "off")
    # A role-less model's id is its name.
    named = build_settings(lambda option: {"model": [f"{TINY_MODEL}:{tiny_checkpoint}"], "quick-gelu": [f"{TINY_MODEL}=on"]}.get(option.name))
    assert spec_for(named.models, TINY_MODEL).quick_gelu is True


QUICK_GELU_SUITE = """
import pytest

@pytest.mark.clip_dataset("demo")
@pytest.mark.compression("jpeg", quality=50)
def test_both_roles(clip_eval):
    clip_eval(model="plain")
    clip_eval(model="quick")
"""


@pytest.mark.parametrize("where", ["command line", "ini"])
def test_two_roles_of_one_checkpoint_with_their_own_activation(pytester: pytest.Pytester, tiny_checkpoint: Path, where: str) -> None:
    import json

    pytester.makepyfile(QUICK_GELU_SUITE)
    if where == "ini":
        pytester.makeini("[pytest]\nclip_quick_gelu = quick=on auto\n")
        modes = []
    else:
        modes = ["--clip-quick-gelu=quick=on", "--clip-quick-gelu=auto"]
    results = pytester.path / "results.json"
    run = pytester.runpytest(
        f"--clip-model=plain={TINY_MODEL}:{tiny_checkpoint}",
        f"--clip-model=quick={TINY_MODEL}:{tiny_checkpoint}",
        f"--clip-model-config={TINY_CONFIG}",
        *modes,
        "--clip-samples=40",
        "--clip-no-cache",
        "--clip-device=cpu",
        f"--clip-results={results}",
        "-p",
        "no:cacheprovider",
    )
    run.assert_outcomes(passed=2)
    written = json.loads(results.read_text())
    activation = {record["role"]: record["activation"] for record in written["evaluations"] if record["compression_id"] == "jpeg-q50"}
    assert activation == {"plain": "GELU", "quick": "QuickGELU"}
    labels = sorted(model["label"] for model in written["run"]["models"])
    assert labels == ["tiny-clip/tiny-clip.pt", "tiny-clip/tiny-clip.pt (QuickGELU)"]
