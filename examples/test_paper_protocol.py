"""The seed paper's protocol: zero-shot CIFAR-10 and STL-10 under JPEG quality 100, 75, 50 and 25.

Floors come from ``clip_min_accuracy`` / ``clip_max_drop`` in pytest.ini. Without the datasets and
with ``--clip-offline`` these cases skip and say where to put the files. ``--clip-protocol paper``
adds the rest of the paper's released settings (prompt, IG baseline, IG steps).

``test_published_zero_shot_accuracy`` checks an install against open_clip's published zero-shot
results (full test sets, CLIP's prompt ensembles): with real weights, the 95% interval of the
measured uncompressed accuracy must hold the published figure. Other models skip with a reason.
"""

import pytest

from pytest_clipcompress import assert_accuracy

# open_clip's results table (docs/openclip_results.csv), per (model, pretrained tag, dataset).
PUBLISHED_ACCURACY = {
    ("ViT-B-32", "openai", "cifar10"): 0.8983,
    ("ViT-B-32", "openai", "stl10"): 0.9713,
    ("RN50", "openai", "cifar10"): 0.7157,
    ("RN50", "openai", "stl10"): 0.9419,
}


@pytest.mark.clip_dataset("cifar10", "stl10")
@pytest.mark.compression("jpeg", quality=[100, 75, 50, 25])
def test_zero_shot_under_jpeg(clip_eval):
    assert_accuracy(clip_eval())


@pytest.mark.clip_dataset("cifar10", "stl10")
def test_published_zero_shot_accuracy(clip_model, clip_dataset, clip_eval):
    spec = clip_model.spec
    published = PUBLISHED_ACCURACY.get((spec.name, spec.pretrained_label, clip_dataset.name))
    if published is None:
        known = ", ".join(sorted({f"{name}/{tag}" for name, tag, _ in PUBLISHED_ACCURACY}))
        pytest.skip(f"no published accuracy for {spec.label} on {clip_dataset.name}; references exist for {known}")
    result = clip_eval()
    if result.templates != "clip":
        pytest.skip("the published figures use CLIP's prompt ensembles; run with --clip-templates clip")
    assert result.ci_low <= published <= result.ci_high, (
        f"{spec.label} ({result.activation}) on {result.dataset}: measured {result.accuracy:.2%} "
        f"(95% CI {result.ci_low:.2%} to {result.ci_high:.2%}, n={result.n}) does not hold the published "
        f"{published:.2%}; check the weights, the activation and the preprocessing"
    )
