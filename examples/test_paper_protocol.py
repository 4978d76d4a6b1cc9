"""The seed paper's protocol: zero-shot CIFAR-10 and STL-10 under JPEG quality 100, 75, 50 and 25.

Floors come from ``clip_min_accuracy`` / ``clip_max_drop`` in pytest.ini. Without the datasets and
with ``--clip-offline`` these cases skip and say where to put the files.
"""

import pytest

from pytest_clipcompress import assert_accuracy


@pytest.mark.clip_dataset("cifar10", "stl10")
@pytest.mark.compression("jpeg", quality=[100, 75, 50, 25])
def test_zero_shot_under_jpeg(clip_eval):
    assert_accuracy(clip_eval())
