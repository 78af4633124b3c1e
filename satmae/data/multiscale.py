"""Inputs at several scales for multi-scale (SatMAE++) pretraining.

A batch read at the finest scale becomes the model input plus the targets ``image_x2``,
``image_x4``, … (with ``valid_x2``, … and ``bands_x2``, …), the keys a multi-scale model reads
(:mod:`satmae.models.multiscale`):

- ``targets="all"`` is SatMAE++'s recipe (reference note §5.1, §7.5): crop at 4× the model
  size, then halve with bilinear resampling down to 2× and 1×. Every band is a target at every
  scale, although the finer images hold no more information than the data they were resampled
  from.
- ``targets="native"`` keeps, at each scale, only the bands whose native resolution is at least
  as fine as that scale's pixel (``gsd`` of the data, in metres): fed 20 m inputs from 10 m
  data, the model is scored at 2× on the 10 m bands only (B02, B03, B04, B08), real detail
  the input does not hold.

Halving with bilinear resampling (``align_corners=False``) averages each 2×2 block exactly, so
each coarse pixel is the mean of the fine pixels it covers. A coarse pixel is valid only where
all of them are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch.nn.functional as F
from torch import Tensor

from satmae.bands import canonical_bands, resolution

TargetBands = Literal["all", "native"]


def halve(image: Tensor, times: int) -> Tensor:
    """``(..., H, W)`` -> ``(..., H/2^times, W/2^times)`` by repeated bilinear halving."""
    lead = image.shape[:-2]
    out = image.reshape(-1, 1, *image.shape[-2:]).float()
    for _ in range(times):
        out = F.interpolate(out, scale_factor=0.5, mode="bilinear", align_corners=False)
    return out.reshape(*lead, *out.shape[-2:]).to(image.dtype)


def halve_valid(valid: Tensor, times: int) -> Tensor:
    """``(..., H, W)`` bool -> valid where every covered fine pixel is valid."""
    factor = 2**times
    lead = valid.shape[:-2]
    flat = valid.reshape(-1, 1, *valid.shape[-2:]).float()
    out = -F.max_pool2d(-flat, factor)  # min-pool: all fine pixels valid
    return out.reshape(*lead, *out.shape[-2:]) > 0.5


class MultiScaleTargets:
    """Model input and targets at several scales from a batch read at the finest scale.

    Args:
        scales: the model's ``upsample_scales``, e.g. ``(2, 4)``; the batch is read at the
            largest.
        targets: ``"all"`` (SatMAE++: every band at every scale) or ``"native"`` (only bands
            whose native resolution resolves that scale's pixel).
        gsd: ground sampling distance of the batch as read, in metres (``"native"`` only).
        finest_size: resize the batch as read to this side first (bicubic; validity nearest),
            as SatMAE++'s crop at 4x the model size does for fMoW-Sentinel images smaller than
            that; ``None`` keeps the size as read.

    Raises:
        ValueError: for scales that do not double from 2, or an unknown ``targets``.
    """

    def __init__(
        self,
        scales: Sequence[int] = (2, 4),
        targets: TargetBands = "all",
        gsd: float = 10.0,
        finest_size: int | None = None,
    ) -> None:
        scales = tuple(int(scale) for scale in scales)
        expected = tuple(2 ** (index + 1) for index in range(len(scales)))
        if not scales or scales != expected:
            raise ValueError(
                f"data.scales must double from 2 like the model's upsample_scales, e.g. [2] or "
                f"[2, 4]; got {list(scales)}"
            )
        if targets not in ("all", "native"):
            raise ValueError(f"data.scale_targets must be 'all' or 'native', got {targets!r}")
        if gsd <= 0:
            raise ValueError(f"data.gsd must be positive metres per pixel, got {gsd}")
        self.scales: tuple[int, ...] = scales
        self.targets, self.gsd = targets, gsd
        self.finest_size = finest_size
        if finest_size is not None:
            self.check_size(finest_size, finest_size)

    @property
    def factor(self) -> int:
        """How much larger the batch as read is than the model input."""
        return self.scales[-1]

    def check_size(self, height: int, width: int) -> None:
        """Raise ValueError unless an image of this size divides into every scale."""
        if height % self.factor or width % self.factor:
            raise ValueError(
                f"a {height}x{width} window does not divide by the largest scale {self.factor}: "
                f"read windows of {self.factor} x the model input (data.size), e.g. "
                f"{self.factor * (height // self.factor or 1)}"
            )

    @staticmethod
    def _resize(image: Tensor, valid: Tensor | None, size: int) -> tuple[Tensor, Tensor | None]:
        """Bicubic resize of ``(B, T, C, H, W)`` (nearest for validity) to ``size`` x ``size``."""
        batch, frames, channels = image.shape[:3]
        flat = image.reshape(batch, frames * channels, *image.shape[-2:]).float()
        out = F.interpolate(flat, size=(size, size), mode="bicubic", align_corners=False)
        resized = out.reshape(batch, frames, channels, size, size).to(image.dtype)
        if valid is None:
            return resized, None
        mask = F.interpolate(valid.float(), size=(size, size), mode="nearest") > 0.5
        return resized, mask

    def target_bands(self, bands: Sequence[str], scale: int) -> tuple[str, ...]:
        """The bands scored at ``scale`` (all, or those whose native pixel resolves it)."""
        names = canonical_bands(bands)
        if self.targets == "all":
            return names
        pixel = self.gsd * self.factor / scale  # metres per pixel at this scale
        return tuple(band for band in names if resolution(band) <= pixel)

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        """``image (B, T, C, H, W)`` at the finest scale -> input at ``H/max`` plus targets.

        Raises:
            ValueError: for an image whose size does not divide by the largest scale.
        """
        image: Tensor = batch["image"]
        valid: Tensor | None = batch.get("valid")
        if self.finest_size is not None and tuple(image.shape[-2:]) != (self.finest_size,) * 2:
            image, valid = self._resize(image, valid, self.finest_size)
        self.check_size(int(image.shape[-2]), int(image.shape[-1]))
        bands = canonical_bands(batch["bands"])
        out = dict(batch)
        levels = len(self.scales)
        out["image"] = halve(image, levels)
        if valid is not None:
            out["valid"] = halve_valid(valid, levels)
        for scale in self.scales:
            times = levels - (scale.bit_length() - 1)  # halvings from the finest to this scale
            kept = self.target_bands(bands, scale)
            if not kept:
                raise ValueError(
                    f"no band of {list(bands)} resolves the {self.gsd * self.factor / scale:g} m "
                    f"pixels of scale {scale} (data.gsd={self.gsd} m); use "
                    "data.scale_targets=all or data read at a finer gsd"
                )
            index = [bands.index(band) for band in kept]
            out[f"image_x{scale}"] = halve(image[:, :, index], times)
            out[f"bands_x{scale}"] = kept
            if valid is not None:
                out[f"valid_x{scale}"] = halve_valid(valid, times)
        return out
