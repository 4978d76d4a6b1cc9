"""Several codecs side by side at comparable settings, on CIFAR-10 (real images) and the demo set."""

import pytest

from pytest_clipcompress import assert_accuracy


@pytest.mark.clip_dataset("cifar10", "demo")
@pytest.mark.compression("jpeg", quality=50)
@pytest.mark.compression("jpeg", quality=50, subsampling="4:4:4")
@pytest.mark.compression("webp", quality=50)
@pytest.mark.compression("avif", quality=50)
@pytest.mark.compression("jpeg2000", rate=20)
def test_codecs_keep_accuracy(clip_eval):
    assert_accuracy(clip_eval(), min_accuracy=0.5, max_drop=0.4)
