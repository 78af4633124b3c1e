"""Pixel grids and the raster I/O every reader shares: open with clear errors, read onto a grid.

A :class:`Grid` is a CRS, an affine transform and a size. Readers resolve the window or bounds
the user asked for into a grid first, then read each source file *onto* that grid: directly
(a plain windowed read, pixels untouched) when the file is already on it, otherwise through a
``rasterio`` WarpedVRT that reprojects or resamples only the requested area.
"""

from __future__ import annotations

import math
import stat
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
    if not path.is_file():
        raise ValueError(f"{path} is not a regular file but {file_kind(path)}; {RASTER_HINT}")
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


def file_kind(path: Path) -> str:
    """What a path that is not a regular file is, in words."""
    mode = path.stat().st_mode
    kinds = (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((name for test, name in kinds if test(mode)), "not a regular file")


RASTER_HINT = "give the path of a GeoTIFF/COG/JPEG2000 file (pipes and devices cannot be read)"


def require_georeferenced(dataset: DatasetReader, path: PathLike) -> None:
    """Refuse a raster without a CRS or without a geotransform.

    Raises:
        ValueError: naming the file and what it lacks.
    """
    lacking = []
    if dataset.crs is None:
        lacking.append("a CRS")
    if dataset.transform == Affine.identity():
        lacking.append("a geotransform")
    if lacking:
        raise ValueError(
            f"{path} has no {' and no '.join(item[2:] for item in lacking)}, so it cannot be "
            "placed next to the other files; georeference it (gdal_edit.py -a_srs EPSG:32631 "
            "-a_ullr ...) or re-export it from the original product"
        )


def require_projected(grid: Grid, resolution: float, path: PathLike) -> None:
    """Refuse a resolution on a grid whose CRS is geographic (degrees) or missing.

    ``resolution`` is in CRS units; Sentinel-2 resolutions (10, 20, 60) are metres.

    Raises:
        ValueError: naming the file, its CRS and what to do instead.
    """
    if grid.crs is None:
        raise ValueError(
            f"resolution={resolution:g} is in CRS units but {path} has no CRS; georeference "
            "it (gdal_edit.py -a_srs) or drop resolution="
        )
    if grid.crs.is_geographic:
        raise ValueError(
            f"resolution={resolution:g} is in CRS units, and the CRS of {path} "
            f"({grid.crs.to_string()}) is geographic: that would be {resolution:g} degrees per "
            "pixel, not metres; reproject the product to a projected CRS (e.g. its UTM zone: "
            "gdalwarp -t_srs EPSG:326xx) or pass grid= on a projected CRS"
        )


def require_overlap(path: PathLike, source: Grid, target: Grid, what: str = "target grid") -> None:
    """Refuse a file whose extent does not overlap ``target`` (its read would be all padding).

    Raises:
        ValueError: naming the file, its bounds and the target's bounds.
    """
    if source.crs is None or target.crs is None:
        if not same_crs(source.crs, target.crs) or source.aligned_offset(target) is None:
            raise ValueError(
                f"{path} cannot be aligned with the {what}: one of them has no CRS and their "
                "pixel grids differ; georeference the files or give them one grid"
            )
        return
    left, bottom, right, top = (
        source.bounds
        if same_crs(source.crs, target.crs)
        else transform_bounds(source.crs, target.crs, *source.bounds)
    )
    t_left, t_bottom, t_right, t_top = target.bounds
    if left >= t_right or right <= t_left or bottom >= t_top or top <= t_bottom:
        raise ValueError(
            f"{path} (bounds {_rounded(source.bounds)} in {source.crs}) does not overlap the "
            f"{what} (bounds {_rounded(target.bounds)} in {target.crs}); check that the files "
            "belong to the same place (tile, product) and that their georeferencing is right"
        )


def _rounded(bounds: BoundsLike) -> tuple[float, ...]:
    return tuple(round(value, 6) for value in bounds)


MAX_WINDOW_PIXELS: int = 1 << 28
"""Largest window (width x height) a read accepts: 16384 x 16384 pixels, 1 GiB per band in
float32 (a whole 10 m Sentinel-2 tile, 10980 x 10980, fits). Larger requests are refused
before any memory is allocated; read such areas tile by tile."""


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
    width, height = int(window.width), int(window.height)
    if width * height > MAX_WINDOW_PIXELS:
        gib = width * height * 4 / 2**30
        raise ValueError(
            f"window of {width}x{height} pixels ({gib:,.0f} GiB per band as float32) is larger "
            f"than the {MAX_WINDOW_PIXELS:,}-pixel limit (the raster is {grid.width}x"
            f"{grid.height}); read it in tiles (satmae.data.iter_tiles, GeoTiffReader.read "
            "with smaller windows)"
        )
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
        ValueError: if the file does not overlap the target grid, or has no CRS and is not on
            it.
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
        # a file off the grid would read as all padding: refuse it, naming both extents
        require_overlap(self.name, self.source, grid)
        self.offset = self.source.aligned_offset(grid)
        self.vrt: WarpedVRT | None = None
        if self.offset is None:
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
