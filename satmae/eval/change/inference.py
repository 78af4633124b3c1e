"""Whole-scene change probabilities: sliding windows at 10 m with overlap blending.

Scores are computed over whole scenes, never on crops: windows of the model's size step over
the scene with overlap, and each pixel's probability is the blend of every window that covers
it, weighted by how far it sits from that window's edge (edges see less context). A scene
smaller than a window is padded by reflection and the padding cropped away again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from satmae.embed.pipeline import blend_weights
from satmae.eval.change.data import window_starts
from satmae.eval.change.model import ChangeNet


@torch.no_grad()
def predict_scene(
    net: ChangeNet,
    sample: Mapping[str, Any],
    *,
    size: int | None = None,
    stride: int | None = None,
    batch_size: int = 16,
) -> Tensor:
    """Change probability of every pixel of a two-date scene.

    Args:
        net: the change network (put in eval mode here).
        sample: a two-date sample as read (``image (2, C, H, W)``, ``bands``, ``times``,
            ``valid``).
        size: window side in pixels (default the encoder's image size).
        stride: step between windows (default half a window).
        batch_size: windows per forward pass.

    Returns:
        ``(H, W)`` float32 probabilities in [0, 1].

    Raises:
        ValueError: for a stride outside ``(0, size]``.
    """
    net.eval()
    inputs = net.prepare(dict(sample))
    size = size or int(net.encoder.config.img_size[0])
    stride = stride or max(1, size // 2)
    if not 0 < stride <= size:
        raise ValueError(f"stride must be in (0, window={size}], got {stride}")
    image = inputs.image[0]  # (2, C, H, W)
    height, width = image.shape[-2:]
    pad_h, pad_w = max(0, size - height), max(0, size - width)
    if pad_h or pad_w:
        image = F.pad(image, (0, pad_w, 0, pad_h), mode="reflect")
    full_h, full_w = image.shape[-2:]
    weight = torch.from_numpy(blend_weights(size)).clamp_min(1e-3)
    total = torch.zeros(full_h, full_w)
    weights = torch.zeros(full_h, full_w)
    boxes = [
        (top, left)
        for top in window_starts(full_h, size, stride)
        for left in window_starts(full_w, size, stride)
    ]
    times = inputs.times
    for start in range(0, len(boxes), batch_size):
        chunk = boxes[start : start + batch_size]
        crops = torch.stack([image[..., t : t + size, c : c + size] for t, c in chunk])
        chunk_times = None if times is None else times.expand(len(chunk), -1)
        window_inputs = type(inputs)(crops, chunk_times, inputs.bands)
        prob = torch.sigmoid(net(window_inputs)).squeeze(1).float().cpu()  # (b, size, size)
        for (top, left), tile in zip(chunk, prob, strict=True):
            total[top : top + size, left : left + size] += tile * weight
            weights[top : top + size, left : left + size] += weight
    out = (total / weights.clamp_min(1e-6))[:height, :width]
    return out
