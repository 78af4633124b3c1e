"""Fixed sin-cos encodings of patch position, band group and acquisition time.

The formulas follow the official SatMAE code exactly (reference note §2.2): tables are built in
float64 and cast to float32; the 2-D code puts the column (x) index in the first half and the row
(y) index in the second; tokens are ordered row-major. Tables are cached by shape and device,
so any grid size works without interpolating stored tables.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor, nn

from satmae.models.config import EncoderConfig

SECONDS_PER_DAY = 86_400


def sincos_1d(dim: int, positions: Tensor) -> Tensor:
    """1-D sin-cos code: ``[sin(p·ω_k) | cos(p·ω_k)]`` with ``ω_k = 10000^(−2k/dim)``.

    Args:
        dim: even output width.
        positions: positions of any shape; computed in float64.

    Returns:
        float64 tensor of shape ``(*positions.shape, dim)``.
    """
    if dim % 2:
        raise ValueError(f"sin-cos width must be even, got {dim}")
    omega = torch.arange(dim // 2, dtype=torch.float64, device=positions.device) / (dim / 2.0)
    omega = 1.0 / 10000**omega  # (dim/2,)
    angles = positions.to(torch.float64).unsqueeze(-1) * omega  # (..., dim/2)
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


@lru_cache(maxsize=64)
def spatial_encoding(dim: int, height: int, width: int, device: torch.device) -> Tensor:
    """2-D sin-cos code of an ``height × width`` patch grid, x (column) first.

    Returns:
        float32 ``(height*width, dim)``, row-major token order ``l = row·width + col``.
    """
    if dim % 4:
        raise ValueError(f"2-D sin-cos width must be a multiple of 4, got {dim}")
    with torch.inference_mode(False), torch.no_grad():
        rows = torch.arange(height, device=device).repeat_interleave(width)  # (L,)
        cols = torch.arange(width, device=device).repeat(height)  # (L,)
        code = torch.cat([sincos_1d(dim // 2, cols), sincos_1d(dim // 2, rows)], dim=-1)
        return code.float()


@lru_cache(maxsize=64)
def index_encoding(dim: int, count: int, device: torch.device) -> Tensor:
    """1-D sin-cos code of the indices ``0 … count−1`` (band groups): float32 ``(count, dim)``."""
    with torch.inference_mode(False), torch.no_grad():
        return sincos_1d(dim, torch.arange(count, device=device)).float()


def civil_from_seconds(seconds: Tensor) -> dict[str, Tensor]:
    """Split int64 seconds since 1970-01-01 UTC into calendar fields, without Python loops.

    Uses the proleptic Gregorian days-to-civil algorithm on integer tensors.

    Returns:
        int64 tensors of the input's shape: ``year``, ``month`` (1–12), ``day`` (1–31),
        ``day_of_year`` (0–365, 1 January is 0) and ``hour`` (0–23).
    """
    seconds = seconds.to(torch.int64)
    days = torch.div(seconds, SECONDS_PER_DAY, rounding_mode="floor")
    hour = torch.div(seconds - days * SECONDS_PER_DAY, 3600, rounding_mode="floor")
    shifted = days + 719_468  # days since 0000-03-01
    era = torch.div(shifted, 146_097, rounding_mode="floor")
    day_of_era = shifted - era * 146_097
    year_of_era = (
        day_of_era - day_of_era // 1460 + day_of_era // 36_524 - day_of_era // 146_096
    ) // 365
    day_of_march_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    month_from_march = (5 * day_of_march_year + 2) // 153
    day = day_of_march_year - (153 * month_from_march + 2) // 5 + 1
    month = torch.where(month_from_march < 10, month_from_march + 3, month_from_march - 9)
    year = year_of_era + era * 400 + (month <= 2).long()
    return {
        "year": year,
        "month": month,
        "day": day,
        "day_of_year": days - _days_to_january_first(year),
        "hour": hour,
    }


def _days_to_january_first(year: Tensor) -> Tensor:
    """Days since 1970-01-01 of 1 January of ``year`` (int64 tensor)."""
    previous = year - 1  # January counts in the previous March-based year
    era = torch.div(previous, 400, rounding_mode="floor")
    year_of_era = previous - era * 400
    day_of_era = 365 * year_of_era + year_of_era // 4 - year_of_era // 100 + 306
    return era * 146_097 + day_of_era - 719_468


def time_field_values(seconds: Tensor, time_fields: tuple[str, ...]) -> Tensor:
    """The numbers a time encoding encodes, one per field.

    Fields: ``years_since_2002`` (year − 2002), ``month0`` (month − 1), ``hour``, ``year`` and
    ``day_of_year`` (0-based). The first three are SatMAE's.

    Args:
        seconds: int64 ``(B, T)`` seconds since 1970-01-01 UTC.
        time_fields: names of the fields.

    Returns:
        int64 ``(B, T, F)``.
    """
    civil = civil_from_seconds(seconds)
    derived = {
        "years_since_2002": civil["year"] - 2002,
        "month0": civil["month"] - 1,
        "hour": civil["hour"],
        "year": civil["year"],
        "day_of_year": civil["day_of_year"],
    }
    return torch.stack([derived[name] for name in time_fields], dim=-1)


def time_encoding_from_values(values: Tensor, dim: int) -> Tensor:
    """Concatenated 1-D sin-cos codes of each field: ``(..., F)`` -> float32 ``(..., dim)``.

    Matches SatMAE's temporal code: each field gets ``dim / F`` channels, built in float64.
    """
    num_fields = values.shape[-1]
    per_field = dim // num_fields
    codes = [sincos_1d(per_field, values[..., index]) for index in range(num_fields)]
    return torch.cat(codes, dim=-1).float()


def time_encoding(seconds: Tensor, time_fields: tuple[str, ...], dim: int) -> Tensor:
    """Time code of each frame: int64 ``(B, T)`` seconds -> float32 ``(B, T, dim)``."""
    return time_encoding_from_values(time_field_values(seconds, time_fields), dim)


class Encodings(nn.Module):
    """Token encodings ``[spatial | group | time]``: fixed sin-cos, or learned tables.

    Args:
        config: the grid (``img_size``, ``patch_size``), groups and time fields.
        widths: (spatial, group, time) widths, from ``config.widths()`` (encoder) or
            ``config.widths(decoder=True)``.
        learned: store trainable spatial and group tables for ``config.img_size`` (official
            fine-tuned checkpoints).
    """

    def __init__(
        self, config: EncoderConfig, widths: tuple[int, int, int], learned: bool = False
    ) -> None:
        super().__init__()
        self.spatial_dim, self.group_dim, self.time_dim = widths
        self.num_groups = config.num_groups
        self.time_fields = config.time_fields
        self.grid = config.patch_grid()
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
