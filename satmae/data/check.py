"""The checks behind ``satmae check``: does this data match what a model expects?

Each check returns a :class:`CheckResult` (``ok``, ``warn``, ``error`` or ``skip``) with a
sentence a user can act on. The pixel-based band checks (effective resolution, B08/B8A order,
reflectance scale) live in :mod:`satmae.data.band_checks`; this module adds the checks against
statistics and a model bundle (read as JSON, without importing the model code), grids across
files, and :func:`check_sample`, which runs them all.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from satmae.bands import SENTINEL2_BANDS, canonical_bands
from satmae.data.band_checks import (
    CheckResult,
    Status,
    check_correlations,
    check_nir_pair,
    check_resolution,
    reflectance_scale,
)
from satmae.data.grid import Grid, same_crs
from satmae.data.stats import BandStats, Normalize

__all__ = [
    "CheckResult",
    "ModelSpec",
    "Status",
    "check_band_means",
    "check_correlations",
    "check_grids",
    "check_model",
    "check_nir_pair",
    "check_normalization",
    "check_resolution",
    "check_sample",
    "check_scale",
    "check_times",
    "check_validity",
    "load_model_spec",
    "reflectance_scale",
]


@dataclass(frozen=True)
class ModelSpec:
    """What a model bundle expects of its input (read from ``config.json``, no model import).

    Attributes:
        bands: canonical bands in the model's channel order.
        band_groups: the model's band groups.
        patch_size: patch size in pixels.
        img_size: (H, W) the model was built for.
        normalization: the statistics that travel with the model, if any.
        path: the bundle directory.
    """

    bands: tuple[str, ...]
    band_groups: tuple[tuple[str, ...], ...]
    patch_size: int
    img_size: tuple[int, int]
    normalization: BandStats | None
    path: str


def load_model_spec(bundle: str | Path) -> ModelSpec:
    """Read a model bundle's ``config.json`` as JSON.

    Raises:
        FileNotFoundError: if the bundle or its config is missing.
        ValueError: if the config is not a satmae bundle or lacks required keys.
    """
    path = Path(bundle)
    config_path = path / "config.json" if path.is_dir() else path
    if not config_path.is_file():
        raise FileNotFoundError(f"model bundle {path} has no config.json")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
        bands = canonical_bands(config["bands"])
        groups = tuple(canonical_bands(group) for group in config.get("band_groups") or [bands])
        patch = int(config["patch_size"])
        height, width = (int(v) for v in config["img_size"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise ValueError(
            f"{config_path} is not a satmae model bundle config ({error}); it needs bands, "
            "band_groups, patch_size and img_size"
        ) from None
    if config.get("format", "satmae-bundle") != "satmae-bundle":
        raise ValueError(f"{config_path} has format {config.get('format')!r}, not satmae-bundle")
    normalization = config.get("normalization")
    stats = BandStats.from_dict(normalization, str(config_path)) if normalization else None
    return ModelSpec(bands, groups, patch, (height, width), stats, str(path))


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


def check_normalization(
    sample: dict[str, Any], stats: BandStats, source: str = ""
) -> list[CheckResult]:
    """Mean and std of each band after normalising with ``stats`` should be near 0 and 1."""
    normalised = Normalize(stats)(sample)["image"]
    valid = sample.get("valid")
    bad, odd = [], []
    for channel, band in enumerate(sample["bands"]):
        pixels = normalised[:, channel][valid] if valid is not None else normalised[:, channel]
        if pixels.numel() < 2:
            continue
        mean, std = float(pixels.mean()), float(pixels.std())
        text = f"{band}: mean {mean:+.2f}, std {std:.2f}"
        if abs(mean) > 5 or std < 0.01 or std > 50:
            bad.append(text)
        elif abs(mean) > 2 or not 0.1 <= std <= 5:
            odd.append(text)
    if bad:
        return [
            CheckResult(
                "normalised mean/std",
                "error",
                "; ".join(bad) + " — the statistics do not fit this data (scale x10000 vs x1, "
                "divide-by-255, wrong bands?)",
                source,
            )
        ]
    if odd:
        return [CheckResult("normalised mean/std", "warn", "; ".join(odd), source)]
    return [CheckResult("normalised mean/std", "ok", "all bands near mean 0, std 1", source)]


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


def check_model(sample: dict[str, Any], model: ModelSpec, source: str = "") -> list[CheckResult]:
    """The model's bands must be present; image sizes must fit its patch size."""
    results = []
    bands = sample["bands"]
    if missing := [band for band in model.bands if band not in bands]:
        results.append(
            CheckResult(
                "model bands",
                "error",
                f"model needs {list(model.bands)} but the data lacks {missing}; "
                f"it has {list(bands)}",
                source,
            )
        )
    else:
        extra = [band for band in bands if band not in model.bands]
        note = f" (extra bands {extra} are ignored)" if extra else ""
        results.append(
            CheckResult(
                "model bands",
                "ok",
                f"all {len(model.bands)} model bands present, matched by name{note}",
                source,
            )
        )
    height, width = sample["image"].shape[-2:]
    if height < model.patch_size or width < model.patch_size:
        results.append(
            CheckResult(
                "image size",
                "error",
                f"image {height}x{width} is smaller than one {model.patch_size}px patch",
                source,
            )
        )
    elif height % model.patch_size or width % model.patch_size:
        results.append(
            CheckResult(
                "image size",
                "warn",
                f"image {height}x{width} is not divisible by patch_size={model.patch_size}; chips "
                f"of {model.img_size[0]}x{model.img_size[1]} will be cut from it",
                source,
            )
        )
    else:
        results.append(
            CheckResult(
                "image size",
                "ok",
                f"{height}x{width}, divisible by patch_size={model.patch_size}",
                source,
            )
        )
    return results


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
        model: what the model expects, from :func:`load_model_spec`.
        source: file or sample name for the report.
        dtype: the stored data type of the source, for the report.
    """
    stats = stats or (model.normalization if model else None)
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
    if stats is not None and all(b in stats.mean for b in sample["bands"]):
        results += check_band_means(sample, stats, source)
        results += check_normalization(sample, stats, source)
    elif stats is not None:
        lacking = [b for b in sample["bands"] if b not in stats.mean]
        results.append(
            CheckResult("normalised mean/std", "warn", f"statistics lack bands {lacking}", source)
        )
    return results
