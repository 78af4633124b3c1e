"""Augmentations act identically on every frame and band and on the valid mask."""

from __future__ import annotations

import pytest
import torch

from satmae.data.augment import SeriesAugment


@pytest.fixture
def series() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    pattern = torch.rand(4, 1, 1, 16, 12, generator=g)  # one picture per sample
    image = pattern.repeat(1, 3, 5, 1, 1) * 1000  # (B, T, C, H, W), same in all frames/bands
    valid = pattern[:, :, 0].repeat(1, 3, 1, 1) > 0.3  # (B, T, H, W), tied to the pixels
    return image, valid


@pytest.mark.parametrize("crop_scale", [None, (0.4, 1.0)])
def test_frames_and_bands_move_together(series, crop_scale) -> None:
    image, valid = series
    torch.manual_seed(1)
    out, out_valid, _ = SeriesAugment(crop_scale=crop_scale).transform(image, valid)
    assert out.shape == image.shape and out_valid.shape == valid.shape
    assert out_valid.dtype == torch.bool
    torch.testing.assert_close(out, out[:, :1, :1].expand_as(out), atol=1e-3, rtol=0)
    assert torch.equal(out_valid, out_valid[:, :1].expand_as(out_valid))


def test_valid_mask_follows_the_pixels(series) -> None:
    image, valid = series
    torch.manual_seed(2)
    out, out_valid, _ = SeriesAugment(crop_scale=None).transform(image, valid)
    # flips and 90° turns move pixels exactly, so a pixel is valid iff its moved value passed
    # the threshold; border that a turn of the 16x12 chip brings in is 0 and invalid
    assert torch.equal(out_valid, out[:, :, 0] > 300)
    assert not out_valid.all()


def test_samples_get_different_draws() -> None:
    torch.manual_seed(0)
    image = torch.arange(64.0).reshape(1, 1, 1, 8, 8).repeat(16, 1, 1, 1, 1)
    out, _, _ = SeriesAugment(crop_scale=None).transform(image)
    assert len({tuple(o.flatten().round().tolist()) for o in out}) > 1


def test_batch_dict_and_dense_targets() -> None:
    torch.manual_seed(0)
    image = torch.arange(64.0).reshape(1, 1, 1, 8, 8).repeat(2, 2, 3, 1, 1)
    change = (image[:, :1, 0] > 40).long()  # (B, 1, H, W)
    batch = {
        "image": image,
        "valid": torch.ones(2, 2, 8, 8, dtype=torch.bool),
        "mask": change,
        "bands": ("B02", "B03", "B04"),
    }
    out = SeriesAugment(crop_scale=None)(batch)
    assert out["bands"] == batch["bands"] and out["mask"].dtype == torch.int64
    assert torch.equal(out["mask"], (out["image"][:, :1, 0] > 40).long())


def test_wrong_shapes_are_refused() -> None:
    aug = SeriesAugment()
    with pytest.raises(ValueError, match=r"\(B, T, C, H, W\)"):
        aug.transform(torch.zeros(2, 3, 8, 8))
    with pytest.raises(ValueError, match="expected valid"):
        aug.transform(torch.zeros(2, 1, 3, 8, 8), torch.ones(2, 8, 8, dtype=torch.bool))
