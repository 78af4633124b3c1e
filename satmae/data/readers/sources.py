"""Find the samples in a path the user points a command at (``satmae stats``/``satmae check``).

Recognised, in this order: an index table (``.csv``/``.parquet``, one series per location); a
cube (``.zarr``/``.nc``); a raster file; an OSCD root; a BigEarthNet root; a per-band product
folder (flat or SAFE); otherwise a folder of raster files or product folders, one sample each
(single-band class layers beside the imagery, such as SCL, land-cover or change rasters, are
skipped).

Rasters, product folders and index series can also be read tile by tile (:func:`iter_tiles`),
so a whole Sentinel-2 scene never has to fit in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Protocol

from rasterio.windows import Window

from satmae.bands import L1C_BANDS, L2A_BANDS
from satmae.data.grid import BoundsLike, Grid, PathLike, dataset_grid, open_raster
from satmae.data.readers.band_files import (
    RASTER_SUFFIXES,
    BandFilesReader,
    find_band_files,
    read_band_files,
)
from satmae.data.readers.cube import read_cube
from satmae.data.readers.geotiff import GeoTiffReader, is_class_layer, read_geotiff
from satmae.data.readers.layouts import (
    OSCD_IMAGES,
    bigearthnet_patches,
    oscd_cities,
    read_bigearthnet_patch,
    read_oscd_city,
)
from satmae.data.readers.series import SeriesReader, group_by_location, read_index, read_series
from satmae.data.sample import Sample

CUBE_SUFFIXES = (".zarr", ".nc", ".nc4", ".netcdf")


class WindowedReader(Protocol):
    """What :class:`GeoTiffReader`, :class:`BandFilesReader` and :class:`SeriesReader` share."""

    grid: Grid

    def read(self, window: Window | None = None, bounds: BoundsLike | None = None) -> Sample:
        """Read a window of :attr:`grid`."""

    def close(self) -> None:
        """Release the files."""


@dataclass(frozen=True)
class Source:
    """One sample to read lazily.

    Attributes:
        name: file, folder or location the sample comes from.
        read: reads the whole sample (bands, band order already bound).
        path: the file whose grid and dtype describe the source, if there is one.
        open: opens a reader for windowed reads, where the source supports them.
    """

    name: str
    read: Callable[[], Sample]
    path: Path | None = None
    open: Callable[[], WindowedReader] | None = None

    def grid(self) -> Grid | None:
        """The grid of :attr:`path`, if any."""
        if self.path is None or not self.path.is_file():
            return None
        with open_raster(self.path) as dataset:
            return dataset_grid(dataset)

    def dtype(self) -> str | None:
        """The stored data type of :attr:`path`, if any."""
        if self.path is None or not self.path.is_file():
            return None
        with open_raster(self.path) as dataset:
            return str(dataset.dtypes[0])


def _is_band_folder(folder: Path) -> bool:
    try:
        files = find_band_files(folder)
    except (FileNotFoundError, ValueError):
        return False
    return len([name for name in files if name != "SCL"]) >= 2


def list_sources(
    path: PathLike,
    bands: Sequence[str] | None = None,
    *,
    band_order: Sequence[str] | None = None,
) -> list[Source]:
    """The samples under ``path``, each read on demand.

    Args:
        path: a file or folder (see the module docstring).
        bands: bands to read (default: every band the source has).
        band_order: declared band order for multi-band files that do not name their bands.

    Raises:
        FileNotFoundError: if the path does not exist or holds nothing readable.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    suffix = path.suffix.lower()
    if path.is_file() and suffix in (".csv", ".parquet", ".pq"):
        groups = group_by_location(read_index(path))
        return [
            Source(
                location or path.stem,
                partial(read_series, frames, bands, band_order=band_order),
                frames[0].path,
                partial(SeriesReader, frames, bands, band_order=band_order),
            )
            for location, frames in groups.items()
        ]
    if suffix in CUBE_SUFFIXES:
        return [Source(path.name, partial(read_cube, path, bands, band_order=band_order))]
    if path.is_file():
        return [_raster_source(path, bands, band_order)]
    if (path / OSCD_IMAGES).is_dir() or list(path.glob("*/dates.txt")):
        return [
            Source(city, partial(read_oscd_city, path, city, bands or L1C_BANDS))
            for city in oscd_cities(path)
        ]
    if list(path.glob("*/*_labels_metadata.json")) or list(path.glob("*_labels_metadata.json")):
        return [
            Source(patch.name, partial(_bigearthnet, patch, bands))
            for patch in bigearthnet_patches(path)
        ]
    if _is_band_folder(path):
        return [_band_folder_source(path, bands)]
    sources = []
    for entry in sorted(path.iterdir()):
        if entry.is_file() and entry.suffix.lower() in RASTER_SUFFIXES:
            if is_class_layer(entry):
                continue
            sources.append(_raster_source(entry, bands, band_order))
        elif entry.is_dir() and _is_band_folder(entry):
            sources.append(_band_folder_source(entry, bands))
    if not sources:
        raise FileNotFoundError(
            f"nothing to read in {path}: expected GeoTIFF/JPEG2000 files, per-band product "
            "folders, an OSCD or BigEarthNet root, a .zarr/.nc cube or an index .csv/.parquet"
        )
    return sources


def _raster_source(
    path: Path, bands: Sequence[str] | None, band_order: Sequence[str] | None
) -> Source:
    return Source(
        path.name,
        partial(read_geotiff, path, bands, band_order=band_order),
        path,
        partial(GeoTiffReader, path, bands, band_order=band_order),
    )


def _band_folder_source(path: Path, bands: Sequence[str] | None) -> Source:
    return Source(
        path.name,
        partial(read_band_files, path, bands),
        find_band_files(path).get("B02"),
        partial(BandFilesReader, path, bands),
    )


def iter_tiles(source: Source, tile: int = 2048) -> Iterator[Sample]:
    """The samples of a source in tiles of at most ``tile`` x ``tile`` pixels.

    Sources without windowed reads (OSCD cities, BigEarthNet patches, cubes) come whole.

    Raises:
        ValueError: if ``tile`` is not positive.
    """
    if tile <= 0:
        raise ValueError(f"tile must be a positive number of pixels, got {tile}")
    if source.open is None:
        yield source.read()
        return
    reader = source.open()
    try:
        height, width = reader.grid.height, reader.grid.width
        for row in range(0, height, tile):
            for col in range(0, width, tile):
                yield reader.read(Window(col, row, min(tile, width - col), min(tile, height - row)))
    finally:
        reader.close()


def read_center(source: Source, size: int = 1024) -> Sample:
    """The central ``size`` x ``size`` window of a source (all of it when smaller or unwindowed).

    Raises:
        ValueError: if ``size`` is not positive.
    """
    if size <= 0:
        raise ValueError(f"size must be a positive number of pixels, got {size}")
    if source.open is None:
        return source.read()
    reader = source.open()
    try:
        height, width = reader.grid.height, reader.grid.width
        rows, cols = min(size, height), min(size, width)
        return reader.read(Window((width - cols) // 2, (height - rows) // 2, cols, rows))
    finally:
        reader.close()


def _bigearthnet(patch: Path, bands: Sequence[str] | None) -> Sample:
    return read_bigearthnet_patch(patch, bands or L2A_BANDS)
