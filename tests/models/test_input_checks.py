"""Model inputs that cannot be right are refused with the fix, never run into a raw error."""

from __future__ import annotations

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
