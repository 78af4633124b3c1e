"""The change network: modes, frozen vs fine-tuned encoder, loss, windows, whole-scene inference."""

from __future__ import annotations

import pytest
import torch

from satmae.eval.change.data import window_starts
from satmae.eval.change.evaluate import choose_val_cities, verdict
from satmae.eval.change.inference import predict_scene
from satmae.eval.change.model import ChangeConfig, ChangeNet, change_loss, date_blocks
from satmae.eval.change.train import FitConfig, draw_windows, fit_change, prepare_city
from satmae.models import create_model

BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
DAY = 86_400


def _encoder(temporal: bool = True):
    torch.manual_seed(0)
    overrides = {} if temporal else {"time_fields": ()}
    return create_model("satmae_tiny", normalization="s2_l1c", **overrides).encoder.eval()


def _city(size: int = 48, seed: int = 0, name: str = "town") -> dict:
    """A two-date city whose second date has a bright square where the mask says change."""
    gen = torch.Generator().manual_seed(seed)
    image = 1000 + 500 * torch.rand(2, len(BANDS), size, size, generator=gen)
    mask = torch.zeros(1, size, size, dtype=torch.int64)
    mask[0, 10:22, 14:26] = 1
    image[1, :, 10:22, 14:26] += 3000
    return {
        "image": image,
        "bands": BANDS,
        "times": torch.tensor([1_500_000_000, 1_500_000_000 + 400 * DAY]),
        "valid": torch.ones(2, size, size, dtype=torch.bool),
        "mask": mask,
        "location": name,
    }


@pytest.mark.parametrize("mode", ["siamese", "temporal"])
def test_both_modes_give_pixel_logits_and_freeze_the_encoder(mode):
    net = ChangeNet(_encoder(), ChangeConfig(mode=mode, blocks=(0, -1)))
    batch = {key: value for key, value in _city(32).items() if key != "location"}
    batch = {k: v.unsqueeze(0) if torch.is_tensor(v) else v for k, v in batch.items()}
    logits = net(net.prepare(batch))
    assert logits.shape == (1, 1, 32, 32)
    logits.sum().backward()
    assert all(p.grad is None for p in net.encoder.parameters())
    assert any(p.grad is not None for p in net.fuse.parameters())


def test_finetuning_trains_the_encoder_and_siamese_dates_do_not_see_each_other():
    net = ChangeNet(_encoder(), ChangeConfig(finetune=True, blocks=(-1,)))
    sample = _city(32)
    inputs = net.prepare({k: v for k, v in sample.items() if k != "location"})
    features = net.date_features(inputs)
    changed = inputs.image.clone()
    changed[:, 1] += 1.0
    other = net.date_features(type(inputs)(changed, inputs.times, inputs.bands))
    # Siamese: date 1's features do not depend on date 2's pixels.
    assert torch.allclose(features.first[1], other.first[1], atol=1e-6)
    assert not torch.allclose(features.second[1], other.second[1], atol=1e-3)
    net(inputs).sum().backward()
    assert any(p.grad is not None for p in net.encoder.parameters())


def test_temporal_mode_lets_the_dates_attend_to_each_other():
    net = ChangeNet(_encoder(), ChangeConfig(mode="temporal", blocks=(-1,)))
    inputs = net.prepare({k: v for k, v in _city(32).items() if k != "location"})
    changed = inputs.image.clone()
    changed[:, 1] += 1.0
    first = net.date_features(inputs).first[1]
    other = net.date_features(type(inputs)(changed, inputs.times, inputs.bands)).first[1]
    assert not torch.allclose(first, other, atol=1e-4)


def test_setups_the_encoder_cannot_run_are_refused_up_front():
    with pytest.raises(ValueError, match="no time encoding"):
        ChangeNet(_encoder(temporal=False), ChangeConfig(mode="temporal"))
    with pytest.raises(ValueError, match="outside the encoder's 2 blocks"):
        ChangeNet(_encoder(), ChangeConfig(blocks=(5,)))
    with pytest.raises(ValueError, match="change mode"):
        ChangeNet(_encoder(), ChangeConfig(mode="early"))  # type: ignore[arg-type]
    net = ChangeNet(_encoder(), ChangeConfig())
    one_date = {k: v[:1] if k in ("image", "times", "valid") else v for k, v in _city().items()}
    with pytest.raises(ValueError, match="two dates"):
        net.prepare(one_date)
    assert date_blocks("-3, -1") == (-3, -1)


def test_loss_counts_valid_pixels_only_and_rewards_the_change_class():
    target = torch.zeros(1, 1, 8, 8)
    target[..., :2, :2] = 1
    valid = torch.ones(1, 1, 8, 8, dtype=torch.bool)
    right = torch.where(target > 0, 6.0, -6.0)
    wrong = -right
    assert change_loss(right, target, valid, 5.0) < change_loss(wrong, target, valid, 5.0)
    # Garbage under invalid pixels changes nothing.
    valid[..., 4:, :] = False
    noisy = right.clone()
    noisy[..., 4:, :] = 50.0
    assert torch.isclose(
        change_loss(right, target, valid, 5.0), change_loss(noisy, target, valid, 5.0)
    )


def test_windows_follow_the_mask_through_flips_and_rotations():
    net = ChangeNet(_encoder(), ChangeConfig())
    city = prepare_city(net, _city(48))
    gen = torch.Generator().manual_seed(1)
    image, times, mask, valid = draw_windows([city], 12, 32, gen, change_fraction=1.0)
    assert image.shape == (12, 2, 10, 32, 32) and mask.shape == valid.shape == (12, 1, 32, 32)
    assert times is not None and times.shape == (12, 2)
    # The planted change is bright on date 2 only: wherever the mask says change, so does
    # the image, whatever flip or rotation was drawn.
    diff = (image[:, 1] - image[:, 0]).mean(1, keepdim=True)
    assert mask.sum() > 0
    assert diff[mask > 0].min() > diff[mask == 0].max()


def test_window_starts_cover_the_extent_with_the_last_window_flush():
    assert window_starts(100, 32, 16) == [0, 16, 32, 48, 64, 68]
    assert window_starts(20, 32, 16) == [0]


def test_a_scene_of_one_window_is_the_plain_forward_and_small_scenes_are_padded():
    net = ChangeNet(_encoder(), ChangeConfig()).eval()
    city = _city(32)
    whole = predict_scene(net, city)
    inputs = net.prepare({k: v for k, v in city.items() if k != "location"})
    with torch.no_grad():
        direct = torch.sigmoid(net(inputs))[0, 0]
    assert torch.allclose(whole, direct, atol=1e-5)
    small = {**city, "image": city["image"][..., :20, :27], "valid": city["valid"][..., :20, :27]}
    assert predict_scene(net, small).shape == (20, 27)
    assert predict_scene(net, _city(48), stride=8).shape == (48, 48)


def test_fitting_lowers_the_loss_and_finds_the_planted_change():
    net = ChangeNet(_encoder(), ChangeConfig(blocks=(-1,)))
    cities = [_city(48, seed=s, name=f"c{s}") for s in range(2)]
    losses = fit_change(net, cities, FitConfig(steps=40, batch_size=4, lr=3e-3), progress=False)
    assert sum(losses[-5:]) < sum(losses[:5])
    prob = predict_scene(net, _city(48, seed=7))
    inside, outside = prob[10:22, 14:26].mean(), prob[30:, 30:].mean()
    assert inside > outside + 0.3


def test_validation_cities_are_training_cities_and_leave_some_to_train_on():
    train = ["a", "b", "c", "d", "e", "f", "g"]
    chosen = choose_val_cities(train, None)
    assert len(chosen) == 2 and set(chosen) <= set(train)
    assert chosen == choose_val_cities(train, None)
    with pytest.raises(ValueError, match="not training cities"):
        choose_val_cities(train, ["zz"])
    with pytest.raises(ValueError, match="no training city left"):
        choose_val_cities(["a"], ["a"])


def test_the_verdict_names_the_best_baseline():
    metrics = {"change_f1": {"mean": 0.3}}
    baselines = {
        "cva": {"metrics": {"change_f1": {"mean": 0.2}}},
        "lr": {"metrics": {"change_f1": {"mean": 0.25}}},
    }
    assert "beats every baseline" in verdict(metrics, baselines) and "lr" in verdict(
        metrics, baselines
    )
    metrics["change_f1"]["mean"] = 0.1
    assert "NOT" in verdict(metrics, baselines)
