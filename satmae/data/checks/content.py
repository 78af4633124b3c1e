"""The content check: are the values of a file plausible Sentinel-2 reflectance at all?

Corruption that GDAL cannot see (bytes overwritten inside a compressed tile) decodes without an
error into values no Sentinel-2 product holds. One minimum and maximum per band
(:func:`~satmae.data.validity.implausible_values`) finds them before any statistic is computed,
so ``satmae check`` flags the file, the band, the window and the count instead of a band mean
that is far off.
"""

from __future__ import annotations

from typing import Any

from rasterio.windows import Window

from satmae.data.checks.bands import CheckResult
from satmae.data.validity import (
    IMPLAUSIBLE_HINT,
    PLAUSIBLE_RANGE,
    describe_window,
    implausible_values,
)


def check_content(
    sample: dict[str, Any], source: str = "", window: Window | None = None
) -> list[CheckResult]:
    """Error when valid values leave :data:`~satmae.data.validity.PLAUSIBLE_RANGE`.

    Args:
        sample: a sample as read (``image (T, C, H, W)``, invalid pixels zero-filled).
        source: file or sample name for the report.
        window: the window that was read, named in the report.
    """
    found = implausible_values(sample["image"], sample["bands"])
    where = describe_window(window).strip(" ()")
    if found:
        detail = "; ".join(item.describe() for item in found)
        return [
            CheckResult(
                "plausible values",
                "error",
                f"{detail}{' in ' + where if where else ''} — {IMPLAUSIBLE_HINT}",
                source,
            )
        ]
    low, high = PLAUSIBLE_RANGE
    return [
        CheckResult(
            "plausible values",
            "ok",
            f"every valid value lies in [{low:g}, {high:g}]{' in ' + where if where else ''}",
            source,
        )
    ]
