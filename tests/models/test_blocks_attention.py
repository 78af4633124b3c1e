"""The attention kernel choice does not change what attention computes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from satmae.models.blocks import SHORT_CPU_KEYS, attend


@pytest.mark.parametrize("keys", [17, SHORT_CPU_KEYS, SHORT_CPU_KEYS + 1])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_attend_matches_reference_softmax_attention(keys: int, dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(0)
    query = torch.randn(2, 3, 5, 8, generator=g)
    key, value = torch.randn(2, 2, 3, keys, 8, generator=g).unbind(0)
    mask = torch.rand(2, 1, 1, keys, generator=g) > 0.2
    mask[..., 0] = True
    scores = (query @ key.transpose(-1, -2)) / 8**0.5
    expected = scores.masked_fill(~mask, float("-inf")).softmax(-1) @ value
    out = attend(query.to(dtype), key.to(dtype), value.to(dtype), mask)
    tolerance = 1e-5 if dtype == torch.float32 else 3e-2
    torch.testing.assert_close(out.float(), expected, atol=tolerance, rtol=tolerance)
    default = F.scaled_dot_product_attention(
        query.to(dtype), key.to(dtype), value.to(dtype), attn_mask=mask
    )
    torch.testing.assert_close(out.float(), default.float(), atol=tolerance, rtol=tolerance)
