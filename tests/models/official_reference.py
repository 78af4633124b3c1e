"""An independent re-statement of the official SatMAE forward passes, for parity tests.

Written from the description in ``../shared/reference/satmae_official.md`` (§2–§4) with plain
functional torch ops and numpy float64 sin-cos tables; it shares no code with ``satmae.models``.
It works on official-layout state dicts (official key names and shapes).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

# --- Sin-cos tables (numpy, float64 as in SatMAE's util/pos_embed.py) ---------------------


def np_sincos_1d(dim: int, positions: np.ndarray) -> np.ndarray:
    omega = np.arange(dim // 2, dtype=np.float64) / (dim / 2.0)
    omega = 1.0 / 10000**omega
    out = np.einsum("m,d->md", positions.reshape(-1).astype(np.float64), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def np_sincos_2d(dim: int, grid_size: int, cls_token: bool = True) -> np.ndarray:
    grid_h = np.arange(grid_size, dtype=np.float32)
    grid_w = np.arange(grid_size, dtype=np.float32)
    grid = np.stack(np.meshgrid(grid_w, grid_h), axis=0).reshape(2, 1, grid_size, grid_size)
    emb = np.concatenate([np_sincos_1d(dim // 2, grid[0]), np_sincos_1d(dim // 2, grid[1])], 1)
    if cls_token:
        emb = np.concatenate([np.zeros([1, dim]), emb], axis=0)
    return emb


def table(array: np.ndarray) -> Tensor:
    return torch.from_numpy(array).float().unsqueeze(0)


# --- Official state dicts with random weights -------------------------------------------


def _blocks(prefix: str, depth: int, dim: int, gen: torch.Generator) -> dict[str, Tensor]:
    out = {}
    for index in range(depth):
        p = f"{prefix}.{index}."
        shapes = {
            "norm1.weight": (dim,),
            "norm1.bias": (dim,),
            "attn.qkv.weight": (3 * dim, dim),
            "attn.qkv.bias": (3 * dim,),
            "attn.proj.weight": (dim, dim),
            "attn.proj.bias": (dim,),
            "norm2.weight": (dim,),
            "norm2.bias": (dim,),
            "mlp.fc1.weight": (4 * dim, dim),
            "mlp.fc1.bias": (4 * dim,),
            "mlp.fc2.weight": (dim, 4 * dim),
            "mlp.fc2.bias": (dim,),
        }
        for key, shape in shapes.items():
            scale = 0.1 if "norm" in key else shape[-1] ** -0.5
            base = 1.0 if key.endswith("norm1.weight") or key.endswith("norm2.weight") else 0.0
            out[p + key] = base + scale * torch.randn(shape, generator=gen)
    return out


def _rand(shape: tuple[int, ...], gen: torch.Generator, scale: float = 0.1) -> Tensor:
    return scale * torch.randn(shape, generator=gen)


def group_channel_state(
    dim: int,
    depth: int,
    groups: list[list[int]],
    patch: int,
    grid: int,
    channel_dim: int,
    dec_dim: int,
    dec_depth: int,
    dec_channel_dim: int,
    seed: int = 0,
    finetune: int = 0,
) -> dict[str, Tensor]:
    """A group_c MAE (or, with ``finetune`` classes, a GroupChannelsVisionTransformer)."""
    gen = torch.Generator().manual_seed(seed)
    g = len(groups)
    sd: dict[str, Tensor] = {
        "cls_token": _rand((1, 1, dim), gen, 0.02),
        "pos_embed": table(np_sincos_2d(dim - channel_dim, grid)),
        "channel_embed": table(np_sincos_1d(channel_dim, np.arange(g))),
    }
    for index, group in enumerate(groups):
        sd[f"patch_embed.{index}.proj.weight"] = _rand((dim, len(group), patch, patch), gen)
        sd[f"patch_embed.{index}.proj.bias"] = _rand((dim,), gen)
    sd |= _blocks("blocks", depth, dim, gen)
    if finetune:
        sd["pos_embed"] = sd["pos_embed"] + _rand(sd["pos_embed"].shape, gen, 0.01)
        sd["channel_embed"] = sd["channel_embed"] + _rand(sd["channel_embed"].shape, gen, 0.01)
        sd["channel_cls_embed"] = _rand((1, 1, channel_dim), gen, 0.02)
        sd["fc_norm.weight"] = 1 + _rand((dim,), gen)
        sd["fc_norm.bias"] = _rand((dim,), gen)
        sd["head.weight"] = _rand((finetune, dim), gen)
        sd["head.bias"] = _rand((finetune,), gen)
        return sd
    sd["norm.weight"] = 1 + _rand((dim,), gen)
    sd["norm.bias"] = _rand((dim,), gen)
    sd["mask_token"] = _rand((1, 1, dec_dim), gen, 0.02)
    sd["decoder_embed.weight"] = _rand((dec_dim, dim), gen, dim**-0.5)
    sd["decoder_embed.bias"] = _rand((dec_dim,), gen)
    sd["decoder_pos_embed"] = table(np_sincos_2d(dec_dim - dec_channel_dim, grid))
    sd["decoder_channel_embed"] = table(np_sincos_1d(dec_channel_dim, np.arange(g + 1)))
    sd |= _blocks("decoder_blocks", dec_depth, dec_dim, gen)
    sd["decoder_norm.weight"] = 1 + _rand((dec_dim,), gen)
    sd["decoder_norm.bias"] = _rand((dec_dim,), gen)
    for index, group in enumerate(groups):
        sd[f"decoder_pred.{index}.weight"] = _rand((len(group) * patch**2, dec_dim), gen)
        sd[f"decoder_pred.{index}.bias"] = _rand((len(group) * patch**2,), gen)
    return sd


def single_group_state(
    dim: int,
    depth: int,
    channels: int,
    patch: int,
    grid: int,
    time_dim: int,
    dec_dim: int,
    dec_depth: int,
    dec_time_dim: int,
    seed: int = 0,
    finetune: int = 0,
) -> dict[str, Tensor]:
    """A vanilla (``time_dim=0``) or temporal MAE, or their fine-tuned ViTs."""
    gen = torch.Generator().manual_seed(seed)
    sd: dict[str, Tensor] = {
        "cls_token": _rand((1, 1, dim), gen, 0.02),
        "pos_embed": table(np_sincos_2d(dim - time_dim, grid)),
        "patch_embed.proj.weight": _rand((dim, channels, patch, patch), gen),
        "patch_embed.proj.bias": _rand((dim,), gen),
    }
    sd |= _blocks("blocks", depth, dim, gen)
    if finetune:
        sd["pos_embed"] = sd["pos_embed"] + _rand(sd["pos_embed"].shape, gen, 0.01)
        sd["fc_norm.weight"] = 1 + _rand((dim,), gen)
        sd["fc_norm.bias"] = _rand((dim,), gen)
        sd["head.weight"] = _rand((finetune, dim), gen)
        sd["head.bias"] = _rand((finetune,), gen)
        return sd
    sd["norm.weight"] = 1 + _rand((dim,), gen)
    sd["norm.bias"] = _rand((dim,), gen)
    sd["mask_token"] = _rand((1, 1, dec_dim), gen, 0.02)
    sd["decoder_embed.weight"] = _rand((dec_dim, dim), gen, dim**-0.5)
    sd["decoder_embed.bias"] = _rand((dec_dim,), gen)
    sd["decoder_pos_embed"] = table(np_sincos_2d(dec_dim - dec_time_dim, grid))
    sd |= _blocks("decoder_blocks", dec_depth, dec_dim, gen)
    sd["decoder_norm.weight"] = 1 + _rand((dec_dim,), gen)
    sd["decoder_norm.bias"] = _rand((dec_dim,), gen)
    sd["decoder_pred.weight"] = _rand((patch**2 * channels, dec_dim), gen)
    sd["decoder_pred.bias"] = _rand((patch**2 * channels,), gen)
    return sd


# --- Forward passes ---------------------------------------------------------------------


def _block(x: Tensor, sd: dict[str, Tensor], p: str, heads: int) -> Tensor:
    batch, tokens, dim = x.shape
    h = F.layer_norm(x, (dim,), sd[p + "norm1.weight"], sd[p + "norm1.bias"], 1e-6)
    qkv = F.linear(h, sd[p + "attn.qkv.weight"], sd[p + "attn.qkv.bias"])
    qkv = qkv.reshape(batch, tokens, 3, heads, dim // heads).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    attn = (q @ k.transpose(-2, -1)) * (dim // heads) ** -0.5
    attn = attn.softmax(dim=-1)
    out = (attn @ v).transpose(1, 2).reshape(batch, tokens, dim)
    x = x + F.linear(out, sd[p + "attn.proj.weight"], sd[p + "attn.proj.bias"])
    h = F.layer_norm(x, (dim,), sd[p + "norm2.weight"], sd[p + "norm2.bias"], 1e-6)
    h = F.linear(
        F.gelu(F.linear(h, sd[p + "mlp.fc1.weight"], sd[p + "mlp.fc1.bias"])),
        sd[p + "mlp.fc2.weight"],
        sd[p + "mlp.fc2.bias"],
    )
    return x + h


def _run(x: Tensor, sd: dict[str, Tensor], prefix: str, heads: int) -> Tensor:
    depth = len({k.split(".")[1] for k in sd if k.startswith(prefix + ".")})
    for index in range(depth):
        x = _block(x, sd, f"{prefix}.{index}.", heads)
    return x


def random_masking(x: Tensor, ratio: float, noise: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Official ``random_masking``: kept tokens (shuffled order), mask, restore, ids_keep."""
    n, length, dim = x.shape
    keep = int(length * (1 - ratio))
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    ids_keep = ids_shuffle[:, :keep]
    kept = torch.gather(x, 1, ids_keep.unsqueeze(-1).repeat(1, 1, dim))
    mask = torch.ones(n, length)
    mask[:, :keep] = 0
    mask = torch.gather(mask, 1, ids_restore)
    return kept, mask, ids_restore, ids_keep


def group_channel_forward(
    sd: dict[str, Tensor],
    imgs: Tensor,
    noise: Tensor,
    groups: list[list[int]],
    ratio: float,
    spatial_mask: bool,
    norm_pix: bool,
    heads: int,
    dec_heads: int = 16,
) -> dict[str, Tensor]:
    """Official group_c MAE forward: loss, pred (N, C, L, p²), mask (N, G, L), latent, ids."""
    n, channels = imgs.shape[:2]
    patch = sd["patch_embed.0.proj.weight"].shape[-1]
    g = len(groups)
    tokens = []
    for index, group in enumerate(groups):
        out = F.conv2d(
            imgs[:, group],
            sd[f"patch_embed.{index}.proj.weight"],
            sd[f"patch_embed.{index}.proj.bias"],
            stride=patch,
        )
        tokens.append(out.flatten(2).transpose(1, 2))
    x = torch.stack(tokens, dim=1)  # (N, G, L, D)
    _, _, length, dim = x.shape
    pos = sd["pos_embed"][:, 1:].unsqueeze(1).expand(-1, g, -1, -1)
    chan = sd["channel_embed"].unsqueeze(2).expand(-1, -1, length, -1)
    x = x + torch.cat([pos, chan], dim=-1)
    if spatial_mask:
        x = x.permute(0, 2, 1, 3).reshape(n, length, g * dim)
        x, mask, ids_restore, ids_keep = random_masking(x, ratio, noise)
        keep = x.shape[1]
        x = x.view(n, keep, g, dim).permute(0, 2, 1, 3).reshape(n, g * keep, dim)
        kept_flat = (torch.arange(g)[None, :, None] * length + ids_keep[:, None, :]).reshape(n, -1)
        mask = mask.repeat(1, g)
    else:
        x, mask, ids_restore, ids_keep = random_masking(x.reshape(n, g * length, dim), ratio, noise)
        kept_flat = ids_keep
    x = torch.cat([sd["cls_token"].expand(n, -1, -1), x], dim=1)
    x = _run(x, sd, "blocks", heads)
    latent = F.layer_norm(x, (dim,), sd["norm.weight"], sd["norm.bias"], 1e-6)

    y = F.linear(latent, sd["decoder_embed.weight"], sd["decoder_embed.bias"])
    dec = y.shape[-1]
    mask_token = sd["mask_token"]
    if spatial_mask:
        keep = (y.shape[1] - 1) // g
        ys = y[:, 1:].reshape(n, g, keep, dec).permute(0, 2, 1, 3).reshape(n, keep, g * dec)
        fill = mask_token.repeat(n, length - keep, g)
        ys = torch.cat([ys, fill], dim=1)
        ys = torch.gather(ys, 1, ids_restore.unsqueeze(-1).repeat(1, 1, g * dec))
        ys = ys.view(n, length, g, dec).permute(0, 2, 1, 3).reshape(n, g * length, dec)
    else:
        fill = mask_token.repeat(n, g * length + 1 - y.shape[1], 1)
        ys = torch.cat([y[:, 1:], fill], dim=1)
        ys = torch.gather(ys, 1, ids_restore.unsqueeze(-1).repeat(1, 1, dec))
    y = torch.cat([y[:, :1], ys], dim=1)
    dpos, dchan = sd["decoder_pos_embed"], sd["decoder_channel_embed"]
    tok = torch.cat(
        [
            dpos[:, 1:].unsqueeze(1).expand(-1, g, -1, -1),
            dchan[:, :g].unsqueeze(2).expand(-1, -1, length, -1),
        ],
        dim=-1,
    )
    cls = torch.cat([dpos[:, :1], dchan[:, g:]], dim=-1)
    y = y + torch.cat([cls, tok.reshape(1, g * length, dec)], dim=1)
    y = _run(y, sd, "decoder_blocks", dec_heads)
    y = F.layer_norm(y, (dec,), sd["decoder_norm.weight"], sd["decoder_norm.bias"], 1e-6)
    y = y[:, 1:].view(n, g, length, dec)
    preds = []
    for index, group in enumerate(groups):
        out = F.linear(
            y[:, index], sd[f"decoder_pred.{index}.weight"], sd[f"decoder_pred.{index}.bias"]
        )
        preds.append(out.view(n, length, len(group), -1).permute(0, 2, 1, 3))
    pred = torch.cat(preds, dim=1)  # (N, C, L, p²) in concatenation order

    h = imgs.shape[2] // patch
    target = imgs.reshape(n, channels, h, patch, h, patch)
    target = torch.einsum("nchpwq->nhwcpq", target).reshape(n, h * h, channels * patch**2)
    if norm_pix:
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)
        target = (target - mean) / (var + 1.0e-6) ** 0.5
    target = target.view(n, length, channels, -1).permute(0, 2, 1, 3)
    err = ((pred - target) ** 2).mean(dim=-1)  # (N, C, L)
    mask = mask.view(n, g, length)
    total = sum(
        (err[:, group].mean(dim=1) * mask[:, index]).sum() for index, group in enumerate(groups)
    )
    return {
        "loss": total / mask.sum(),
        "pred": pred,
        "mask": mask,
        "latent": latent,
        "kept": kept_flat,
    }


def time_code(timestamps: Tensor, dim: int) -> Tensor:
    """Official temporal code: three float64 1-D codes of (year−2002, month−1, hour)."""
    parts = [torch.from_numpy(np_sincos_1d(dim // 3, timestamps[..., i].numpy())) for i in range(3)]
    return torch.cat(parts, dim=-1).float().view(*timestamps.shape[:-1], dim)


def single_group_forward(
    sd: dict[str, Tensor],
    imgs: Tensor,
    noise: Tensor,
    ratio: float,
    norm_pix: bool,
    heads: int,
    timestamps: Tensor | None = None,
    same_mask: bool = False,
    dec_heads: int = 16,
) -> dict[str, Tensor]:
    """Official vanilla (imgs (N, C, H, W)) or temporal (imgs (N, T, C, H, W)) MAE forward."""
    frames = imgs.unsqueeze(1) if timestamps is None else imgs
    n, t, channels = frames.shape[:3]
    patch = sd["patch_embed.proj.weight"].shape[-1]
    tokens = [
        F.conv2d(
            frames[:, i], sd["patch_embed.proj.weight"], sd["patch_embed.proj.bias"], stride=patch
        )
        .flatten(2)
        .transpose(1, 2)
        for i in range(t)
    ]
    x = torch.cat(tokens, dim=1)  # (N, T*L, D) time-major
    length = tokens[0].shape[1]
    dim = x.shape[-1]
    pos = sd["pos_embed"][:, 1:].repeat(1, t, 1).expand(n, -1, -1)
    if timestamps is None:
        x = x + pos
    else:
        code = time_code(timestamps, dim - pos.shape[-1])  # (N, T, Dt)
        code = code.unsqueeze(2).expand(-1, -1, length, -1).reshape(n, t * length, -1)
        x = x + torch.cat([pos, code], dim=-1)
    if same_mask:
        keep = int(length * (1 - ratio))
        ids_shuffle = torch.argsort(noise, dim=1)
        ids_keep = torch.cat([ids_shuffle[:, :keep] + i * length for i in range(t)], dim=1)
        ids_all = torch.cat([ids_shuffle + i * length for i in range(t)], dim=1)
        x = torch.gather(x, 1, ids_keep.unsqueeze(-1).repeat(1, 1, dim))
        mask = torch.ones(n, length)
        mask[:, :keep] = 0
        mask = torch.gather(mask, 1, torch.argsort(ids_shuffle, dim=1)).repeat(1, t)
        # restore order over all tokens: kept of every frame first, then hidden of every frame
        order = torch.cat(
            [ids_keep, torch.cat([ids_shuffle[:, keep:] + i * length for i in range(t)], 1)], 1
        )
        ids_restore = torch.argsort(order, dim=1)
        del ids_all
    else:
        x, mask, ids_restore, ids_keep = random_masking(x, ratio, noise)
    kept_flat = ids_keep
    cls = sd["cls_token"].expand(n, -1, -1)
    if timestamps is None:
        cls = cls + sd["pos_embed"][:, :1]
    x = _run(torch.cat([cls, x], dim=1), sd, "blocks", heads)
    latent = F.layer_norm(x, (dim,), sd["norm.weight"], sd["norm.bias"], 1e-6)

    y = F.linear(latent, sd["decoder_embed.weight"], sd["decoder_embed.bias"])
    dec = y.shape[-1]
    fill = sd["mask_token"].repeat(n, t * length + 1 - y.shape[1], 1)
    ys = torch.cat([y[:, 1:], fill], dim=1)
    ys = torch.gather(ys, 1, ids_restore.unsqueeze(-1).repeat(1, 1, dec))
    y = torch.cat([y[:, :1], ys], dim=1)
    dpos = sd["decoder_pos_embed"]
    dpos_tokens = dpos[:, 1:].repeat(1, t, 1).expand(n, -1, -1)
    if timestamps is None:
        y = y + dpos.expand(n, -1, -1)
    else:
        dcode = time_code(timestamps, dec - dpos.shape[-1])
        dcode = dcode.unsqueeze(2).expand(-1, -1, length, -1).reshape(n, t * length, -1)
        cls_code = torch.cat(
            [dpos[:, :1].expand(n, -1, -1), torch.zeros(n, 1, dcode.shape[-1])], -1
        )
        y = y + torch.cat([cls_code, torch.cat([dpos_tokens, dcode], dim=-1)], dim=1)
    y = _run(y, sd, "decoder_blocks", dec_heads)
    y = F.layer_norm(y, (dec,), sd["decoder_norm.weight"], sd["decoder_norm.bias"], 1e-6)
    pred = F.linear(y, sd["decoder_pred.weight"], sd["decoder_pred.bias"])[:, 1:]  # (N, T*L, p²C)

    h = frames.shape[3] // patch
    w = frames.shape[4] // patch
    targets = []
    for i in range(t):
        img = frames[:, i].reshape(n, channels, h, patch, w, patch)
        targets.append(torch.einsum("nchpwq->nhwpqc", img).reshape(n, h * w, patch**2 * channels))
    target = torch.cat(targets, dim=1)
    if norm_pix:
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)
        target = (target - mean) / (var + 1.0e-6) ** 0.5
    err = ((pred - target) ** 2).mean(dim=-1)
    loss = (err * mask).sum() / mask.sum()
    return {"loss": loss, "pred": pred, "mask": mask, "latent": latent, "kept": kept_flat}


def finetune_features(
    sd: dict[str, Tensor],
    imgs: Tensor,
    heads: int,
    groups: list[list[int]] | None = None,
    timestamps: Tensor | None = None,
) -> dict[str, Tensor]:
    """Official fine-tuned ViT ``forward_features`` (global pool + fc_norm) and head logits."""
    if groups is not None:
        patch = sd["patch_embed.0.proj.weight"].shape[-1]
        tokens = [
            F.conv2d(
                imgs[:, group],
                sd[f"patch_embed.{i}.proj.weight"],
                sd[f"patch_embed.{i}.proj.bias"],
                stride=patch,
            )
            .flatten(2)
            .transpose(1, 2)
            for i, group in enumerate(groups)
        ]
        x = torch.stack(tokens, dim=1)
        n, g, length, dim = x.shape
        pos = sd["pos_embed"][:, 1:].unsqueeze(1).expand(-1, g, -1, -1)
        chan = sd["channel_embed"].unsqueeze(2).expand(-1, -1, length, -1)
        x = (x + torch.cat([pos, chan], dim=-1)).reshape(n, g * length, dim)
        cls_pos = torch.cat([sd["pos_embed"][:, :1], sd["channel_cls_embed"]], dim=-1)
    else:
        frames = imgs.unsqueeze(1) if timestamps is None else imgs
        n, t = frames.shape[:2]
        patch = sd["patch_embed.proj.weight"].shape[-1]
        x = torch.cat(
            [
                F.conv2d(
                    frames[:, i],
                    sd["patch_embed.proj.weight"],
                    sd["patch_embed.proj.bias"],
                    stride=patch,
                )
                .flatten(2)
                .transpose(1, 2)
                for i in range(t)
            ],
            1,
        )
        dim = x.shape[-1]
        length = x.shape[1] // t
        pos = sd["pos_embed"][:, 1:].repeat(1, t, 1).expand(n, -1, -1)
        if timestamps is None:
            x = x + pos
            cls_pos = sd["pos_embed"][:, :1]
        else:
            code = time_code(timestamps, dim - pos.shape[-1])
            code = code.unsqueeze(2).expand(-1, -1, length, -1).reshape(n, t * length, -1)
            x = x + torch.cat([pos, code], dim=-1)
            cls_pos = torch.cat([sd["pos_embed"][:, :1], torch.zeros(1, 1, code.shape[-1])], -1)
    cls = sd["cls_token"] + cls_pos
    x = _run(torch.cat([cls.expand(n, -1, -1), x], dim=1), sd, "blocks", heads)
    pooled = F.layer_norm(
        x[:, 1:].mean(dim=1), (dim,), sd["fc_norm.weight"], sd["fc_norm.bias"], 1e-6
    )
    return {
        "pooled": pooled,
        "logits": F.linear(pooled, sd["head.weight"], sd["head.bias"]),
        "tokens": x[:, 1:],
    }
