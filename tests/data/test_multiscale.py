"""Inputs at several scales: SatMAE++'s halving recipe and native-resolution targets."""

from __future__ import annotations

import pytest
import torch

from satmae.bands import SATMAE_BANDS
from satmae.data.multiscale import MultiScaleTargets


def _batch(size=128, bands=SATMAE_BANDS):
    g = torch.Generator().manual_seed(0)
    image = torch.rand(2, 2, len(bands), size, size, generator=g)
    valid = torch.ones(2, 2, size, size, dtype=torch.bool)
    valid[0, 0, 5, 7] = False
    return {"image": image, "valid": valid, "bands": bands}


def test_satmae_pp_recipe_halves_to_every_scale():
    batch = _batch()
    out = MultiScaleTargets((2, 4))(batch)
    assert out["image"].shape[-2:] == (32, 32)
    assert out["image_x2"].shape[-2:] == (64, 64)
    torch.testing.assert_close(out["image_x4"], batch["image"])
    # Bilinear halving averages each 2x2 block exactly.
    blocks = batch["image"].unflatten(-1, (64, 2)).unflatten(-3, (64, 2)).mean((-1, -3))
    torch.testing.assert_close(out["image_x2"], blocks)
    assert out["bands_x2"] == SATMAE_BANDS
    # One invalid fine pixel makes the coarse pixels covering it invalid.
    assert not out["valid"][0, 0, 1, 1] and out["valid"][0, 0, 1, 2]
    assert not out["valid_x2"][0, 0, 2, 3] and int((~out["valid_x2"]).sum()) == 1


def test_native_targets_keep_bands_that_resolve_each_scale():
    out = MultiScaleTargets((2, 4), targets="native", gsd=10.0)(_batch())
    assert out["bands_x4"] == ("B02", "B03", "B04", "B08")  # 10 m pixels
    assert out["bands_x2"] == SATMAE_BANDS  # 20 m pixels: every 10 and 20 m band
    assert out["image_x4"].shape[2] == 4


def test_finest_size_resizes_first():
    out = MultiScaleTargets((2,), finest_size=64)(_batch(size=40))
    assert out["image_x2"].shape[-2:] == (64, 64) and out["image"].shape[-2:] == (32, 32)
    assert out["valid"].dtype == torch.bool


def test_errors_name_the_argument_and_the_fix():
    with pytest.raises(ValueError, match=r"data.scales must double from 2.*\[4\]"):
        MultiScaleTargets((4,))
    with pytest.raises(ValueError, match=r"data\.scale_targets must be 'all' or 'native'"):
        MultiScaleTargets((2,), targets="bicubic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"a 30x30 window does not divide by the largest scale 4"):
        MultiScaleTargets((2, 4))(_batch(size=30))
    with pytest.raises(ValueError, match=r"no band of \['B01'\] resolves the 20 m pixels"):
        MultiScaleTargets((2, 4), targets="native")(_batch(bands=("B01",)))
