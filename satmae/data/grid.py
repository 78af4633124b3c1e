"""Pixel grids and the raster I/O every reader shares: open with clear errors, read onto a grid.

A :class:`Grid` is a CRS, an affine transform and a size. Readers resolve the window or bounds
the user asked for into a grid first, then read each source file *onto* that grid: directly
(a plain windowed read, pixels untouched) when the file is already on it, otherwise through a
``rasterio`` WarpedVRT that reprojects or resamples only the requested area.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from numpy.typing import NDArray
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioError, RasterioIOError
from rasterio.io import DatasetReader
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from rasterio.windows import Window, from_bounds

from satmae.data.sample import Sample

PathLike = str | Path
BoundsLike = tuple[float, float, float, float]


@dataclass(frozen=True)
class Grid:
    """A georeferenced pixel grid.

    Attributes:
        crs: coordinate reference system (``None`` for files without one).
        transform: affine map from pixel (col, row) to CRS coordinates.
        width: number of columns W.
        height: number of rows H.
    """

    crs: CRS | None
    transform: Affine
    width: int
    height: int

    @property
    def bounds(self) -> BoundsLike:
        """(left, bottom, right, top) in the grid's CRS."""
        left, top = self.transform @ (0, 0)
        right, bottom = self.transform @ (self.width, self.height)
        return (min(left, right), min(bottom, top), max(left, right), max(bottom, top))

    @property
    def resolution(self) -> tuple[float, float]:
        """Pixel size (x, y) in CRS units, both positive."""
        return (abs(self.transform.a), abs(self.transform.e))

    def window(self, window: Window) -> Grid:
        """The sub-grid covered by ``window`` (which may extend past the edges)."""
        col_off, row_off = int(window.col_off), int(window.row_off)
        return Grid(
            self.crs,
            self.transform @ Affine.translation(col_off, row_off),
            int(window.width),
            int(window.height),
        )

    def window_of_bounds(self, bounds: BoundsLike) -> Window:
        """The window of this grid covering ``bounds``, snapped outward to whole pixels."""
        raw = from_bounds(*bounds, transform=self.transform)
        col_off, row_off = math.floor(raw.col_off + 1e-6), math.floor(raw.row_off + 1e-6)
        col_end = math.ceil(raw.col_off + raw.width - 1e-6)
        row_end = math.ceil(raw.row_off + raw.height - 1e-6)
        return Window(col_off, row_off, col_end - col_off, row_end - row_off)

    def aligned_offset(self, other: Grid, tolerance: float = 1e-3) -> tuple[int, int] | None:
        """Integer (col, row) offset of ``other``'s origin in this grid, if the pixels coincide.

        Returns ``None`` when the CRSs, pixel sizes or pixel corners differ (by more than
        ``tolerance`` of a pixel), i.e. when reading one onto the other needs resampling.
        """
        if not same_crs(self.crs, other.crs):
            return None
        mine, theirs = self.transform, other.transform
        if mine.b or mine.d or theirs.b or theirs.d:
            return None
        if not (
            math.isclose(mine.a, theirs.a, rel_tol=tolerance)
            and math.isclose(mine.e, theirs.e, rel_tol=tolerance)
        ):
            return None
        col, row = ~mine @ (theirs.c, theirs.f)
        if abs(col - round(col)) > tolerance or abs(row - round(row)) > tolerance:
            return None
        return round(col), round(row)

    def attach(self, sample: Sample) -> Sample:
        """Set the geo keys of ``sample`` (DESIGN §3) for data on this grid; returns it."""
        sample["crs"] = self.crs.to_wkt() if self.crs else ""
        sample["transform"] = tuple(self.transform)[:6]
        sample["bounds"] = self.bounds
        return sample


def same_crs(first: CRS | None, second: CRS | None) -> bool:
    """Whether two CRSs are equal (two missing CRSs count as equal)."""
    if first is None or second is None:
        return first is None and second is None
    return bool(first == second)


def dataset_grid(dataset: DatasetReader | WarpedVRT) -> Grid:
    """The grid of an open rasterio dataset."""
    return Grid(dataset.crs, dataset.transform, dataset.width, dataset.height)


@contextmanager
def open_raster(path: PathLike) -> Iterator[DatasetReader]:
    """Open a raster, turning GDAL's failures into errors that name the file.

    Raises:
        FileNotFoundError: if the path does not exist.
        ValueError: if the file is corrupt, truncated or not a raster.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"raster file {path} does not exist")
    try:
        dataset = rasterio.open(path)
    except RasterioIOError as error:
        raise ValueError(
            f"cannot open {path} as a raster ({error}); the file is corrupt, truncated or not a "
            "GeoTIFF/JPEG2000 — re-download or re-export it"
        ) from None
    try:
        yield dataset
    finally:
        dataset.close()


def resolve_window(
    grid: Grid, window: Window | None = None, bounds: BoundsLike | None = None
) -> Grid:
    """The output grid for a read of ``grid`` restricted to ``window`` or ``bounds``.

    Raises:
        ValueError: if both are given or the request does not overlap the grid.
    """
    if window is not None and bounds is not None:
        raise ValueError("give either window= or bounds=, not both")
    if bounds is not None:
        window = grid.window_of_bounds(bounds)
    if window is None:
        return grid
    if window.width <= 0 or window.height <= 0:
        raise ValueError(f"window {window} is empty; width and height must be positive")
    inside = (
        window.col_off < grid.width
        and window.row_off < grid.height
        and window.col_off + window.width > 0
        and window.row_off + window.height > 0
    )
    if not inside:
        raise ValueError(
            f"window {window} (bounds {bounds}) lies outside the raster of "
            f"{grid.width}x{grid.height} pixels, bounds {grid.bounds}"
        )
    return grid.window(window)


def _warp_scale(source: Grid, target: Grid) -> tuple[float, float]:
    """Destination pixels per source pixel along x and y (GDAL's XSCALE/YSCALE)."""
    left, bottom, right, top = source.bounds
    if not same_crs(source.crs, target.crs):
        left, bottom, right, top = transform_bounds(
            source.crs, target.crs, left, bottom, right, top
        )
    x_size, y_size = target.resolution
    return ((right - left) / source.width / x_size, (top - bottom) / source.height / y_size)


class OnGrid:
    """An open raster seen through a target grid: windowed reads in that grid's pixels.

    On the same pixel grid reads are plain windowed reads (values exactly as stored); otherwise
    a WarpedVRT onto the whole target grid is kept open and each read warps only its window.
    Windows may extend past the grid or the file; those pixels get ``fill``.

    Args:
        dataset: the open raster (kept open by the caller).
        grid: the target grid.
        resampling: resampling for a file on another grid (bilinear for reflectance,
            nearest for class layers such as SCL).
        fill: value for pixels outside the file.
        path: file name for error messages.

    Raises:
        ValueError: if the file has no CRS but is not on the target grid.
    """

    def __init__(
        self,
        dataset: DatasetReader,
        grid: Grid,
        *,
        resampling: Resampling = Resampling.bilinear,
        fill: float = 0,
        path: PathLike | None = None,
    ) -> None:
        self.dataset, self.grid, self.fill = dataset, grid, fill
        self.name = str(path if path is not None else dataset.name)
        self.source = dataset_grid(dataset)
        self.offset = self.source.aligned_offset(grid)
        self.vrt: WarpedVRT | None = None
        if self.offset is None:
            if self.source.crs is None or grid.crs is None:
                raise ValueError(
                    f"{self.name} has no CRS or differs from the target grid, so it cannot be "
                    "resampled onto it; georeference the file (gdal_edit.py -a_srs) or give "
                    "files on the same pixel grid"
                )
            x_scale, y_scale = _warp_scale(self.source, grid)
            self.vrt = WarpedVRT(
                dataset,
                crs=grid.crs,
                transform=grid.transform,
                width=grid.width,
                height=grid.height,
                resampling=resampling,
                nodata=fill,
                dtype="float32",
                # GDAL otherwise derives the resampling scale per processing chunk, so a window
                # warped alone would differ from the same window of a larger warp
                XSCALE=x_scale,
                YSCALE=y_scale,
            )

    def read(self, indexes: Sequence[int], window: Window | None = None) -> NDArray[np.float32]:
        """Bands ``indexes`` (1-based) in ``window`` of the target grid: ``(C, h, w)`` float32.

        Raises:
            ValueError: if the file cannot be decoded (truncated or corrupt), naming it.
        """
        window = window or Window(0, 0, self.grid.width, self.grid.height)
        col, row = int(window.col_off), int(window.row_off)
        width, height = int(window.width), int(window.height)
        try:
            if self.vrt is None:
                assert self.offset is not None
                col, row = col + self.offset[0], row + self.offset[1]
                inside = (
                    col >= 0
                    and row >= 0
                    and col + width <= self.source.width
                    and row + height <= self.source.height
                )
                data = self.dataset.read(
                    list(indexes),
                    window=Window(col, row, width, height),
                    boundless=not inside,
                    fill_value=self.fill,
                )
            else:
                data = np.full((len(indexes), height, width), self.fill, np.float32)
                left, top = max(col, 0), max(row, 0)
                right = min(col + width, self.grid.width)
                bottom = min(row + height, self.grid.height)
                if right > left and bottom > top:
                    data[:, top - row : bottom - row, left - col : right - col] = self.vrt.read(
                        list(indexes), window=Window(left, top, right - left, bottom - top)
                    )
        except RasterioError as error:
            raise ValueError(
                f"cannot decode {self.name} ({error}); the file is truncated or corrupt — "
                "re-download it"
            ) from None
        result: NDArray[np.float32] = np.asarray(data, dtype=np.float32)
        return result

    def close(self) -> None:
        """Close the warped view (the dataset stays open)."""
        if self.vrt is not None:
            self.vrt.close()
