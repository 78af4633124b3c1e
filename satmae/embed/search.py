"""Exact cosine similarity search over a GeoParquet of chip embeddings.

The index is normalised once and scored with one matrix product, so a query over a million
rows is a single BLAS call. A query is a vector, or an area: the mean embedding of the rows
whose footprints intersect it ("find places like this one"), which are then left out of the
results.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from satmae.embed.writers import Bounds, read_geoparquet, wkb_bounds

_WKB_RECTANGLE_BYTES = 93  # little-endian polygon, one ring of five 2-D points


@runtime_checkable
class HasBounds(Protocol):
    """A geometry (shapely or alike) with ``bounds`` ``(minx, miny, maxx, maxy)``."""

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """Bounding box of the geometry."""


Query = NDArray[np.floating] | Sequence[float] | HasBounds


def footprints(table: pa.Table) -> NDArray[np.float64]:
    """``(N, 4)`` bounds of the WKB polygons in a table's ``geometry`` column."""
    column = table.column("geometry").combine_chunks()
    values = column.to_pylist()
    if values and all(len(v) == _WKB_RECTANGLE_BYTES and v[0] == 1 for v in values):
        raw = np.frombuffer(b"".join(values), dtype=np.uint8).reshape(len(values), -1)
        xy = raw[:, 13:].copy().view("<f8").reshape(len(values), 5, 2)
        return np.concatenate([xy.min(axis=1), xy.max(axis=1)], axis=1)
    return np.asarray([wkb_bounds(v) for v in values], dtype=np.float64).reshape(-1, 4)


def _unit_rows(matrix: NDArray[np.floating]) -> NDArray[np.float32]:
    """Rows scaled to unit length; zero rows stay zero, rows with NaN become NaN."""
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return (matrix / np.where(norms > 0, norms, 1.0)).astype(np.float32, copy=False)


def _intersecting(boxes: NDArray[np.float64], area: Bounds) -> NDArray[np.bool_]:
    """Rows whose footprint overlaps ``area`` (with positive area, or touches a point/line)."""
    minx, miny, maxx, maxy = area
    if minx > maxx or miny > maxy:
        raise ValueError(f"query bounds {area} are not (minx, miny, maxx, maxy)")
    dx = np.minimum(boxes[:, 2], maxx) - np.maximum(boxes[:, 0], minx)
    dy = np.minimum(boxes[:, 3], maxy) - np.maximum(boxes[:, 1], miny)
    overlap_x = dx > 0 if maxx > minx else dx >= 0
    overlap_y = dy > 0 if maxy > miny else dy >= 0
    return np.asarray(overlap_x & overlap_y)


def _query_area(query: Query) -> Bounds | None:
    """The bounds of an area query, or None for a vector query."""
    if isinstance(query, np.ndarray):
        return None
    if isinstance(query, HasBounds):
        bounds = tuple(float(v) for v in query.bounds)
    elif isinstance(query, tuple):
        bounds = tuple(float(v) for v in query)
    else:
        return None
    if len(bounds) != 4:
        raise ValueError(f"a query area has bounds (minx, miny, maxx, maxy), got {bounds}")
    return bounds[0], bounds[1], bounds[2], bounds[3]


def search(
    index: str | os.PathLike[str] | pa.Table, query: Query, k: int = 10
) -> list[dict[str, Any]]:
    """The ``k`` rows of an embedding index most similar to a query, best first.

    Similarity is exact cosine similarity. Rows whose embedding is not finite (nodata) are
    never returned.

    Args:
        index: a GeoParquet written by :func:`~satmae.embed.writers.write_geoparquet`, or its
            table.
        query: an ``(F,)`` numpy vector (a list is taken as a vector too); or an area in the
            index's CRS, as a ``(minx, miny, maxx, maxy)`` tuple or a geometry with ``.bounds``
            (e.g. shapely), whose query vector is the mean embedding of the rows whose
            footprints intersect its bounds; those rows are excluded from the results.
        k: number of rows to return (fewer when the index is smaller).

    Returns:
        One dict per row: ``score`` (cosine similarity), ``bounds`` of the footprint, ``row``
        (position in the index) and the index's other columns (e.g. ``location``, ``dates``).

    Raises:
        ValueError: if the index is empty, the query vector's length differs from the index's,
            the query area intersects no row, or ``k`` is not positive.
    """
    if k < 1:
        raise ValueError(f"k must be positive, got {k}")
    table = index if isinstance(index, pa.Table) else read_geoparquet(Path(index))[0]
    if table.num_rows == 0:
        raise ValueError("the embedding index is empty")
    column = table.column("embedding").combine_chunks()
    features = column.type.list_size if pa.types.is_fixed_size_list(column.type) else -1
    if features < 0:
        vectors = np.stack(column.to_numpy(zero_copy_only=False)).astype(np.float32)
    else:
        vectors = column.flatten().to_numpy().reshape(-1, features).astype(np.float32)
    unit = _unit_rows(vectors)
    boxes = footprints(table)

    area = _query_area(query)
    excluded = np.zeros(len(unit), dtype=bool)
    if area is None:
        target = np.asarray(query, dtype=np.float32)
        if target.shape != (unit.shape[1],):
            raise ValueError(
                f"query vector of shape {target.shape} does not match the index's "
                f"{unit.shape[1]} features"
            )
    else:
        excluded = _intersecting(boxes, area) & np.isfinite(vectors).all(axis=1)
        if not excluded.any():
            raise ValueError(f"no row of the index intersects the query area {area}")
        target = unit[excluded].mean(axis=0)

    scores = unit @ _unit_rows(target)
    eligible = np.isfinite(scores) & ~excluded
    candidates = np.flatnonzero(eligible)
    take = min(k, len(candidates))
    if take == 0:
        return []
    top = candidates[np.argpartition(-scores[candidates], take - 1)[:take]]
    top = top[np.argsort(-scores[top], kind="stable")]

    others = [name for name in table.column_names if name not in ("embedding", "geometry")]
    extras = {name: table.column(name).take(pa.array(top)).to_pylist() for name in others}
    return [
        {
            "score": float(scores[row]),
            "bounds": tuple(float(v) for v in boxes[row]),
            "row": int(row),
            **{name: values[i] for name, values in extras.items()},
        }
        for i, row in enumerate(top)
    ]
