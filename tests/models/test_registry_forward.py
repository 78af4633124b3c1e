"""Every registered model config runs a real forward and backward pass, shrunk to test size.

The shrink keeps what makes each entry what it is (band groups, patch size, time fields,
frames, masking modes, decoder kind, loss options) and reduces only widths and depths, and the
image to two patches per side. Only the public call ``model(x, times=..., bands=...)`` and
``model.config`` are used.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

import pytest
import torch

from satmae.models import MODEL_CONFIGS, MAEConfig, create_model
from satmae.models.multiscale import ScaleTarget

DAY = 86_400
FIRST_DATE = 1_609_459_200 + 10 * 3600  # 2021-01-01T10:00:00Z, a typical overpass hour


def shrink(config: MAEConfig) -> dict[str, Any]:
    """Overrides that make ``config`` small: widths 40 and 32, one block each, 2x2 patches."""
    return {
        "embed_dim": 40,  # no other weight of the model has the shape of a patch projection
        "depth": 1,
        "num_heads": 2,
        "group_dim": 8,
        "time_dim": 12,  # splits into 2 or 3 even parts, one per time field
        "decoder_dim": 32,
        "decoder_depth": 1,
        "decoder_num_heads": 2,
        "decoder_group_dim": 8,
        "decoder_time_dim": 12,
        "img_size": (2 * config.patch_size, 2 * config.patch_size),
    }


def patch_embedding_weights(model: torch.nn.Module) -> list[torch.Tensor]:
    """Each band group's patch projection, found by shape: (D, C_g, p, p) or (D, C_g*p*p)."""
    config = model.config
    patch = config.patch_size
    shapes = {
        shape
        for group in config.band_groups
        for shape in (
            (config.embed_dim, len(group), patch, patch),
            (config.embed_dim, len(group) * patch * patch),
        )
    }
    return [p for p in model.parameters() if tuple(p.shape) in shapes]


@pytest.mark.parametrize("name", sorted(MODEL_CONFIGS))
def test_every_registered_config_trains_a_step(name: str) -> None:
    registered = MODEL_CONFIGS[name]
    torch.manual_seed(0)
    model = create_model(name, **shrink(registered))
    config = model.config
    kept = set(asdict(registered)) - set(shrink(registered))
    assert {k: asdict(config)[k] for k in kept} == {k: asdict(registered)[k] for k in kept}

    batch, frames = 2, config.max_frames
    height, width = config.img_size
    bands = config.bands[::-1]  # named in another order than the model's: matched by name
    g = torch.Generator().manual_seed(1)
    x = torch.randn(batch, frames, len(bands), height, width, generator=g)
    times = FIRST_DATE + 45 * DAY * torch.arange(batch * frames).reshape(batch, frames)

    # Multi-scale entries (SatMAE++) also take the images at 2x, 4x, ... the size.
    scale_targets = {
        scale: ScaleTarget(
            torch.randn(batch, frames, len(bands), scale * height, scale * width, generator=g),
            bands,
        )
        for scale in config.upsample_scales
    }
    out = model(x, times=times, bands=bands, scale_targets=scale_targets)
    for scale in config.upsample_scales:
        assert out.scale_preds[scale].shape[-2:] == (scale * height, scale * width)

    tokens_per_frame = (height // config.patch_size) * (width // config.patch_size)
    assert tuple(out.pred.shape) == (
        batch,
        frames,
        len(config.bands),
        tokens_per_frame,
        config.patch_size**2,
    )
    assert tuple(out.mask.shape) == (batch, frames, config.num_groups, tokens_per_frame)
    # The fewest tokens the mask is drawn over: one frame and group when masking is consistent.
    unit = tokens_per_frame
    unit *= frames if config.mask_time == "independent" else 1
    unit *= config.num_groups if config.mask_groups == "independent" else 1
    assert out.mask.float().mean().item() == pytest.approx(config.mask_ratio, abs=1 / unit)
    loss = out.loss.item()
    # Unit-variance noise against an untrained decoder: the error is the variance (1) plus that
    # of the small initial predictions; 1.1 to 1.35 for these entries.
    assert math.isfinite(loss) and 0.9 < loss < 2

    out.loss.backward()
    weights = patch_embedding_weights(model)
    assert len(weights) == config.num_groups, "one patch projection per band group"
    for weight in weights:
        assert weight.grad is not None and weight.grad.abs().sum() > 0
