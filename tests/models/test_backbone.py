"""The encoder as a timm backbone: forward_features/intermediates/head and features_only."""

from __future__ import annotations

import pytest
import timm
import torch
import torch.nn.functional as F
from torch import nn

import satmae.models  # noqa: F401  (registers the models with timm)
from satmae.models import MaskedAutoencoder, SatMAEEncoder


@pytest.fixture
def image():
    return torch.rand(2, 10, 32, 16, generator=torch.Generator().manual_seed(0))


@pytest.fixture
def times():
    return torch.tensor([1_600_000_000, 1_610_000_000])


def test_create_model_returns_encoder_and_keeps_mae():
    encoder = timm.create_model("satmae_tiny_encoder", in_chans=10)
    assert isinstance(encoder, SatMAEEncoder)
    assert encoder.num_features == 64
    assert isinstance(timm.create_model("satmae_tiny"), MaskedAutoencoder)


def test_in_chans_mismatch_and_pretrained():
    with pytest.raises(ValueError, match="reads 10 bands"):
        timm.create_model("satmae_tiny_encoder", in_chans=3)
    with pytest.raises(ValueError, match="load_encoder"):
        timm.create_model("satmae_tiny_encoder", pretrained=True)


def test_forward_features_intermediates_head(image, times):
    torch.manual_seed(0)
    encoder = timm.create_model("satmae_tiny_encoder").eval()
    tokens = encoder.forward_features(image, times)
    assert tokens.shape == (2, 1 + 3 * 4 * 2, 64)  # cls + G·h·w
    features = encoder(image[:, None], times[:, None])
    torch.testing.assert_close(tokens[:, 0], features.cls)
    maps = encoder.forward_intermediates(image, intermediates_only=True, times=times)
    assert [m.shape for m in maps] == [(2, 64, 4, 2)] * 2
    final, nlc = encoder.forward_intermediates(image, indices=[1], output_fmt="NLC", times=times)
    torch.testing.assert_close(final, tokens)
    assert nlc[0].shape == (2, 24, 64)
    assert encoder.forward_head(tokens).shape == (2, 64)
    with pytest.raises(ValueError, match="times"):
        encoder.forward_features(image)


class SegmentationModel(nn.Module):
    """What a downstream library builds: a features_only backbone and a light head."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        self.backbone = timm.create_model(
            "satmae_tiny_encoder", features_only=True, out_indices=2, time_fields=()
        )
        channels = self.backbone.feature_info.channels()[-1]
        self.head = nn.Conv2d(channels, classes, kernel_size=1)

    def forward(self, x):
        last = self.backbone(x)[-1]  # (B, D, h, w)
        return F.interpolate(self.head(last), size=x.shape[-2:], mode="bilinear")


def test_segmentation_head_on_features_only(image):
    torch.manual_seed(0)
    model = SegmentationModel(classes=5)
    assert model.backbone.feature_info.reduction() == [8, 8]
    logits = model(image)
    assert logits.shape == (2, 5, 32, 16)
    target = torch.randint(0, 5, (2, 32, 16))
    F.cross_entropy(logits, target).backward()
    grads = [p.grad for p in model.backbone.parameters() if p.requires_grad]
    assert all(g is not None for g in grads[:3])
    assert model.backbone.model.tokenizer.patch_embed[0].weight.grad.abs().sum() > 0
