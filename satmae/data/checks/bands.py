"""Band checks that read the pixels, not the metadata: is each band what its name says?

- **effective resolution**: the roughness of a band (mean squared difference of neighbouring
  pixels over twice its variance) is several times higher for a native 10 m band than for a
  20 m band resampled to 10 m, and again for 20 m over 60 m. A band is flagged when it is
  smoother than the median band of a coarser group or rougher than the median band of a finer
  group (a 60 m band in a 10 m slot, a 10 m band in a 20 m slot). The rule raises nothing on
  the 11 real OSCD cities and 6 BigEarthNet patches; on samples smaller than
  :data:`RESOLUTION_MIN_SIZE` pixels a side it only warns, since there it is not reliable;
- **B08 vs B8A**: B08 (10 m) is 2.5-4.7x rougher than B8A (20 m) in all 28 real frames; the
  opposite order means the two are swapped;
- **inter-band correlations**: compared with the mean correlations of the real samples
  (``satmae/resources/band_correlation_s2.json``); a swap of two bands from different spectral
  regions (B05/B06, B01/B09) stands out, neighbours do not;
- **reflectance scale**: x10000, x1 or 0-255 from the 99th percentile of the valid pixels.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

import numpy as np
import torch

from satmae.bands import resolution

Status = Literal["ok", "warn", "error", "skip"]

RESOLUTION_CONTRAST = 1.6
"""Minimum ratio of median roughness between the 10 m and 20 m groups for the pixel-based
resolution check to run (data resampled to a coarse grid has no contrast left). The 28 real
frames (OSCD and BigEarthNet) range from 2.1 to 7.8."""


RESOLUTION_MIN_SIZE = 128
"""Smallest sample side (pixels) on which the resolution check may report an error. Below it a
60 m band has about 20 independent pixels a side and its roughness is noise: on the demo scenes
(seeds 0-5, all dates) 1-4 of 36 frames per size from 64 to 120 pixels were falsely flagged,
none at 128. Smaller samples get a warning instead."""


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one check.

    Attributes:
        check: short name of the check, e.g. ``"band resolution"``.
        status: ``"ok"``, ``"warn"``, ``"error"`` or ``"skip"``.
        detail: what was found and, for warnings and errors, how to fix it.
        source: the file or sample the result is about.
    """

    check: str
    status: Status
    detail: str
    source: str = ""


def roughness(band: np.ndarray[Any, Any], valid: np.ndarray[Any, Any] | None = None) -> float:
    """High-frequency energy of one band ``(H, W)``: E[(neighbour difference)^2] / (2 var).

    About 1 for white noise and near 0 for smooth (upsampled) images; only pairs of valid
    pixels count.
    """
    values = band.astype(np.float64)
    keep = np.ones(values.shape, bool) if valid is None else valid
    dx = (values[:, 1:] - values[:, :-1])[keep[:, 1:] & keep[:, :-1]]
    dy = (values[1:] - values[:-1])[keep[1:] & keep[:-1]]
    variance = values[keep].var() if keep.any() else 0.0
    if variance <= 0 or dx.size + dy.size == 0:
        return math.nan
    return float((np.concatenate([dx, dy]) ** 2).mean() / (2 * variance))


def _band_roughness(sample: dict[str, Any]) -> dict[str, float]:
    image = sample["image"]
    valid = sample.get("valid")
    values: dict[str, list[float]] = {}
    for frame in range(image.shape[0]):
        mask = valid[frame].numpy() if valid is not None else None
        for channel, band in enumerate(sample["bands"]):
            value = roughness(image[frame, channel].numpy(), mask)
            if math.isfinite(value) and value > 0:
                values.setdefault(band, []).append(value)
    return {band: float(np.median(v)) for band, v in values.items()}


def check_resolution(sample: dict[str, Any], source: str = "") -> list[CheckResult]:
    """Flag bands whose pixels look coarser or finer than their name's native resolution."""
    rough = _band_roughness(sample)
    groups: dict[int, list[str]] = {}
    for band in rough:
        groups.setdefault(resolution(band), []).append(band)
    if len(groups.get(10, [])) < 2 or len(groups.get(20, [])) < 2:
        return [
            CheckResult(
                "band resolution",
                "skip",
                "needs at least two 10 m and two 20 m bands to compare",
                source,
            )
        ]
    medians = {res: float(np.median([rough[b] for b in bands])) for res, bands in groups.items()}
    contrast = medians[10] / medians[20]
    if contrast < RESOLUTION_CONTRAST:
        return [
            CheckResult(
                "band resolution",
                "skip",
                f"10 m bands are only {contrast:.1f}x rougher than 20 m bands: the stack is not on "
                "a native 10 m grid (resampled to 20 m or coarser?), so resolution cannot be told "
                "from the pixels",
                source,
            )
        ]
    wrong = []
    for band, value in rough.items():
        declared = resolution(band)
        for other in (10, 20, 60):
            members = [rough[b] for b in groups.get(other, []) if b != band]
            if other == declared or len(members) < 2:
                continue
            centre = float(np.median(members))
            finer_than_declared = other < declared and value > centre
            coarser_than_declared = other > declared and value < centre
            if declared == 60 and other == 20:
                continue  # B10 (cirrus) is noisy: 60 m bands are not told from 20 m ones
            if finer_than_declared or coarser_than_declared:
                wrong.append(f"{band} (a {declared} m band) looks like a {other} m band")
                break
    if wrong:
        height, width = sample["image"].shape[-2:]
        if min(height, width) < RESOLUTION_MIN_SIZE:
            return [
                CheckResult(
                    "band resolution",
                    "warn",
                    "; ".join(wrong) + f". On a {height}x{width} sample (below "
                    f"{RESOLUTION_MIN_SIZE}x{RESOLUTION_MIN_SIZE}) a 60 m band has too few "
                    "pixels for this check to be reliable, so this is a warning, not an error; "
                    "check a larger window (satmae check --size) to confirm the band order",
                    source,
                )
            ]
        return [
            CheckResult(
                "band resolution",
                "error",
                "; ".join(wrong) + ". The band order is probably wrong (e.g. B8A read as B08, or a "
                "60 m band in a 10 m slot): declare the file's real band order",
                source,
            )
        ]
    return [
        CheckResult(
            "band resolution",
            "ok",
            f"every band's sharpness matches its native resolution (10 m/20 m contrast "
            f"{contrast:.1f}x)",
            source,
        )
    ]


def check_nir_pair(sample: dict[str, Any], source: str = "") -> list[CheckResult]:
    """B08 (10 m) must be sharper than B8A (20 m); the reverse means they are swapped."""
    bands = sample["bands"]
    if "B08" not in bands or "B8A" not in bands:
        return [CheckResult("B08/B8A order", "skip", "needs both B08 and B8A", source)]
    rough = _band_roughness(sample)
    if "B08" not in rough or "B8A" not in rough:
        return [CheckResult("B08/B8A order", "skip", "B08 or B8A is constant", source)]
    ratio = rough["B08"] / rough["B8A"]
    if ratio < 1.0:
        return [
            CheckResult(
                "B08/B8A order",
                "error",
                f"the B08 channel is {1 / ratio:.1f}x smoother than the B8A channel; B08 is the "
                "10 m band, so the two look swapped — fix the declared band order",
                source,
            )
        ]
    if ratio < 1.5:
        return [
            CheckResult(
                "B08/B8A order",
                "warn",
                f"B08 is only {ratio:.1f}x rougher than B8A (2.5-4.7x on native 10 m data): "
                "the data may be resampled to 20 m, or the bands swapped",
                source,
            )
        ]
    return [CheckResult("B08/B8A order", "ok", f"B08 is {ratio:.1f}x rougher than B8A", source)]


def reflectance_scale(sample: dict[str, Any]) -> str:
    """Guess the reflectance encoding of the valid pixels: ``"x10000"``, ``"x1"`` or ``"0-255"``."""
    image, valid = sample["image"], sample.get("valid")
    channels = [i for i, band in enumerate(sample["bands"]) if band != "B10"] or [0]
    values = image[:, channels].permute(0, 2, 3, 1)  # (T, H, W, C)
    if valid is not None:
        values = values[valid]
    values = values.reshape(-1)
    if values.numel() == 0:
        return "unknown"
    high = float(torch.quantile(values[:: max(1, values.numel() // 1_000_000)].float(), 0.99))
    integer = bool(torch.all(values == torch.round(values)))
    if high <= 2.0:
        return "x1"
    if high <= 255 and integer:
        return "0-255"
    return "x10000"


SWAP_IMPROVEMENT = 0.1
"""Relative drop in distance to the reference correlations that a band swap must bring before
it is reported. Unswapped real frames reach at most 0.02 (leave-one-city-out); swapping B05/B06
or B01/B09 gives 0.4 (flagged in 26 of 28 frames); neighbours such as B02/B03, B02/B04 or
B11/B12 stay near 0.01 and are not caught this way."""


def band_correlations(sample: dict[str, Any]) -> tuple[tuple[str, ...], np.ndarray[Any, Any]]:
    """Pearson correlation between the bands of a sample's valid pixels, averaged over frames.

    Returns:
        The bands and their ``(C, C)`` correlation matrix.
    """
    image, valid = sample["image"], sample.get("valid")
    matrices = []
    for frame in range(image.shape[0]):
        pixels = image[frame].reshape(image.shape[1], -1).numpy().astype(np.float64)
        if valid is not None:
            pixels = pixels[:, valid[frame].reshape(-1).numpy()]
        if pixels.shape[1] > 2 and np.all(pixels.std(axis=1) > 0):
            matrices.append(np.corrcoef(pixels))
    if not matrices:
        return tuple(sample["bands"]), np.full((image.shape[1], image.shape[1]), np.nan)
    return tuple(sample["bands"]), np.mean(matrices, axis=0)


def _reference_correlations() -> tuple[tuple[str, ...], np.ndarray[Any, Any]]:
    resource = resources.files("satmae.resources").joinpath("band_correlation_s2.json")
    data = json.loads(resource.read_text(encoding="utf-8"))
    return tuple(data["bands"]), np.asarray(data["matrix"], dtype=np.float64)


def check_correlations(sample: dict[str, Any], source: str = "") -> list[CheckResult]:
    """Warn when swapping two bands makes their correlations match real Sentinel-2 far better."""
    reference_bands, reference = _reference_correlations()
    names = [band for band in sample["bands"] if band in reference_bands]
    if len(names) < 4:
        return [
            CheckResult(
                "band correlations",
                "skip",
                "needs 4 or more of the bands B01-B12 (B10 excluded)",
                source,
            )
        ]
    bands, matrix = band_correlations(sample)
    own = [bands.index(band) for band in names]
    ref = [reference_bands.index(band) for band in names]
    observed, expected = matrix[np.ix_(own, own)], reference[np.ix_(ref, ref)]
    if not np.all(np.isfinite(observed)):
        return [CheckResult("band correlations", "skip", "a band is constant", source)]
    base = float(np.abs(observed - expected).sum())
    best, pair = 0.0, ("", "")
    for first, second in itertools.combinations(range(len(names)), 2):
        order = list(range(len(names)))
        order[first], order[second] = second, first
        gain = base - float(np.abs(observed[np.ix_(order, order)] - expected).sum())
        if gain > best:
            best, pair = gain, (names[first], names[second])
    relative = best / base if base > 0 else 0.0
    if relative >= SWAP_IMPROVEMENT:
        return [
            CheckResult(
                "band correlations",
                "warn",
                f"the {pair[0]} and {pair[1]} channels correlate with the other bands the way "
                f"the other one should ({relative:.0%} closer to real Sentinel-2 if swapped); "
                "check the declared band order",
                source,
            )
        ]
    return [
        CheckResult(
            "band correlations",
            "ok",
            "inter-band correlations look like Sentinel-2 in this order",
            source,
        )
    ]
