"""Every user mistake raises a ValueError naming what was expected and what was given."""

from __future__ import annotations

import argparse

import pytest
import torch

from satmae.bands import SATMAE_BANDS
from satmae.models import create_model, load_encoder, load_mae
from satmae.models.official import official_state


@pytest.fixture(scope="module")
def model():
    return create_model("satmae_tiny")


TIMES = torch.full((1, 2), 1_600_000_000)


@pytest.mark.parametrize(
    ("shape", "bands", "times", "message"),
    [
        ((1, 10, 32, 32), None, TIMES, r"expected x of shape \(B, T, C, H, W\), got 4"),
        ((1, 2, 10, 30, 32), None, TIMES, "30x32 is not divisible by patch_size=8"),
        (
            (1, 2, 10, 32, 32),
            ["B02", "B99", *SATMAE_BANDS[2:]],
            TIMES,
            "unknown Sentinel-2 band 'B99'",
        ),
        ((1, 2, 9, 32, 32), SATMAE_BANDS[:9], TIMES, r"group 2 .* missing \['B12'\]"),
        ((1, 2, 9, 32, 32), None, TIMES, r"expects 10 channels .* got 9"),
        ((1, 5, 10, 32, 32), None, torch.zeros(1, 5), "at most max_frames=4 frames, got 5"),
        ((1, 2, 10, 32, 32), None, None, r"pass times of shape \(1, 2\)"),
        (
            (1, 2, 10, 32, 32),
            None,
            torch.zeros(1, 3),
            r"expected times of shape \(1, 2\), got \(1, 3\)",
        ),
        ((1, 2, 2, 32, 32), ["B01", "B09"], TIMES, "contain none of the model's groups"),
    ],
)
@pytest.mark.parametrize("part", ["mae", "encoder"])
def test_input_errors(model, part, shape, bands, times, message):
    x = torch.rand(shape)
    call = model if part == "mae" else model.encoder
    with pytest.raises(ValueError, match=message):
        call(x, times, bands)


def test_frame_mask_and_mask_shapes(model):
    x = torch.rand(1, 2, 10, 32, 32)
    with pytest.raises(ValueError, match=r"frame_mask of shape \(1, 2\), got \(1, 3\)"):
        model(x, TIMES, frame_mask=torch.ones(1, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"expected mask of shape \(1, 2, 3, 16\)"):
        model(x, TIMES, mask=torch.ones(1, 2, 3, 15, dtype=torch.bool))


def test_checkpoint_of_another_architecture(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"model": {"conv1.weight": torch.zeros(1)}, "args": argparse.Namespace()}, path)
    for load in (load_mae, load_encoder):
        with pytest.raises(ValueError, match=r"expected .*'cls_token'.* got"):
            load(path)
    with pytest.raises(FileNotFoundError):
        load_mae(tmp_path / "missing.pth")
    with pytest.raises(ValueError, match="not a satmae bundle"):
        official_state([1, 2, 3])


def test_config_errors():
    with pytest.raises(ValueError, match="multiple of 4"):
        create_model("satmae_tiny", group_dim=18)
    with pytest.raises(ValueError, match="unknown time_fields"):
        create_model("satmae_tiny", time_fields=("week",))
    with pytest.raises(ValueError, match="cross decoder needs"):
        legacy = (("B02", "B03", "B04", "B05"), ("B06", "B07", "B08", "B8A"), ("B11", "B12"))
        create_model("satmae_group_channel_vit_base_patch8_96", decoder="cross", head_bands=legacy)


def test_learned_tables_need_their_grid():
    model = create_model("satmae_tiny", encoding="learned")
    with pytest.raises(
        ValueError, match=r"learned spatial table for a \(4, 4\) patch grid, got \(2, 2\)"
    ):
        model.encoder(torch.rand(1, 1, 10, 16, 16), torch.zeros(1, 1, dtype=torch.long))


def test_truncated_official_checkpoint_names_the_missing_key():
    from satmae.models.official import from_official

    from .official_reference import group_channel_state

    state = group_channel_state(64, 1, [[0, 1, 2, 6], [3, 4, 5, 7], [8, 9]], 8, 4, 16, 32, 1, 8)
    del state["mask_token"]
    with pytest.raises(ValueError, match="lacks key 'mask_token'"):
        from_official(state, {"num_heads": 1})
