"""The GeoParquet index of a many-place ``satmae embed`` run."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from rasterio.warp import transform_bounds

from satmae.cli import main
from satmae.data.synthetic import DemoConfig, write_demo_set
from satmae.embed.index import INDEX_NAME, read_output_entry
from satmae.models import create_model, save_bundle


@pytest.fixture(scope="module")
def places(tmp_path_factory):
    root = tmp_path_factory.mktemp("index")
    for seed, name in ((1, "north"), (2, "south")):
        write_demo_set(root / "places" / name, DemoConfig(seed=seed, size=64, num_dates=2))
    save_bundle(create_model("satmae_tiny").encoder, root / "bundle")
    return root


@pytest.mark.parametrize("kind", ["cog", "zarr", "parquet"])
def test_every_output_is_indexed_with_a_lonlat_footprint(places, tmp_path, kind, capsys):
    out = tmp_path / kind
    args = ["embed", str(places / "places"), "--model", str(places / "bundle"), "--quiet",
            "--window", "32", "--format", kind, "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    assert INDEX_NAME in capsys.readouterr().out
    index = gpd.read_parquet(out / INDEX_NAME)
    assert list(index["location"]) == ["north", "south"]
    assert index.crs.to_string() == "OGC:CRS84"
    for row in index.itertuples():
        output = out / row.path
        entry = read_output_entry(output)
        assert row.crs == entry.crs.to_string() and tuple(row.bounds) == entry.bounds
        expected = transform_bounds(entry.crs, "OGC:CRS84", *entry.bounds, densify_pts=21)
        assert row.geometry.bounds == pytest.approx(expected)
        assert row.weights_hash == entry.meta.weights_hash and len(row.dates) == 2
    assert -180 <= index.total_bounds[0] <= index.total_bounds[2] <= 180


def test_a_file_that_is_no_embedding_output_is_refused(places, tmp_path):
    plain = tmp_path / "plain.tif"
    profile = {"driver": "GTiff", "width": 2, "height": 2, "count": 1, "dtype": "uint8",
               "crs": "EPSG:32633", "transform": from_origin(0, 20, 10, 10)}  # fmt: skip
    with rasterio.open(plain, "w", **profile) as dataset:
        dataset.write(np.zeros((1, 2, 2), np.uint8))
    with pytest.raises(ValueError, match="not an embedding map"):
        read_output_entry(plain)
