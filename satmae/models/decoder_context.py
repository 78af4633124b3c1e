"""What each cross-decoder block attends to: one encoder output or a learned mix of several.

``decoder_context=(-1,)`` (the default) is SatMAE's: every decoder block attends to the encoder's
final, normed output, projected by the decoder's ``embed`` (no weights of its own). Several
blocks are CrossMAE's weighted feature maps: each selected block other than the last gets its
own LayerNorm, and each decoder block mixes the K normed maps with its own K weights before
``embed``. The weights start at 1/K (the mean of the maps): every selected block feeds the
decoder, and its LayerNorm learns, from the first step, at the scale of one normed map; starting
from the last block alone would leave the other maps' norms without gradient at first and
delay the very signal the option exists for.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from satmae.models.blocks import LayerNorm
from satmae.models.config import MAEConfig


class FinalContext(nn.Module):
    """The encoder's final, normed output for every decoder block (SatMAE; no weights).

    Args:
        config: the architecture (``decoder_depth``).
    """

    encoder_blocks: tuple[int, ...] = ()
    """Encoder blocks whose un-normed outputs :meth:`forward` needs besides the final one."""

    def __init__(self, config: MAEConfig) -> None:
        super().__init__()
        self.decoder_depth = config.decoder_depth

    def forward(
        self, latent: Tensor, features: Mapping[int, Tensor], embed: nn.Linear, codes: Tensor
    ) -> list[Tensor]:
        """The context of each decoder block.

        Args:
            latent: ``(B, 1+N_keep, D)`` the encoder's final, normed output (cls first).
            features: block index -> ``(B, 1+N_keep, D)`` un-normed outputs (unused here).
            embed: the decoder's projection ``D -> D_dec``.
            codes: ``(B, 1+N_keep, D_dec)`` decoder encodings of the cls and visible tokens.

        Returns:
            ``decoder_depth`` contexts ``(B, 1+N_keep, D_dec)`` (here all the same tensor).
        """
        context = embed(latent).to(codes.dtype) + codes
        return [context] * self.decoder_depth


class MixedContext(nn.Module):
    """CrossMAE's weighted feature maps: each decoder block mixes several encoder blocks.

    Args:
        config: the architecture (``decoder_context``, ``depth``, ``decoder_depth``).

    Attributes:
        blocks: the K encoder blocks mixed, in ``decoder_context`` order, in ``[0, depth)``.
        norms: one LayerNorm per block of ``encoder_blocks`` (the last block arrives normed by
            the encoder).
        weights: ``(decoder_depth, K)`` each decoder block's weights over the K maps.
    """

    def __init__(self, config: MAEConfig) -> None:
        super().__init__()
        self.blocks = config.context_blocks
        self.final = config.depth - 1
        self.encoder_blocks = tuple(block for block in self.blocks if block != self.final)
        self.norms = nn.ModuleList(LayerNorm(config.embed_dim) for _ in self.encoder_blocks)
        count = len(self.blocks)
        self.weights = nn.Parameter(torch.full((config.decoder_depth, count), 1.0 / count))

    def forward(
        self, latent: Tensor, features: Mapping[int, Tensor], embed: nn.Linear, codes: Tensor
    ) -> list[Tensor]:
        """The context of each decoder block: ``embed(Σ_k w[i, k]·map_k) + codes``.

        Args:
            latent: ``(B, 1+N_keep, D)`` the encoder's final, normed output (cls first).
            features: block index -> ``(B, 1+N_keep, D)`` un-normed outputs of at least
                :attr:`encoder_blocks`.
            embed: the decoder's projection ``D -> D_dec``.
            codes: ``(B, 1+N_keep, D_dec)`` decoder encodings of the cls and visible tokens.

        Returns:
            ``decoder_depth`` contexts ``(B, 1+N_keep, D_dec)``.
        """
        norms = dict(zip(self.encoder_blocks, self.norms, strict=True))
        maps = [
            latent if block == self.final else norms[block](features[block])
            for block in self.blocks
        ]
        stacked = torch.stack(maps)  # (K, B, 1+N_keep, D)
        # embed is linear: project the K maps once, then mix in the (narrower) decoder width.
        projected = nn.functional.linear(stacked, embed.weight)  # (K, B, 1+N_keep, D_dec)
        weights = self.weights.to(projected.dtype)
        mixed = torch.einsum("ik,kbnd->ibnd", weights, projected)  # (depth, B, 1+N_keep, D_dec)
        mixed = (mixed + embed.bias.to(mixed.dtype)).to(codes.dtype) + codes
        return list(mixed.unbind(0))


def build_context(config: MAEConfig) -> FinalContext | MixedContext:
    """The context named by ``config.decoder_context``: ``(-1,)`` is :class:`FinalContext`."""
    if config.context_blocks == (config.depth - 1,):
        return FinalContext(config)
    return MixedContext(config)
