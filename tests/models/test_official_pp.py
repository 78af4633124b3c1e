"""Official SatMAE++ checkpoints: up-sampler keys, loss and 2x/4x predictions, round trip."""

from __future__ import annotations

import argparse
import warnings

import pytest
import torch

from satmae.bands import SATMAE_BANDS
from satmae.models import create_model, load_mae
from satmae.models.mae import MaskedAutoencoder
from satmae.models.multiscale import ScaleTarget
from satmae.models.official import detect, from_official, to_official

from .official_pp_reference import group_channel_pp_forward, upsampler_state, vanilla_pp_forward
from .official_reference import group_channel_state, single_group_state

GROUPS = [[0, 1, 2, 6], [3, 4, 5, 7], [8, 9]]
ATOL = 1e-5


def _pp_group_channel_state(seed: int = 1):
    state = group_channel_state(128, 2, GROUPS, 8, 4, 32, 64, 2, 16, seed=seed)
    return state | upsampler_state(10, 2, seed=seed + 100)


def _load(state, args=None) -> MaskedAutoencoder:
    config, converted, report = from_official(state, {"num_heads": 2, **(args or {})})
    assert report.unexpected == []  # no key warned away, up-sampler included
    model = MaskedAutoencoder(config)
    model.load_state_dict(converted)
    return model.eval()


@pytest.mark.parametrize(
    ("name", "keys", "total", "trainable"),
    [
        ("satmae_pp_group_channel_vit_large_patch8_96", 436, None, 329_161_708),
        ("satmae_pp_group_channel_vit_base_patch8_96", 292, None, None),
        ("satmae_pp_vit_large_patch16_224", 414, None, None),
    ],
)
def test_satmae_pp_setups_match_official_keys_and_parameter_counts(name, keys, total, trainable):
    with torch.device("meta"):
        model = create_model(name)
    assert model.upsampler is not None
    if trainable is not None:
        assert sum(p.numel() for p in model.parameters()) == trainable
    upsampler = sum(p.numel() for p in model.upsampler.parameters())
    assert upsampler == (117_100 if "group" in name else 5_379)  # reference §6.4
    official = to_official(model.config, model.state_dict())
    assert len(official) == keys
    assert detect(official)[1] == "pretrain"


@pytest.mark.parametrize("norm_pix", [False, True])
@pytest.mark.parametrize("spatial_mask", [False, True])
def test_group_channel_pp_matches_official_loss_and_scale_predictions(spatial_mask, norm_pix):
    state = _pp_group_channel_state()
    args = {"spatial_mask": spatial_mask, "norm_pix_loss": norm_pix, "mask_ratio": 0.75}
    model = _load(state, args)
    assert model.config.upsample_scales == (2, 4)
    assert model.config.multiscale_loss == "satmae_pp"
    gen = torch.Generator().manual_seed(3)
    imgs = torch.rand(2, 10, 32, 32, generator=gen)
    imgs_2x = torch.rand(2, 10, 64, 64, generator=gen)
    imgs_4x = torch.rand(2, 10, 128, 128, generator=gen)
    noise = torch.rand(2, 16 if spatial_mask else 48, generator=gen)
    ref = group_channel_pp_forward(
        state, imgs, [imgs_2x, imgs_4x], noise, GROUPS, 0.75, spatial_mask, norm_pix, heads=2
    )
    targets = {
        2: ScaleTarget(imgs_2x[:, None], SATMAE_BANDS),
        4: ScaleTarget(imgs_4x[:, None], SATMAE_BANDS),
    }
    ours = model(imgs[:, None], noise=noise.view(2, 1, -1, 16), scale_targets=targets)
    torch.testing.assert_close(ours.mse_loss, ref["mse"], rtol=0, atol=ATOL)
    torch.testing.assert_close(ours.loss, ref["loss"], rtol=0, atol=ATOL)
    slot = [ours.bands.index(band) for band in SATMAE_BANDS]  # model order -> official slots
    for scale, up in zip((2, 4), ref["up"], strict=True):
        torch.testing.assert_close(ours.scale_preds[scale][:, 0, slot], up, rtol=0, atol=ATOL)


def test_vanilla_pp_matches_official_loss_and_2x_prediction():
    state = single_group_state(128, 2, 3, 16, 3, 0, 64, 1, 0, seed=5)
    state |= upsampler_state(3, 1, seed=6, vanilla=True)
    model = _load(state)
    assert model.config.upsample_scales == (2,)
    gen = torch.Generator().manual_seed(6)
    imgs = torch.rand(2, 3, 48, 48, generator=gen)
    imgs_2x = torch.rand(2, 3, 96, 96, generator=gen)
    noise = torch.rand(2, 9, generator=gen)
    ref = vanilla_pp_forward(state, imgs, imgs_2x, noise, 0.75, False, heads=2)
    bands = model.config.bands
    ours = model(
        imgs[:, None],
        noise=noise.view(2, 1, 1, 9),
        scale_targets={2: ScaleTarget(imgs_2x[:, None], bands)},
    )
    torch.testing.assert_close(ours.loss, ref["loss"], rtol=0, atol=ATOL)
    torch.testing.assert_close(ours.scale_preds[2][:, 0], ref["up"][0], rtol=0, atol=ATOL)


@pytest.mark.parametrize("kind", ["group_channel", "vanilla"])
def test_pp_conversion_round_trips(kind):
    if kind == "group_channel":
        state = _pp_group_channel_state(seed=7)
    else:
        state = single_group_state(64, 2, 3, 16, 3, 0, 32, 1, 0, seed=8)
        state |= upsampler_state(3, 1, seed=9, vanilla=True)
    config, ours, report = from_official(state, {"num_heads": 2})
    assert report.unexpected == []
    back = to_official(config, ours)
    assert set(back) == set(state)
    for key, value in state.items():
        got = back[key][:, 1:] if key == "pos_embed" else back[key]
        value = value[:, 1:] if key == "pos_embed" else value
        torch.testing.assert_close(got, value, rtol=0, atol=1e-6, msg=key)


def test_pp_pth_loads_through_load_mae_without_warnings(tmp_path):
    state = _pp_group_channel_state(seed=10)
    path = tmp_path / "pretrain.pth"
    args = argparse.Namespace(model="mae_vit_base_patch16", num_heads=2, norm_pix_loss=False)
    torch.save({"model": state, "args": args, "epoch": 49}, path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = load_mae(path)
    assert model.config.upsample_scales == (2, 4)
    assert any("up-sampler" in note for note in model.provenance["notes"])


def test_partial_upsampler_is_an_error_naming_the_missing_key():
    state = group_channel_state(128, 2, GROUPS, 8, 4, 32, 64, 1, 16)
    state["proj_up_conv.weight"] = torch.zeros(40, 10, 1, 1)
    with pytest.raises(ValueError, match="up-sampling block"):
        from_official(state, {"num_heads": 2})
    state |= {k: v for k, v in upsampler_state(10, 2).items() if not k.startswith("proj_up_norm")}
    with pytest.raises(ValueError, match=r"lacks key 'proj_up_norm\.weight'"):
        from_official(state, {"num_heads": 2})


def test_upsampler_keys_without_a_decoder_are_an_error():
    state = group_channel_state(128, 2, GROUPS, 8, 4, 32, 0, 0, 0, finetune=5)
    state |= upsampler_state(10, 2)
    with pytest.raises(ValueError, match=r"up-sampler keys but no decoder \(decoder_embed"):
        from_official(state, {"num_heads": 2})
