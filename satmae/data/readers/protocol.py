"""What every reader offers, what a registry entry returns, and the file suffixes readers know.

A :class:`Reader` keeps a source open on one grid and reads windows of it as samples; a
:class:`Source` is one sample that a registry entry found under a path, read on demand; the
:class:`ReadOptions` are the choices a caller passes through the registry to the readers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Self

from rasterio.windows import Window

from satmae.data.grid import BoundsLike, Grid, dataset_grid, open_raster
from satmae.data.sample import Sample

RASTER_SUFFIXES: frozenset[str] = frozenset({".tif", ".tiff", ".jp2", ".vrt"})
"""Suffixes of raster files (multi-band files and band files), compared in lower case."""

INDEX_SUFFIXES: frozenset[str] = frozenset({".csv", ".parquet", ".pq"})
"""Suffixes of index tables listing the frames of series."""

CUBE_SUFFIXES: frozenset[str] = frozenset({".zarr", ".nc", ".nc4", ".netcdf"})
"""Suffixes of xarray cubes (Zarr stores and NetCDF files)."""


class Reader(Protocol):
    """A source kept open on one grid for many windowed reads.

    Attributes:
        grid: the grid that windows and bounds refer to.
        bands: canonical names of the channels that :meth:`read` returns, in order.
    """

    grid: Grid
    bands: tuple[str, ...]

    def read(self, window: Window | None = None, bounds: BoundsLike | None = None) -> Sample:
        """Read a window (or bounds) of :attr:`grid`; the whole grid by default.

        Returns:
            A sample: ``image (T, C, H, W)``, ``valid (T, H, W)``, ``bands``, geo keys and
            ``times (T,)`` when known.
        """

    def close(self) -> None:
        """Release the files."""

    def __enter__(self) -> Self:
        """Use the reader in a ``with`` block; it is closed at the end."""

    def __exit__(self, *exc_info: object) -> None:
        """Close the reader."""


@dataclass(frozen=True)
class ReadOptions:
    """What a caller asks of the readers a registry entry opens.

    Attributes:
        bands: bands to return, in this order (default: every band the source has).
        band_order: declared band order of multi-band files that do not name their bands.
        grid: target grid (default: the source's own).
        time: acquisition time in seconds since epoch (default: what the source says).
    """

    bands: tuple[str, ...] | None = None
    band_order: tuple[str, ...] | None = None
    grid: Grid | None = None
    time: int | None = None


@dataclass(frozen=True)
class Source:
    """One sample to read lazily.

    Attributes:
        name: file, folder or location the sample comes from.
        read: reads the whole sample (options already bound).
        path: the file whose grid and dtype describe the source, if there is one.
        open: opens a :class:`Reader` for windowed reads, where the source supports them.
    """

    name: str
    read: Callable[[], Sample]
    path: Path | None = None
    open: Callable[[], Reader] | None = None

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
