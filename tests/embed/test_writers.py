from __future__ import annotations

import json
import math

import numpy as np
import pyarrow.parquet as pq
import pytest
import rasterio
import xarray as xr
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

from satmae.embed.writers import (
    CogWriter,
    EmbeddingMeta,
    ZarrWriter,
    read_geoparquet,
    wkb_bounds,
    write_geoparquet,
)

META = EmbeddingMeta(
    model="satmae_tiny",
    weights_hash="sha256:abc123",
    bands=("B02", "B03", "B04", "B08"),
    dates=("2021-06-01", "2021-07-01"),
    normalization="zscore from bundle statistics",
    satmae_version="0.1.0",
    patch_size=16,
    pool="none",
)
CRS_UTM = CRS.from_epsg(32633)
TRANSFORM = Affine(160.0, 0.0, 500000.0, 0.0, -160.0, 4200000.0)


def _grid(features: int = 5, height: int = 40, width: int = 48, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(features, height, width)).astype(np.float32)


def _write_windows(writer: CogWriter | ZarrWriter, values: np.ndarray, step: int = 20) -> None:
    _, height, width = values.shape
    for row in range(0, height, step):
        for col in range(0, width, step):
            h, w = min(step, height - row), min(step, width - col)
            writer.write(Window(col, row, w, h), values[:, row : row + h, col : col + w])


def test_meta_tags_round_trip():
    tags = META.tags()
    assert all(isinstance(v, str) for v in tags.values())
    assert tags["bands"] == "B02,B03,B04,B08"
    assert EmbeddingMeta.from_tags({**tags, "AREA_OR_POINT": "Area"}) == META


def test_cog_round_trip(tmp_path):
    values = _grid(height=80, width=96)
    values[:, :3, :5] = np.nan  # a nodata window
    path = tmp_path / "emb.tif"
    with CogWriter(path, 96, 80, 5, CRS_UTM, TRANSFORM, META, block_size=16) as writer:
        _write_windows(writer, values)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emb.tif"]
    with rasterio.open(path) as src:
        np.testing.assert_array_equal(src.read(), values)
        assert src.crs == CRS_UTM
        assert src.transform == TRANSFORM
        assert math.isnan(src.nodata)
        assert src.descriptions == ("f000", "f001", "f002", "f003", "f004")
        assert EmbeddingMeta.from_tags(src.tags()) == META
        assert src.block_shapes[0] == (16, 16)
        assert src.overviews(1)  # 96x80 with 16-pixel tiles has overviews
        assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"


def test_cog_small_raster_and_overwrite(tmp_path):
    values = _grid(features=3, height=5, width=7)
    path = tmp_path / "emb.tif"
    with CogWriter(path, 7, 5, 3, "EPSG:32633", TRANSFORM, META) as writer:
        writer.write(Window(0, 0, 7, 5), values)
    with pytest.raises(FileExistsError, match="--overwrite"):
        CogWriter(path, 7, 5, 3, CRS_UTM, TRANSFORM, META)
    with CogWriter(path, 7, 5, 3, CRS_UTM, TRANSFORM, META, overwrite=True) as writer:
        writer.write(Window(0, 0, 7, 5), values + 1)
    with rasterio.open(path) as src:
        np.testing.assert_array_equal(src.read(), values + 1)


def test_cog_abort_leaves_old_output(tmp_path):
    path = tmp_path / "emb.tif"
    with (
        pytest.raises(RuntimeError, match="boom"),
        CogWriter(path, 7, 5, 3, CRS_UTM, TRANSFORM, META) as writer,
    ):
        writer.write(Window(0, 0, 7, 5), _grid(3, 5, 7))
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_cog_rejects_bad_window(tmp_path):
    writer = CogWriter(tmp_path / "emb.tif", 7, 5, 3, CRS_UTM, TRANSFORM, META)
    with pytest.raises(ValueError, match="outside"):
        writer.write(Window(5, 0, 4, 5), np.zeros((3, 5, 4), np.float32))
    with pytest.raises(ValueError, match="expected"):
        writer.write(Window(0, 0, 7, 5), np.zeros((2, 5, 7), np.float32))
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_cog_reads_in_torchgeo(tmp_path):
    torchgeo = pytest.importorskip("torchgeo.datasets")
    values = _grid(features=4, height=32, width=32)
    with CogWriter(tmp_path / "emb.tif", 32, 32, 4, CRS_UTM, TRANSFORM, META) as writer:
        writer.write(Window(0, 0, 32, 32), values)

    class Emb(torchgeo.RasterDataset):
        filename_glob = "*.tif"
        is_image = True

    dataset = Emb(paths=str(tmp_path))
    assert dataset.crs == CRS_UTM
    sample = dataset[dataset.bounds]
    assert sample["image"].shape == (4, 32, 32)
    np.testing.assert_allclose(sample["image"].numpy(), values)


def test_zarr_round_trip(tmp_path):
    values = _grid()
    values[:, 30:, 40:] = np.nan
    path = tmp_path / "emb.zarr"
    with ZarrWriter(path, 48, 40, 5, CRS_UTM, TRANSFORM, META, block_size=16) as writer:
        _write_windows(writer, values)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emb.zarr"]
    dataset = xr.open_zarr(path, decode_coords="all")
    embedding = dataset["embedding"]
    assert embedding.dims == ("feature", "y", "x")
    assert embedding.encoding["chunks"] == (5, 16, 16)
    np.testing.assert_array_equal(embedding.values, values)
    np.testing.assert_allclose(dataset.x.values[:2], [500080.0, 500240.0])
    np.testing.assert_allclose(dataset.y.values[:2], [4199920.0, 4199760.0])
    assert dataset.rio.crs == CRS_UTM
    assert "crs_wkt" in dataset["spatial_ref"].attrs
    assert dataset.rio.transform() == TRANSFORM
    assert CRS.from_wkt(dataset.attrs["crs_wkt"]) == CRS_UTM
    assert EmbeddingMeta.from_tags(dataset.attrs) == META


def test_zarr_int8_quantisation(tmp_path):
    values = _grid(seed=1) * 3
    values[:, :4, :4] = np.nan
    path = tmp_path / "emb.zarr"
    with ZarrWriter(path, 48, 40, 5, CRS_UTM, TRANSFORM, META, quantize="int8") as writer:
        _write_windows(writer, values)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emb.zarr"]
    raw = xr.open_zarr(path, mask_and_scale=False)["embedding"]
    assert raw.dtype == np.int8
    scale = raw.attrs["scale_factor"]
    assert scale == pytest.approx(np.nanmax(np.abs(values)) / 127)
    decoded = xr.open_zarr(path)["embedding"].values
    assert np.isnan(decoded[:, :4, :4]).all()
    valid = np.isfinite(values)
    assert np.abs(decoded[valid] - values[valid]).max() <= scale / 2 + 1e-6


def test_zarr_abort_and_overwrite(tmp_path):
    path = tmp_path / "emb.zarr"
    writer = ZarrWriter(path, 7, 5, 3, CRS_UTM, TRANSFORM, META, quantize="int8")
    writer.write(Window(0, 0, 7, 5), _grid(3, 5, 7))
    writer.abort()
    assert list(tmp_path.iterdir()) == []
    with ZarrWriter(path, 7, 5, 3, CRS_UTM, TRANSFORM, META) as writer:
        writer.write(Window(0, 0, 7, 5), _grid(3, 5, 7))
    with pytest.raises(FileExistsError, match="--overwrite"):
        ZarrWriter(path, 7, 5, 3, CRS_UTM, TRANSFORM, META)
    with ZarrWriter(path, 7, 5, 3, CRS_UTM, TRANSFORM, META, overwrite=True) as writer:
        writer.write(Window(0, 0, 7, 5), _grid(3, 5, 7, seed=2))
    np.testing.assert_array_equal(xr.open_zarr(path)["embedding"].values, _grid(3, 5, 7, seed=2))
    with pytest.raises(ValueError, match="quantize"):
        ZarrWriter(tmp_path / "other.zarr", 7, 5, 3, CRS_UTM, TRANSFORM, META, quantize="int4")


def test_geoparquet_round_trip(tmp_path):
    vectors = _grid(features=6, height=1, width=4)[:, 0].T  # (4, 6)
    bounds = [(0.0, 0.0, 10.0, 10.0), (10.0, 0.0, 20.0, 10.0), (0, 10, 10, 20), (10, 10, 20, 20)]
    path = tmp_path / "chips.parquet"
    extra = {"location": ["a", "b", "c", "d"], "dates": [["2021-06-01"]] * 4}
    write_geoparquet(path, vectors, bounds, CRS_UTM, META, extra=extra)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chips.parquet"]

    table = pq.read_table(path)
    assert table.column_names == ["embedding", "geometry", "location", "dates"]
    np.testing.assert_array_equal(np.stack(table.column("embedding").to_pylist()), vectors)
    geo = json.loads(table.schema.metadata[b"geo"])
    assert geo["version"] == "1.0.0"
    assert geo["primary_column"] == "geometry"
    column = geo["columns"]["geometry"]
    assert column["encoding"] == "WKB"
    assert column["geometry_types"] == ["Polygon"]
    assert column["bbox"] == [0.0, 0.0, 20.0, 20.0]
    assert CRS.from_user_input(json.dumps(column["crs"])) == CRS_UTM
    assert json.loads(table.schema.metadata[b"satmae"]) == META.tags()
    footprints = [wkb_bounds(g) for g in table.column("geometry").to_pylist()]
    assert footprints == [tuple(map(float, b)) for b in bounds]

    table, crs = read_geoparquet(path)
    assert crs == CRS_UTM
    assert table.column("location").to_pylist() == ["a", "b", "c", "d"]

    with pytest.raises(FileExistsError, match="--overwrite"):
        write_geoparquet(path, vectors, bounds, CRS_UTM, META)
    write_geoparquet(path, vectors[:1], bounds[:1], None, META, overwrite=True)
    assert read_geoparquet(path)[1] is None


def test_geoparquet_reads_in_geopandas(tmp_path):
    geopandas = pytest.importorskip("geopandas")
    path = tmp_path / "chips.parquet"
    write_geoparquet(path, np.ones((2, 3)), [(0, 0, 1, 1), (1, 0, 2, 1)], CRS_UTM, META)
    frame = geopandas.read_parquet(path)
    assert frame.crs.to_epsg() == 32633
    assert list(frame.geometry.bounds.maxx) == [1.0, 2.0]
    assert frame.geometry.area.tolist() == [1.0, 1.0]


def test_geoparquet_errors(tmp_path):
    with pytest.raises(ValueError, match="footprints"):
        write_geoparquet(tmp_path / "a.parquet", np.ones((2, 3)), [(0, 0, 1, 1)], None, META)
    with pytest.raises(ValueError, match="reserved"):
        write_geoparquet(
            tmp_path / "a.parquet",
            np.ones((1, 3)),
            [(0, 0, 1, 1)],
            None,
            META,
            extra={"geometry": [1]},
        )
    assert list(tmp_path.iterdir()) == []
