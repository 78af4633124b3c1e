"""xarray cubes (DataArray, Dataset, Zarr, NetCDF) with dims (time, band, y, x), via rioxarray.

A cube names its bands in a ``band`` coordinate (``"B02"``, ``"nir08"``, ...) or, for a
Dataset, as one variable per band. Integer band coordinates (rioxarray's default 1..N) name
nothing, so they need a declared ``band_order``. Only the requested window is loaded, which
keeps lazily opened Zarr/NetCDF cubes cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor)
import torch
import xarray as xr
from rasterio.enums import Resampling
from rasterio.windows import Window

from satmae.bands import canonical_band, canonical_bands
from satmae.data.grid import BoundsLike, Grid, PathLike, resolve_window
from satmae.data.readers.protocol import CUBE_SUFFIXES, ReadOptions, Source
from satmae.data.sample import Sample, to_epoch_seconds
from satmae.data.validity import DEFAULT_NODATA, apply_validity


def open_cube(path: PathLike) -> xr.Dataset | xr.DataArray:
    """Open a Zarr store or NetCDF file lazily.

    Raises:
        FileNotFoundError: if the path does not exist.
        ValueError: if it cannot be opened as a cube.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"cube {path} does not exist")
    engine = "zarr" if path.suffix == ".zarr" or (path / ".zgroup").exists() else None
    try:
        dataset = xr.open_dataset(path, engine=engine, decode_coords="all")
    except Exception as error:  # xarray raises many types for bad stores
        raise ValueError(f"cannot open {path} as a Zarr/NetCDF cube ({error})") from None
    return dataset


def _to_array(cube: xr.Dataset | xr.DataArray, band_dim: str) -> xr.DataArray:
    if isinstance(cube, xr.DataArray):
        return cube
    spectral = [name for name in cube.data_vars if _is_band(str(name))]
    if spectral:
        return cube[spectral].to_array(dim=band_dim)
    if len(cube.data_vars) == 1:
        return cube[next(iter(cube.data_vars))]
    raise ValueError(
        f"cannot find the image in a Dataset with variables {list(cube.data_vars)}: name one "
        "variable per band (B02, B03, ...) or pass the DataArray itself"
    )


def _is_band(name: str) -> bool:
    try:
        canonical_band(name)
    except ValueError:
        return False
    return True


def _reproject(
    array: xr.DataArray, source: Grid, target: Grid, fill: float, time_dim: str
) -> xr.DataArray:
    """``array`` warped onto ``target`` (bilinear), pixels outside it set to ``fill``."""
    if source.crs is None or target.crs is None:
        raise ValueError(
            "the cube has no CRS or the grid has none, and the cube is not on the grid, so it "
            "cannot be reprojected onto it; write a CRS (cube.rio.write_crs) or drop grid="
        )
    if time_dim in array.dims:  # rioxarray warps (band, y, x) arrays: one date at a time
        dates = [
            _reproject(array.isel({time_dim: index}), source, target, fill, time_dim)
            for index in range(array.sizes[time_dim])
        ]
        return xr.concat(dates, dim=array[time_dim])
    warped: xr.DataArray = array.rio.reproject(
        target.crs,
        transform=target.transform,
        shape=(target.height, target.width),
        resampling=Resampling.bilinear,
        nodata=fill,
    )
    return warped


def read_cube(
    cube: xr.Dataset | xr.DataArray | PathLike,
    bands: Sequence[str] | None = None,
    *,
    band_order: Sequence[str] | None = None,
    grid: Grid | None = None,
    window: Window | None = None,
    bounds: BoundsLike | None = None,
    time_dim: str = "time",
    band_dim: str = "band",
    nodata: float | None = None,
    location: str | None = None,
) -> Sample:
    """Read a cube with dims (time, band, y, x) (time optional) into a sample.

    Args:
        cube: a DataArray, a Dataset (one variable per band, or one image variable), or a
            path to a ``.zarr`` store / NetCDF file.
        bands: bands to return, in this order; ``None`` returns all, in cube order.
        band_order: names of the band coordinate's entries when they are not band names.
        grid: target grid (default the cube's own); a cube on another grid or CRS is
            reprojected (bilinear) onto the requested window of it.
        window: pixel window of the grid.
        bounds: (left, bottom, right, top) in the grid's CRS, instead of ``window``.
        time_dim: name of the time dimension (absent: a single date without ``times``).
        band_dim: name of the band dimension.
        nodata: missing-value marker; default the cube's nodata/_FillValue, else 0. NaN and
            inf pixels are always invalid (:mod:`satmae.data.validity`).
        location: location id stored in the sample.

    Returns:
        ``image (T, C, H, W)`` float32, ``times`` (if a time coordinate exists), ``valid``,
        ``bands`` and geo keys when the cube has a CRS/transform.

    Raises:
        ValueError: for missing dims, unnamed/duplicate/missing bands, bad windows or times,
            or a ``grid`` that a cube without CRS is not on.
    """
    if isinstance(cube, (str, Path)):
        location = location if location is not None else Path(cube).stem
        cube = open_cube(cube)
    array = _to_array(cube, band_dim)
    if band_dim not in array.dims:
        raise ValueError(
            f"cube has dims {array.dims} but no {band_dim!r} dimension; pass band_dim= or "
            "add a band dimension (expand_dims) with band names as coordinates"
        )
    x_dim, y_dim = array.rio.x_dim, array.rio.y_dim
    extra = set(array.dims) - {time_dim, band_dim, x_dim, y_dim}
    if extra:
        raise ValueError(
            f"cube has unexpected dims {sorted(map(str, extra))}; expected "
            f"({time_dim}, {band_dim}, {y_dim}, {x_dim})"
        )
    if band_order is not None:
        if len(band_order) != array.sizes[band_dim]:
            raise ValueError(
                f"cube has {array.sizes[band_dim]} bands but band_order declares "
                f"{len(band_order)}: {list(band_order)}"
            )
        names = canonical_bands(band_order)
    else:
        labels = [str(v) for v in array[band_dim].values] if band_dim in array.coords else []
        if not labels or not all(_is_band(label) for label in labels):
            raise ValueError(
                f"cube's {band_dim!r} coordinate {labels or 'is missing'} does not name "
                "Sentinel-2 bands; the band order is never guessed — pass band_order=[...] or "
                "assign names: cube.assign_coords(band=['B02', 'B03', ...])"
            )
        names = canonical_bands(labels)
    wanted = names if bands is None else canonical_bands(bands)
    if missing := [band for band in wanted if band not in names]:
        raise ValueError(f"cube lacks bands {missing}; it has {list(names)}")

    transform = array.rio.transform()
    full = Grid(array.rio.crs, transform, array.sizes[x_dim], array.sizes[y_dim])
    target = resolve_window(grid or full, window, bounds)
    array = array.isel({band_dim: [names.index(band) for band in wanted]})
    fill = nodata if nodata is not None else array.rio.nodata
    fill = DEFAULT_NODATA if fill is None else float(fill)
    if full.aligned_offset(target) is None:
        array, full = _reproject(array, full, target, fill, time_dim), target
    col, row = full.aligned_offset(target) or (0, 0)
    selection: dict[str, Any] = {
        y_dim: slice(max(row, 0), row + target.height),
        x_dim: slice(max(col, 0), col + target.width),
    }
    array = array.isel(selection)
    if time_dim not in array.dims:
        array = array.expand_dims(time_dim)
    array = array.transpose(time_dim, band_dim, y_dim, x_dim)
    values = np.asarray(array.values, dtype=np.float32)  # (T, C, h, w), loads the window only
    image = np.full(
        (values.shape[0], values.shape[1], target.height, target.width), fill, np.float32
    )
    top, left = max(row, 0) - row, max(col, 0) - col
    image[:, :, top : top + values.shape[2], left : left + values.shape[3]] = values
    pixels = torch.from_numpy(image)
    valid = apply_validity(pixels, nodata=fill)
    sample: Sample = {"image": pixels, "bands": wanted, "valid": valid}
    if full.crs is not None:
        target.attach(sample)
    if time_dim in array.coords and np.issubdtype(array[time_dim].dtype, np.datetime64):
        stamps = [to_epoch_seconds(value) for value in array[time_dim].values]
        sample["times"] = torch.tensor(stamps, dtype=torch.int64)
    elif time_dim in array.coords and array[time_dim].dtype.kind in "iu":
        sample["times"] = torch.as_tensor(array[time_dim].values, dtype=torch.int64)
    if location is not None:
        sample["location"] = location
    return sample


def sample_to_dataarray(sample: Sample) -> xr.DataArray:
    """The inverse of :func:`read_cube`: a (time, band, y, x) DataArray with CRS and transform."""
    image = sample["image"].numpy()
    frames, _, height, width = image.shape
    coords: dict[str, Any] = {"band": list(sample["bands"])}
    if "times" in sample:
        coords["time"] = sample["times"].numpy().astype("datetime64[s]")
    else:
        coords["time"] = np.arange(frames)
    array = xr.DataArray(image, dims=("time", "band", "y", "x"), coords=coords)
    if "transform" in sample:
        from affine import Affine

        transform = Affine(*sample["transform"])
        xs = transform.c + transform.a * (np.arange(width) + 0.5)
        ys = transform.f + transform.e * (np.arange(height) + 0.5)
        array = array.assign_coords(x=xs, y=ys)
        array = array.rio.write_transform(transform)
        if sample.get("crs"):
            array = array.rio.write_crs(sample["crs"])
    return array


def detect(path: Path) -> bool:
    """Registry test: a Zarr store or NetCDF file."""
    return path.suffix.lower() in CUBE_SUFFIXES


def sources(path: Path, options: ReadOptions) -> list[Source]:
    """Registry entry: a cube is one sample."""
    bands, band_order, grid = options.bands, options.band_order, options.grid
    return [Source(path.name, partial(read_cube, path, bands, band_order=band_order, grid=grid))]
