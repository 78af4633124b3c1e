"""Generation of the synthetic Sentinel-2 scene: land cover, spectra, phenology, clouds.

Everything here works in memory (:func:`generate_demo_arrays`); :mod:`.files` writes it out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray

from satmae.bands import L2A_BANDS, SENTINEL2_BANDS

LAND_COVER_CLASSES: dict[int, str] = {
    1: "water",
    2: "forest",
    3: "cropland",
    4: "grassland",
    5: "urban",
    6: "bare_soil",
}
"""Land-cover class id -> name in the label rasters (0 is unused)."""

SCL_CLASSES: dict[int, str] = {
    0: "no_data",
    1: "saturated_or_defective",
    2: "dark_area_pixels",
    3: "cloud_shadows",
    4: "vegetation",
    5: "not_vegetated",
    6: "water",
    7: "unclassified",
    8: "cloud_medium_probability",
    9: "cloud_high_probability",
    10: "thin_cirrus",
    11: "snow",
}
"""Sentinel-2 L2A scene classification (SCL) codes, as written by Sen2Cor."""

REFLECTANCE_SCALE = 10_000
"""Stored digital number per unit reflectance (Sentinel-2 L2A convention)."""

NODATA = 0
"""Stored value of nodata pixels in the reflectance files."""

ACQUISITION_HOUR_UTC = (10, 30)
"""Sentinel-2's descending-node local time, used as the acquisition time of every date."""

# Reflectance spectra (0..1) in L2A_BANDS order: B01 B02 B03 B04 B05 B06 B07 B08 B8A B09 B11 B12.
_SPECTRA: dict[str, tuple[float, ...]] = {
    "water": (0.060, 0.050, 0.045, 0.030, 0.025, 0.020, 0.018, 0.015, 0.012, 0.008, 0.006, 0.004),
    "green_vegetation": (
        0.025, 0.030, 0.060, 0.030, 0.090, 0.240, 0.300, 0.340, 0.350, 0.330, 0.190, 0.090,
    ),
    "forest": (0.020, 0.025, 0.045, 0.025, 0.070, 0.200, 0.260, 0.300, 0.310, 0.300, 0.150, 0.070),
    "dormant_vegetation": (
        0.050, 0.060, 0.080, 0.100, 0.130, 0.170, 0.190, 0.210, 0.220, 0.220, 0.280, 0.200,
    ),
    "urban": (0.100, 0.100, 0.110, 0.120, 0.130, 0.140, 0.150, 0.160, 0.160, 0.150, 0.180, 0.160),
    "bare_soil": (
        0.080, 0.090, 0.120, 0.160, 0.190, 0.210, 0.230, 0.250, 0.260, 0.260, 0.320, 0.280,
    ),
    "cloud": (0.550, 0.560, 0.560, 0.570, 0.570, 0.570, 0.570, 0.580, 0.580, 0.500, 0.420, 0.320),
}  # fmt: skip

_SURFACE_TEXTURE = 0.05
"""Relative per-pixel reflectance variation at 10 m (trees, roofs, furrows), fixed over time."""

_SENSOR_NOISE = 0.003
"""Standard deviation of the reflectance noise per native pixel of each band."""

_CLASS_PROBABILITIES: dict[str, float] = {
    "water": 0.07,
    "forest": 0.23,
    "cropland": 0.30,
    "grassland": 0.20,
    "urban": 0.12,
    "bare_soil": 0.08,
}

# Changes applied to a few patches between the first and the last date: (from, to).
_CHANGES: tuple[tuple[str, str], ...] = (
    ("forest", "bare_soil"),  # clear-cut
    ("cropland", "urban"),  # construction
    ("grassland", "water"),  # new reservoir or flooding
    ("bare_soil", "urban"),
)


@dataclass(frozen=True)
class DemoConfig:
    """Parameters of the synthetic demo set.

    Attributes:
        seed: random seed; the same seed gives byte-identical pixels.
        size: width and height in 10 m pixels.
        num_dates: number of acquisition dates spread over the growing season.
        year: calendar year of the acquisitions.
        season: first and last day of year of the acquisitions.
        max_cloud_fraction: largest cloud cover of any date (the first date is always clear).
        nodata_fraction: approximate share of the area in the nodata wedge at the swath edge.
    """

    seed: int = 0
    size: int = 256
    num_dates: int = 6
    year: int = 2023
    season: tuple[int, int] = (91, 288)  # April 1st .. October 15th
    max_cloud_fraction: float = 0.3
    nodata_fraction: float = 0.06

    def __post_init__(self) -> None:
        if not 64 <= self.size <= 4096:
            raise ValueError(f"size (--size) must be 64 to 4096 pixels, got {self.size}")
        if not 2 <= self.num_dates <= 36:
            raise ValueError(f"number of dates (--dates) must be 2 to 36, got {self.num_dates}")
        if self.seed < 0:
            raise ValueError(f"seed (--seed) must be a non-negative integer, got {self.seed}")
        first, last = self.season
        if not 1 <= first < last <= 366:
            raise ValueError(
                f"season must be two days of year with first < last, got {self.season}"
            )
        if not 0.0 <= self.max_cloud_fraction <= 0.9:
            raise ValueError(
                f"max_cloud_fraction must lie in [0, 0.9], got {self.max_cloud_fraction}"
            )

    def dates(self) -> list[datetime]:
        """Acquisition datetimes (UTC), evenly spread over the season."""
        first, last = self.season
        days = np.linspace(first, last, self.num_dates).round().astype(int)
        start = datetime(self.year, 1, 1, *ACQUISITION_HOUR_UTC, tzinfo=UTC)
        return [start + timedelta(days=int(day) - 1) for day in days]


@dataclass
class DemoArrays:
    """The demo set in memory, before it is written.

    Attributes:
        reflectance: uint16 ``(T, C, H, W)`` reflectance x 10000, 0 = nodata.
        scl: uint8 ``(T, H, W)`` scene classification codes.
        land_cover: uint8 ``(2, H, W)`` class ids at the first and the last date.
        change: uint8 ``(H, W)``, 1 where the class differs between first and last date.
        dates: acquisition datetimes, length T.
        bands: canonical names of the C axis.
    """

    reflectance: NDArray[np.uint16]
    scl: NDArray[np.uint8]
    land_cover: NDArray[np.uint8]
    change: NDArray[np.uint8]
    dates: list[datetime]
    bands: tuple[str, ...] = L2A_BANDS


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> NDArray[np.float32]:
    """Spatially smooth noise in [0, 1] with about ``cells`` features across the image."""
    coarse = torch.from_numpy(rng.random((1, 1, cells + 3, cells + 3), dtype=np.float32))
    fine = F.interpolate(coarse, size=(size + size // cells * 3,) * 2, mode="bicubic")
    margin = size // cells * 3 // 2
    out = fine[0, 0, margin : margin + size, margin : margin + size].numpy()
    low, high = float(out.min()), float(out.max())
    result: NDArray[np.float32] = ((out - low) / max(high - low, 1e-6)).astype(np.float32)
    return result


def _voronoi(
    rng: np.random.Generator, size: int, num_cells: int, warp: NDArray[np.float32]
) -> NDArray[np.int64]:
    """Label each pixel with its nearest of ``num_cells`` random seeds, boundaries warped."""
    seeds = rng.random((num_cells, 2)) * size
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float32)
    rows = rows + (warp - 0.5) * size * 0.08
    cols = cols + (warp.T - 0.5) * size * 0.08
    best = np.full((size, size), np.inf, dtype=np.float32)
    labels = np.zeros((size, size), dtype=np.int64)
    for index, (seed_row, seed_col) in enumerate(seeds):
        distance = (rows - seed_row) ** 2 + (cols - seed_col) ** 2
        closer = distance < best
        best[closer] = distance[closer]
        labels[closer] = index
    return labels


def _land_cover(rng: np.random.Generator, size: int) -> tuple[NDArray[np.uint8], NDArray[Any]]:
    """Draw the land-cover map and the patch map it was built from."""
    names = list(_CLASS_PROBABILITIES)
    num_patches = max(12, size * size // 900)
    patches = _voronoi(rng, size, num_patches, _smooth_noise(rng, size, 6))
    probabilities = np.array(list(_CLASS_PROBABILITIES.values()))
    patch_class = rng.choice(len(names), size=num_patches, p=probabilities / probabilities.sum())
    class_ids = np.array([_class_id(name) for name in names], dtype=np.uint8)
    cover = class_ids[patch_class][patches]
    # A river: a sinuous band of water across the scene.
    rows, cols = np.mgrid[0:size, 0:size]
    phase = rng.random() * 2 * np.pi
    centre = size * (0.3 + 0.4 * rng.random()) + size * 0.08 * np.sin(cols / size * 5 + phase)
    width = max(2.0, size / 90)
    cover[np.abs(rows - centre) < width] = _class_id("water")
    return cover.astype(np.uint8), patches


def _class_id(name: str) -> int:
    return next(key for key, value in LAND_COVER_CLASSES.items() if value == name)


def _apply_changes(
    rng: np.random.Generator, cover: NDArray[np.uint8], patches: NDArray[Any]
) -> NDArray[np.uint8]:
    """Return the land cover at the last date: a few whole patches change class.

    Each kind of change takes whole patches until it covers about 2 % of the area, so the
    change class stays rare, as in real change-detection sets.
    """
    after = cover.copy()
    quota = 0.02 * cover.size
    for source, target in _CHANGES:
        source_pixels = cover == _class_id(source)
        ids, areas = np.unique(patches[source_pixels], return_counts=True)
        if ids.size == 0:
            continue
        fitting = rng.permutation(ids[areas <= 2 * quota])
        chosen = list(fitting) if fitting.size else [ids[np.argmin(areas)]]
        changed = 0
        for patch in chosen:
            region = (patches == patch) & source_pixels
            after[region] = _class_id(target)
            changed += int(region.sum())
            if changed >= quota:
                break
    return after


def _greenness(day_of_year: NDArray[Any] | float, peak: float, width: float) -> NDArray[Any]:
    """Bell-shaped seasonal greenness in [0, 1] peaking at ``peak`` (day of year)."""
    return np.exp(-0.5 * ((np.asarray(day_of_year) - peak) / width) ** 2)


def _native_resolution(
    image: NDArray[np.float32], bands: tuple[str, ...], rng: np.random.Generator
) -> NDArray[np.float32]:
    """Sample each band at its native resolution, with noise, and resample it to 10 m.

    Sensor noise is drawn per native pixel; the resampling back to the 10 m grid is bilinear, as
    in resampled products.
    """
    tensor = torch.from_numpy(image)  # (T, C, H, W)
    size = tensor.shape[-1]
    out = tensor.clone()
    for index, band in enumerate(bands):
        factor = SENTINEL2_BANDS[band].resolution_m // 10
        channel = tensor[:, index : index + 1]
        coarse = (
            channel if factor == 1 else F.interpolate(channel, scale_factor=1 / factor, mode="area")
        )
        noise = rng.normal(0.0, _SENSOR_NOISE, size=tuple(coarse.shape)).astype(np.float32)
        coarse = coarse + torch.from_numpy(noise)
        if factor > 1:
            coarse = F.interpolate(coarse, size=(size, size), mode="bilinear")
        out[:, index : index + 1] = coarse
    return out.numpy()


def generate_demo_arrays(config: DemoConfig | None = None) -> DemoArrays:
    """Generate the demo time series in memory.

    Args:
        config: generation parameters; defaults to :class:`DemoConfig`.

    Returns:
        Reflectance ``(T, 12, H, W)``, SCL ``(T, H, W)``, land cover at the first and last date
        ``(2, H, W)``, the change mask ``(H, W)`` and the dates.
    """
    config = config or DemoConfig()
    rng = np.random.default_rng(config.seed)
    size = config.size
    dates = config.dates()
    spectra = {name: np.array(values, dtype=np.float32) for name, values in _SPECTRA.items()}

    cover_before, patches = _land_cover(rng, size)
    cover_after = _apply_changes(rng, cover_before, patches)
    change_index = config.num_dates // 2  # first date that shows the new land cover

    # Per-pixel texture: brightness variation within classes and urban block structure.
    brightness = 0.85 + 0.3 * _smooth_noise(rng, size, max(4, size // 24))
    urban_blocks = np.kron(
        rng.random((size // 4 + 1, size // 4 + 1)), np.ones((4, 4), dtype=np.float32)
    )[:size, :size].astype(np.float32)
    # Crop fields: a finer partition, each field with its own sowing date.
    fields = _voronoi(rng, size, max(20, size * size // 250), _smooth_noise(rng, size, 10))
    field_peak = rng.uniform(150, 235, size=fields.max() + 1)[fields]

    bands = L2A_BANDS
    num_bands = len(bands)
    image = np.zeros((config.num_dates, num_bands, size, size), dtype=np.float32)
    for t, date in enumerate(dates):
        cover = cover_before if t < change_index else cover_after
        doy = date.timetuple().tm_yday
        natural = 0.35 + 0.65 * float(_greenness(doy, 190, 55))
        crop = _greenness(doy, field_peak, 28)[None]  # (1, H, W)
        green, dormant = (
            spectra["green_vegetation"][:, None, None],
            spectra["dormant_vegetation"][:, None, None],
        )
        layers = {
            "water": np.broadcast_to(spectra["water"][:, None, None], (num_bands, size, size)),
            "forest": natural * spectra["forest"][:, None, None] + (1 - natural) * dormant,
            "grassland": natural * green + (1 - natural) * dormant,
            "cropland": crop * green + (1 - crop) * spectra["bare_soil"][:, None, None],
            "urban": spectra["urban"][:, None, None] * (0.7 + 0.6 * urban_blocks)[None],
            "bare_soil": np.broadcast_to(
                spectra["bare_soil"][:, None, None], (num_bands, size, size)
            ),
        }
        for name, layer in layers.items():
            where = cover == _class_id(name)
            image[t][:, where] = np.broadcast_to(layer, (num_bands, size, size))[:, where]
        image[t] *= brightness[None]

    image *= 1.0 + _SURFACE_TEXTURE * rng.standard_normal(image.shape[-2:], dtype=np.float32)

    scl = np.zeros((config.num_dates, size, size), dtype=np.uint8)
    for t in range(config.num_dates):
        cover = cover_before if t < change_index else cover_after
        red, nir = image[t, bands.index("B04")], image[t, bands.index("B08")]
        ndvi = (nir - red) / np.maximum(nir + red, 1e-6)
        scl[t] = np.where(ndvi > 0.4, 4, 5)
        scl[t][cover == _class_id("water")] = 6
        cloud_fraction = 0.0 if t == 0 else rng.uniform(0.0, config.max_cloud_fraction)
        if cloud_fraction > 0:
            _add_clouds(rng, image[t], scl[t], cloud_fraction, spectra["cloud"])
    # The sensor sees the scene, clouds included, at each band's own resolution.
    image = _native_resolution(image, bands, rng)

    reflectance = np.clip(np.round(image * REFLECTANCE_SCALE), 1, 65535).astype(np.uint16)
    nodata = _nodata_wedge(size, config.nodata_fraction)
    reflectance[:, :, nodata] = NODATA
    scl[:, nodata] = 0
    land_cover = np.stack([cover_before, cover_after]).astype(np.uint8)
    change = (cover_before != cover_after).astype(np.uint8)
    return DemoArrays(reflectance, scl, land_cover, change, dates, bands)


def _add_clouds(
    rng: np.random.Generator,
    image: NDArray[np.float32],
    scl: NDArray[np.uint8],
    cloud_fraction: float,
    cloud_spectrum: NDArray[np.float32],
) -> None:
    """Blend clouds and their shadows into one date in place, and flag them in the SCL."""
    size = image.shape[-1]
    noise = _smooth_noise(rng, size, max(3, size // 40))
    threshold = float(np.quantile(noise, 1.0 - cloud_fraction))
    opacity = np.clip((noise - threshold) / max(1e-6, 1.0 - threshold) * 2.5, 0.0, 1.0)
    cloudy = opacity > 0.05
    # Shadows fall away from the sun: the cloud footprint shifted south-east.
    shift = max(3, size // 25)
    shadow = np.zeros_like(cloudy)
    shadow[shift:, shift:] = cloudy[:-shift, :-shift]
    shadow &= ~cloudy
    image[:, shadow] *= 0.45
    image[:] = image * (1 - opacity[None]) + cloud_spectrum[:, None, None] * opacity[None]
    scl[shadow] = 3
    scl[cloudy & (opacity < 0.3)] = 10
    scl[cloudy & (opacity >= 0.3) & (opacity < 0.7)] = 8
    scl[cloudy & (opacity >= 0.7)] = 9


def _nodata_wedge(size: int, fraction: float) -> NDArray[np.bool_]:
    """A slanted strip along the left edge, as where a swath ends inside a tile."""
    rows, cols = np.mgrid[0:size, 0:size]
    # A triangle of area fraction * size^2 along the left edge, slanted like an orbit track.
    top_width = 2 * fraction * size * 0.25
    bottom_width = 2 * fraction * size * 1.75
    edge = top_width + (bottom_width - top_width) * rows / max(size - 1, 1)
    result: NDArray[np.bool_] = cols < edge
    return result
