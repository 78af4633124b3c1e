"""The checks of one sample against statistics, of grids across files, and :func:`check_sample`.

:func:`check_sample` runs every per-sample check of the package: the band checks of
:mod:`satmae.data.checks.bands`, the model checks of :mod:`satmae.data.checks.model`, and the
scale, band-mean, nodata and date checks defined here.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from satmae.bands import SENTINEL2_BANDS
from satmae.data.checks.bands import (
    CheckResult,
    Status,
    check_correlations,
    check_nir_pair,
    check_resolution,
    reflectance_scale,
)
from satmae.data.checks.model import check_model, check_normalization, model_view
from satmae.data.checks.offset import check_offset
from satmae.data.grid import Grid, same_crs
from satmae.data.stats import BandStats
from satmae.spec import ModelSpec


def check_scale(
    sample: dict[str, Any], stats: BandStats | None, source: str = "", dtype: str | None = None
) -> list[CheckResult]:
    """Compare the reflectance encoding of the pixels with the statistics in use."""
    found = reflectance_scale(sample)
    note = f" (stored as {dtype})" if dtype else ""
    if stats is None:
        return [CheckResult("reflectance scale", "ok", f"pixels look {found}{note}", source)]
    reference_bands = [b for b in stats.bands if b != "B10"]
    expected = "x10000" if np.median([stats.mean[b] for b in reference_bands]) > 50 else "x1"
    if found != expected:
        hint = {
            "x1": "multiply by 10000 (or use stats computed on this data)",
            "0-255": "8-bit previews are not reflectance: read the original 16-bit bands",
            "x10000": "divide by 10000 (or use stats computed on this data)",
        }.get(found, "")
        return [
            CheckResult(
                "reflectance scale",
                "error",
                f"pixels look {found}{note} but the statistics in use expect {expected}; {hint}",
                source,
            )
        ]
    return [
        CheckResult(
            "reflectance scale",
            "ok",
            f"pixels look {found}{note}, as the statistics expect",
            source,
        )
    ]


def check_band_means(
    sample: dict[str, Any], stats: BandStats, source: str = ""
) -> list[CheckResult]:
    """Warn about bands whose mean is far (> 4 std) from the reference mean of their name."""
    image, valid = sample["image"], sample.get("valid")
    far = []
    for channel, band in enumerate(sample["bands"]):
        if band not in stats.mean:
            continue
        pixels = image[:, channel][valid] if valid is not None else image[:, channel]
        if pixels.numel() == 0:
            continue
        score = (float(pixels.mean()) - stats.mean[band]) / stats.std[band]
        if abs(score) > 4:
            far.append(f"{band} mean is {score:+.1f} std from the reference")
    if far:
        return [
            CheckResult(
                "band means",
                "warn",
                "; ".join(far) + " — another band in this "
                "slot, another product level, or an unusual scene",
                source,
            )
        ]
    return [
        CheckResult("band means", "ok", "every band mean is within 4 std of the reference", source)
    ]


def check_validity(sample: dict[str, Any], source: str = "") -> list[CheckResult]:
    """Report the fraction of invalid (nodata, cloud) pixels."""
    valid = sample.get("valid")
    if valid is None:
        return [CheckResult("nodata", "skip", "sample has no valid mask", source)]
    fraction = 1.0 - float(valid.float().mean()) if valid.numel() else 1.0
    if fraction >= 1.0:
        return [
            CheckResult(
                "nodata",
                "error",
                "no valid pixel: everything is nodata or cloud; "
                "check the nodata value or choose another date/window",
                source,
            )
        ]
    status: Status = "warn" if fraction > 0.5 else "ok"
    return [CheckResult("nodata", status, f"{fraction:.1%} of pixels invalid", source)]


def check_times(sample: dict[str, Any], source: str = "") -> list[CheckResult]:
    """Times must exist for series, be unique and increase."""
    times = sample.get("times")
    if times is None:
        frames = sample["image"].shape[0]
        status: Status = "warn" if frames > 1 else "ok"
        return [
            CheckResult(
                "dates",
                status,
                f"no acquisition times ({frames} frame(s)); temporal models need them",
                source,
            )
        ]
    values = times.tolist()
    if any(later <= earlier for earlier, later in itertools.pairwise(values)):
        return [
            CheckResult(
                "dates",
                "error",
                f"times {values} are not strictly increasing; "
                "sort frames by date and drop duplicates",
                source,
            )
        ]
    return [CheckResult("dates", "ok", f"{len(values)} date(s), increasing", source)]


def check_grids(grids: Sequence[tuple[str, Grid]]) -> list[CheckResult]:
    """Compare CRSs and pixel grids across files or dates of one dataset."""
    if len(grids) < 2:
        return []
    first_name, first = grids[0]
    problems, different = [], []
    for name, grid in grids[1:]:
        if (grid.crs is None) != (first.crs is None):
            problems.append(
                f"{name} has {'no' if grid.crs is None else 'a'} CRS, "
                f"{first_name} {'no' if first.crs is None else 'a'} CRS"
            )
        elif not same_crs(grid.crs, first.crs) or first.aligned_offset(grid) is None:
            different.append(name)
    if problems:
        return [
            CheckResult(
                "grids and CRSs",
                "error",
                "; ".join(problems) + " — georeference "
                "every file (gdal_edit.py -a_srs ... -a_ullr ...)",
            )
        ]
    if different:
        return [
            CheckResult(
                "grids and CRSs",
                "warn",
                f"{len(different)} of {len(grids)} files are on another grid or CRS than "
                f"{first_name} (e.g. {different[0]}); readers will reproject them onto one grid",
            )
        ]
    return [CheckResult("grids and CRSs", "ok", f"{len(grids)} files share one CRS and pixel grid")]


def check_sample(
    sample: dict[str, Any],
    *,
    stats: BandStats | None = None,
    model: ModelSpec | None = None,
    source: str = "",
    dtype: str | None = None,
) -> list[CheckResult]:
    """Run every per-sample check.

    Args:
        sample: the data to check (``image (T, C, H, W)`` as stored, not normalised).
        stats: the normalisation statistics in use (default: the model's, if any).
        model: what the model expects, from :func:`satmae.spec.load_spec`; the statistics
            checks then cover only the bands the model uses.
        source: file or sample name for the report.
        dtype: the stored data type of the source, for the report.
    """
    if stats is None and model is not None and model.normalization is not None:
        stats = model.normalization.stats
    results: list[CheckResult] = []
    unknown = [band for band in sample["bands"] if band not in SENTINEL2_BANDS]
    if unknown:
        results.append(CheckResult("band names", "error", f"unknown bands {unknown}", source))
    else:
        results.append(CheckResult("band names", "ok", " ".join(sample["bands"]), source))
    if model is not None:
        results += check_model(sample, model, source)
    results += check_times(sample, source)
    results += check_validity(sample, source)
    if results[-1].status == "error":
        return results
    results += check_resolution(sample, source)
    results += check_nir_pair(sample, source)
    results += check_correlations(sample, source)
    results += check_scale(sample, stats, source, dtype)
    results += check_offset(sample, source)
    if model is not None:
        sample = model_view(sample, model)
    if stats is not None and all(b in stats.mean for b in sample["bands"]):
        results += check_band_means(sample, stats, source)
        results += check_normalization(sample, stats, source)
    elif stats is not None:
        lacking = [b for b in sample["bands"] if b not in stats.mean]
        results.append(
            CheckResult("normalised mean/std", "warn", f"statistics lack bands {lacking}", source)
        )
    return results
