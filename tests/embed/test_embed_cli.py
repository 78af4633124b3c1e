"""satmae embed: scenes to COG, Zarr and GeoParquet, georeferenced and tagged."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
import rasterio
import xarray as xr

from satmae.cli import main
from satmae.data.readers.series import SeriesReader
from satmae.data.synthetic import DemoConfig, write_demo_set
from satmae.embed.search import search
from satmae.embed.writers import wkb_bounds
from satmae.models import create_model, save_bundle


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("embed")
    demo = write_demo_set(root / "demo", DemoConfig(size=96, num_dates=3)).root
    save_bundle(create_model("satmae_tiny").encoder, root / "bundle")
    return demo, root / "bundle"


def embed(demo, bundle, out, *extra):
    return main(["embed", str(demo), "--model", str(bundle), "--out", str(out), "--quiet",
                 "--window", "32", *extra])  # fmt: skip


def test_cog_has_the_patch_grid_of_the_input_and_its_tags(demo, tmp_path):
    scenes, bundle = demo
    out = tmp_path / "emb.tif"
    assert embed(scenes, bundle, out, "--preview") == 0
    with SeriesReader(scenes) as reader:
        grid = reader.grid
    with rasterio.open(out) as dataset:
        assert dataset.count == 64 and (dataset.height, dataset.width) == (12, 12)
        assert dataset.crs == grid.crs
        assert dataset.transform == grid.transform * dataset.transform.scale(8)
        tags = dataset.tags()
        values = dataset.read()
    assert tags["bands"].split(",")[:3] == ["B02", "B03", "B04"]
    assert len(tags["dates"].split(",")) == 3 and tags["weights_hash"]
    assert np.isfinite(values).mean() > 0.5
    assert out.with_suffix(".png").is_file()
    assert embed(scenes, bundle, out) == 2  # exists: refused without --overwrite
    assert embed(scenes, bundle, out, "--resume") == 0


def test_zarr_and_cog_hold_the_same_map(demo, tmp_path):
    scenes, bundle = demo
    assert embed(scenes, bundle, tmp_path / "emb.tif") == 0
    assert embed(scenes, bundle, tmp_path / "emb.zarr", "--format", "zarr") == 0
    with rasterio.open(tmp_path / "emb.tif") as dataset:
        cog = dataset.read()
    zarr = xr.open_zarr(tmp_path / "emb.zarr")["embedding"].values
    np.testing.assert_allclose(zarr, cog, rtol=0, atol=1e-6, equal_nan=True)


def test_geoparquet_rows_cover_the_scene_and_can_be_searched(demo, tmp_path):
    scenes, bundle = demo
    out = tmp_path / "chips.parquet"
    assert embed(scenes, bundle, out, "--format", "parquet") == 0
    table = pq.read_table(out)
    assert table.num_rows == 9  # 3 x 3 windows of 32 px over 96 px
    footprints = np.array([wkb_bounds(g) for g in table.column("geometry").to_pylist()])
    with SeriesReader(scenes) as reader:
        left, bottom, right, top = reader.grid.bounds
    assert footprints[:, 0].min() == pytest.approx(left)
    assert footprints[:, 2].max() == pytest.approx(right)
    assert footprints[:, 1].min() == pytest.approx(bottom)
    assert footprints[:, 3].max() == pytest.approx(top)
    first = np.asarray(table.column("embedding").to_pylist()[0], dtype=np.float32)
    best = search(out, first, k=3)
    assert best[0]["score"] == pytest.approx(1.0) and best[0]["row"] == 0


def test_registry_name_needs_random_init_and_missing_bands_are_named(demo, tmp_path, capsys):
    scenes, _ = demo
    assert main(["embed", str(scenes), "--model", "satmae_tiny", "--out", str(tmp_path / "a.tif"),
                 "--quiet", "--window", "32"]) == 2  # fmt: skip
    assert "--random-init" in capsys.readouterr().err
    assert main(["embed", str(scenes), "--model", "satmae_tiny", "--random-init", "--out",
                 str(tmp_path / "b.tif"), "--quiet", "--window", "32"]) == 0  # fmt: skip
    assert main(["embed", str(scenes), "--model", "satmae_tiny", "--random-init", "--out",
                 str(tmp_path / "c.tif"), "--quiet", "--window", "32",
                 "--bands", "B02", "B03", "B04"]) == 2  # fmt: skip
    assert "missing" in capsys.readouterr().err
    assert main(["embed", str(scenes), "--model", "satmae_tiny", "--random-init", "--out",
                 str(tmp_path / "d.tif"), "--quiet", "--window", "128"]) == 2  # fmt: skip
    assert "larger than the scene" in capsys.readouterr().err


def test_a_series_longer_than_the_model_takes_needs_latest(tmp_path, capsys):
    demo = write_demo_set(tmp_path / "six", DemoConfig(size=64, num_dates=6)).root
    args = ["embed", str(demo), "--model", "satmae_tiny", "--random-init", "--quiet"]
    args += ["--window", "32", "--out"]
    assert main([*args, str(tmp_path / "a.tif")]) == 2
    assert "--latest 4" in capsys.readouterr().err
    assert main([*args, str(tmp_path / "b.tif"), "--latest", "4"]) == 0
    with rasterio.open(tmp_path / "b.tif") as dataset:
        assert len(dataset.tags()["dates"].split(",")) == 4


@pytest.mark.slow
def test_two_dask_workers_give_the_outputs_of_one_process(tmp_path):
    places = tmp_path / "places"
    for seed, name in ((1, "north"), (2, "south")):
        write_demo_set(places / name, DemoConfig(seed=seed, size=64, num_dates=2))
    save_bundle(create_model("satmae_tiny").encoder, tmp_path / "bundle")
    args = ["embed", str(places), "--model", str(tmp_path / "bundle"), "--quiet"]
    args += ["--window", "32"]
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    assert main([*args, "--out", str(tmp_path / "two"), "--workers", "2"]) == 0
    outputs = sorted(p.name for p in (tmp_path / "one").glob("*.tif"))
    assert outputs == ["north.tif", "south.tif"]
    for name in outputs:
        with (
            rasterio.open(tmp_path / "one" / name) as one,
            rasterio.open(tmp_path / "two" / name) as two,
        ):
            np.testing.assert_array_equal(one.read(), two.read())
            assert one.tags()["weights_hash"] == two.tags()["weights_hash"]
    (tmp_path / "one" / "south.tif").unlink()  # as if killed before this place
    assert main([*args, "--out", str(tmp_path / "one"), "--resume"]) == 0
    again, two = tmp_path / "one" / "south.tif", tmp_path / "two" / "south.tif"
    with rasterio.open(again) as first, rasterio.open(two) as second:
        np.testing.assert_array_equal(first.read(), second.read())


def test_a_chip_store_gives_one_row_per_chip(tmp_path):
    from satmae.data.store.chipstore import ChipStore
    from satmae.data.store.chipwriter import ChipStoreWriter

    bands = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
    rng = np.random.default_rng(0)
    with ChipStoreWriter(tmp_path / "chips", "p", bands=bands, frames=2, height=32, width=32) as w:
        for index in range(5):
            west = 500_000.0 + 320 * index
            w.add({
                "image": rng.integers(200, 4000, (2, 10, 32, 32)).astype(np.float32),
                "bands": bands, "times": np.array([1_650_000_000, 1_660_000_000]),
                "valid": np.ones((2, 32, 32), bool), "crs": "EPSG:32633",
                "bounds": (west, 4_000_000.0, west + 320, 4_000_320.0),
                "transform": (10.0, 0.0, west, 0.0, -10.0, 4_000_320.0),
                "location": f"loc{index}",
            })  # fmt: skip
    args = ["embed", str(tmp_path / "chips"), "--model", "satmae_tiny", "--random-init", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "map.tif")]) == 2  # a store has no common grid
    assert main([*args, "--out", str(tmp_path / "rows.parquet"), "--format", "parquet"]) == 0
    table = pq.read_table(tmp_path / "rows.parquet")
    assert table.num_rows == len(ChipStore(tmp_path / "chips")) == 5
    assert table.column("location").to_pylist() == [f"loc{i}" for i in range(5)]
    assert wkb_bounds(table.column("geometry")[2].as_py())[0] == pytest.approx(500_640.0)


def test_lightning_devices_and_fp32_give_the_plain_map(demo, tmp_path):
    scenes, bundle = demo
    assert embed(scenes, bundle, tmp_path / "plain.tif", "--precision", "32") == 0
    assert embed(scenes, bundle, tmp_path / "ranks.tif", "--precision", "32",
                 "--devices", "1", "--accelerator", "cpu", "--block-rows", "4") == 0  # fmt: skip
    with (
        rasterio.open(tmp_path / "plain.tif") as plain,
        rasterio.open(tmp_path / "ranks.tif") as ours,
    ):
        assert ours.tags()["precision"] == "32"
        np.testing.assert_allclose(ours.read(), plain.read(), rtol=0, atol=1e-6)
