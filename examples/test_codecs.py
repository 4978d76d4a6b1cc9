"""Several codecs side by side at moderate settings, on CIFAR-10 (real images) and the demo set.

The terminal table and the report's charts put accuracy next to bits per pixel, so codecs can be
compared at the size they produce, not only at their own quality scales.
"""

import pytest

from pytest_clipcompress import assert_accuracy


@pytest.mark.clip_dataset("cifar10", "demo")
@pytest.mark.compression("jpeg", quality=75)
@pytest.mark.compression("jpeg", quality=75, subsampling="4:4:4")
@pytest.mark.compression("webp", quality=75)
@pytest.mark.compression("avif", quality=75)
@pytest.mark.compression("jpeg2000", rate=4)
def test_codecs_keep_accuracy(clip_eval):
    assert_accuracy(clip_eval(), min_accuracy=0.70, max_drop=0.30)
