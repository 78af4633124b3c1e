"""The downstream encoder: named features, pooling, dense maps, intermediate blocks."""

from __future__ import annotations

import pytest
import torch

from satmae.models import create_model


@pytest.fixture
def series():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 10, 16, 24, generator=gen)  # (B, T, C, H, W), non-square
    times = 1_600_000_000 + torch.randint(0, 10**7, (2, 3), generator=gen)
    return x, times


def test_named_features(encoder, series):
    x, times = series
    features = encoder(x, times, blocks=[0, -1])
    assert features.cls.shape == (2, 64)
    assert features.tokens.shape == (2, 3, 3, 2, 3, 64)
    assert features.pooled.shape == (2, 64)
    assert features.map.shape == (2, 64, 2, 3)
    assert features.dense("concat").shape == (2, 3 * 3 * 64, 2, 3)
    assert sorted(features.intermediates) == [0, 1]
    assert features.intermediates[1].shape == features.tokens.shape
    torch.testing.assert_close(features.pooled, features.tokens.mean(dim=(1, 2, 3, 4)))
    assert features.logits is None


def test_embed_pools(encoder, series):
    x, times = series
    assert encoder.embed(x, times, pool="mean").shape == (2, 64)
    assert encoder.embed(x, times, pool="cls").shape == (2, 64)
    assert encoder.embed(x, times, pool="none").shape == (2, 3, 3, 2, 3, 64)
    single = encoder.embed(x[:, 0], times[:, 0])  # (B, C, H, W) single images
    torch.testing.assert_close(single, encoder.embed(x[:, :1], times[:, :1]))
    with pytest.raises(ValueError, match="pool must be"):
        encoder.embed(x, times, pool="max")


def test_encoder_matches_mae_without_masking(series):
    torch.manual_seed(0)
    model = create_model("satmae_tiny").eval()
    x, times = series
    out = model(x, times, mask_ratio=0.0)
    features = model.encoder(x, times)
    torch.testing.assert_close(out.latent[:, 1:], features.tokens.flatten(1, 4))


def test_padded_frames_do_not_change_features(encoder, series):
    x, times = series
    frame_mask = torch.tensor([[True, False, True], [True, True, True]])
    noisy = x.clone()
    noisy[0, 1] = 1e3
    first = encoder(x, times, frame_mask=frame_mask)
    second = encoder(noisy, times, frame_mask=frame_mask)
    torch.testing.assert_close(first.pooled, second.pooled)
    torch.testing.assert_close(first.map, second.map)
    two = encoder(x[:1, [0, 2]], times[:1, [0, 2]])
    torch.testing.assert_close(first.pooled[0], two.pooled[0], atol=1e-5, rtol=1e-5)
