from __future__ import annotations

import numpy as np
import pytest

from satmae.embed.search import search
from satmae.embed.writers import EmbeddingMeta, read_geoparquet, write_geoparquet

META = EmbeddingMeta(
    "satmae_tiny", "sha256:0", ("B04",), ("2021-06-01",), "none", "0.1.0", 16, "mean"
)


@pytest.fixture
def index(tmp_path):
    """A 4x4 grid of 10 m chips; chip (r, c) points along a direction set by its column."""
    rng = np.random.default_rng(0)
    directions = rng.normal(size=(4, 8))
    vectors, bounds, names = [], [], []
    for r in range(4):
        for c in range(4):
            vectors.append(directions[c] * (1 + r) + rng.normal(scale=0.01, size=8))
            bounds.append((c * 10.0, r * 10.0, c * 10.0 + 10, r * 10.0 + 10))
            names.append(f"r{r}c{c}")
    vectors = np.asarray(vectors, dtype=np.float32)
    vectors[15] = np.nan  # a nodata chip
    path = tmp_path / "chips.parquet"
    write_geoparquet(path, vectors, bounds, "EPSG:32633", META, extra={"location": names})
    return path, vectors


def test_vector_query_finds_itself_first(index):
    path, vectors = index
    rows = search(path, vectors[5], k=4)
    assert rows[0]["row"] == 5
    assert rows[0]["score"] == pytest.approx(1.0, abs=1e-5)
    assert rows[0]["location"] == "r1c1"
    assert rows[0]["bounds"] == (10.0, 10.0, 20.0, 20.0)
    # the same column (same direction, other scale) comes next
    assert {r["location"] for r in rows[1:]} == {"r0c1", "r2c1", "r3c1"}
    scores = [r["score"] for r in rows]
    assert scores == sorted(scores, reverse=True)


def test_table_index_and_k_larger_than_index(index):
    path, vectors = index
    table, _ = read_geoparquet(path)
    rows = search(table, vectors[0], k=100)
    assert len(rows) == 15  # the NaN chip is never returned
    assert all(np.isfinite(r["score"]) for r in rows)


def test_area_query_excludes_its_own_rows(index):
    path, _ = index
    rows = search(
        path, (0.0, 0.0, 10.0, 20.0), k=2
    )  # chips r0c0 and r1c0 (edge neighbours only touch)
    assert {r["location"] for r in rows} == {"r2c0", "r3c0"}
    assert rows[0]["score"] > 0.99


def test_geometry_query(index):
    path, _ = index

    class Box:
        bounds = (31.0, 1.0, 39.0, 9.0)  # inside chip r0c3

    rows = search(path, Box(), k=1)
    assert rows[0]["location"] in {"r1c3", "r2c3"}
    shapely = pytest.importorskip("shapely")
    point = shapely.Point(35.0, 25.0)  # inside r2c3
    assert search(path, point, k=1)[0]["location"] in {"r1c3", "r0c3"}


def test_errors(index, tmp_path):
    path, vectors = index
    with pytest.raises(ValueError, match="8 features"):
        search(path, np.ones(3), k=1)
    with pytest.raises(ValueError, match="no row"):
        search(path, (100.0, 100.0, 110.0, 110.0))
    with pytest.raises(ValueError, match="bounds"):
        search(path, (1.0, 2.0, 3.0))
    with pytest.raises(ValueError, match="k must"):
        search(path, vectors[0], k=0)
    empty = tmp_path / "empty.parquet"
    write_geoparquet(empty, np.zeros((0, 8)), [], None, META)
    with pytest.raises(ValueError, match="empty"):
        search(empty, vectors[0])
