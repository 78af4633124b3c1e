"""Multi-scale reconstruction: which pixels each L1 rule covers, targets, errors."""

from __future__ import annotations

import warnings

import pytest
import torch

from satmae.models import create_model
from satmae.models.multiscale import ScaleTarget

SCALES = (2, 4)


def _model(**overrides):
    torch.manual_seed(0)
    return create_model("satmae_tiny", upsample_scales=SCALES, **overrides)


def _inputs(model, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 2, 10, 32, 32, generator=g)
    times = torch.tensor([[1_600_000_000, 1_610_000_000]] * 2)
    targets = {
        s: ScaleTarget(torch.randn(2, 2, 10, 32 * s, 32 * s, generator=g), model.config.bands)
        for s in SCALES
    }
    # The same number of hidden tokens in every sample (72 of 96).
    order = torch.rand(2, 96, generator=g).argsort(1)
    mask = (order < 72).view(2, 2, 3, 16)
    return x, times, targets, mask


def _footprint_mask(mask, group_of_band, scale, patch=8):
    """(B, T, G, L) hidden tokens -> (B, T, C, s·H, s·W) hidden pixels of each band."""
    per_band = mask[:, :, group_of_band]  # (B, T, C, L)
    grid = per_band.reshape(*per_band.shape[:3], 4, 4)
    size = scale * patch
    return grid.repeat_interleave(size, -2).repeat_interleave(size, -1)


def _group_of_band(model):
    return [g for g, group in enumerate(model.config.band_groups) for _ in group]


@pytest.mark.parametrize("rule", ["masked", "satmae_pp"])
def test_masked_rule_ignores_visible_pixels_and_satmae_pp_does_not(rule):
    model = _model(multiscale_loss=rule).eval()
    x, times, targets, mask = _inputs(model)
    base = model(x, times, mask=mask, scale_targets=targets)
    hidden = _footprint_mask(mask, _group_of_band(model), 2)
    changed = dict(targets)
    changed[2] = ScaleTarget(torch.where(hidden, targets[2].image, 100.0), targets[2].bands)
    out = model(x, times, mask=mask, scale_targets=changed)
    same = torch.isclose(out.scale_losses[2], base.scale_losses[2])
    assert bool(same) == (rule == "masked")
    torch.testing.assert_close(out.scale_losses[4], base.scale_losses[4])


def test_masked_rule_weights_pixels_by_validity_at_their_scale():
    model = _model().eval()
    x, times, targets, mask = _inputs(model)
    valid = torch.rand(2, 2, 64, 64, generator=torch.Generator().manual_seed(5)) > 0.3
    with_valid = dict(targets)
    with_valid[2] = ScaleTarget(targets[2].image, targets[2].bands, valid)
    base = model(x, times, mask=mask, scale_targets=with_valid)
    image = torch.where(valid[:, :, None], targets[2].image, -50.0)
    with_valid[2] = ScaleTarget(image, targets[2].bands, valid)
    out = model(x, times, mask=mask, scale_targets=with_valid)
    torch.testing.assert_close(out.scale_losses[2], base.scale_losses[2])


def test_masked_rule_standardises_targets_like_norm_pix_loss():
    """Under norm_pix_loss an affine change of the target leaves the masked L1 unchanged."""
    model = _model(norm_pix_loss=True).eval()
    x, times, targets, mask = _inputs(model)
    base = model(x, times, mask=mask, scale_targets=targets)
    moved = {s: ScaleTarget(3.0 * t.image + 7.0, t.bands) for s, t in targets.items()}
    out = model(x, times, mask=mask, scale_targets=moved)
    for scale in SCALES:
        torch.testing.assert_close(out.scale_losses[scale], base.scale_losses[scale])
    raw = _model(norm_pix_loss=True, multiscale_loss="satmae_pp").eval()
    assert not torch.isclose(
        raw(x, times, mask=mask, scale_targets=moved).scale_losses[2],
        raw(x, times, mask=mask, scale_targets=targets).scale_losses[2],
    )


def test_total_loss_is_the_weighted_sum_and_a_band_subset_is_scored_alone():
    model = _model(mse_weight=0.3, l1_weight=0.7).eval()
    x, times, targets, mask = _inputs(model)
    ten_metre = ("B02", "B03", "B04", "B08")
    subset = [model.config.bands.index(b) for b in ten_metre]
    targets[4] = ScaleTarget(targets[4].image[:, :, subset], ten_metre)
    out = model(x, times, mask=mask, scale_targets=targets)
    l1 = (out.scale_losses[2] + out.scale_losses[4]) / 2
    torch.testing.assert_close(out.loss, 0.3 * out.mse_loss + 0.7 * l1)
    assert out.scale_bands[4] == ten_metre


def test_eval_without_targets_gives_predictions_and_the_mse_alone():
    model = _model().eval()
    x, times, _, mask = _inputs(model)
    out = model(x, times, mask=mask)
    assert out.scale_losses == {}
    assert out.loss is out.mse_loss
    images = model.reconstruct_scales(x, times, mask=mask)
    assert {s: tuple(v.shape[-2:]) for s, v in images.items()} == {
        1: (32, 32),
        2: (64, 64),
        4: (128, 128),
    }


def test_cross_decoder_trains_with_the_masked_rule():
    model = _model(decoder="cross", decoder_fraction=0.5)
    x, times, targets, _ = _inputs(model)
    out = model(x, times, scale_targets=targets)
    out.loss.backward()
    assert model.upsampler.proj.weight.grad is not None


def test_a_batch_dict_with_raw_scale_images_is_normalised_by_the_model():
    model = _model().eval()
    g = torch.Generator().manual_seed(3)
    raw = torch.randint(100, 3000, (1, 2, 10, 32, 32), generator=g).float()
    batch = {
        "image": raw,
        "bands": model.config.bands,
        "times": torch.tensor([[1_600_000_000, 1_610_000_000]]),
        "image_x2": raw.repeat_interleave(2, -1).repeat_interleave(2, -2),
        "image_x4": raw.repeat_interleave(4, -1).repeat_interleave(4, -2),
    }
    out = model(batch, generator=torch.Generator().manual_seed(0))
    assert set(out.scale_losses) == {2, 4}
    normed = model.prepare_scales(batch)[2].image
    assert normed.abs().mean() < 10  # normalised, not reflectance


def test_errors_name_the_scale_the_shape_and_the_fix():
    model = _model()
    x, times, targets, _ = _inputs(model)
    with pytest.raises(ValueError, match=r"batch has no \['image_x2', 'image_x4'\].*data\.scales"):
        model(x, times)
    wrong = dict(targets)
    wrong[2] = ScaleTarget(torch.zeros(2, 2, 10, 48, 48), targets[2].bands)
    with pytest.raises(ValueError, match=r"image_x2 of shape .* does not fit a 32x32 input"):
        model(x, times, scale_targets=wrong)
    rgb_only = ("B02", "B03", "B04", "B08")
    with pytest.raises(ValueError, match="needs every band group"):
        model(x[:, :, :4], times, bands=rgb_only, scale_targets=targets)
    with pytest.raises(ValueError, match=r"upsample_scales must double from 2.*got \(4,\)"):
        create_model("satmae_tiny", upsample_scales=(4,))
    with pytest.raises(ValueError, match=r"multiscale_loss='satmae_pp' .* decoder='full'"):
        create_model("satmae_tiny", upsample_scales=(2,), multiscale_loss="satmae_pp",
                     decoder="cross")  # fmt: skip
    with pytest.raises(ValueError, match="mse_weight and l1_weight must be >= 0"):
        create_model("satmae_tiny", upsample_scales=(2,), l1_weight=-1.0)
    with pytest.raises(ValueError, match="multiscale_loss must be one of"):
        create_model("satmae_tiny", upsample_scales=(2,), multiscale_loss="l1")


def test_bundle_round_trip_keeps_the_upsampler_and_the_rule(tmp_path):
    from satmae.models import load_mae, save_bundle

    model = _model(multiscale_loss="satmae_pp").eval()
    save_bundle(model, tmp_path / "bundle")
    loaded = load_mae(tmp_path / "bundle").eval()
    assert loaded.config.upsample_scales == SCALES
    assert loaded.config.multiscale_loss == "satmae_pp"
    x, times, targets, mask = _inputs(model)
    expected = model(x, times, mask=mask, scale_targets=targets)
    got = loaded(x, times, mask=mask, scale_targets=targets)
    torch.testing.assert_close(got.loss, expected.loss, rtol=0, atol=0)
    torch.testing.assert_close(got.scale_preds[4], expected.scale_preds[4], rtol=0, atol=0)


def test_the_encoder_of_a_multiscale_model_loads_without_its_upsampler(tmp_path):
    from satmae.models import load_encoder, save_bundle

    model = _model(multiscale_loss="masked").eval()
    save_bundle(model, tmp_path / "bundle")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # strict: nothing skipped with a warning either
        encoder = load_encoder(tmp_path / "bundle")
    x, times, _, _ = _inputs(model)
    torch.testing.assert_close(encoder(x, times).pooled, model.encoder(x, times).pooled)
