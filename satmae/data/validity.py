"""Which pixels to trust: nodata values and Sentinel-2 scene classes become the ``valid`` mask.

The mask is False where any band of a pixel is not finite (NaN or inf: float rasters use them
for gaps, and no model can use them), where a pixel carries the nodata value in every band, or
where the Level-2A
scene classification (SCL) says no data, saturated/defective, cloud shadow, medium or high
probability cloud, or thin cirrus. A :class:`ValidityPolicy` then decides whether a chip with too
many invalid pixels is kept, dropped (and counted) or reported as an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

SCL_CLASSES: dict[int, str] = {
    0: "no data",
    1: "saturated or defective",
    2: "dark area pixels",
    3: "cloud shadows",
    4: "vegetation",
    5: "not vegetated",
    6: "water",
    7: "unclassified",
    8: "cloud medium probability",
    9: "cloud high probability",
    10: "thin cirrus",
    11: "snow or ice",
}
"""Sen2Cor scene classification (SCL) values and their meaning."""

SCL_INVALID: frozenset[int] = frozenset({0, 1, 3, 8, 9, 10})
"""SCL classes that make a pixel invalid: no data, saturated, shadow, cloud, cirrus."""

DEFAULT_NODATA: float = 0.0
"""Sentinel-2 L1C/L2A products encode "no data" as 0; used when a file declares no nodata."""


def valid_mask(
    image: NDArray[Any] | Tensor,
    *,
    nodata: float | None = DEFAULT_NODATA,
    scl: NDArray[Any] | Tensor | None = None,
    invalid_classes: frozenset[int] = SCL_INVALID,
) -> Tensor:
    """Valid-pixel mask of an image from its nodata value and (optionally) its SCL layer.

    Args:
        image: reflectance ``(T, C, H, W)``.
        nodata: value marking missing pixels; a pixel is invalid when *every* band holds it
            (a legitimate 0 in one band does not invalidate the pixel). ``None`` disables this.
        scl: scene classes ``(T, H, W)`` on the same grid, or ``None``.
        invalid_classes: SCL values that make a pixel invalid.

    Returns:
        ``(T, H, W)`` bool tensor, True where the pixel can be used. Readers then zero the
        non-finite values (:func:`zero_nonfinite`), so the image never carries NaN.

    Raises:
        ValueError: if the shapes of ``image`` and ``scl`` do not match.
    """
    # numpy, not torch: small reductions in torch pay thread-pool overhead on every chip
    pixels = image.numpy() if isinstance(image, Tensor) else np.asarray(image)
    if pixels.ndim != 4:
        raise ValueError(f"expected image of shape (T, C, H, W), got {tuple(pixels.shape)}")
    frames, _, height, width = pixels.shape
    valid = np.ones((frames, height, width), dtype=bool)
    if np.issubdtype(pixels.dtype, np.floating):
        valid &= np.isfinite(pixels).all(axis=1)
    if nodata is not None:
        missing = np.isnan(pixels) if np.isnan(nodata) else pixels == nodata
        valid &= ~missing.all(axis=1)
    if scl is not None:
        classes = scl.numpy() if isinstance(scl, Tensor) else np.asarray(scl)
        if tuple(classes.shape) != (frames, height, width):
            raise ValueError(
                f"SCL layer of shape {tuple(classes.shape)} does not match the image's "
                f"(T, H, W) = {(frames, height, width)}; resample it onto the image grid"
            )
        valid &= ~np.isin(classes, sorted(invalid_classes))
    return torch.from_numpy(valid)


def zero_nonfinite(image: Tensor) -> Tensor:
    """Replace NaN and inf by 0 in place (the pixels are already invalid) and return ``image``."""
    if image.is_floating_point():
        torch.nan_to_num_(image, nan=0.0, posinf=0.0, neginf=0.0)
    return image


def invalid_fraction(valid: Tensor) -> float:
    """Fraction of pixels (over all frames) that are invalid."""
    return float(1.0 - valid.float().mean().item()) if valid.numel() else 1.0


@dataclass
class ValidityPolicy:
    """Keep, drop or reject chips whose invalid fraction exceeds a maximum.

    Args:
        max_invalid_fraction: largest tolerated fraction of invalid pixels, in [0, 1].
        on_exceed: ``"drop"`` skips the chip and counts it, ``"keep"`` keeps it and counts it,
            ``"raise"`` raises a ValueError naming the source.

    Attributes:
        kept: number of chips accepted.
        dropped: number of chips rejected under ``"drop"``.
        all_invalid: number of chips seen with no valid pixel at all.
        exceeded: number of chips above the maximum (kept or dropped).
    """

    max_invalid_fraction: float = 0.5
    on_exceed: Literal["drop", "keep", "raise"] = "drop"
    kept: int = field(default=0, init=False)
    dropped: int = field(default=0, init=False)
    all_invalid: int = field(default=0, init=False)
    exceeded: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.max_invalid_fraction <= 1.0:
            raise ValueError(
                f"max_invalid_fraction must lie in [0, 1], got {self.max_invalid_fraction}"
            )
        if self.on_exceed not in ("drop", "keep", "raise"):
            raise ValueError(f"on_exceed must be 'drop', 'keep' or 'raise', got {self.on_exceed!r}")

    def accept(self, sample: dict[str, Any], source: str = "chip") -> bool:
        """Whether to use ``sample``; updates the counts.

        Args:
            sample: a sample with a ``valid`` mask ``(T, H, W)``.
            source: file or chip id, used in the error message.

        Raises:
            ValueError: under ``on_exceed="raise"`` when the chip has too many invalid pixels
                (the message says whether it has none valid at all).
        """
        fraction = invalid_fraction(sample["valid"])
        if fraction >= 1.0:
            self.all_invalid += 1
        if fraction <= self.max_invalid_fraction:
            self.kept += 1
            return True
        self.exceeded += 1
        if self.on_exceed == "raise":
            what = (
                "has no valid pixel (all nodata or cloud)"
                if fraction >= 1.0
                else f"is {fraction:.1%} invalid"
            )
            raise ValueError(
                f"{source} {what}, above max_invalid_fraction={self.max_invalid_fraction}; "
                "choose another date or window, or use on_exceed='drop' to skip such chips"
            )
        if self.on_exceed == "drop":
            self.dropped += 1
            return False
        self.kept += 1
        return True

    def summary(self) -> str:
        """One line with the counts, for logs and progress bars."""
        return (
            f"kept {self.kept}, dropped {self.dropped} above {self.max_invalid_fraction:.0%} "
            f"invalid ({self.all_invalid} entirely invalid)"
        )
