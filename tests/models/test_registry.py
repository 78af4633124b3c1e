"""The model registry and its timm entries."""

from __future__ import annotations

import pytest
import timm
import torch

from satmae.models import MODEL_CONFIGS, MaskedAutoencoder, create_model


@pytest.mark.parametrize("name", sorted(MODEL_CONFIGS))
def test_every_entry_builds(name):
    with torch.device("meta"):
        model = create_model(name)
    assert isinstance(model, MaskedAutoencoder)
    assert model.config == MODEL_CONFIGS[name]


def test_sizes_grow():
    widths = [
        MODEL_CONFIGS[f"satmae_{size}"].embed_dim for size in ("small", "base", "large", "huge")
    ]
    assert widths == sorted(widths) and MODEL_CONFIGS["satmae_tiny"].embed_dim < widths[0]


def test_overrides_and_unknown_names():
    model = create_model("satmae_tiny", mask_ratio=0.9, decoder="cross")
    assert model.config.mask_ratio == 0.9 and model.config.decoder == "cross"
    with pytest.raises(KeyError, match="registered models"):
        create_model("satmae_gigantic")
    with pytest.raises(ValueError, match="mask_ratio"):
        create_model("satmae_tiny", mask_ratio=1.5)


def test_timm_create_model():
    model = timm.create_model("satmae_tiny", mask_ratio=0.5)
    assert isinstance(model, MaskedAutoencoder) and model.config.mask_ratio == 0.5
    assert "satmae_group_channel_vit_base_patch8_96" in timm.list_models("satmae_*")
    with pytest.raises(ValueError, match="no downloadable weights"):
        timm.create_model("satmae_tiny", pretrained=True)
