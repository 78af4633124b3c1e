"""The downstream encoder: tokenizer + transformer, without masking, returning named features."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor, nn

from satmae.models.blocks import Block, LayerNorm
from satmae.models.config import MAEConfig
from satmae.models.tokenizer import BandSelection, Tokenizer, select_bands

PoolMode = Literal["mean", "cls", "none"]


def init_weights(module: nn.Module) -> None:
    """SatMAE initialisation: xavier-uniform linears and patch convs, zero biases, unit norms."""
    for sub in module.modules():
        if isinstance(sub, nn.Linear):
            nn.init.xavier_uniform_(sub.weight)
            if sub.bias is not None:
                nn.init.zeros_(sub.bias)
        elif isinstance(sub, nn.Conv2d):
            nn.init.xavier_uniform_(sub.weight.view(sub.weight.shape[0], -1))
            if sub.bias is not None:
                nn.init.zeros_(sub.bias)
        elif isinstance(sub, nn.LayerNorm):
            nn.init.ones_(sub.weight)
            nn.init.zeros_(sub.bias)


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


@dataclass
class EncoderFeatures:
    """Named outputs of :class:`SatMAEEncoder`.

    Attributes:
        cls: ``(B, D)`` the cls token after the last block (and norm).
        tokens: ``(B, T, G, h, w, D)`` patch tokens (G = groups present in the input).
        pooled: ``(B, D)`` mean of the tokens of real frames (``fc_norm`` applied when the
            encoder came from a globally pooled fine-tuned model).
        intermediates: block index -> ``(B, T, G, h, w, D)`` outputs of chosen blocks.
        groups: model indices of the groups in ``tokens``.
        frame_mask: ``(B, T)`` bool real frames, or ``None``.
        logits: ``(B, classes)`` when the encoder has a classification head.
    """

    cls: Tensor
    tokens: Tensor
    pooled: Tensor
    intermediates: dict[int, Tensor] = field(default_factory=dict)
    groups: tuple[int, ...] = ()
    frame_mask: Tensor | None = None
    logits: Tensor | None = None

    def dense(
        self, reduce: Literal["mean", "concat"] = "mean", tokens: Tensor | None = None
    ) -> Tensor:
        """A dense feature map of the tokens (or of an intermediate block).

        Args:
            reduce: ``"mean"`` averages frames and groups -> ``(B, D, h, w)``; ``"concat"``
                stacks them -> ``(B, T·G·D, h, w)``.
            tokens: ``(B, T, G, h, w, D)`` to use instead of ``self.tokens``.

        Returns:
            the map, channels first.
        """
        grid = self.tokens if tokens is None else tokens
        if reduce == "concat":
            batch, frames, groups, height, width, dim = grid.shape
            return grid.permute(0, 1, 2, 5, 3, 4).reshape(
                batch, frames * groups * dim, height, width
            )
        if self.frame_mask is None:
            mean = grid.mean(dim=(1, 2))  # (B, h, w, D)
        else:
            weight = self.frame_mask.to(grid.dtype)[:, :, None, None, None, None]
            count = (self.frame_mask.sum(1) * grid.shape[2]).clamp_min(1).to(grid.dtype)
            mean = (grid * weight).sum(dim=(1, 2)) / count[:, None, None, None]
        return mean.permute(0, 3, 1, 2)

    @property
    def map(self) -> Tensor:
        """``(B, D, h, w)`` tokens averaged over frames and groups."""
        return self.dense("mean")


class SatMAEEncoder(nn.Module):
    """The SatMAE encoder for feature extraction and fine-tuning.

    Args:
        config: the architecture; decoder fields are ignored.
    """

    def __init__(self, config: MAEConfig) -> None:
        super().__init__()
        self.config = config
        dim = config.embed_dim
        self.tokenizer = Tokenizer(config)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.blocks = nn.ModuleList(
            Block(dim, config.num_heads, config.mlp_ratio) for _ in range(config.depth)
        )
        self.norm: nn.Module = nn.Identity() if config.global_pool_norm else LayerNorm(dim)
        self.fc_norm: nn.Module | None = LayerNorm(dim) if config.global_pool_norm else None
        self.head: nn.Linear | None = (
            nn.Linear(dim, config.num_classes) if config.num_classes else None
        )
        self.normalization: dict[str, Any] | None = None
        self.provenance: dict[str, Any] = {}
        init_weights(self)
        nn.init.normal_(self.cls_token, std=0.02)

    @property
    def bands(self) -> tuple[str, ...]:
        """The bands the encoder reads, in model channel order."""
        return self.config.bands

    def run_blocks(
        self, tokens: Tensor, attn_mask: Tensor | None = None, keep: Sequence[int] = ()
    ) -> tuple[Tensor, dict[int, Tensor]]:
        """Prepend the cls token and run the transformer.

        Args:
            tokens: ``(B, N, D)`` embedded tokens with encodings.
            attn_mask: optional ``(B, 1, 1, 1+N)`` bool.
            keep: block indices whose outputs (without cls) to return.

        Returns:
            ``(B, 1+N, D)`` normed output and ``{block: (B, N, D)}``.
        """
        cls = self.cls_token.expand(tokens.shape[0], -1, -1).to(tokens.dtype)
        x = torch.cat([cls, tokens], dim=1)  # (B, 1+N, D)
        wanted = {index % len(self.blocks) for index in keep}
        kept = {}
        for index, block in enumerate(self.blocks):
            x = block(x, attn_mask)
            if index in wanted:
                kept[index] = x[:, 1:]
        return self.norm(x), kept

    def forward(
        self,
        x: Tensor,
        times: Tensor | None = None,
        bands: Sequence[str] | None = None,
        frame_mask: Tensor | None = None,
        blocks: Sequence[int] = (),
    ) -> EncoderFeatures:
        """Encode every token of a multispectral time series.

        Args:
            x: ``(B, T, C, H, W)``.
            times: ``(B, T)`` int64 seconds since 1970-01-01 UTC; required if temporal.
            bands: names of x's C channels; default the model's bands in order.
            frame_mask: ``(B, T)`` bool, False for padded frames (ignored by attention).
            blocks: indices of blocks whose outputs to return in ``intermediates``.

        Returns:
            the named features.
        """
        selection = self.select(x, bands)
        tokens = self.tokenizer(x, times, selection)  # (B, T, G, L, D)
        batch, frames, groups, patches, dim = tokens.shape
        frame_mask = check_frame_mask(frame_mask, batch, frames)
        all_tokens = torch.arange(frames * groups * patches, device=x.device).expand(batch, -1)
        attn_mask = frame_attention_mask(frame_mask, all_tokens, groups * patches)
        out, kept = self.run_blocks(tokens.flatten(1, 3), attn_mask, blocks)
        grid = self.tokenizer.check_input(x)
        shape = (batch, frames, groups, *grid, dim)
        patch_tokens = out[:, 1:].reshape(shape)
        if frame_mask is None:
            pooled = patch_tokens.mean(dim=(1, 2, 3, 4))
        else:
            weight = frame_mask.to(out.dtype)[:, :, None, None, None, None]
            count = (weight.sum(1) * groups * patches).reshape(batch, 1).clamp_min(1)
            pooled = (patch_tokens * weight).sum(dim=(1, 2, 3, 4)) / count
        if self.fc_norm is not None:
            pooled = self.fc_norm(pooled)
        return EncoderFeatures(
            cls=out[:, 0],
            tokens=patch_tokens,
            pooled=pooled,
            intermediates={index: value.reshape(shape) for index, value in kept.items()},
            groups=selection.groups,
            frame_mask=frame_mask,
            logits=None if self.head is None else self.head(pooled),
        )

    def select(self, x: Tensor, bands: Sequence[str] | None) -> BandSelection:
        """Match x's channels to the model's band groups (see :func:`select_bands`)."""
        if x.ndim != 5:
            raise ValueError(
                f"expected x of shape (B, T, C, H, W), got {x.ndim} dimensions {tuple(x.shape)}"
            )
        return select_bands(self.config, None if bands is None else tuple(bands), x.shape[2])

    @torch.no_grad()
    def embed(
        self,
        x: Tensor,
        times: Tensor | None = None,
        bands: Sequence[str] | None = None,
        pool: PoolMode = "mean",
        frame_mask: Tensor | None = None,
    ) -> Tensor:
        """Embeddings for inference (no gradients).

        Args:
            x: ``(B, T, C, H, W)``, or ``(B, C, H, W)`` for single images.
            times: ``(B, T)`` (or ``(B,)`` for single images) seconds since epoch.
            bands: names of x's channels; default the model's bands.
            pool: ``"mean"`` -> ``(B, D)`` pooled tokens, ``"cls"`` -> ``(B, D)`` cls token,
                ``"none"`` -> ``(B, T, G, h, w, D)`` tokens.
            frame_mask: ``(B, T)`` bool real frames.

        Returns:
            the embedding tensor.
        """
        x = torch.as_tensor(x)
        if x.ndim == 4:
            x = x.unsqueeze(1)
            times = None if times is None else torch.as_tensor(times).reshape(-1, 1)
        features = self.forward(x.float(), times, bands, frame_mask)
        if pool == "mean":
            return features.pooled
        if pool == "cls":
            return features.cls
        if pool == "none":
            return features.tokens
        raise ValueError(f"pool must be 'mean', 'cls' or 'none', got {pool!r}")


def check_frame_mask(frame_mask: Tensor | None, batch: int, frames: int) -> Tensor | None:
    """Validate a ``(B, T)`` bool frame mask (True = real frame)."""
    if frame_mask is None:
        return None
    if tuple(frame_mask.shape) != (batch, frames):
        raise ValueError(
            f"expected frame_mask of shape ({batch}, {frames}), got {tuple(frame_mask.shape)}"
        )
    return frame_mask.bool()
