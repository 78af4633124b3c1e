"""Turn a multispectral time series into tokens ``(B, T, G, L, D)`` with fixed encodings.

Each band group has its own patch projection, shared across frames. Every token gets the
concatenation ``[spatial 2-D sin-cos | group 1-D sin-cos | time]`` (DESIGN §4); widths come from
:class:`~satmae.models.config.MAEConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from satmae.bands import canonical_bands
from satmae.models.config import MAEConfig
from satmae.models.encodings import index_encoding, spatial_encoding, time_encoding


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


def select_bands(
    config: MAEConfig, bands: tuple[str, ...] | None, num_channels: int
) -> BandSelection:
    """Match an input's band names to the model's groups.

    Args:
        config: the model configuration.
        bands: names of the input's C channels; ``None`` means exactly the model's bands.
        num_channels: C, the size of the input's channel axis.

    Raises:
        ValueError: for unknown names, a name count that differs from C, a group with only some
            of its bands, or an input with none of the model's groups.
    """
    if bands is None:
        if num_channels != len(config.bands):
            raise ValueError(
                f"the model expects {len(config.bands)} channels {list(config.bands)}, got "
                f"{num_channels}; pass bands=... naming the input's channels"
            )
        bands = config.bands
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


class Encodings(nn.Module):
    """Fixed (or, for fine-tuned official checkpoints, learned) token encodings.

    Args:
        config: the model configuration.
        decoder: use the decoder widths.
        learned: store trainable spatial and group tables for ``config.img_size``.
    """

    def __init__(self, config: MAEConfig, decoder: bool = False, learned: bool = False) -> None:
        super().__init__()
        self.spatial_dim, self.group_dim, self.time_dim = config.widths(decoder)
        self.num_groups = config.num_groups
        self.time_fields = config.time_fields
        self.grid = (
            config.img_size[0] // config.patch_size,
            config.img_size[1] // config.patch_size,
        )
        self.spatial_table: nn.Parameter | None = None
        self.group_table: nn.Parameter | None = None
        if learned:
            cpu = torch.device("cpu")
            self.spatial_table = nn.Parameter(
                spatial_encoding(self.spatial_dim, *self.grid, cpu).clone()
            )
            self.group_table = nn.Parameter(
                index_encoding(self.group_dim, self.num_groups, cpu).clone()
            )

    def spatial(self, grid: tuple[int, int], device: torch.device) -> Tensor:
        """Spatial code of a patch grid: ``(L, D_spatial)``."""
        if self.spatial_table is None:
            return spatial_encoding(self.spatial_dim, grid[0], grid[1], device)
        if grid != self.grid:
            raise ValueError(
                f"this model stores a learned spatial table for a {self.grid} patch grid, got "
                f"{grid}; resize the input to {self.grid[0]}x{self.grid[1]} patches"
            )
        return self.spatial_table

    def group(self, groups: tuple[int, ...], device: torch.device) -> Tensor:
        """Group code of the present groups: ``(G', D_group)``."""
        table = (
            index_encoding(self.group_dim, self.num_groups + 1, device)
            if self.group_table is None
            else self.group_table
        )
        return table[list(groups)]

    def time(self, times: Tensor | None, batch: int, frames: int, device: torch.device) -> Tensor:
        """Time code of each frame: ``(B, T, D_time)`` (width 0 for a non-temporal model)."""
        if not self.time_dim:
            return torch.zeros(1, frames, 0, device=device)
        if times is None:
            raise ValueError(
                f"this model encodes acquisition time {self.time_fields}; pass times of shape "
                f"({batch}, {frames}) as int64 seconds since 1970-01-01 UTC"
            )
        if tuple(times.shape) != (batch, frames):
            raise ValueError(
                f"expected times of shape ({batch}, {frames}), got {tuple(times.shape)}"
            )
        return time_encoding(times.to(device), self.time_fields, self.time_dim)

    def forward(
        self,
        grid: tuple[int, int],
        groups: tuple[int, ...],
        times: Tensor | None,
        batch: int,
        frames: int,
        device: torch.device,
    ) -> Tensor:
        """All token codes: ``(B or 1, T, G', L, D)`` as ``[spatial | group | time]``."""
        spatial = self.spatial(grid, device)  # (L, Ds)
        group = self.group(groups, device)  # (G', Dg)
        time = self.time(times, batch, frames, device)  # (B|1, T, Dt)
        rows = time.shape[0]
        shape = (rows, frames, len(groups), spatial.shape[0])
        return torch.cat(
            [
                spatial.expand(*shape, -1),
                group[None, None, :, None].expand(*shape, -1),
                time[:, :, None, None].expand(*shape, -1),
            ],
            dim=-1,
        )

    def cls(self, device: torch.device) -> Tensor:
        """Decoder cls code: zeros except the group code of index G (SatMAE): ``(D,)``."""
        group = index_encoding(self.group_dim, self.num_groups + 1, device)[self.num_groups]
        return torch.cat(
            [
                torch.zeros(self.spatial_dim, device=device),
                group,
                torch.zeros(self.time_dim, device=device),
            ]
        )


class Tokenizer(nn.Module):
    """Group-wise patch embedding plus encodings.

    Args:
        config: the model configuration; ``config.encoding == "learned"`` stores the tables.
    """

    def __init__(self, config: MAEConfig) -> None:
        super().__init__()
        self.config = config
        patch = config.patch_size
        self.patch_embed = nn.ModuleList(
            nn.Conv2d(len(group), config.embed_dim, kernel_size=patch, stride=patch)
            for group in config.band_groups
        )
        self.encodings = Encodings(config, learned=config.encoding == "learned")

    def check_input(self, x: Tensor) -> tuple[int, int]:
        """Validate ``x (B, T, C, H, W)`` and return the patch grid ``(h, w)``."""
        if x.ndim != 5:
            raise ValueError(
                f"expected x of shape (B, T, C, H, W), got {x.ndim} dimensions {tuple(x.shape)}"
            )
        frames, height, width = x.shape[1], x.shape[3], x.shape[4]
        if frames > self.config.max_frames:
            raise ValueError(
                f"the model takes at most max_frames={self.config.max_frames} frames, got {frames}"
            )
        patch = self.config.patch_size
        if height % patch or width % patch:
            raise ValueError(
                f"image {height}x{width} is not divisible by patch_size={patch}; crop or pad it"
            )
        return height // patch, width // patch

    def forward(self, x: Tensor, times: Tensor | None, selection: BandSelection) -> Tensor:
        """Embed patches and add encodings.

        Args:
            x: ``(B, T, C, H, W)`` with the channels named by ``selection``.
            times: ``(B, T)`` int64 seconds since epoch, or ``None`` for a non-temporal model.
            selection: band-to-group matching from :func:`select_bands`.

        Returns:
            tokens ``(B, T, G', L, D)``.
        """
        grid = self.check_input(x)
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
        out: Tensor = tokens.to(dtype) + codes.to(dtype)
        return out
