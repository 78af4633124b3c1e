"""Properties of the scale pyramid: halving keeps the mean; coarse validity implies fine."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st

from satmae.data.multiscale import MultiScaleTargets


@given(
    levels=st.integers(1, 3),
    cells=st.integers(1, 4),
    seed=st.integers(0, 2**16),
    holes=st.floats(0.0, 0.5),
)
def test_halving_keeps_the_mean_and_never_invents_valid_pixels(levels, cells, seed, holes):
    scales = tuple(2 ** (i + 1) for i in range(levels))
    size = cells * scales[-1]
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(1, 1, 2, size, size, generator=g, dtype=torch.float64)
    valid = torch.rand(1, 1, size, size, generator=g) >= holes
    out = MultiScaleTargets(scales)({"image": image, "valid": valid, "bands": ("B02", "B11")})
    for scale in (1, *scales):
        key = "image" if scale == 1 else f"image_x{scale}"
        torch.testing.assert_close(out[key].mean(), image.mean())
        coarse = out["valid" if scale == 1 else f"valid_x{scale}"]
        factor = size // coarse.shape[-1]
        covered = valid.unflatten(-1, (-1, factor)).unflatten(-3, (-1, factor)).all(-1).all(-2)
        assert torch.equal(coarse, covered)
