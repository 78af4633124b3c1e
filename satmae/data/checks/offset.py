"""Is the Sentinel-2 offset of processing baseline 04.00+ still in the pixels?

Products of baseline 04.00 and later store ``DN = reflectance x 10000 + 1000``. The readers
remove that offset when the product says so (:mod:`satmae.data.readers.offset`); data that lost
its metadata on the way (a GeoTIFF exported from such a product, a cube) keeps it, shifted by
0.1 reflectance. Dark water and shadow then never fall below ~1000: the darkest percentile of
every visible and near-infrared band sits above the offset.
"""

from __future__ import annotations

from typing import Any

import torch

from satmae.data.checks.bands import CheckResult, reflectance_scale

DARK_BANDS: tuple[str, ...] = ("B02", "B03", "B04", "B08")
"""Visible and NIR bands in which dark water and shadow fall well below 1000 (0.1)."""

DARK_PERCENTILE = 1.0
"""Percentile of the valid pixels that stands for the dark end of a band."""

OFFSET_FLOOR = 1000.0
"""The offset in DN: a dark end above it in every band suggests the offset is still in."""


def check_offset(sample: dict[str, Any], source: str = "") -> list[CheckResult]:
    """Warn when pixel statistics show an unapplied Sentinel-2 offset.

    Args:
        sample: the data as read (``image (T, C, H, W)``, ``bands``, ``valid``, and
            ``harmonized`` from the readers).
        source: file or sample name for the report.
    """
    removed = [entry["source"] for entry in sample.get("harmonized", ()) if entry]
    if removed:
        detail = f"offset removed as declared by {removed[0]}"
        return [CheckResult("S2 offset", "ok", detail, source)]
    channels = [i for i, band in enumerate(sample["bands"]) if band in DARK_BANDS]
    if not channels or reflectance_scale(sample) != "x10000":
        return [CheckResult("S2 offset", "skip", "no x10000 visible/NIR bands", source)]
    image, valid = sample["image"], sample.get("valid")
    darkest: dict[str, float] = {}
    for channel in channels:
        pixels = image[:, channel][valid] if valid is not None else image[:, channel]
        if pixels.numel():
            step = max(1, pixels.numel() // 1_000_000)
            level = torch.quantile(pixels.reshape(-1)[::step].float(), DARK_PERCENTILE / 100)
            darkest[sample["bands"][channel]] = float(level)
    if darkest and min(darkest.values()) >= OFFSET_FLOOR:
        levels = ", ".join(f"{band} {value:.0f}" for band, value in darkest.items())
        return [
            CheckResult(
                "S2 offset",
                "warn",
                f"the darkest {DARK_PERCENTILE:g}% of pixels is above {OFFSET_FLOOR:.0f} in every "
                f"visible/NIR band ({levels}): this looks like processing baseline >= 04.00 data "
                "with its +1000 offset still in (or a scene without water or shadow). Read the "
                "original product (with MTD_MSIL2A.xml/MTD_MSIL1C.xml, or _N0400_ or later in "
                "the name) so the readers remove it, or subtract 1000 from every band",
                source,
            )
        ]
    return [CheckResult("S2 offset", "ok", "dark pixels reach below the offset", source)]
