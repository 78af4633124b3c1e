"""Sentinel-2 products stored one file per band, at 10, 20 and 60 m.

Two layouts are recognised:

- **SAFE** products: ``<name>.SAFE/GRANULE/<granule>/IMG_DATA/`` with ``*_B02.jp2`` (Level-1C)
  or ``IMG_DATA/R10m|R20m|R60m/*_B02_10m.jp2`` and ``*_SCL_20m.jp2`` (Level-2A; the finest copy
  of each band is used);
- **flat folders** with one file per band whose name ends in the band, such as OSCD's
  ``..._B8A.tif`` or BigEarthNet's ``<patch>_B02.tif`` (GeoTIFF or JPEG2000).

All bands are resampled onto one target grid, by default the grid of the finest requested band:
bilinear for reflectance, nearest for the SCL scene classes. Bands already on the target grid are
read as stored, without resampling.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
from affine import Affine
from rasterio.enums import Resampling
from rasterio.io import DatasetReader
from rasterio.windows import Window

from satmae.bands import SENTINEL2_BANDS, canonical_band, canonical_layer
from satmae.data.grid import (
    BoundsLike,
    Grid,
    OnGrid,
    PathLike,
    dataset_grid,
    open_raster,
    resolve_window,
)
from satmae.data.sample import Sample, one_date_sample, to_epoch_seconds
from satmae.data.validity import DEFAULT_NODATA, valid_mask

RASTER_SUFFIXES: frozenset[str] = frozenset({".tif", ".tiff", ".jp2"})
"""File extensions read as band files (case-insensitive)."""

_BAND_PATTERN = re.compile(r"(?:^|[_\-.])(B\d{1,2}A?|SCL)(?:_(\d+)m)?$", re.IGNORECASE)
_SAFE_TIME_PATTERN = re.compile(r"_(\d{8}T\d{6})_")


def band_of_file(path: PathLike) -> tuple[str, int | None] | None:
    """The band a file holds according to its name, with the resolution suffix if any.

    ``T31UDQ_20170829T105019_B8A.tif`` gives ``("B8A", None)``; ``..._B02_10m.jp2`` gives
    ``("B02", 10)``; ``..._SCL_20m.jp2`` gives ``("SCL", 20)``; other files give None.
    """
    match = _BAND_PATTERN.search(Path(path).name.rsplit(".", 1)[0])
    if not match:
        return None
    try:
        name = canonical_layer(match.group(1))
    except ValueError:
        return None
    return name, int(match.group(2)) if match.group(2) else None


def _candidate_files(folder: Path) -> list[Path]:
    granules = sorted(folder.glob("GRANULE/*/IMG_DATA"))
    if len(granules) > 1:
        raise ValueError(
            f"{folder} holds {len(granules)} granules ({[g.parent.name for g in granules]}); "
            "read one granule at a time: pass GRANULE/<granule> as the folder"
        )
    roots = granules or ([folder / "IMG_DATA"] if (folder / "IMG_DATA").is_dir() else [folder])
    root = roots[0]
    recursive = root.name == "IMG_DATA"
    files = root.rglob("*") if recursive else root.iterdir()
    return sorted(p for p in files if p.is_file() and p.suffix.lower() in RASTER_SUFFIXES)


def find_band_files(folder: PathLike) -> dict[str, Path]:
    """Map band names (and ``"SCL"``) to the files of a per-band product folder.

    Args:
        folder: a ``.SAFE`` product, one of its granules, an ``IMG_DATA`` folder, or a flat
            folder of ``*_Bxx.tif``/``.jp2`` files.

    Returns:
        Canonical name -> file, in catalog (wavelength) order, ``"SCL"`` last if present.

    Raises:
        FileNotFoundError: if the folder does not exist or holds no band files.
        ValueError: if one band has two files at the same resolution.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"band folder {folder} does not exist or is not a folder")
    chosen: dict[str, tuple[float, Path]] = {}
    for path in _candidate_files(folder):
        parsed = band_of_file(path)
        if parsed is None:
            continue
        name, metres = parsed
        rank = float(metres) if metres is not None else math.inf
        if name in chosen:
            previous_rank, previous = chosen[name]
            if previous_rank == rank:
                raise ValueError(
                    f"band {name} has two files in {folder}: {previous.name} and {path.name}; "
                    "keep one file per band (or per resolution)"
                )
            if previous_rank < rank:
                continue
        chosen[name] = (rank, path)
    if not chosen:
        raise FileNotFoundError(
            f"no Sentinel-2 band files in {folder}: expected files named like *_B02.tif or "
            "*_B02_10m.jp2 (flat folder), or a SAFE product with GRANULE/*/IMG_DATA"
        )
    order = [*SENTINEL2_BANDS, "SCL"]
    return {name: chosen[name][1] for name in order if name in chosen}


def safe_time(folder: PathLike) -> int | None:
    """Sensing time from a SAFE product or granule path name, or None for other folders."""
    for part in reversed(Path(folder).resolve().parts):
        if part.upper().endswith(".SAFE") and (match := _SAFE_TIME_PATTERN.search(part)):
            return to_epoch_seconds(match.group(1))
    return None


def _grid_at(reference: Grid, resolution: float | None) -> Grid:
    """``reference`` rescaled to ``resolution`` CRS units per pixel (same extent)."""
    if resolution is None:
        return reference
    x_size, y_size = reference.resolution
    x_scale, y_scale = resolution / x_size, resolution / y_size
    return Grid(
        reference.crs,
        reference.transform @ Affine.scale(x_scale, y_scale),
        max(1, round(reference.width / x_scale)),
        max(1, round(reference.height / y_scale)),
    )


def default_grid(
    source: PathLike | Mapping[str, PathLike],
    bands: Sequence[str] | None = None,
    resolution: float | None = None,
) -> Grid:
    """The grid of the finest of ``bands`` (default all) in a product, at ``resolution``.

    Raises:
        FileNotFoundError: if the folder or a file does not exist.
        ValueError: if a requested band is missing.
    """
    if isinstance(source, Mapping):
        files = {canonical_layer(name): Path(path) for name, path in source.items()}
    else:
        files = find_band_files(source)
    wanted = [b for b in files if b != "SCL"] if bands is None else list(map(canonical_band, bands))
    if missing := [band for band in wanted if band not in files]:
        raise ValueError(f"{source} lacks bands {missing}; it has {list(files)}")
    grids = []
    for band in wanted:
        with open_raster(files[band]) as dataset:
            grids.append(dataset_grid(dataset))
    return _grid_at(min(grids, key=lambda grid: grid.resolution[0]), resolution)


class BandFilesReader:
    """Per-band Sentinel-2 files kept open on one target grid, for many windowed reads.

    Every band file is opened once; bands off the target grid are seen through a WarpedVRT
    (bilinear, SCL nearest) and each :meth:`read` decodes only its window. Use as a context
    manager or call :meth:`close`; open one reader per DataLoader worker.

    Args:
        source: a product folder (see :func:`find_band_files`) or a mapping band -> file.
        bands: bands to return, in this order; ``None`` returns every band found.
        grid: target grid; default the full grid of the finest requested band.
        resolution: pixel size of the default grid in CRS units (e.g. 20 for a 20 m stack).
        time: acquisition time; default the SAFE sensing time, else no ``times``.
        nodata: value marking missing pixels; default each file's nodata, else 0.
        use_scl: derive invalid pixels from an SCL file when the product has one.
        location: location id stored in samples (default the folder name).

    Raises:
        FileNotFoundError: if the folder or a mapped file does not exist.
        ValueError: if requested bands are missing (listed), a file is corrupt, or the files
            cannot be put on one grid.
    """

    def __init__(
        self,
        source: PathLike | Mapping[str, PathLike],
        bands: Sequence[str] | None = None,
        *,
        grid: Grid | None = None,
        resolution: float | None = None,
        time: datetime | str | int | None = None,
        nodata: float | None = None,
        use_scl: bool = True,
        location: str | None = None,
    ) -> None:
        if isinstance(source, Mapping):
            files = {canonical_layer(name): Path(path) for name, path in source.items()}
            where = "the given files"
        else:
            files = find_band_files(source)
            where = str(source)
        available = [name for name in files if name != "SCL"]
        wanted = available if bands is None else [canonical_band(band) for band in bands]
        if missing := [band for band in wanted if band not in files]:
            raise ValueError(
                f"{where} lacks bands {missing}; it has {available}. Request only bands the "
                "product holds (a Level-2A product has no B10)"
            )
        if len(set(wanted)) != len(wanted):
            raise ValueError(f"requested bands {wanted} name a band twice; give each band once")
        self.bands: tuple[str, ...] = tuple(wanted)
        self.nodata = DEFAULT_NODATA if nodata is None else nodata
        self._contexts: list[contextlib.AbstractContextManager[DatasetReader]] = []
        self._views: dict[str, OnGrid] = {}
        try:
            datasets = {band: self._open(files[band]) for band in wanted}
            if grid is None:
                finest = min(wanted, key=lambda band: datasets[band].res[0])
                grid = _grid_at(dataset_grid(datasets[finest]), resolution)
            self.grid = grid
            for band in wanted:
                dataset = datasets[band]
                fill = dataset.nodata if nodata is None and dataset.nodata is not None else None
                self._views[band] = OnGrid(
                    dataset, grid, fill=self.nodata if fill is None else fill, path=files[band]
                )
            if use_scl and "SCL" in files:
                self._views["SCL"] = OnGrid(
                    self._open(files["SCL"]),
                    grid,
                    resampling=Resampling.nearest,
                    path=files["SCL"],
                )
        except BaseException:
            self.close()
            raise
        if isinstance(time, (str, datetime)):
            self.time: int | None = to_epoch_seconds(time)
        else:
            self.time = (
                time if time is not None or isinstance(source, Mapping) else safe_time(source)
            )
        if location is None:
            location = "" if isinstance(source, Mapping) else Path(source).name
        self.location = location

    def _open(self, path: Path) -> DatasetReader:
        context = open_raster(path)
        dataset = context.__enter__()
        self._contexts.append(context)
        return dataset

    def read(self, window: Window | None = None, bounds: BoundsLike | None = None) -> Sample:
        """Read a window (or bounds) of the target grid as a one-date sample.

        Returns:
            ``image (1, C, H, W)`` float32, ``valid (1, H, W)``, ``bands``, geo keys,
            ``location`` and ``times (1,)`` when known.
        """
        target = resolve_window(self.grid, window, bounds)
        col, row = self.grid.aligned_offset(target) or (0, 0)
        pixel_window = Window(col, row, target.width, target.height)
        image = np.empty((1, len(self.bands), target.height, target.width), dtype=np.float32)
        for channel, band in enumerate(self.bands):
            image[0, channel] = self._views[band].read([1], pixel_window)[0]
        scl = self._views["SCL"].read([1], pixel_window) if "SCL" in self._views else None
        pixels = torch.from_numpy(image)
        valid = valid_mask(pixels, nodata=self.nodata, scl=scl)
        sample = one_date_sample(pixels, self.bands, valid, location=self.location, time=self.time)
        return target.attach(sample)

    def close(self) -> None:
        """Close every file."""
        for view in self._views.values():
            view.close()
        for context in reversed(self._contexts):
            context.__exit__(None, None, None)
        self._views, self._contexts = {}, []

    def __enter__(self) -> BandFilesReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def read_band_files(
    source: PathLike | Mapping[str, PathLike],
    bands: Sequence[str] | None = None,
    *,
    grid: Grid | None = None,
    resolution: float | None = None,
    window: Window | None = None,
    bounds: BoundsLike | None = None,
    time: datetime | str | int | None = None,
    nodata: float | None = None,
    use_scl: bool = True,
    location: str | None = None,
) -> Sample:
    """Read per-band Sentinel-2 files onto one grid as a one-date sample.

    For many windows of one product keep a :class:`BandFilesReader` open instead.

    Args:
        source: a product folder (see :func:`find_band_files`) or a mapping band -> file.
        bands: bands to return, in this order; ``None`` returns every band found.
        grid: target grid; default the full grid of the finest requested band.
        resolution: pixel size of the default grid in CRS units (e.g. 20 for a 20 m stack).
        window: pixel window of the target grid (may extend past its edges).
        bounds: (left, bottom, right, top) in the target CRS, instead of ``window``.
        time: acquisition time; default the SAFE sensing time, else no ``times``.
        nodata: value marking missing pixels; default each file's nodata, else 0.
        use_scl: derive invalid pixels from an SCL file when the product has one.
        location: location id stored in the sample (default the folder name).

    Returns:
        ``image (1, C, H, W)`` float32, ``valid (1, H, W)``, ``bands`` and geo keys.

    Raises:
        FileNotFoundError: if the folder or a mapped file does not exist.
        ValueError: if requested bands are missing (listed), a file is corrupt or truncated,
            or the files cannot be put on one grid.
    """
    if window is not None or bounds is not None:
        # warp onto the requested window only, not onto the whole grid
        grid = resolve_window(grid or default_grid(source, bands, resolution), window, bounds)
        window = bounds = None
    with BandFilesReader(
        source,
        bands,
        grid=grid,
        resolution=resolution,
        time=time,
        nodata=nodata,
        use_scl=use_scl,
        location=location,
    ) as reader:
        return reader.read(window, bounds)
