"""An independent re-statement of the official SatMAE++ pretraining forward, for parity tests.

Written from §5 of ``../shared/reference/satmae_official.md`` with functional torch ops; it
shares no code with ``satmae.models``. The MSE part and the decoder come from
:mod:`tests.models.official_reference` (SatMAE's forward, channel-slot behaviour of §3.2.6
included); this module adds the un-patchified prediction, the up-sampler and the L1 terms.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .official_reference import group_channel_forward, single_group_forward

RATIO = 4  # proj_ratio


def upsampler_state(
    channels: int, num_blocks: int, seed: int = 0, vanilla: bool = False
) -> dict[str, Tensor]:
    """Random official up-sampler keys: proj_up_conv, proj_up_norm, up_block{,1,2}."""
    gen = torch.Generator().manual_seed(seed)
    width = RATIO * channels

    def rand(*shape: int, scale: float = 0.1) -> Tensor:
        return scale * torch.randn(shape, generator=gen)

    sd = {
        "proj_up_conv.weight": rand(width, channels, 1, 1, scale=0.3),
        "proj_up_conv.bias": rand(width),
        "proj_up_norm.weight": 1 + rand(width),
        "proj_up_norm.bias": rand(width),
    }
    for index in range(num_blocks):
        p = "up_block." if vanilla else f"up_block{index + 1}."
        sd |= {
            p + "up_conv.weight": rand(width, width, 4, 4),  # ConvTranspose2d: (in, out, k, k)
            p + "up_conv.bias": rand(width),
            p + "up_norm.weight": 1 + rand(width),
            p + "up_norm.bias": rand(width),
            p + "res_block.conv1.weight": rand(width, width, 3, 3),
            p + "res_block.conv1.bias": rand(width),
            p + "res_block.conv2.weight": rand(width, width, 3, 3),
            p + "res_block.conv2.bias": rand(width),
            p + "res_norm.weight": 1 + rand(width),
            p + "res_norm.bias": rand(width),
            p + "proj_out.weight": rand(channels, width, 3, 3),
            p + "proj_out.bias": rand(channels),
        }
    return sd


def _layer_norm_channels_first(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    u = x.mean(1, keepdim=True)
    s = (x - u).pow(2).mean(1, keepdim=True)
    x = (x - u) / torch.sqrt(s + 1e-6)
    return weight[:, None, None] * x + bias[:, None, None]


def upsample(sd: dict[str, Tensor], image: Tensor, prefixes: list[str]) -> list[Tensor]:
    """§5.1: 1x1 conv -> GELU -> LN, then per block ConvT, LN, LeakyReLU, residual, LN, proj_out."""
    x = F.conv2d(image, sd["proj_up_conv.weight"], sd["proj_up_conv.bias"])
    x = _layer_norm_channels_first(F.gelu(x), sd["proj_up_norm.weight"], sd["proj_up_norm.bias"])
    outs = []
    for p in prefixes:
        x = F.conv_transpose2d(x, sd[p + "up_conv.weight"], sd[p + "up_conv.bias"], 2, 1)
        x = _layer_norm_channels_first(x, sd[p + "up_norm.weight"], sd[p + "up_norm.bias"])
        x = F.leaky_relu(x, 0.01)
        r = F.conv2d(x, sd[p + "res_block.conv1.weight"], sd[p + "res_block.conv1.bias"], padding=1)
        r = F.conv2d(
            F.relu(r), sd[p + "res_block.conv2.weight"], sd[p + "res_block.conv2.bias"], 1, 1
        )
        x = x + 0.5 * r
        x = _layer_norm_channels_first(x, sd[p + "res_norm.weight"], sd[p + "res_norm.bias"])
        outs.append(F.conv2d(x, sd[p + "proj_out.weight"], sd[p + "proj_out.bias"], padding=1))
    return outs


def group_channel_pp_forward(
    sd: dict[str, Tensor],
    imgs: Tensor,
    imgs_up: list[Tensor],
    noise: Tensor,
    groups: list[list[int]],
    ratio: float,
    spatial_mask: bool,
    norm_pix: bool,
    heads: int,
) -> dict[str, Tensor]:
    """SatMAE++ group_c: 0.6·MSE + 0.4·(0.5·L1(2x) + 0.5·L1(4x)), L1 unmasked, raw targets."""
    ref = group_channel_forward(sd, imgs, noise, groups, ratio, spatial_mask, norm_pix, heads)
    pred = ref["pred"]  # (N, C, L, p²): slot c is read as image channel c
    n, channels, _, area = pred.shape
    p = round(area**0.5)
    h = imgs.shape[2] // p
    image = torch.einsum("nchwpq->nchpwq", pred.reshape(n, channels, h, h, p, p))
    image = image.reshape(n, channels, h * p, h * p)
    ups = upsample(sd, image, ["up_block1.", "up_block2."])
    l1 = [(up - target).abs().mean() for up, target in zip(ups, imgs_up, strict=True)]
    loss = 0.6 * ref["loss"] + 0.4 * (0.5 * l1[0] + 0.5 * l1[1])
    return {**ref, "loss": loss, "mse": ref["loss"], "up": ups, "l1": l1}


def vanilla_pp_forward(
    sd: dict[str, Tensor],
    imgs: Tensor,
    imgs_2x: Tensor,
    noise: Tensor,
    ratio: float,
    norm_pix: bool,
    heads: int,
) -> dict[str, Tensor]:
    """SatMAE++ vanilla: 0.6·MSE + 0.4·L1(2x); pred patches are (p, q, c) channel-last."""
    ref = single_group_forward(sd, imgs, noise, ratio, norm_pix, heads)
    pred = ref["pred"]  # (N, L, p²·C)
    n = pred.shape[0]
    channels = imgs.shape[1]
    p = sd["patch_embed.proj.weight"].shape[-1]
    h = imgs.shape[2] // p
    image = torch.einsum("nhwpqc->nchpwq", pred.reshape(n, h, h, p, p, channels))
    image = image.reshape(n, channels, h * p, h * p)
    (up,) = upsample(sd, image, ["up_block."])
    l1 = (up - imgs_2x).abs().mean()
    return {**ref, "loss": 0.6 * ref["loss"] + 0.4 * l1, "mse": ref["loss"], "up": [up]}
