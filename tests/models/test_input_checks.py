"""Model inputs that cannot be right are refused with the fix, never run into a raw error."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from satmae.models import create_model

DAY = 86_400
T0 = 1_600_000_000


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return create_model("satmae_tiny").encoder.eval()


def _x(batch: int = 1, frames: int = 2) -> torch.Tensor:
    return torch.randn(batch, frames, 10, 32, 32)


def _times(batch: int = 1, frames: int = 2) -> torch.Tensor:
    return torch.tensor([[T0 + i * DAY for i in range(frames)]] * batch)


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (np.zeros((1, 2, 10, 32, 32), np.float32), "torch tensor"),
        (torch.zeros(1, 2, 10, 32, 32, dtype=torch.int16), "dtype torch.int16"),
        (torch.zeros(0, 2, 10, 32, 32), "empty"),
    ],
)
def test_bad_images_name_the_fix(encoder, x, message):
    with pytest.raises(ValueError, match=message):
        encoder(x, _times())


@pytest.mark.parametrize(
    ("times", "message"),
    [
        (torch.tensor([[float("nan"), T0]]), "NaN"),
        (torch.tensor([[T0 * 1000, (T0 + DAY) * 1000]]), "milliseconds"),
        (torch.tensor([[2**62, 2**62]]), "outside 1900-2100"),
        (torch.tensor([[T0 + 0.5, T0]], dtype=torch.float64), "whole seconds"),
        (torch.tensor([T0, T0]), r"shape \(1, 2\)"),
    ],
)
def test_bad_times_name_the_fix(encoder, times, message):
    with pytest.raises(ValueError, match=message):
        encoder(_x(), times)


def test_whole_float_seconds_are_accepted_as_times(encoder):
    x = _x()
    with torch.no_grad():
        ints = encoder(x, _times()).pooled
        floats = encoder(x, _times().double()).pooled
    torch.testing.assert_close(ints, floats)


def test_block_indices_outside_the_model_are_refused(encoder):
    with pytest.raises(ValueError, match=r"blocks \[99\] are outside"):
        encoder(_x(), _times(), blocks=[99])
    assert set(encoder(_x(), _times(), blocks=[-1]).intermediates) == {1}


@pytest.mark.parametrize("field", ["patch_size", "depth", "num_heads", "embed_dim"])
def test_non_positive_sizes_are_refused(field):
    with pytest.raises(ValueError, match=field):
        create_model("satmae_tiny", **{field: 0 if field != "depth" else -1})


def test_float64_and_bf16_inputs_are_cast_to_the_weights(encoder):
    x = _x()
    with torch.no_grad():
        reference = encoder(x, _times()).pooled
        doubled = encoder(x.double(), _times()).pooled
        model = create_model("satmae_tiny")
        model.encoder.load_state_dict(encoder.state_dict())
        model(x.double(), _times())  # the MAE casts too instead of failing in a convolution
    torch.testing.assert_close(reference, doubled)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_inputs_name_the_argument_or_batch_key(encoder, value):
    x = _x()
    x[0, 1, 3, 5, 7] = value
    with pytest.raises(ValueError, match=r"^x holds 1 NaN or inf"):
        encoder(x, _times())
    batch = {"image": torch.full((2, 10, 32, 32), 1000.0), "bands": encoder.bands}
    batch["image"][0, 0, 0, 0] = value
    batch["times"] = _times()[0]
    with pytest.raises(ValueError, match=r"^batch\['image'\] holds 1 NaN or inf"):
        encoder.embed(batch)
    with pytest.raises(ValueError, match=r"^batch\['image'\] holds"):
        encoder.prepare(batch)


def test_valid_of_the_wrong_width_is_named():
    model = create_model("satmae_tiny")
    valid = torch.ones(1, 2, 32, 31, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"expected valid of shape \(1, 2, 32, 32\), got"):
        model(_x(), _times(), valid=valid)
    with pytest.raises(ValueError, match="valid must be bool"):
        model(_x(), _times(), valid=torch.full((1, 2, 32, 32), 2))


def test_inputs_on_another_device_are_refused(encoder):
    with pytest.raises(ValueError, match=r"x is on meta but the model is on cpu"):
        encoder(_x().to("meta"), _times())
    with pytest.raises(ValueError, match=r"times is on meta but the model is on cpu"):
        encoder(_x(), _times().to("meta"))


def test_embed_refuses_integer_arrays_and_takes_float_ones(encoder):
    with pytest.raises(ValueError, match=r"dtype torch\.int16"):
        encoder.embed(np.zeros((1, 2, 10, 32, 32), np.int16), _times())
    out = encoder.embed(np.zeros((1, 2, 10, 32, 32), np.float64), _times())
    assert out.shape == (1, 64) and out.dtype == torch.float32


@pytest.mark.parametrize("indices", [[99], [-3], [2]])
def test_timm_block_indices_outside_the_model_are_refused(encoder, indices):
    with pytest.raises(ValueError, match="outside"):
        encoder.forward_intermediates(_x(), indices, times=_times())


def test_negative_block_indices_count_from_the_end(encoder):
    x = _x()
    with torch.no_grad():
        features = encoder(x, _times(), blocks=[-1, -2])
        last = encoder.forward_intermediates(x, [-1], times=_times(), output_fmt="NLC")
    assert set(features.intermediates) == {0, 1}
    torch.testing.assert_close(last[1][0], features.intermediates[1].flatten(1, 4))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"patch_size": 2.5}, "patch_size must be an integer >= 1, got 2.5"),
        ({"decoder_num_heads": 0}, "decoder_num_heads must be an integer >= 1"),
        ({"decoder_depth": -1}, "decoder_depth must be an integer >= 0"),
        ({"mlp_ratio": 0.0}, r"mlp_ratio must be a number > 0"),
        ({"mask_ratio": float("nan")}, r"mask_ratio must be a number in \[0, 1\)"),
        ({"max_frames": True}, "max_frames must be an integer"),
        ({"img_size": (32, 0)}, "img_size must be two integers"),
        ({"time_fields": "year"}, "time_fields must be a list"),
        ({"band_groups": ("B02", "B03")}, r"band_groups\[0\] must be a list of band names"),
    ],
)
def test_every_config_value_is_checked_with_its_range(overrides, message):
    with pytest.raises(ValueError, match=message):
        create_model("satmae_tiny", **overrides)


def test_an_all_invalid_batch_gives_a_zero_loss_flagged_empty():
    model = create_model("satmae_tiny")
    valid = torch.zeros(1, 2, 32, 32, dtype=torch.bool)
    out = model(_x(), _times(), valid=valid)
    assert out.empty and int(out.counted) == 0
    assert out.loss.item() == 0.0 and torch.isfinite(out.group_losses).all()
    assert not model(_x(), _times()).empty


def test_prepare_takes_a_whole_scene_and_the_forward_checks_the_patch_grid(encoder):
    scene = {
        "image": torch.full((2, 10, 20, 27), 1000.0),
        "bands": encoder.bands,
        "times": _times()[0],
    }
    inputs = encoder.prepare(scene)  # a scene is prepared before it is cut into windows
    assert inputs.checked and inputs.image.shape == (1, 2, 10, 20, 27)
    with pytest.raises(ValueError, match=r"20x27 is not divisible by patch_size=8"):
        encoder.encode(inputs)
    window = encoder.encode(replace(inputs, image=inputs.image[..., :16, :24]))
    assert torch.isfinite(window.pooled).all()
