"""A GeoParquet index of every output of a many-place ``satmae embed`` run.

One row per output (COG, Zarr or GeoParquet): the place, the output's path relative to the
index, its footprint as a longitude/latitude rectangle (places of one run may sit in different
UTM zones, so the index uses one CRS, OGC:CRS84), the output's own CRS and bounds, the dates,
model, weights hash and normalisation read back from the output's tags. Tools that read
GeoParquet (GeoPandas, DuckDB, QGIS) then find which output covers a place without opening
them all.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import rasterio
from rasterio.crs import CRS
from rasterio.warp import transform_bounds

from satmae.embed.writers import (
    METADATA_KEY,
    Bounds,
    EmbeddingMeta,
    geo_metadata,
    read_geoparquet,
    rectangle_wkb,
)
from satmae.io import atomic_path

INDEX_NAME = "index.parquet"
"""The index's file name in the output folder."""

LONLAT = CRS.from_string("OGC:CRS84")


@dataclass(frozen=True)
class OutputEntry:
    """Where one output lies and what wrote it.

    Attributes:
        path: the output.
        crs: its CRS (None when the input had none).
        bounds: ``(minx, miny, maxx, maxy)`` in ``crs``.
        meta: the provenance tags the output carries.
    """

    path: Path
    crs: CRS | None
    bounds: Bounds
    meta: EmbeddingMeta


def read_output_entry(path: str | Path) -> OutputEntry:
    """Footprint, CRS and provenance of a COG, Zarr or GeoParquet embedding output.

    Raises:
        ValueError: for a file that is not an embedding output of satmae.
    """
    path = Path(path)
    if path.suffix == ".parquet":
        table, crs = read_geoparquet(path)
        metadata = table.schema.metadata or {}
        geo = json.loads(metadata[b"geo"])
        bbox = geo["columns"][geo["primary_column"]].get("bbox")
        if not bbox or METADATA_KEY.encode() not in metadata:
            raise ValueError(f"{path} has no footprints or no satmae metadata")
        tags = json.loads(metadata[METADATA_KEY.encode()])
        left, bottom, right, top = (float(v) for v in bbox)
        return OutputEntry(path, crs, (left, bottom, right, top), EmbeddingMeta.from_tags(tags))
    if path.suffix == ".zarr":
        import rioxarray  # noqa: F401  (registers the .rio accessor)
        import xarray as xr

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Consolidated metadata")
            dataset = xr.open_zarr(path, decode_coords="all")
        left, bottom, right, top = (float(v) for v in dataset.rio.bounds())
        meta = EmbeddingMeta.from_tags(dataset.attrs)
        wkt = dataset.attrs.get("crs_wkt")
        crs = dataset.rio.crs or (CRS.from_wkt(wkt) if wkt else None)
        return OutputEntry(path, crs, (left, bottom, right, top), meta)
    with rasterio.open(path) as raster:
        tags = raster.tags()
        if "weights_hash" not in tags:
            raise ValueError(f"{path} is not an embedding map of satmae (no provenance tags)")
        left, bottom, right, top = raster.bounds
        return OutputEntry(
            path, raster.crs, (left, bottom, right, top), EmbeddingMeta.from_tags(tags)
        )


def write_output_index(outputs: Sequence[str | Path], path: str | Path) -> Path:
    """Write the GeoParquet index of ``outputs`` (see the module docstring); atomic.

    Outputs without a CRS keep their own bounds in ``bounds`` and get no footprint (a null
    geometry), since they cannot be placed on the globe.

    Returns:
        the index path.
    """
    target = Path(path)
    entries = [read_output_entry(output) for output in outputs]
    footprints: list[Bounds | None] = []
    for entry in entries:
        footprints.append(None if entry.crs is None else _lonlat(entry.crs, entry.bounds))
    located = [box for box in footprints if box is not None]
    columns = {
        "location": pa.array([entry.path.stem for entry in entries]),
        "path": pa.array([_relative(entry.path, target.parent) for entry in entries]),
        "geometry": pa.array(
            [None if box is None else rectangle_wkb(box) for box in footprints],
            type=pa.binary(),
        ),
        "crs": pa.array([None if e.crs is None else e.crs.to_string() for e in entries]),
        "bounds": pa.array([list(entry.bounds) for entry in entries], pa.list_(pa.float64(), 4)),
        "dates": pa.array([list(entry.meta.dates) for entry in entries]),
        "model": pa.array([entry.meta.model for entry in entries]),
        "weights_hash": pa.array([entry.meta.weights_hash for entry in entries]),
        "normalization": pa.array([entry.meta.normalization for entry in entries]),
    }
    geo = geo_metadata(located, LONLAT)
    table = pa.table(columns).replace_schema_metadata({b"geo": json.dumps(geo).encode()})
    with atomic_path(target) as staging:
        pq.write_table(table, staging)
    return target


def _lonlat(crs: CRS, bounds: Bounds) -> Bounds:
    west, south, east, north = transform_bounds(crs, LONLAT, *bounds, densify_pts=21)
    return (west, south, east, north)


def _relative(output: Path, folder: Path) -> str:
    try:
        return str(output.resolve().relative_to(folder.resolve()))
    except ValueError:
        return str(output.resolve())
