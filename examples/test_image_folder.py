"""A team's own images: one sub-folder per class, class names from the folder names.

Point ``CLIPCOMPRESS_IMAGE_FOLDER`` at such a folder (e.g. ``~/data/pets`` holding ``cat/`` and
``dog/``); without it the test skips.
"""

import os
from pathlib import Path

import pytest

from pytest_clipcompress import assert_accuracy

FOLDER = os.environ.get("CLIPCOMPRESS_IMAGE_FOLDER", "")


@pytest.mark.skipif(not FOLDER or not Path(FOLDER).is_dir(), reason="set CLIPCOMPRESS_IMAGE_FOLDER to a <class>/<image> folder")
@pytest.mark.compression("jpeg", quality=[90, 50])
def test_own_images_survive_jpeg(clip_eval):
    assert_accuracy(clip_eval(dataset=f"imagefolder:{FOLDER}"), max_drop=0.05)
