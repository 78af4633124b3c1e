"""Padded frames: validating the frame mask and keeping padding out of attention.

Series of different lengths are padded to a common ``T`` and carry ``frame_mask (B, T)``, True
for a real frame (DESIGN §3). Tokens of padded frames get no attention from any token.
"""

from __future__ import annotations

import torch
from torch import Tensor


def frame_attention_mask(
    frame_mask: Tensor | None, token_index: Tensor, tokens_per_frame: int
) -> Tensor | None:
    """Attention mask that hides tokens of padded frames (cls always attends).

    Args:
        frame_mask: ``(B, T)`` bool, True = real frame, or ``None`` when no frame is padded.
        token_index: ``(B, N)`` int64 positions of the attending tokens in the flattened
            ``T·G·L`` token grid (time-major, so the frame is ``index // tokens_per_frame``).
        tokens_per_frame: ``G·L``, the tokens of one frame.

    Returns:
        bool ``(B, 1, 1, 1+N)`` or ``None``.
    """
    if frame_mask is None:
        return None
    frames = torch.div(token_index, tokens_per_frame, rounding_mode="floor")
    keep = torch.gather(frame_mask, 1, frames)  # (B, N)
    keep = torch.cat([torch.ones_like(keep[:, :1]), keep], dim=1)  # (B, 1+N)
    return keep[:, None, None, :]
