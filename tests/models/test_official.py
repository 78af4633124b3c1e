"""Official SatMAE checkpoints: key layout, conversion both ways and numerical parity."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

import numpy as np
import pytest
import torch

from satmae.bands import SATMAE_BANDS
from satmae.models import create_model, load_encoder, load_mae
from satmae.models.mae import MaskedAutoencoder
from satmae.models.official import (
    detect,
    from_official,
    official_group_channel_heads,
    official_heads,
    to_official,
)
from satmae.models.tokenizer import select_bands
from satmae.normalization import load_stats

from .official_reference import (
    finetune_features,
    group_channel_forward,
    group_channel_state,
    single_group_forward,
    single_group_state,
)

GROUPS = [[0, 1, 2, 6], [3, 4, 5, 7], [8, 9]]
ATOL = 1e-5


def _load(state, args=None) -> MaskedAutoencoder:
    config, converted, report = from_official(state, {"num_heads": 2, **(args or {})})
    assert report.unexpected == []
    model = MaskedAutoencoder(config)
    model.load_state_dict(converted)
    return model.eval()


def _reorder_latent(latent: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    """Official latent (shuffled visible order) -> ours (ascending token index)."""
    order = torch.argsort(kept, dim=1)
    tokens = torch.gather(latent[:, 1:], 1, order.unsqueeze(-1).expand(-1, -1, latent.shape[-1]))
    return torch.cat([latent[:, :1], tokens], dim=1)


@pytest.mark.parametrize(
    ("name", "keys", "trainable", "encoder"),
    [
        ("satmae_group_channel_vit_base_patch8_96", 264, 111_493_248, 85_550_592),
        ("satmae_group_channel_vit_large_patch8_96", 408, 329_044_608, 302_970_880),
        ("satmae_temporal_vit_large_patch16_224", 398, 329_239_296, 303_099_904),
        ("satmae_vit_large_patch16_224", 398, 329_239_296, 303_099_904),
    ],
)
def test_published_setups_match_official_keys_and_parameter_counts(name, keys, trainable, encoder):
    with torch.device("meta"):
        model = create_model(name)
    assert sum(p.numel() for p in model.parameters()) == trainable
    assert sum(p.numel() for p in model.encoder.parameters()) == encoder
    official = to_official(model.config, model.state_dict())
    assert len(official) == keys
    assert detect(official) == (
        ("group_channel" if "group" in name else "temporal" if "temporal" in name else "vanilla"),
        "pretrain",
    )


@pytest.mark.parametrize("finetune", [0, 5])
@pytest.mark.parametrize("kind", ["group_channel", "temporal", "vanilla"])
def test_conversion_round_trip(kind, finetune):
    if kind == "group_channel":
        state = group_channel_state(64, 2, GROUPS, 8, 4, 16, 32, 1, 8, finetune=finetune)
    else:
        time_dim = 24 if kind == "temporal" else 0
        dec_time = 12 if kind == "temporal" else 0
        state = single_group_state(64, 2, 3, 16, 3, time_dim, 32, 1, dec_time, finetune=finetune)
    config, ours, report = from_official(state, {"num_heads": 2})
    assert report.kind == kind and report.stage == ("finetune" if finetune else "pretrain")
    assert config.encoding == ("learned" if finetune else "sincos")
    back = to_official(config, ours)
    assert set(back) == set(state)
    for key, value in state.items():
        if key in ("cls_token", "channel_cls_embed"):
            continue  # fine-tuned cls encodings are folded into cls_token
        got = back[key][:, 1:] if key == "pos_embed" else back[key]
        value = value[:, 1:] if key == "pos_embed" else value
        torch.testing.assert_close(got, value, rtol=0, atol=1e-6, msg=key)
    torch.testing.assert_close(_effective_cls(back), _effective_cls(state))


def _effective_cls(state):
    """What the official fine-tuned models add up for the cls token."""
    cls, pos = state["cls_token"], state["pos_embed"][:, :1]
    if "channel_cls_embed" in state:
        pos = torch.cat([pos, state["channel_cls_embed"]], -1)
    return cls + torch.cat([pos, pos.new_zeros(1, 1, cls.shape[-1] - pos.shape[-1])], -1)


@pytest.mark.parametrize("norm_pix", [False, True])
@pytest.mark.parametrize("spatial_mask", [False, True])
def test_group_channel_mae_matches_official_forward(spatial_mask, norm_pix):
    state = group_channel_state(128, 2, GROUPS, 8, 4, 32, 64, 2, 16, seed=1)
    args = {"spatial_mask": spatial_mask, "norm_pix_loss": norm_pix, "mask_ratio": 0.75}
    model = _load(state, args)
    assert model.config.head_bands == official_group_channel_heads()
    gen = torch.Generator().manual_seed(3)
    imgs = torch.rand(2, 10, 32, 32, generator=gen)
    length = 16
    noise = torch.rand(2, length if spatial_mask else 3 * length, generator=gen)
    ref = group_channel_forward(state, imgs, noise, GROUPS, 0.75, spatial_mask, norm_pix, heads=2)
    ours = model(imgs[:, None], noise=noise.view(2, 1, -1, length))  # official channel order
    assert torch.equal(ours.mask[:, 0], ref["mask"].bool())
    torch.testing.assert_close(ours.loss, ref["loss"], rtol=0, atol=ATOL)
    slot = [ours.bands.index(band) for band in SATMAE_BANDS]  # model order -> official slots
    torch.testing.assert_close(ours.pred[:, 0, slot], ref["pred"], rtol=0, atol=ATOL)
    torch.testing.assert_close(
        ours.latent, _reorder_latent(ref["latent"], ref["kept"]), rtol=0, atol=ATOL
    )
    assert ours.latent.shape[1] == 1 + 12  # floor(0.25 * 48) visible + cls


@pytest.mark.parametrize("same_mask", [False, True])
def test_temporal_mae_matches_official_forward(same_mask):
    state = single_group_state(128, 2, 3, 16, 3, 48, 64, 2, 24, seed=2)
    model = _load(
        state, {"norm_pix_loss": True, "model": "mae_vit_large_patch16" + "_samemask" * same_mask}
    )
    gen = torch.Generator().manual_seed(4)
    imgs = torch.rand(2, 3, 3, 48, 48, generator=gen)
    dates = [
        [
            datetime(2016, 6, 3, 11, tzinfo=UTC),
            datetime(2017, 1, 20, 4, tzinfo=UTC),
            datetime(2019, 12, 31, 23, tzinfo=UTC),
        ],
        [
            datetime(2015, 7, 1, 0, tzinfo=UTC),
            datetime(2016, 2, 29, 13, tzinfo=UTC),
            datetime(2018, 8, 15, 9, tzinfo=UTC),
        ],
    ]
    times = torch.tensor([[int(d.timestamp()) for d in row] for row in dates])
    stamps = torch.tensor([[[d.year - 2002, d.month - 1, d.hour] for d in row] for row in dates])
    noise = torch.rand(2, 9 if same_mask else 27, generator=gen)
    ref = single_group_forward(
        state, imgs, noise, 0.75, True, heads=2, timestamps=stamps, same_mask=same_mask
    )
    ours = model(imgs, times, noise=noise.view(2, -1, 1, 9))
    torch.testing.assert_close(ours.loss, ref["loss"], rtol=0, atol=ATOL)
    assert torch.equal(ours.mask.flatten(1), ref["mask"].bool())
    pred = ref["pred"].reshape(2, 3, 9, 16 * 16, 3).permute(0, 1, 4, 2, 3)  # (N, T, C, L, p²)
    torch.testing.assert_close(ours.pred, pred, rtol=0, atol=ATOL)
    torch.testing.assert_close(
        ours.latent, _reorder_latent(ref["latent"], ref["kept"]), rtol=0, atol=ATOL
    )


def test_vanilla_mae_matches_official_forward():
    state = single_group_state(128, 2, 3, 16, 3, 0, 64, 1, 0, seed=5)
    model = _load(state)
    gen = torch.Generator().manual_seed(6)
    imgs = torch.rand(2, 3, 48, 48, generator=gen)
    noise = torch.rand(2, 9, generator=gen)
    ref = single_group_forward(state, imgs, noise, 0.75, False, heads=2)
    ours = model(imgs[:, None], noise=noise.view(2, 1, 1, 9))
    torch.testing.assert_close(ours.loss, ref["loss"], rtol=0, atol=ATOL)
    pred = ref["pred"].reshape(2, 9, 256, 3).permute(0, 3, 1, 2)
    torch.testing.assert_close(ours.pred[:, 0], pred, rtol=0, atol=ATOL)


@pytest.mark.parametrize("kind", ["group_channel", "temporal", "vanilla"])
def test_finetuned_encoder_fed_the_official_tensor_matches_official_features(kind, tmp_path):
    """No band names: the official channel order is the encoder's input order."""
    gen = torch.Generator().manual_seed(7)
    if kind == "group_channel":
        state = group_channel_state(128, 2, GROUPS, 8, 4, 32, 0, 0, 0, seed=8, finetune=5)
        x = torch.rand(2, 10, 32, 32, generator=gen)  # official order B02 … B12
        ref = finetune_features(state, x, heads=2, groups=GROUPS)
        times = None
    elif kind == "temporal":
        state = single_group_state(128, 2, 3, 16, 3, 48, 0, 0, 0, seed=9, finetune=5)
        x = torch.rand(2, 3, 3, 48, 48, generator=gen)
        day = datetime(2016, 6, 3, 11, tzinfo=UTC)
        times = torch.full((2, 3), int(day.timestamp()))
        stamps = torch.tensor([14, 5, 11]).expand(2, 3, 3)
        ref = finetune_features(state, x, heads=2, timestamps=stamps)
    else:
        state = single_group_state(128, 2, 3, 16, 3, 0, 0, 0, 0, seed=10, finetune=5)
        x = torch.rand(2, 3, 48, 48, generator=gen)
        ref = finetune_features(state, x, heads=2)
        times = None
    path = tmp_path / "finetune.pth"
    args = argparse.Namespace(nb_classes=5, num_heads=2)
    torch.save({"model": state, "args": args, "epoch": 7}, path)
    encoder = load_encoder(path)
    features = encoder(x if kind == "temporal" else x[:, None], times)
    torch.testing.assert_close(features.pooled, ref["pooled"], rtol=0, atol=ATOL)
    torch.testing.assert_close(features.logits, ref["logits"], rtol=0, atol=ATOL)
    tokens = features.tokens.flatten(1, 4)  # (B, T·G·L, D): group-major, then time-major
    torch.testing.assert_close(tokens, ref["tokens"], rtol=0, atol=ATOL)
    torch.testing.assert_close(encoder.embed(x, times), ref["pooled"], rtol=0, atol=ATOL)
    with pytest.raises(ValueError, match="encoder without a decoder"):
        load_mae(path)


def _sentinel_normalize(raw: torch.Tensor, bands: tuple[str, ...]) -> torch.Tensor:
    """The official SentinelNormalize + ToTensor, written out: (x - (m - 2s)) / 4s · 255 → uint8."""
    stats = load_stats("satmae_official")
    mean = np.array([stats.mean[band] for band in bands])[:, None, None]
    std = np.array([stats.std[band] for band in bands])[:, None, None]
    scaled = (raw.numpy().astype(np.float64) - (mean - 2 * std)) / (4 * std) * 255.0
    return torch.from_numpy(np.clip(scaled, 0, 255).astype(np.uint8).astype(np.float32) / 255.0)


def test_official_encoder_on_raw_reflectance_matches_the_official_pipeline(tmp_path):
    """Raw L1C reflectance as read -> official normalisation -> official features."""
    state = group_channel_state(128, 2, GROUPS, 8, 4, 32, 0, 0, 0, seed=11, finetune=5)
    path = tmp_path / "finetune.pth"
    torch.save({"model": state, "args": {"num_heads": 2}}, path)
    encoder = load_encoder(path)
    gen = torch.Generator().manual_seed(12)
    catalog = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10",
               "B11", "B12")  # fmt: skip
    raw = torch.randint(0, 4000, (1, len(catalog), 32, 32), generator=gen).float()
    sample = {"image": raw, "bands": catalog}
    official_input = _sentinel_normalize(
        raw[0, [catalog.index(band) for band in SATMAE_BANDS]], SATMAE_BANDS
    )
    ref = finetune_features(state, official_input[None], heads=2, groups=GROUPS)
    torch.testing.assert_close(encoder.embed(sample), ref["pooled"], rtol=0, atol=ATOL)


def test_head_counts_come_from_args_or_the_published_table():
    assert official_heads(768, 12, {}) == 12
    assert official_heads(1024, 24, {"model": "mae_vit_large_patch16_samemask"}) == 16
    assert official_heads(1280, 32, {"model": "vit_huge_patch14"}) == 16
    assert official_heads(128, 2, {"num_heads": 2}) == 2
    with pytest.raises(ValueError, match=r"fits no published SatMAE variant.*args\.num_heads"):
        official_heads(384, 12, {})
    with pytest.raises(ValueError, match=r"name the official factory 'mae_vit_base_patch16'"):
        official_heads(1024, 24, {"model": "mae_vit_base_patch16"})


def test_state_dict_of_no_known_variant_is_an_error_not_a_guess():
    state = group_channel_state(128, 2, GROUPS, 8, 4, 32, 64, 1, 16)
    with pytest.raises(ValueError, match="width 128 and depth 2 fits no published"):
        from_official(state)


def test_official_pth_loads_through_load_mae_and_reports_unused_keys(tmp_path):
    state = group_channel_state(128, 2, GROUPS, 8, 4, 32, 64, 1, 16)
    state["aux_head.weight"] = torch.zeros(40, 10)  # a key of no known layout
    args = argparse.Namespace(
        model="mae_vit_base_patch16", num_heads=2, norm_pix_loss=False, spatial_mask=True
    )
    path = tmp_path / "pretrain.pth"
    torch.save({"model": state, "args": args, "epoch": 199, "optimizer": {}}, path)
    with pytest.warns(UserWarning, match="aux_head.weight"):
        model = load_mae(path)
    assert model.config.mask_groups == "consistent"
    assert model.provenance["official"] == "group_channel"
    with pytest.warns(UserWarning):
        encoder = load_encoder(path)
    x = torch.rand(1, 1, 10, 32, 32)
    torch.testing.assert_close(
        encoder(x, bands=SATMAE_BANDS).cls, model.encoder(x, bands=SATMAE_BANDS).cls
    )


def test_loss_slot_order_golden_attribution():
    """Reference §11.4: target as prediction gives 0 in band order and not in concat order."""
    state = group_channel_state(64, 1, GROUPS, 8, 4, 16, 32, 1, 8)
    model = _load(state)
    imgs = torch.rand(1, 1, 10, 32, 32, generator=torch.Generator().manual_seed(0))
    selection = select_bands(model.config, SATMAE_BANDS, 10)
    target, _ = model.targets(imgs, selection)
    hidden = torch.ones(1, 1, 3, 16, dtype=torch.bool)
    zero = model._loss(target, target, hidden, None, None, None, selection, target, (4, 4))
    assert zero.loss.item() == 0.0
    # The official concatenation order assigns head outputs to slots 0-9 in band order; reading
    # them as group order (what a naive port does) crosses B05 and B08.
    concat = [selection.bands.index(b) for b in sum(official_group_channel_heads(), ())]
    crossed = model._loss(
        target[:, :, concat], target, hidden, None, None, None, selection, target, (4, 4)
    )
    assert crossed.loss.item() > 0.0
    # Per-slot attribution under single-group masks (slot k = band k of SATMAE_BANDS).
    charged = {0: ((0, 1, 2, 6), 0.25), 1: ((3, 4, 5, 7), 0.25), 2: ((8, 9), 0.5)}
    for group, (slots, weight) in charged.items():
        mask = torch.zeros(1, 1, 3, 16, dtype=torch.bool)
        mask[:, :, group] = True
        for slot, band in enumerate(SATMAE_BANDS):
            bumped = target.clone()
            bumped[:, :, selection.bands.index(band)] += 1.0
            out = model._loss(bumped, target, mask, None, None, None, selection, target, (4, 4))
            assert out.loss.item() == pytest.approx(weight if slot in slots else 0.0)
