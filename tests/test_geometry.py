"""The model-input geometry is measured from the model's own preprocessing, for every resize mode.

Expected maps come from tracing pixel indices through torchvision's geometric transforms with
NEAREST resampling (an "I"-mode image keeps the indices), independently of the ramp fit.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image
from torchvision.transforms import CenterCrop, InterpolationMode, Resize

from pytest_clipcompress.ig.geometry import AxisMap, InputGeometry, block_boundary_mask, display_grid
from pytest_clipcompress.models.load import LoadedModel

from .helpers import ASSETS

SQUASH_DIR = ASSETS / "tiny-clip-squash"
SHAPES = [(32, 32), (24, 36), (100, 80), (40, 64), (375, 500)]


def traced(transforms: list, source_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Source row and column index under each output pixel (-1 for padding) through ``transforms``."""
    height, width = source_hw

    def run(index: np.ndarray) -> np.ndarray:
        image = Image.fromarray(index.astype(np.int32) + 1, "I")  # 0 is left for padding
        for step in transforms:
            image = step(image)
        return np.asarray(image).astype(np.int64) - 1

    rows = run(np.repeat(np.arange(height)[:, None], width, axis=1))
    cols = run(np.repeat(np.arange(width)[None, :], height, axis=0))
    return rows, cols


def expected_mask(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    inside = (rows >= 0) & (cols >= 0)
    return inside & (np.isin(rows % 8, [0, 7]) | np.isin(cols % 8, [0, 7]))


def assert_same_mask(geometry: InputGeometry, rows: np.ndarray, cols: np.ndarray) -> None:
    """Equal masks, except where a model pixel centre lies exactly on a source pixel edge.

    There PIL's float rounding and the exact integer rule may pick different neighbours.
    """

    def untied(axis: AxisMap) -> np.ndarray:
        resized = np.arange(axis.output) + axis.offset
        return ((2 * resized + 1) * axis.source) % (2 * axis.resized) != 0

    keep = np.ix_(untied(geometry.rows), untied(geometry.cols))
    assert keep[0].size * keep[1].size >= 0.4 * rows.size  # 2:3 scales tie on every third pixel
    np.testing.assert_array_equal(block_boundary_mask(geometry.source_hw, geometry)[keep], expected_mask(rows, cols)[keep])


@pytest.mark.parametrize("source_hw", SHAPES)
@pytest.mark.parametrize("size", [32, 48, 224])
def test_shortest_side_preprocess_measures_as_resize_and_centre_crop(source_hw: tuple[int, int], size: int) -> None:
    preprocess = open_clip.image_transform(size, is_train=False)  # open_clip's default val transform
    measured = InputGeometry.of_preprocess(preprocess, source_hw)
    assert measured == InputGeometry.centre_crop(source_hw, size)
    rows, cols = traced([Resize(size, interpolation=InterpolationMode.NEAREST), CenterCrop(size)], source_hw)
    assert_same_mask(measured, rows, cols)


@pytest.mark.parametrize(("source_hw", "size"), [(shape, 48) for shape in SHAPES] + [((24, 36), 224)])
def test_squash_preprocess_stretches_each_axis(source_hw: tuple[int, int], size: int) -> None:
    preprocess = open_clip.image_transform(size, is_train=False, resize_mode="squash", interpolation="bilinear")
    measured = InputGeometry.of_preprocess(preprocess, source_hw)
    assert measured == InputGeometry(AxisMap(source_hw[0], size, 0, size), AxisMap(source_hw[1], size, 0, size))
    rows, cols = traced([Resize((size, size), interpolation=InterpolationMode.NEAREST)], source_hw)
    assert_same_mask(measured, rows, cols)
    if source_hw[0] != source_hw[1]:  # the old shortest-side assumption misplaces the mask here
        assert not np.array_equal(block_boundary_mask(source_hw, size), expected_mask(rows, cols))


@pytest.mark.parametrize("source_hw", [(40, 64), (100, 80)])
def test_longest_side_preprocess_pads_and_padding_is_never_a_block_edge(source_hw: tuple[int, int]) -> None:
    preprocess = open_clip.image_transform(48, is_train=False, resize_mode="longest")
    measured = InputGeometry.of_preprocess(preprocess, source_hw)
    long_side = max(source_hw)
    resized = [round(48 * side / long_side) for side in source_hw]
    assert (measured.rows.resized, measured.cols.resized) == tuple(resized)
    rows, cols = measured.rows.indices(), measured.cols.indices()
    assert (rows == -1).any() or (cols == -1).any()  # the short side is padded
    mask = block_boundary_mask(source_hw, measured)
    assert not mask[rows == -1].any() and not mask[:, cols == -1].any()
    # Padding shows black in the pictures; the rest is the image.
    grid = display_grid(Image.new("RGB", source_hw[::-1], (255, 255, 255)), measured)
    assert (grid[rows == -1] == 0).all() and (grid[np.ix_(rows >= 0, cols >= 0)] == 1).all()


def test_a_preprocess_that_is_not_a_resize_and_crop_is_refused() -> None:
    base = open_clip.image_transform(32, is_train=False)

    def flipped(image: Image.Image) -> torch.Tensor:
        return torch.flip(base(image), dims=[-1])

    with pytest.raises(ValueError, match="flips or scrambles"):
        InputGeometry.of_preprocess(flipped, (32, 32))
    with pytest.raises(ValueError, match="measured for \\(32, 32\\) images, not \\(24, 36\\)"):
        block_boundary_mask((24, 36), InputGeometry.centre_crop((32, 32), 32))


@pytest.fixture(scope="module")
def squash_model(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    """The tiny squash-mode model as a local-dir: open_clip's config carries the preprocessing, as on the hub."""
    from pytest_clipcompress.models.load import load_model
    from pytest_clipcompress.models.resolve import resolve_model_spec

    folder = tmp_path_factory.mktemp("squash") / "tiny-clip-squash"
    shutil.copytree(SQUASH_DIR, folder)
    config = json.loads((folder / "open_clip_config.json").read_text())
    torch.manual_seed(7)
    model = open_clip.CLIP(**config["model_cfg"])
    torch.save(model.state_dict(), folder / "open_clip_pytorch_model.bin")
    return load_model(resolve_model_spec(f"local-dir:{folder}", None), "cpu")


def test_squash_model_places_mask_and_pictures_on_non_square_images(squash_model: LoadedModel, tmp_path: Path) -> None:
    # A non-square folder image with flat 8x8 blocks of random colours: the picture drawn under the
    # attributions must show the same colours where the model input has them.
    rng = np.random.default_rng(3)
    blocks = rng.integers(0, 256, size=(5, 8, 3), dtype=np.uint8)
    image = Image.fromarray(np.kron(blocks, np.ones((8, 8, 1), dtype=np.uint8)), "RGB")  # 40 x 64
    image.save(tmp_path / "wide.png")
    with Image.open(tmp_path / "wide.png") as reloaded:
        source = reloaded.convert("RGB")
    tensor = squash_model.preprocess(source)
    assert tuple(tensor.shape) == (3, 48, 48)
    seen = tensor.permute(1, 2, 0).numpy() * 0.5 + 0.5  # undo the config's mean/std of 0.5
    geometry = InputGeometry.of_preprocess(squash_model.preprocess, (40, 64))
    assert geometry == InputGeometry(AxisMap(40, 48, 0, 48), AxisMap(64, 48, 0, 48))
    rows, cols = traced([Resize((48, 48), interpolation=InterpolationMode.NEAREST)], (40, 64))
    assert_same_mask(geometry, rows, cols)
    # Two pixels inside the blocks, beyond the reach of the bilinear filter, the model input is flat
    # and must match the picture.
    central = np.isin(geometry.rows.indices() % 8, [2, 3, 4, 5])[:, None] & np.isin(geometry.cols.indices() % 8, [2, 3, 4, 5])[None, :]
    interior = central & ~block_boundary_mask((40, 64), geometry)
    assert interior.sum() > 400
    shown = display_grid(source, geometry)
    assert np.abs(shown - seen)[interior].max() < 0.02
    old = display_grid(source, 48)  # the shortest-side + centre-crop picture is elsewhere
    assert np.abs(old - seen)[interior].mean() > 0.1
