"""MAE decoders: the full decoder and the fast cross-attention decoder (a config value).

Both return predictions in the model's band order, ``(B, T, C, L, p*p)``, plus which tokens were
predicted. Head g maps the decoder width to ``|head_bands[g]|·p·p`` values, channel-first within
the patch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from satmae.models.blocks import Block, CrossBlock, LayerNorm
from satmae.models.config import MAEConfig
from satmae.models.decoder_context import build_context
from satmae.models.encodings import Encodings
from satmae.models.frames import frame_attention_mask
from satmae.models.initialization import init_weights
from satmae.models.masking import Masking

Generator = torch.Generator | None
Prediction = tuple[Tensor, Tensor | None]
"""Predictions ``(B, T, C', L, p*p)`` and the predicted tokens ``(B, T, G', L)`` (or ``None``)."""


@dataclass(frozen=True)
class TokenGrid:
    """What the decoder needs to know about the token grid.

    Attributes:
        frames: T.
        groups: model indices of the present groups (G' of them).
        patch_grid: ``(h, w)``.
        times: ``(B, T)`` seconds since epoch or ``None``.
        frame_mask: ``(B, T)`` bool real frames or ``None``.
    """

    frames: int
    groups: tuple[int, ...]
    patch_grid: tuple[int, int]
    times: Tensor | None
    frame_mask: Tensor | None

    @property
    def patches(self) -> int:
        """L, patches per frame and group."""
        return self.patch_grid[0] * self.patch_grid[1]

    @property
    def tokens_per_frame(self) -> int:
        """G'·L, the tokens of one frame."""
        return len(self.groups) * self.patches

    @property
    def tokens(self) -> int:
        """N = T·G'·L."""
        return self.frames * self.tokens_per_frame


class Decoder(nn.Module):
    """Shared parts: input projection, mask token, encodings, blocks, norm, per-group heads.

    Subclasses choose the block (``block_type``) and how tokens reach it (``predict``).
    """

    block_type: type[Block] | type[CrossBlock]

    def __init__(self, config: MAEConfig) -> None:
        super().__init__()
        self.config = config
        dim = config.decoder_dim
        area = config.patch_size**2
        self.embed = nn.Linear(config.embed_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.encodings = Encodings(config, config.widths(decoder=True))
        self.norm = LayerNorm(dim)
        self.heads = nn.ModuleList(nn.Linear(dim, len(bands) * area) for bands in config.heads)
        self.blocks = nn.ModuleList(
            self.block_type(dim, config.decoder_num_heads, config.mlp_ratio)
            for _ in range(config.decoder_depth)
        )
        # SatMAE's initialisation of the whole decoder.
        init_weights(self)
        nn.init.normal_(self.mask_token, std=0.02)

    @property
    def encoder_blocks(self) -> tuple[int, ...]:
        """Encoder blocks whose un-normed outputs the decoder needs besides the final output."""
        return ()

    def band_order(self, groups: tuple[int, ...]) -> list[int]:
        """Permutation from concatenated head outputs to the present bands in model order."""
        slots = [band for group in groups for band in self.config.heads[group]]
        present = [band for group in groups for band in self.config.band_groups[group]]
        return [slots.index(band) for band in present]

    def codes(self, grid: TokenGrid, batch: int, device: torch.device) -> Tensor:
        """Decoder encodings of every token: ``(B or 1, N, D_dec)``."""
        codes: Tensor = self.encodings(
            grid.patch_grid, grid.groups, grid.times, batch, grid.frames, device
        )
        return codes.flatten(1, 3)

    def forward(
        self,
        latent: Tensor,
        masking: Masking,
        grid: TokenGrid,
        generator: torch.Generator | None = None,
        features: Mapping[int, Tensor] | None = None,
    ) -> Prediction:
        """Reconstruct tokens from the encoded visible ones.

        Args:
            latent: ``(B, 1+N_keep, D)`` encoder output (cls first).
            masking: the mask and visible indices.
            grid: the token grid.
            generator: random generator (the cross decoder samples which tokens to predict).
            features: block index -> ``(B, 1+N_keep, D)`` un-normed encoder block outputs, at
                least those of :attr:`encoder_blocks` (``decoder_context``).

        Returns:
            predictions ``(B, T, C', L, p*p)`` in model band order (zero where not predicted)
            and the predicted tokens ``(B, T, G', L)`` bool, or ``None`` when every token is.
        """
        return self.predict(latent, masking, grid, generator, features or {})

    def predict(
        self,
        latent: Tensor,
        masking: Masking,
        grid: TokenGrid,
        generator: Generator,
        features: Mapping[int, Tensor],
    ) -> Prediction:
        """The decoder's own way to :meth:`forward`."""
        raise NotImplementedError


class FullDecoder(Decoder):
    """SatMAE's decoder: mask tokens at hidden positions, self-attention over all tokens."""

    block_type = Block

    def predict(
        self,
        latent: Tensor,
        masking: Masking,
        grid: TokenGrid,
        generator: Generator,
        features: Mapping[int, Tensor],
    ) -> Prediction:
        """Predict every token (``generator`` and ``features`` are unused); nothing is skipped."""
        batch = latent.shape[0]
        x = self.embed(latent).to(self.mask_token.dtype)  # (B, 1+N_keep, Dd)
        dim = x.shape[-1]
        full = self.mask_token.to(x.dtype).expand(batch, grid.tokens, dim)
        index = masking.visible.unsqueeze(-1).expand(-1, -1, dim)
        full = full.scatter(1, index, x[:, 1:])  # (B, N, Dd)
        full = full + self.codes(grid, batch, x.device).to(x.dtype)
        cls = x[:, :1] + self.encodings.cls(x.device).to(x.dtype)
        x = torch.cat([cls, full], dim=1)  # (B, 1+N, Dd)
        all_tokens = torch.arange(grid.tokens, device=x.device).expand(batch, -1)
        attn_mask = frame_attention_mask(grid.frame_mask, all_tokens, grid.tokens_per_frame)
        for block in self.blocks:
            x = block(x, attn_mask)
        x = self.norm(x)[:, 1:]
        x = x.reshape(batch, grid.frames, len(grid.groups), grid.patches, dim)
        area = self.config.patch_size**2
        outputs = []
        for position, group in enumerate(grid.groups):
            out = self.heads[group](x[:, :, position])  # (B, T, L, |g|*p*p)
            out = out.reshape(*out.shape[:3], -1, area).transpose(2, 3)  # (B, T, |g|, L, p*p)
            outputs.append(out)
        pred = torch.cat(outputs, dim=2)[:, :, self.band_order(grid.groups)]
        return pred, None


class CrossDecoder(Decoder):
    """Fast decoder: hidden-token queries cross-attend to the encoded visible tokens.

    In training it reconstructs a ``decoder_fraction`` of the hidden tokens, chosen by
    ``decoder_selection``; in eval mode it reconstructs all of them. Each block attends to the
    context ``decoder_context`` names (see :mod:`satmae.models.decoder_context`).
    """

    block_type = CrossBlock

    def __init__(self, config: MAEConfig) -> None:
        super().__init__(config)
        self.context = build_context(config)
        self.select_queries = QUERY_SELECTIONS[config.decoder_selection]

    @property
    def encoder_blocks(self) -> tuple[int, ...]:
        """Encoder blocks whose un-normed outputs :attr:`context` needs."""
        return self.context.encoder_blocks

    def predict(
        self,
        latent: Tensor,
        masking: Masking,
        grid: TokenGrid,
        generator: Generator,
        features: Mapping[int, Tensor],
    ) -> Prediction:
        """Predict (a fraction of) the hidden tokens; the others are zero and not predicted."""
        batch = latent.shape[0]
        hidden = masking.mask.flatten(1)  # (B, N)
        num_hidden = grid.tokens - masking.visible.shape[1]
        fraction = self.config.decoder_fraction if self.training else 1.0
        num_queries = min(num_hidden, max(1, round(fraction * num_hidden))) if num_hidden else 0
        sizes = [self.config.group_sizes[group] for group in grid.groups]
        area = self.config.patch_size**2
        pred = latent.new_zeros(batch, grid.frames, sum(sizes), grid.patches, area)
        predicted = torch.zeros_like(hidden)
        if num_queries == 0:
            return pred, predicted.view(masking.mask.shape)

        dtype, dim, device = self.mask_token.dtype, self.config.decoder_dim, latent.device
        codes = self.codes(grid, batch, device).to(dtype).expand(batch, -1, -1)  # (B, N, Dd)
        visible_codes = torch.gather(codes, 1, masking.visible.unsqueeze(-1).expand(-1, -1, dim))
        cls_code = self.encodings.cls(device).to(dtype).expand(batch, 1, dim)
        context_codes = torch.cat([cls_code, visible_codes], dim=1)  # (B, 1+N_keep, Dd)
        contexts = self.context(latent, features, self.embed, context_codes)

        noise = torch.rand(hidden.shape, generator=generator, device=hidden.device)
        noise = noise.masked_fill(~hidden, 2.0)  # visible tokens are never queried
        queries_index = self.select_queries(noise, hidden, num_queries, grid)  # (B, Q)
        queries = self.mask_token.to(dtype) + torch.gather(
            codes, 1, queries_index.unsqueeze(-1).expand(-1, -1, dim)
        )  # (B, Q, Dd)
        attn_mask = frame_attention_mask(grid.frame_mask, masking.visible, grid.tokens_per_frame)
        for block, context in zip(self.blocks, contexts, strict=True):
            queries = block(queries, context, attn_mask)
        queries = self.norm(queries)

        # One fused matmul for all present heads, then keep each query's own group.
        heads = [self.heads[group] for group in grid.groups]
        weight = torch.cat([head.weight for head in heads if isinstance(head, nn.Linear)])
        bias = torch.cat([head.bias for head in heads if isinstance(head, nn.Linear)])
        out = nn.functional.linear(queries, weight, bias)
        out = out.reshape(*out.shape[:2], -1, area)  # (B, Q, C', p*p)
        out = out[:, :, self.band_order(grid.groups)]  # model band order
        band_group = torch.repeat_interleave(
            torch.arange(len(grid.groups), device=device), torch.tensor(sizes, device=device)
        )
        per_frame = grid.tokens_per_frame
        query_group = torch.div(queries_index % per_frame, grid.patches, rounding_mode="floor")
        own = band_group[None, None, :] == query_group[:, :, None]  # (B, Q, C')
        out = out * own.unsqueeze(-1).to(out.dtype)
        location = (
            torch.div(queries_index, per_frame, rounding_mode="floor") * grid.patches
            + queries_index % grid.patches
        )  # (B, Q) index into T*L
        flat = pred.to(out.dtype).transpose(2, 3).flatten(1, 2)  # (B, T*L, C', p*p)
        flat = flat.index_put(
            (torch.arange(batch, device=device)[:, None], location), out, accumulate=True
        )
        pred = flat.reshape(batch, grid.frames, grid.patches, *flat.shape[2:]).transpose(2, 3)
        predicted = predicted.scatter(1, queries_index, True)
        return pred, predicted.view(masking.mask.shape)


def random_queries(noise: Tensor, hidden: Tensor, num_queries: int, grid: TokenGrid) -> Tensor:
    """The ``num_queries`` hidden tokens of smallest noise, wherever they are.

    Args:
        noise: ``(B, N)`` uniform in [0, 1) at hidden tokens, 2 at visible ones.
        hidden: ``(B, N)`` bool, True = hidden (unused: ``noise`` already sorts them last).
        num_queries: Q, at most the number of hidden tokens of a sample.
        grid: the token grid (unused).

    Returns:
        ``(B, Q)`` ascending token indices.
    """
    return torch.argsort(noise, dim=1)[:, :num_queries].sort(dim=1).values


def balanced_queries(noise: Tensor, hidden: Tensor, num_queries: int, grid: TokenGrid) -> Tensor:
    """``num_queries`` hidden tokens split as evenly as possible over the present groups.

    Hidden tokens are ranked by ``noise`` within their own group and taken round-robin over
    the groups by rank (ties between groups of one rank broken by the noise too), so a group
    gets Q/G' ± 1 tokens unless it has fewer hidden ones; their share goes to the others.

    Args:
        noise: ``(B, N)`` uniform in [0, 1) at hidden tokens (2 at visible ones).
        hidden: ``(B, N)`` bool, True = hidden.
        num_queries: Q, at most the number of hidden tokens of a sample.
        grid: the token grid (which group each token is in).

    Returns:
        ``(B, Q)`` ascending token indices.
    """
    token = torch.arange(grid.tokens, device=noise.device)
    token_group = torch.div(token % grid.tokens_per_frame, grid.patches, rounding_mode="floor")
    order = torch.argsort(noise, dim=1)  # (B, N) smallest noise first, visible tokens last
    group = token_group[order]  # (B, N) group of each token in noise order
    seen = nn.functional.one_hot(group, len(grid.groups)).cumsum(1)  # (B, N, G')
    rank = seen.gather(2, group.unsqueeze(-1)).squeeze(-1) - 1  # (B, N) rank within its group
    # Integer rank first, the token's own noise in [0, 1) breaks ties between groups.
    key = rank.double() + noise.gather(1, order).double()
    key = key.masked_fill(~hidden.gather(1, order), float("inf"))
    picked = torch.argsort(key, dim=1)[:, :num_queries]  # (B, Q) positions in noise order
    return order.gather(1, picked).sort(dim=1).values


QuerySelection = Callable[[Tensor, Tensor, int, TokenGrid], Tensor]
QUERY_SELECTIONS: dict[str, QuerySelection] = {
    "random": random_queries,
    "balanced": balanced_queries,
}
"""``decoder_selection`` -> which hidden tokens the cross decoder reconstructs in training."""


def build_decoder(config: MAEConfig) -> Decoder:
    """The decoder named by ``config.decoder``."""
    kinds: dict[str, type[Decoder]] = {"full": FullDecoder, "cross": CrossDecoder}
    return kinds[config.decoder](config)
