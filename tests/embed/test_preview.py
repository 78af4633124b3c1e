from __future__ import annotations

import numpy as np
import pytest
from matplotlib.image import imread

from satmae.embed.preview import pca_rgb, write_preview


def _embedding(height: int = 12, width: int = 10) -> np.ndarray:
    """Three regions with different feature directions, plus noise."""
    rng = np.random.default_rng(0)
    labels = (np.arange(width)[None, :] * 3 // width).repeat(height, axis=0)
    centres = rng.normal(size=(3, 16)) * 5
    values = centres[labels] + rng.normal(scale=0.1, size=(height, width, 16))
    return np.moveaxis(values, -1, 0).astype(np.float32)


def test_pca_rgb_separates_regions_and_masks():
    embedding = _embedding()
    embedding[:, 0, 0] = np.nan
    valid = np.ones((12, 10), dtype=bool)
    valid[5, 5] = False
    rgb = pca_rgb(embedding, valid)
    assert rgb.shape == (12, 10, 3)
    assert rgb.dtype == np.uint8
    assert (rgb[0, 0] == 0).all() and (rgb[5, 5] == 0).all()
    # three regions span two components: on those, pixels of one region look alike
    left, right = rgb[2:, 0, :2].astype(int), rgb[2:, 9, :2].astype(int)
    assert np.abs(left - left.mean(axis=0)).max() < 40
    assert np.abs(left.mean(axis=0) - right.mean(axis=0)).max() > 100
    np.testing.assert_array_equal(pca_rgb(embedding, valid), rgb)  # deterministic


def test_pca_rgb_degenerate_inputs():
    assert (pca_rgb(np.full((4, 3, 3), np.nan)) == 0).all()
    assert pca_rgb(np.ones((2, 3, 3))).shape == (3, 3, 3)  # rank 0, two features
    with pytest.raises(ValueError, match="F, H, W"):
        pca_rgb(np.ones((3, 3)))


def test_write_preview(tmp_path):
    embedding = _embedding()
    path = tmp_path / "preview.png"
    write_preview(path, embedding)
    assert imread(path).shape[:2] == (12, 10)

    rng = np.random.default_rng(1)
    bands = ["B02", "B03", "B04", "B08"]
    image = rng.integers(1, 3000, size=(2, 4, 48, 40), dtype=np.uint16)
    write_preview(path, embedding, image=image, bands=bands)
    assert imread(path).shape[:2] == (48, 80)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["preview.png"]
    with pytest.raises(ValueError, match="bands"):
        write_preview(path, embedding, image=image)
