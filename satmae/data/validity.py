"""Which pixels to trust: the one validity rule of every reader, and plausible values.

The rule (:func:`valid_mask`, applied by :func:`apply_validity`) is the same for every reader
(multi-band files, per-band products, cubes, torchgeo samples) and for the statistics and checks
that consume their samples. A pixel is invalid where

- any of its bands is not finite (NaN or +/-inf: float rasters use them for gaps, and no model
  can use them);
- it carries the nodata value in *every* band (a legitimate 0 in one band keeps it valid);
- the Level-2A scene classification (SCL) says no data, saturated/defective, cloud shadow,
  medium or high probability cloud, or thin cirrus.

Invalid pixels are False in ``valid``. Those whose values are no measurement (NaN/inf, nodata,
SCL no data or saturated/defective, padding past the edge) also hold 0 in every band of
``image``, so nothing downstream (a model, a statistic, a check) ever sees a NaN, an inf or a
nodata marker such as -9999. Cloud, shadow and cirrus pixels keep their reflectance: they are
real measurements (figures show them), only not of the ground.

:func:`implausible_values` is the content check: Sentinel-2 L1C/L2A digital numbers lie in
:data:`PLAUSIBLE_RANGE` once the offset is removed, so valid values outside it come from a file
that is corrupt in a way GDAL cannot see (bytes overwritten inside a tile) or that is not
Sentinel-2 reflectance. A :class:`ValidityPolicy` decides whether a chip with too many invalid
pixels is kept, dropped (and counted) or reported as an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from numpy.typing import NDArray
from rasterio.windows import Window
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


SCL_NO_MEASUREMENT: frozenset[int] = frozenset({0, 1})
"""SCL classes whose pixels hold no usable measurement (no data, saturated or defective); their
values are zero-filled like nodata. Cloud, shadow and cirrus pixels are measurements of the
wrong thing: invalid, but their reflectance is kept."""


def validity_masks(
    image: NDArray[Any] | Tensor,
    *,
    nodata: float | None = DEFAULT_NODATA,
    scl: NDArray[Any] | Tensor | None = None,
    invalid_classes: frozenset[int] = SCL_INVALID,
) -> tuple[Tensor, Tensor]:
    """The two masks of the validity rule, from one pass over the image.

    Args:
        image: reflectance ``(T, C, H, W)``.
        nodata: value marking missing pixels; a pixel is missing when *every* band holds it
            (a legitimate 0 in one band does not invalidate the pixel). ``None`` disables this.
        scl: scene classes ``(T, H, W)`` on the same grid, or ``None``.
        invalid_classes: SCL values that make a pixel invalid.

    Returns:
        ``(valid, measured)``, both ``(T, H, W)`` bool tensors: ``valid`` True where the pixel
        can be used; ``measured`` True where its values are a measurement (finite, not nodata,
        SCL neither no data nor defective) and must be kept, False where they are zero-filled.

    Raises:
        ValueError: if the image is not 4-D or the shapes of ``image`` and ``scl`` differ.
    """
    # numpy, not torch: small reductions in torch pay thread-pool overhead on every chip
    pixels = image.numpy() if isinstance(image, Tensor) else np.asarray(image)
    if pixels.ndim != 4:
        raise ValueError(f"expected image of shape (T, C, H, W), got {tuple(pixels.shape)}")
    frames, _, height, width = pixels.shape
    measured = np.ones((frames, height, width), dtype=bool)
    if np.issubdtype(pixels.dtype, np.floating):
        measured &= np.isfinite(pixels).all(axis=1)
    if nodata is not None:
        missing = np.isnan(pixels) if np.isnan(nodata) else pixels == nodata
        measured &= ~missing.all(axis=1)
    valid = measured
    if scl is not None:
        classes = scl.numpy() if isinstance(scl, Tensor) else np.asarray(scl)
        if tuple(classes.shape) != (frames, height, width):
            raise ValueError(
                f"SCL layer of shape {tuple(classes.shape)} does not match the image's "
                f"(T, H, W) = {(frames, height, width)}; resample it onto the image grid"
            )
        measured = measured & ~np.isin(classes, sorted(SCL_NO_MEASUREMENT))
        valid = measured & ~np.isin(classes, sorted(invalid_classes))
    return torch.from_numpy(valid), torch.from_numpy(measured)


def valid_mask(
    image: NDArray[Any] | Tensor,
    *,
    nodata: float | None = DEFAULT_NODATA,
    scl: NDArray[Any] | Tensor | None = None,
    invalid_classes: frozenset[int] = SCL_INVALID,
) -> Tensor:
    """Valid-pixel mask of an image from its values, nodata value and (optionally) SCL layer.

    Args:
        image: reflectance ``(T, C, H, W)``.
        nodata: see :func:`validity_masks`.
        scl: scene classes ``(T, H, W)`` on the same grid, or ``None``.
        invalid_classes: SCL values that make a pixel invalid.

    Returns:
        ``(T, H, W)`` bool tensor, True where the pixel can be used (see the module docstring).

    Raises:
        ValueError: if the shapes of ``image`` and ``scl`` do not match.
    """
    return validity_masks(image, nodata=nodata, scl=scl, invalid_classes=invalid_classes)[0]


def zero_fill(image: Tensor, keep: Tensor) -> Tensor:
    """Set every band of the pixels not in ``keep`` to 0, in place, and return ``image``.

    Args:
        image: ``(T, C, H, W)`` pixels.
        keep: ``(T, H, W)`` bool mask, the ``measured`` mask of :func:`validity_masks`.
    """
    if not bool(keep.all()):
        image.masked_fill_(~keep[:, None], 0)
    return image


def apply_validity(
    image: Tensor,
    *,
    nodata: float | None = DEFAULT_NODATA,
    scl: NDArray[Any] | Tensor | None = None,
    invalid_classes: frozenset[int] = SCL_INVALID,
) -> Tensor:
    """The validity rule in one call: the ``valid`` mask, with unmeasured pixels zero-filled.

    Args:
        image: ``(T, C, H, W)`` reflectance, changed in place (NaN/inf, nodata, SCL no data or
            defective pixels set to 0 in every band).
        nodata: see :func:`validity_masks`.
        scl: see :func:`validity_masks`.
        invalid_classes: see :func:`validity_masks`.

    Returns:
        ``(T, H, W)`` bool tensor, True where the pixel can be used.
    """
    valid, measured = validity_masks(image, nodata=nodata, scl=scl, invalid_classes=invalid_classes)
    zero_fill(image, measured)
    return valid


PLAUSIBLE_RANGE: tuple[float, float] = (-1000.0, 32767.0)
"""Smallest and largest value a valid Sentinel-2 L1C/L2A pixel can hold (digital numbers,
reflectance x 10000, offset removed). Real products stay within 0-20000 apart from bright
clouds and snow; the lower end leaves room for products whose offset was not removed."""


@dataclass(frozen=True)
class Implausible:
    """Values of one band outside :data:`PLAUSIBLE_RANGE`.

    Attributes:
        band: the band's name.
        count: how many values lie outside the range.
        minimum: the smallest value of the band.
        maximum: the largest value of the band.
    """

    band: str
    count: int
    minimum: float
    maximum: float

    def describe(self, low: float = PLAUSIBLE_RANGE[0], high: float = PLAUSIBLE_RANGE[1]) -> str:
        """One phrase: ``"B04: 312 values outside [-1000, 32767] (min 0, max 61234)"``."""
        return (
            f"{self.band}: {self.count} value(s) outside [{low:g}, {high:g}] "
            f"(min {self.minimum:g}, max {self.maximum:g})"
        )


IMPLAUSIBLE_HINT = (
    "no Sentinel-2 L1C/L2A pixel holds such values: the file is corrupt in a way GDAL cannot "
    "see (re-download it) or is not Sentinel-2 reflectance x 10000 (declare its nodata, or "
    "leave it out)"
)


def describe_window(window: Window | None) -> str:
    """`` (window col 0, row 0, 64x64)`` for messages; empty for a whole source."""
    if window is None:
        return ""
    return (
        f" (window col {int(window.col_off)}, row {int(window.row_off)}, "
        f"{int(window.width)}x{int(window.height)})"
    )


def implausible_values(
    image: Tensor,
    bands: tuple[str, ...] | list[str],
    value_range: tuple[float, float] = PLAUSIBLE_RANGE,
) -> list[Implausible]:
    """Bands whose values leave the plausible Sentinel-2 range (the content check).

    Cheap by design: one minimum and maximum of the whole image; bands are examined and values
    counted only for an image that fails. Unmeasured pixels hold 0 after
    :func:`apply_validity`, so they never count; clouds are measurements and do.

    Args:
        image: ``(T, C, H, W)`` pixels after the validity rule.
        bands: the C band names.
        value_range: (lowest, highest) plausible value.

    Returns:
        One entry per failing band, in channel order; empty when every value is plausible.
    """
    if image.numel() == 0:
        return []
    low, high = value_range
    smallest, largest = torch.aminmax(image)  # one pass over memory in its own order
    if smallest >= low and largest <= high:
        return []
    found = []
    for channel, band in enumerate(bands):  # only for a file that fails: per band, counted
        values = image[:, channel]
        minimum, maximum = torch.aminmax(values)
        if minimum < low or maximum > high:
            count = int(((values < low) | (values > high)).sum())
            found.append(Implausible(band, count, float(minimum), float(maximum)))
    return found


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
