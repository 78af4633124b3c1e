"""Lightning's predict loop: the same maps as a plain run, on one device or two ranks."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from satmae.data.synthetic import DemoConfig, write_demo_set
from satmae.embed.raster import embed_raster
from satmae.models import create_model


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    return write_demo_set(root / "demo", DemoConfig(size=96, num_dates=2)).root


@pytest.fixture(scope="module")
def encoder():
    return create_model("satmae_tiny").encoder.eval()


def _embed(scene, encoder, out, **options):
    options = {"size": 32, "stride": 16, "progress": False, "precision": "32", **options}
    return embed_raster(scene, encoder, out, **options)


def _read(path):
    with rasterio.open(path) as dataset:
        return dataset.read(), dataset.transform, dataset.crs


@pytest.mark.parametrize("block_rows", [None, 2])
def test_one_device_gives_the_plain_map(scene, encoder, tmp_path, block_rows):
    _embed(scene, encoder, tmp_path / "plain.tif")
    _embed(scene, encoder, tmp_path / "lightning.tif", devices=1, accelerator="cpu",
           block_rows=block_rows)  # fmt: skip
    plain, transform, crs = _read(tmp_path / "plain.tif")
    ours, ours_transform, ours_crs = _read(tmp_path / "lightning.tif")
    assert (ours_transform, ours_crs) == (transform, crs)
    np.testing.assert_allclose(ours, plain, rtol=0, atol=1e-6)
    assert not list(tmp_path.glob(".*"))  # blocks folder removed after assembly


@pytest.mark.slow
def test_two_ranks_split_the_blocks_and_give_the_plain_map(scene, encoder, tmp_path):
    _embed(scene, encoder, tmp_path / "plain.tif")
    _embed(scene, encoder, tmp_path / "ranks.tif", devices=2, accelerator="cpu", block_rows=2)
    np.testing.assert_allclose(
        _read(tmp_path / "ranks.tif")[0], _read(tmp_path / "plain.tif")[0], rtol=0, atol=1e-6
    )


def test_devices_and_dask_are_one_or_the_other(scene, encoder, tmp_path):
    with pytest.raises(ValueError, match="choose one engine"):
        _embed(scene, encoder, tmp_path / "x.tif", devices=1, workers=2)
    with pytest.raises(ValueError, match="not parquet"):
        _embed(scene, encoder, tmp_path / "x.parquet", devices=1, output_format="parquet")
    with pytest.raises(ValueError, match="at least 1"):
        _embed(scene, encoder, tmp_path / "x.tif", devices=0)


def test_each_rank_takes_its_own_blocks(encoder):
    from types import SimpleNamespace

    from satmae.embed.predict import BlockPredictor

    blocks = [f"block {index}" for index in range(5)]
    shares = []
    for rank in range(2):
        predictor = BlockPredictor(encoder, blocks)  # type: ignore[arg-type]
        predictor.trainer = SimpleNamespace(global_rank=rank, world_size=2)
        shares.append(list(predictor.predict_dataloader()))
    assert shares == [["block 0", "block 2", "block 4"], ["block 1", "block 3"]]
