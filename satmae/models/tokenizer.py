"""Turn a multispectral time series into tokens ``(B, T, G, L, D)`` with fixed encodings.

Each band group has its own patch projection, shared across frames. Every token gets the
concatenation ``[spatial 2-D sin-cos | group 1-D sin-cos | time]`` (DESIGN §4); widths come from
:class:`~satmae.models.config.MAEConfig`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from satmae.bands import canonical_bands
from satmae.models.config import EncoderConfig
from satmae.models.encodings import Encodings


@dataclass(frozen=True)
class BandSelection:
    """Where the model's groups are in an input's channel axis.

    Attributes:
        groups: indices of the model groups present in the input, in model order.
        channels: for each present group, the input channel of each of its bands.
        bands: the present bands in model channel order.
    """

    groups: tuple[int, ...]
    channels: tuple[tuple[int, ...], ...]
    bands: tuple[str, ...]

    @property
    def flat_channels(self) -> list[int]:
        """Input channels of every present band, in model channel order."""
        return [index for group in self.channels for index in group]

    @property
    def sizes(self) -> tuple[int, ...]:
        """Number of bands of each present group."""
        return tuple(len(group) for group in self.channels)


def select_bands(
    config: EncoderConfig, bands: Sequence[str] | None, num_channels: int
) -> BandSelection:
    """Match an input's band names to the model's groups.

    Args:
        config: the model configuration.
        bands: names of the input's C channels; ``None`` means the model's input order
            (``config.input_order``: the groups concatenated, or the official channel order of
            a converted official checkpoint).
        num_channels: C, the size of the input's channel axis.

    Raises:
        ValueError: for unknown names, a name count that differs from C, a group with only some
            of its bands, or an input with none of the model's groups.
    """
    if bands is None:
        order = config.input_order
        if num_channels != len(order):
            raise ValueError(
                f"the model expects {len(order)} channels {list(order)}, got "
                f"{num_channels}; pass bands=... naming the input's channels"
            )
        bands = order
    names = canonical_bands(bands)
    if len(names) != num_channels:
        raise ValueError(
            f"bands names {len(names)} channels {list(names)} but x has {num_channels}"
        )
    position = {band: index for index, band in enumerate(names)}
    groups, channels = [], []
    for index, group in enumerate(config.band_groups):
        present = [band for band in group if band in position]
        if present and len(present) < len(group):
            missing = [band for band in group if band not in position]
            raise ValueError(
                f"band group {index} {list(group)} is only partly present: missing {missing} "
                f"in the input's bands {list(names)}; give all of its bands or none"
            )
        if present:
            groups.append(index)
            channels.append(tuple(position[band] for band in group))
    if not groups:
        raise ValueError(
            f"the input's bands {list(names)} contain none of the model's groups "
            f"{[list(g) for g in config.band_groups]}"
        )
    selected = tuple(band for index in groups for band in config.band_groups[index])
    return BandSelection(tuple(groups), tuple(channels), selected)


def patchify(images: Tensor, patch_size: int) -> Tensor:
    """Cut images into patches, band by band.

    Args:
        images: ``(B, T, C, H, W)``.
        patch_size: p.

    Returns:
        ``(B, T, C, L, p*p)`` with ``L = (H/p)·(W/p)`` row-major and pixels row-major in a patch.
    """
    batch, frames, channels, height, width = images.shape
    rows, cols = height // patch_size, width // patch_size
    patches = images.reshape(batch, frames, channels, rows, patch_size, cols, patch_size)
    patches = patches.permute(0, 1, 2, 3, 5, 4, 6)  # (B, T, C, h, w, p, p)
    return patches.reshape(batch, frames, channels, rows * cols, patch_size * patch_size)


def unpatchify(patches: Tensor, grid: tuple[int, int]) -> Tensor:
    """Inverse of :func:`patchify`: ``(B, T, C, L, p*p)`` -> ``(B, T, C, H, W)``."""
    batch, frames, channels, _, area = patches.shape
    patch_size = round(area**0.5)
    rows, cols = grid
    images = patches.reshape(batch, frames, channels, rows, cols, patch_size, patch_size)
    images = images.permute(0, 1, 2, 3, 5, 4, 6)  # (B, T, C, h, p, w, p)
    return images.reshape(batch, frames, channels, rows * patch_size, cols * patch_size)


@dataclass
class Tokenized:
    """Output of :class:`Tokenizer`: embedded tokens and what was learnt about the input.

    Attributes:
        tokens: ``(B, T, G', L, D)`` patch embeddings plus encodings.
        selection: which model groups are present and where their bands are in the input.
        patch_grid: ``(h, w)``.
        times: ``(B, T)`` seconds since epoch, or ``None``.
        frame_mask: ``(B, T)`` bool real frames, or ``None``.
    """

    tokens: Tensor
    selection: BandSelection
    patch_grid: tuple[int, int]
    times: Tensor | None
    frame_mask: Tensor | None

    @property
    def tokens_per_frame(self) -> int:
        """G'·L, the tokens of one frame."""
        return int(self.tokens.shape[2] * self.tokens.shape[3])


class Tokenizer(nn.Module):
    """Group-wise patch embedding plus encodings.

    Args:
        config: the encoder configuration; ``config.encoding == "learned"`` stores the tables.
    """

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config
        patch = config.patch_size
        self.patch_embed = nn.ModuleList(
            nn.Conv2d(len(group), config.embed_dim, kernel_size=patch, stride=patch)
            for group in config.band_groups
        )
        self.encodings = Encodings(config, config.widths(), learned=config.encoding == "learned")

    def forward(
        self,
        x: Tensor,
        times: Tensor | None,
        bands: Sequence[str] | None = None,
        frame_mask: Tensor | None = None,
    ) -> Tokenized:
        """Embed patches and add encodings to inputs checked by the encoder.

        The one check of model inputs is :func:`satmae.models.inputs.check_model_inputs`
        (called by :meth:`SatMAEEncoder.tokenize`); this step assumes it has run.

        Args:
            x: ``(B, T, C, H, W)`` model inputs.
            times: ``(B, T)`` int64 seconds since epoch, or ``None`` for a non-temporal model.
            bands: names of x's C channels; ``None`` means ``config.input_order``.
            frame_mask: ``(B, T)`` bool, False for padded frames.

        Returns:
            the tokens ``(B, T, G', L, D)`` with the band selection and patch grid.
        """
        grid = self.config.patch_grid((x.shape[3], x.shape[4]))
        selection = select_bands(self.config, bands, x.shape[2])
        batch, frames = x.shape[:2]
        per_group = []
        for group, channels in zip(selection.groups, selection.channels, strict=True):
            pixels = x[:, :, list(channels)].flatten(0, 1)  # (B*T, |g|, H, W)
            embedded = self.patch_embed[group](pixels)  # (B*T, D, h, w)
            per_group.append(embedded.flatten(2).transpose(1, 2))  # (B*T, L, D)
        tokens = torch.stack(per_group, dim=1)  # (B*T, G', L, D)
        tokens = tokens.reshape(batch, frames, *tokens.shape[1:])  # (B, T, G', L, D)
        codes = self.encodings(grid, selection.groups, times, batch, frames, x.device)
        # Keep the residual stream in the parameter dtype: under bf16 autocast the matmuls run in
        # bf16 while norms and residual sums stay fp32 (bf16 LayerNorm backward is slow on CPU).
        dtype = next(self.patch_embed.parameters()).dtype
        out = tokens.to(dtype) + codes.to(dtype)
        return Tokenized(out, selection, grid, times, frame_mask)
