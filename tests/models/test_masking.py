"""Masking: exact visible counts, consistency along chosen axes, reproducibility, validity."""

from __future__ import annotations

import itertools

import pytest
import torch

from satmae.models.masking import Masking, RandomMasking

MODES = list(itertools.product(["independent", "consistent"], repeat=2))
CPU = torch.device("cpu")


@pytest.mark.parametrize("groups", [1, 3])
@pytest.mark.parametrize("frames", [1, 3])
@pytest.mark.parametrize(("mask_time", "mask_groups"), MODES)
def test_visible_counts_consistency_and_order(mask_time, mask_groups, frames, groups):
    masking = RandomMasking(mask_time, mask_groups)
    patches = 16
    gen = torch.Generator().manual_seed(0)
    out = masking((4, frames, groups, patches), CPU, generator=gen, mask_ratio=0.75)
    free_t = frames if mask_time == "independent" else 1
    free_g = groups if mask_groups == "independent" else 1
    expected = int(free_t * free_g * patches * 0.25) * (frames // free_t) * (groups // free_g)
    assert out.visible.shape == (4, expected)
    assert ((~out.mask).flatten(1).sum(1) == expected).all()
    # visible indices are ascending (spatial order) and point at unmasked tokens
    assert (out.visible.diff(dim=1) > 0).all()
    assert not torch.gather(out.mask.flatten(1), 1, out.visible).any()
    if mask_time == "consistent":
        assert (out.mask == out.mask[:, :1]).all()
    if mask_groups == "consistent":
        assert (out.mask == out.mask[:, :, :1]).all()
    if mask_time == "independent" and frames > 1:
        assert not (out.mask == out.mask[:, :1]).all()
    if mask_groups == "independent" and groups > 1:
        assert not (out.mask == out.mask[:, :, :1]).all()


@pytest.mark.parametrize(("mask_time", "mask_groups"), MODES)
def test_reproducible_with_generator(mask_time, mask_groups):
    masking = RandomMasking(mask_time, mask_groups)
    first = masking((2, 3, 3, 9), CPU, generator=torch.Generator().manual_seed(7), mask_ratio=0.6)
    second = masking((2, 3, 3, 9), CPU, generator=torch.Generator().manual_seed(7), mask_ratio=0.6)
    other = masking((2, 3, 3, 9), CPU, generator=torch.Generator().manual_seed(8), mask_ratio=0.6)
    assert torch.equal(first.mask, second.mask)
    assert torch.equal(first.visible, second.visible)
    assert not torch.equal(first.mask, other.mask)


def test_mask_ratio_zero_keeps_everything():
    out = RandomMasking("independent", "independent")((2, 2, 3, 4), CPU, mask_ratio=0.0)
    assert not out.mask.any()
    assert torch.equal(out.visible, torch.arange(24).expand(2, -1))


@pytest.mark.parametrize(("mask_time", "mask_groups"), MODES)
def test_invalid_tokens_are_hidden_first(mask_time, mask_groups):
    invalid = torch.zeros(2, 3, 3, 16, dtype=torch.bool)
    invalid[:, :, :, :8] = True  # the first half of every frame and group is nodata
    out = RandomMasking(mask_time, mask_groups)((2, 3, 3, 16), CPU, invalid, mask_ratio=0.5)
    assert out.mask[invalid].all()
    assert not out.mask[~invalid].any()


def test_explicit_mask_requires_equal_counts():
    mask = torch.zeros(2, 1, 1, 4, dtype=torch.bool)
    mask[0, 0, 0, 0] = True
    with pytest.raises(ValueError, match="same number of tokens"):
        Masking.from_mask(mask)
    mask[1, 0, 0, 3] = True
    assert Masking.from_mask(mask).visible.tolist() == [[1, 2, 3], [0, 1, 2]]
