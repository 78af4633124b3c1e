"""Georeferenced embedding outputs: a Cloud-Optimized GeoTIFF, a Zarr store, GeoParquet rows.

Raster writers take windows of a patch-resolution grid as they are computed, so memory is
bounded by the window, never by the scene. Each writes into a hidden partial output beside the
target and moves it onto the target only when :meth:`close` succeeds: an interrupted run leaves
the old output (or none) and a ``.partial`` leftover that the next run replaces, never a
truncated file under the target's name. A writer holds its output's lock (:mod:`satmae.io`)
while it is open, so two runs never write the same output. Every output carries
:class:`EmbeddingMeta` as flat string tags (GeoTIFF tags, Zarr attributes, Parquet key-value
metadata).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import struct
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import rasterio
import rasterio.shutil
from affine import Affine
from numpy.typing import NDArray
from rasterio.crs import CRS
from rasterio.windows import Window

from satmae.io import OutputLock, atomic_path, check_output, current_umask, replace_folder

Bounds = tuple[float, float, float, float]
"""``(minx, miny, maxx, maxy)`` in the CRS of the output."""

GEOPARQUET_VERSION = "1.0.0"
METADATA_KEY = "satmae"
"""Parquet key-value metadata key holding :meth:`EmbeddingMeta.tags` as JSON."""

_TILE_BYTES = 16 * 2**20  # largest pixel-interleaved COG tile (all features of a block)


@dataclass(frozen=True)
class EmbeddingMeta:
    """Provenance of an embedding output, written into every file.

    Args:
        model: model name (registry name or bundle name).
        weights_hash: hash of the weights the embeddings came from.
        bands: input band names in model order.
        dates: ISO dates of the input frames.
        normalization: normalisation mode and where its statistics came from.
        satmae_version: version of satmae that wrote the output.
        patch_size: input pixels per output pixel along each axis.
        pool: how tokens became one vector per patch ("none", "mean", "cls").
        precision: the precision the encoder ran in ("32" or "bf16").
    """

    model: str
    weights_hash: str
    bands: tuple[str, ...]
    dates: tuple[str, ...]
    normalization: str
    satmae_version: str
    patch_size: int
    pool: str
    precision: str = "32"

    def tags(self) -> dict[str, str]:
        """Flat string tags; band and date lists are comma-separated."""
        return {
            "model": self.model,
            "weights_hash": self.weights_hash,
            "bands": ",".join(self.bands),
            "dates": ",".join(self.dates),
            "normalization": self.normalization,
            "satmae_version": self.satmae_version,
            "patch_size": str(self.patch_size),
            "pool": self.pool,
            "precision": self.precision,
        }

    @classmethod
    def from_tags(cls, tags: Mapping[str, Any]) -> EmbeddingMeta:
        """Read back :meth:`tags` (extra keys, e.g. GDAL's own, are ignored)."""

        def split(text: str) -> tuple[str, ...]:
            return tuple(text.split(",")) if text else ()

        return cls(
            model=str(tags["model"]),
            weights_hash=str(tags["weights_hash"]),
            bands=split(str(tags["bands"])),
            dates=split(str(tags["dates"])),
            normalization=str(tags["normalization"]),
            satmae_version=str(tags["satmae_version"]),
            patch_size=int(tags["patch_size"]),
            pool=str(tags["pool"]),
            precision=str(tags.get("precision", "32")),
        )


class EmbeddingWriter(Protocol):
    """What the pipeline needs from a raster output: windowed writes, commit or abort."""

    def write(self, window: Window, values: NDArray[np.floating]) -> None:
        """Store ``values`` ``(F, h, w)`` at ``window`` of the output grid."""

    def close(self) -> None:
        """Finish the output and move it onto its target."""

    def abort(self) -> None:
        """Remove the partial output; the target is left as it was."""


def _is_zarr_store(folder: Path) -> bool:
    """Whether ``folder`` is a Zarr store (only such a folder is replaced by a Zarr output)."""
    return any((folder / name).is_file() for name in ("zarr.json", ".zgroup", ".zarray"))


def _partial(path: Path) -> Path:
    """The hidden in-progress output beside ``path``; a leftover from a killed run is replaced."""
    return path.parent / f".{path.name}.partial"


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


class _WindowedWriter:
    """Shared set-up, checks and context-manager behaviour of the raster writers.

    Holds the output's lock (:class:`satmae.io.OutputLock`) from construction to
    :meth:`close` or :meth:`abort`, refuses an existing ``path`` unless ``overwrite`` (and a
    folder that is not a Zarr store even then), chooses the block size and prepares the hidden
    partial output beside ``path`` (removing one a killed run left).
    """

    _closed: bool = False
    _folder: bool = False  # the output is a folder (a Zarr store)

    def __init__(
        self,
        path: str | os.PathLike[str],
        width: int,
        height: int,
        features: int,
        itemsize: int,
        overwrite: bool,
        block_size: int | None,
    ) -> None:
        self.path = Path(path)
        self.width, self.height, self.features = width, height, features
        self.block_size = block_size or _auto_block(width, height, features, itemsize)
        self.partial = _partial(self.path)
        self._lock = OutputLock(self.path)
        self._lock.acquire()
        try:
            check_output(
                self.path, overwrite=overwrite, folder=self._folder, is_ours=_is_zarr_store
            )
            self._overwrite = overwrite
            _remove(self.partial)
        except BaseException:
            self._lock.release()
            raise

    def _release(self) -> None:
        """Remove the partial output and give the output's lock back."""
        _remove(self.partial)
        self._lock.release()

    def _check(self, window: Window, values: NDArray[np.floating]) -> None:
        if self._closed:
            raise RuntimeError("writer is closed")
        row, col = int(window.row_off), int(window.col_off)
        height, width = int(window.height), int(window.width)
        if row < 0 or col < 0 or row + height > self.height or col + width > self.width:
            raise ValueError(
                f"window {window} lies outside the {self.width}x{self.height} output grid"
            )
        if values.shape != (self.features, height, width):
            raise ValueError(
                f"values of shape {values.shape} do not fit window {window}: "
                f"expected ({self.features}, {height}, {width})"
            )

    def close(self) -> None:  # pragma: no cover - overridden
        """Finish the output."""
        raise NotImplementedError

    def abort(self) -> None:  # pragma: no cover - overridden
        """Drop the output."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _auto_block(width: int, height: int, features: int, itemsize: int) -> int:
    """A tile edge, a multiple of 16 and 256 at most.

    No larger than the raster needs, and small enough that one pixel-interleaved tile of all
    features stays under ``_TILE_BYTES``.
    """
    fit = 16 * math.ceil(max(width, height, 1) / 16)
    budget = int(math.sqrt(_TILE_BYTES / max(1, features * itemsize))) // 16 * 16
    return max(16, min(256, fit, budget))


class CogWriter(_WindowedWriter):
    """Write an embedding raster, one band per feature, as a Cloud-Optimized GeoTIFF.

    Windows go into a tiled GeoTIFF beside ``path``; :meth:`close` converts it with GDAL's
    ``COG`` driver (overviews by averaging, ZSTD) and moves the result onto ``path``. Bands
    are described ``f000``, ``f001``, …; dataset tags are :meth:`EmbeddingMeta.tags`.

    Args:
        path: the ``.tif`` to write.
        width: output columns (patches across).
        height: output rows (patches down).
        features: number of bands, one per embedding feature.
        crs: CRS of the patch grid.
        transform: affine transform of the patch grid.
        meta: provenance written as tags.
        dtype: band data type.
        nodata: value of windows without valid input.
        overwrite: replace an existing ``path``.
        block_size: tile edge, a multiple of 16 (default: chosen from size and feature count).

    Raises:
        FileExistsError: if ``path`` exists and ``overwrite`` is false.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        width: int,
        height: int,
        features: int,
        crs: CRS | str | None,
        transform: Affine,
        meta: EmbeddingMeta,
        dtype: str = "float32",
        nodata: float = math.nan,
        overwrite: bool = False,
        block_size: int | None = None,
    ) -> None:
        if block_size is not None and block_size % 16:
            raise ValueError(f"block_size must be a multiple of 16, got {block_size}")
        itemsize = np.dtype(dtype).itemsize
        super().__init__(path, width, height, features, itemsize, overwrite, block_size)
        try:
            self._dataset = self._open(crs, transform, meta, dtype, nodata)
        except BaseException:
            self._closed = True
            self._release()
            raise

    def _open(
        self,
        crs: CRS | str | None,
        transform: Affine,
        meta: EmbeddingMeta,
        dtype: str,
        nodata: float,
    ) -> Any:
        """The partial tiled GeoTIFF, with band descriptions and tags."""
        dataset = rasterio.open(
            self.partial,
            "w",
            driver="GTiff",
            width=self.width,
            height=self.height,
            count=self.features,
            dtype=dtype,
            crs=CRS.from_user_input(crs) if crs is not None else None,
            transform=transform,
            nodata=nodata,
            tiled=True,
            blockxsize=self.block_size,
            blockysize=self.block_size,
            interleave="band",
            BIGTIFF="IF_SAFER",
        )
        dataset.descriptions = tuple(f"f{i:03d}" for i in range(self.features))
        dataset.update_tags(**meta.tags())
        return dataset

    def write(self, window: Window, values: NDArray[np.floating]) -> None:
        """Store ``values`` ``(F, h, w)`` at ``window`` of the patch grid."""
        self._check(window, values)
        self._dataset.write(values.astype(self._dataset.dtypes[0], copy=False), window=window)

    def close(self) -> None:
        """Build overviews, convert to a COG and move it onto ``path``."""
        if self._closed:
            return
        self._dataset.close()
        self._closed = True
        try:
            with atomic_path(self.path) as staging:
                rasterio.shutil.copy(
                    self.partial,
                    staging,
                    driver="COG",
                    BLOCKSIZE=self.block_size,
                    # ZSTD level 1 on every core: 2.6x faster than DEFLATE's default level on
                    # a 64-feature map of 343 x 343 (0.39 s against 1.03 s) for 5 % more bytes;
                    # float features barely compress either way
                    COMPRESS="ZSTD",
                    LEVEL=1,
                    NUM_THREADS="ALL_CPUS",
                    PREDICTOR="YES",
                    OVERVIEWS="AUTO",
                    RESAMPLING="AVERAGE",
                    BIGTIFF="IF_SAFER",
                )
        finally:
            self._release()

    def abort(self) -> None:
        """Remove the partial GeoTIFF; ``path`` is left as it was."""
        if not self._closed:
            self._dataset.close()
            self._closed = True
        self._release()


def _quantize_scale(max_abs: NDArray[np.floating]) -> float:
    peak = float(np.max(max_abs, initial=0.0))
    return peak / 127.0 if peak > 0 and math.isfinite(peak) else 1.0


class ZarrWriter(_WindowedWriter):
    """Write an embedding raster as a Zarr store readable by ``xarray.open_zarr``.

    The store holds ``embedding`` ``(feature, y, x)`` chunked per block, ``x``/``y`` pixel-centre
    coordinates and a CF ``spatial_ref`` grid mapping (``crs_wkt``, ``GeoTransform``) as
    rioxarray writes it, so ``.rio.crs`` and ``.rio.transform()`` work on data opened with
    ``xarray.open_zarr(path, decode_coords="all")``; the dataset attributes are
    :meth:`EmbeddingMeta.tags` plus ``crs_wkt`` for readers that know no grid mappings. The
    Zarr format is the installed zarr's default.

    With ``quantize="int8"``, windows are staged as float32 and :meth:`close` stores int8 with
    one symmetric ``scale_factor`` (largest absolute value / 127), ``add_offset`` 0 and
    ``_FillValue`` -128 for nodata, which CF decoding in xarray turns back into floats within
    ``scale_factor / 2``. The scale is one per array, not per feature: CF decoding (and so
    xarray, GDAL and every CF reader) only knows scalar scale factors.

    Args:
        path: the ``.zarr`` folder to write.
        width: output columns.
        height: output rows.
        features: number of embedding features.
        crs: CRS of the patch grid.
        transform: affine transform of the patch grid (north-up).
        meta: provenance written as attributes.
        dtype: float type of the stored values (or of the staging array when quantising).
        nodata: value of windows without valid input (NaN for floats).
        overwrite: replace an existing ``path``.
        quantize: ``"int8"`` to store quantised values, or None.
        block_size: spatial chunk edge (default: as for :class:`CogWriter`).

    Raises:
        FileExistsError: if ``path`` exists and ``overwrite`` is false.
        ValueError: for an unknown ``quantize``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        width: int,
        height: int,
        features: int,
        crs: CRS | str | None,
        transform: Affine,
        meta: EmbeddingMeta,
        dtype: str = "float32",
        nodata: float = math.nan,
        overwrite: bool = False,
        quantize: str | None = None,
        block_size: int | None = None,
    ) -> None:
        if quantize not in (None, "int8"):
            raise ValueError(f"quantize must be 'int8' or None, got {quantize!r}")
        self._folder = True
        self.dtype = np.dtype(dtype)
        super().__init__(path, width, height, features, self.dtype.itemsize, overwrite, block_size)
        self.crs = CRS.from_user_input(crs) if crs is not None else None
        self.transform = transform
        self.meta = meta
        self.nodata = nodata
        self.quantize = quantize
        self.staging = self.partial.with_name(self.partial.name + ".float") if quantize else None
        try:
            if self.staging is not None:
                _remove(self.staging)
                self._create(self.staging, encoding={})
            else:
                self._create(self.partial, encoding={"_FillValue": nodata})
            self._array = self._open_array(self.staging or self.partial)
        except BaseException:
            self.abort()
            raise

    def _dataset(self) -> Any:
        """An empty (dask-backed) dataset with the output's coordinates and attributes."""
        import dask.array
        import rioxarray  # noqa: F401  (registers the .rio accessor)
        import xarray as xr

        a, e = self.transform.a, self.transform.e
        xs = self.transform.c + a * (np.arange(self.width) + 0.5)
        ys = self.transform.f + e * (np.arange(self.height) + 0.5)
        chunks = (self.features, self.block_size, self.block_size)
        data = dask.array.full(  # type: ignore[no-untyped-call]
            (self.features, self.height, self.width), self.nodata, dtype=self.dtype, chunks=chunks
        )
        array = xr.DataArray(
            data,
            dims=("feature", "y", "x"),
            coords={"feature": np.arange(self.features), "x": xs, "y": ys},
            name="embedding",
        )
        dataset = array.to_dataset()
        if self.crs is not None:
            dataset = dataset.rio.write_crs(self.crs)
        dataset = dataset.rio.write_transform(self.transform)
        dataset.attrs.update(self.meta.tags())
        if self.crs is not None:
            dataset.attrs["crs_wkt"] = self.crs.to_wkt()
        return dataset

    def _create(self, store: Path, encoding: dict[str, Any]) -> None:
        chunks = (self.features, self.block_size, self.block_size)
        with warnings.catch_warnings():  # consolidated metadata is an extension in Zarr v3
            warnings.filterwarnings("ignore", message="Consolidated metadata")
            self._dataset().to_zarr(
                store,
                mode="w",
                compute=False,
                encoding={
                    "embedding": {"chunks": chunks, "grid_mapping": "spatial_ref", **encoding}
                },
                consolidated=True,
            )

    @staticmethod
    def _open_array(store: Path) -> Any:
        import zarr

        return zarr.open_array(store / "embedding", mode="r+")

    def write(self, window: Window, values: NDArray[np.floating]) -> None:
        """Store ``values`` ``(F, h, w)`` at ``window`` of the patch grid."""
        self._check(window, values)
        rows, cols = window.toslices()
        self._array[:, rows, cols] = values.astype(self.dtype, copy=False)

    def close(self) -> None:
        """Quantise if asked and move the store onto ``path``."""
        if self._closed:
            return
        self._closed = True
        try:
            if self.staging is not None:
                self._quantize(self._array)
            check_output(self.path, overwrite=self._overwrite, folder=True, is_ours=_is_zarr_store)
            os.chmod(self.partial, 0o777 & ~current_umask())
            replace_folder(self.partial, self.path)
        finally:
            self.abort()

    def _blocks(self) -> list[tuple[slice, slice]]:
        step = self.block_size
        return [
            (slice(r, min(r + step, self.height)), slice(c, min(c + step, self.width)))
            for r in range(0, self.height, step)
            for c in range(0, self.width, step)
        ]

    def _quantize(self, source: Any) -> None:
        """Copy the float staging array into an int8 store, one block at a time."""
        peak = np.zeros(self.features)
        for rows, cols in self._blocks():
            block = np.asarray(source[:, rows, cols], dtype=np.float64)
            with np.errstate(invalid="ignore"):
                peak = np.fmax(peak, np.nanmax(np.abs(block), axis=(1, 2), initial=0.0))
        scale = _quantize_scale(peak)
        self._create(
            self.partial,
            encoding={
                "dtype": "int8",
                "scale_factor": scale,
                "add_offset": 0.0,
                "_FillValue": -128,
            },
        )
        target = self._open_array(self.partial)
        for rows, cols in self._blocks():
            block = np.asarray(source[:, rows, cols], dtype=np.float64)
            codes = np.clip(np.rint(block / scale), -127, 127)
            target[:, rows, cols] = np.where(np.isfinite(block), codes, -128).astype(np.int8)

    def abort(self) -> None:
        """Remove the partial store; ``path`` is left as it was."""
        self._closed = True
        if self.staging is not None:
            _remove(self.staging)
        self._release()


def rectangle_wkb(bounds: Bounds) -> bytes:
    """A little-endian WKB polygon of the rectangle ``bounds`` (counter-clockwise, closed)."""
    minx, miny, maxx, maxy = (float(v) for v in bounds)
    ring = (minx, miny, maxx, miny, maxx, maxy, minx, maxy, minx, miny)
    return struct.pack("<BIII10d", 1, 3, 1, 5, *ring)


def wkb_bounds(geometry: bytes) -> Bounds:
    """Bounds of a WKB polygon (the exterior ring; 2-D, either byte order).

    Raises:
        ValueError: if ``geometry`` is not a WKB polygon.
    """
    order = "<" if geometry[0] == 1 else ">"
    (kind,) = struct.unpack_from(f"{order}I", geometry, 1)
    if kind != 3:
        raise ValueError(f"expected a WKB Polygon (type 3), got type {kind}")
    rings, points = struct.unpack_from(f"{order}II", geometry, 5)
    if rings < 1 or points < 1:
        raise ValueError("empty WKB polygon")
    xy = np.frombuffer(geometry, dtype=f"{order}f8", count=2 * points, offset=13).reshape(-1, 2)
    return (
        float(xy[:, 0].min()),
        float(xy[:, 1].min()),
        float(xy[:, 0].max()),
        float(xy[:, 1].max()),
    )


def write_geoparquet(
    path: str | os.PathLike[str],
    vectors: NDArray[np.floating],
    bounds: Sequence[Bounds],
    crs: CRS | str | None,
    meta: EmbeddingMeta,
    extra: Mapping[str, Sequence[Any]] | None = None,
    overwrite: bool = False,
) -> None:
    """Write one GeoParquet row per chip or window: its vector and footprint.

    Columns: ``embedding`` (fixed-size list of float32), ``geometry`` (WKB polygon of the
    footprint) and one per ``extra`` entry (e.g. ``location``, ``dates``). The file carries
    GeoParquet 1.0 ``geo`` metadata (the CRS as PROJJSON, null when unknown) and
    :meth:`EmbeddingMeta.tags` as JSON under the ``satmae`` key. The write is atomic.

    Args:
        path: the ``.parquet`` file to write.
        vectors: ``(N, F)`` embeddings.
        bounds: N footprints ``(minx, miny, maxx, maxy)`` in ``crs``.
        crs: CRS of the footprints.
        meta: provenance.
        extra: further columns, each of N values.
        overwrite: replace an existing ``path``.

    Raises:
        FileExistsError: if ``path`` exists and ``overwrite`` is false.
        ValueError: if the lengths of ``vectors``, ``bounds`` and ``extra`` differ, or a column
            name is reserved.
    """
    target = Path(path)
    check_output(target, overwrite=overwrite)  # fail before the work; re-checked under the lock
    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim != 2:
        raise ValueError(f"expected vectors of shape (N, F), got {matrix.shape}")
    rows, features = matrix.shape
    if len(bounds) != rows:
        raise ValueError(f"{rows} vectors but {len(bounds)} footprints")
    columns: dict[str, pa.Array] = {
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1)), features),
        "geometry": pa.array([rectangle_wkb(b) for b in bounds], type=pa.binary()),
    }
    for name, values in (extra or {}).items():
        if name in columns:
            raise ValueError(f"extra column {name!r} clashes with a reserved column")
        if len(values) != rows:
            raise ValueError(f"extra column {name!r} has {len(values)} values, expected {rows}")
        columns[name] = pa.array(list(values))
    geo = geo_metadata(bounds, crs)
    table = pa.table(columns).replace_schema_metadata(
        {b"geo": json.dumps(geo).encode(), METADATA_KEY.encode(): json.dumps(meta.tags()).encode()}
    )
    with atomic_path(target, overwrite=overwrite) as staging:
        pq.write_table(table, staging)


def geo_metadata(bounds: Sequence[Bounds], crs: CRS | str | None) -> dict[str, Any]:
    """GeoParquet 1.0 ``geo`` metadata of a WKB polygon column ``geometry`` in ``crs``.

    Args:
        bounds: the rows' rectangles (their union is the column's ``bbox``).
        crs: CRS of the rectangles (written as PROJJSON; null when unknown).
    """
    box = np.asarray(bounds, dtype=np.float64).reshape(-1, 4)
    bbox = (
        [
            float(box[:, 0].min()),
            float(box[:, 1].min()),
            float(box[:, 2].max()),
            float(box[:, 3].max()),
        ]
        if len(box)
        else []
    )
    projjson = CRS.from_user_input(crs).to_dict(projjson=True) if crs is not None else None
    return {
        "version": GEOPARQUET_VERSION,
        "primary_column": "geometry",
        "columns": {
            "geometry": {
                "encoding": "WKB",
                "geometry_types": ["Polygon"],
                "crs": projjson,
                **({"bbox": bbox} if bbox else {}),
            }
        },
    }


def read_geoparquet(path: str | os.PathLike[str]) -> tuple[pa.Table, CRS | None]:
    """Read a GeoParquet of embeddings; returns the table and the CRS of its footprints.

    Raises:
        ValueError: if the file has no GeoParquet ``geo`` metadata.
    """
    table = pq.read_table(path)
    return table, geoparquet_crs(table)


def geoparquet_crs(table: pa.Table) -> CRS | None:
    """The CRS of a GeoParquet table's primary geometry column (None when unknown).

    A column without a ``crs`` entry is OGC:CRS84 by the GeoParquet specification.

    Raises:
        ValueError: if the table has no GeoParquet ``geo`` metadata.
    """
    metadata = table.schema.metadata or {}
    if b"geo" not in metadata:
        raise ValueError("not a GeoParquet table: no 'geo' metadata")
    geo = json.loads(metadata[b"geo"])
    column = geo["columns"][geo["primary_column"]]
    if "crs" not in column:
        return CRS.from_string("OGC:CRS84")
    if column["crs"] is None:
        return None
    return CRS.from_user_input(json.dumps(column["crs"]))
