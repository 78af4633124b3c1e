"""The masked autoencoder on tiny inputs: every masking mode, T in {1, 3}, G in {1, 3}."""

from __future__ import annotations

import itertools

import pytest
import torch

from satmae.bands import SATMAE_BANDS, SATMAE_GROUPS
from satmae.models import create_model
from satmae.models.tokenizer import patchify, unpatchify

MODES = list(itertools.product(["independent", "consistent"], repeat=2))
ONE_GROUP = (("B02", "B03", "B04", "B08"),)


def _model(frames: int, groups: int, **overrides):
    band_groups = SATMAE_GROUPS if groups == 3 else ONE_GROUP
    torch.manual_seed(0)
    return create_model("satmae_tiny", band_groups=band_groups, **overrides)


def _inputs(model, frames: int, size=(32, 32), batch: int = 2, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    channels = len(model.config.bands)
    x = torch.rand(batch, frames, channels, *size, generator=gen)
    times = 1_500_000_000 + torch.randint(0, 10**8, (batch, frames), generator=gen)
    return x, times


@pytest.mark.parametrize("groups", [1, 3])
@pytest.mark.parametrize("frames", [1, 3])
@pytest.mark.parametrize(("mask_time", "mask_groups"), MODES)
def test_loss_gradient_flows_only_from_hidden_targets(mask_time, mask_groups, frames, groups):
    model = _model(frames, groups, mask_time=mask_time, mask_groups=mask_groups)
    x, times = _inputs(model, frames)
    target = x.clone().requires_grad_(True)
    out = model(x, times, generator=torch.Generator().manual_seed(1), target=target)
    tokens = frames * groups * 16
    assert out.latent.shape[1] == 1 + (~out.mask).flatten(1).sum(1)[0]
    assert (~out.mask).flatten(1).sum(1).tolist() == [tokens // 4] * 2
    out.loss.backward()
    grad = patchify(target.grad, 8).abs().sum(-1)  # (B, T, C, L)
    sizes = torch.tensor([len(g) for g in model.config.band_groups])
    hidden = torch.repeat_interleave(out.mask, sizes, dim=2)  # (B, T, C, L)
    assert (grad[~hidden] == 0).all()
    assert (grad[hidden] > 0).all()


@pytest.mark.parametrize("size", [(32, 32), (16, 40)])
def test_patchify_round_trip(size):
    images = torch.rand(2, 3, 5, *size)
    patches = patchify(images, 8)
    assert patches.shape == (2, 3, 5, size[0] * size[1] // 64, 64)
    assert torch.equal(unpatchify(patches, (size[0] // 8, size[1] // 8)), images)
    # pixel (row 9, col 3) of band 1 is pixel (1, 3) of patch (1, 0)
    columns = size[1] // 8
    assert patches[0, 0, 1, columns, 1 * 8 + 3] == images[0, 0, 1, 9, 3]


@pytest.mark.parametrize("legacy", [False, True])
def test_each_head_predicts_its_bands(legacy):
    heads = ((("B02", "B03", "B04", "B05"), ("B06", "B07", "B08", "B8A"), ("B11", "B12"))
             if legacy else None)  # fmt: skip
    model = _model(1, 3, head_bands=heads)
    with torch.no_grad():
        for index, head in enumerate(model.decoder.heads):
            head.weight.zero_()
            head.bias.copy_(torch.arange(head.bias.numel()) // 64 + 10 * (index + 1))
    x, times = _inputs(model, 1)
    out = model(x, times)
    for index, bands in enumerate(model.config.heads):
        for slot, band in enumerate(bands):
            values = out.pred[:, :, out.bands.index(band)]
            assert (values == 10 * (index + 1) + slot).all(), band


@pytest.mark.parametrize("decoder", ["full", "cross"])
def test_bf16_autocast_forward(decoder):
    model = _model(3, 3, decoder=decoder)
    x, times = _inputs(model, 3)
    fp32 = model(x, times, generator=torch.Generator().manual_seed(0))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x, times, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(out.loss)
    # Same mask: bf16 matmuls move the loss by ~1e-4 (relative); another mask moves it by ~1e-2.
    assert out.loss.item() == pytest.approx(fp32.loss.item(), rel=2e-3)
    out.loss.backward()
    assert model.encoder.blocks[0].attn.qkv.weight.grad is not None


def test_missing_groups_and_band_reordering():
    model = _model(1, 3)
    x, times = _inputs(model, 1)
    order = list(reversed(SATMAE_BANDS))
    reordered = x[:, :, [SATMAE_BANDS.index(b) for b in order]]
    gen = torch.Generator
    full = model(x, times, bands=SATMAE_BANDS, generator=gen().manual_seed(0))
    same = model(reordered, times, bands=order, generator=gen().manual_seed(0))
    torch.testing.assert_close(full.loss, same.loss)
    keep = [SATMAE_BANDS.index(b) for b in ("B11", "B12", "B02", "B03", "B04", "B08")]
    part = model(x[:, :, keep], times, bands=[SATMAE_BANDS[i] for i in keep])
    assert part.groups == (0, 2)
    assert part.pred.shape[2] == 6 and part.mask.shape[2] == 2
    assert part.bands == ("B02", "B03", "B04", "B08", "B11", "B12")


@pytest.mark.parametrize("decoder", ["full", "cross"])
def test_padded_frames_are_ignored(decoder):
    model = _model(3, 3, decoder=decoder, mask_time="independent").eval()
    x, times = _inputs(model, 3)
    frame_mask = torch.tensor([[True, True, False], [True, True, True]])
    noisy = x.clone()
    noisy[0, 2] = 100.0
    first = model(x, times, frame_mask=frame_mask, generator=torch.Generator().manual_seed(0))
    second = model(noisy, times, frame_mask=frame_mask, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(first.loss, second.loss)
    torch.testing.assert_close(first.latent[:, 0], second.latent[:, 0])
    assert first.weight[0, 2].sum() == 0
    assert first.frame_losses.shape == (3,)


def test_invalid_pixels_are_not_in_the_loss():
    model = _model(1, 3)
    x, times = _inputs(model, 1)
    valid = torch.ones(2, 1, 32, 32, dtype=torch.bool)
    valid[:, :, :8, :] = False  # first row of patches is nodata
    valid[:, :, 8, 0] = False  # one more invalid pixel inside a mostly valid patch
    target = x.clone()
    changed = target.clone()
    changed[:, :, :, 8, 0] = 50.0
    changed[:, :, :, :8] = 50.0
    gen = torch.Generator
    first = model(x, times, valid=valid, target=target, generator=gen().manual_seed(0))
    second = model(x, times, valid=valid, target=changed, generator=gen().manual_seed(0))
    torch.testing.assert_close(first.loss, second.loss)
    assert first.mask[:, 0, :, :4].all()  # nodata tokens are hidden first
    assert first.weight[:, 0, :, :4].sum() == 0


def test_cross_decoder_reconstructs_a_fraction_in_training():
    model = _model(3, 3, decoder="cross", decoder_fraction=0.5)
    x, times = _inputs(model, 3)
    out = model(x, times, generator=torch.Generator().manual_seed(0))
    hidden = out.mask.flatten(1).sum(1)
    assert out.weight.flatten(1).sum(1).tolist() == [round(0.5 * h) for h in hidden.tolist()]
    assert (out.weight <= out.mask.float()).all()
    model.eval()
    evaluated = model(x, times)
    assert torch.equal(evaluated.weight.bool(), evaluated.mask)


@pytest.mark.parametrize("norm_pix_loss", [False, True])
@pytest.mark.parametrize("decoder", ["full", "cross"])
def test_reconstruct_returns_images(decoder, norm_pix_loss):
    model = _model(3, 3, decoder=decoder, norm_pix_loss=norm_pix_loss)
    x, times = _inputs(model, 3, size=(16, 24))
    gen = torch.Generator
    images = model.reconstruct(x, times, keep_visible=True, generator=gen().manual_seed(0))
    assert images.shape == x.shape
    out = model(x, times, generator=gen().manual_seed(0))
    visible = ~torch.repeat_interleave(out.mask, torch.tensor([4, 4, 2]), dim=2)
    torch.testing.assert_close(patchify(images, 8)[visible], patchify(x, 8)[visible])


def test_mask_ratio_zero_and_reproducibility():
    model = _model(3, 3)
    x, times = _inputs(model, 3)
    out = model(x, times, mask_ratio=0.0)
    assert not out.mask.any() and out.loss.item() == 0.0
    gen = torch.Generator
    first = model(x, times, generator=gen().manual_seed(5))
    second = model(x, times, generator=gen().manual_seed(5))
    assert torch.equal(first.mask, second.mask)
    torch.testing.assert_close(first.loss, second.loss)
    assert first.group_losses.shape == (3,)
