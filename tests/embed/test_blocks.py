"""Embedding in blocks of map rows: the same map as one pass, and resume after a kill."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

import satmae.embed.blocks as blocks
from satmae.data.synthetic import DemoConfig, write_demo_set
from satmae.embed.blocks import block_ranges, blocks_folder
from satmae.embed.raster import embed_raster
from satmae.models import create_model


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    root = tmp_path_factory.mktemp("blocks")
    return write_demo_set(root / "demo", DemoConfig(size=96, num_dates=2)).root


@pytest.fixture(scope="module")
def encoder():
    return create_model("satmae_tiny").encoder.eval()


def _embed(scene, encoder, out, **options):
    options = {"size": 32, "stride": 16, "progress": False, **options}
    return embed_raster(scene, encoder, out, **options)


def _read(path):
    with rasterio.open(path) as dataset:
        return dataset.read(), dataset.transform, dataset.tags()


def test_blocks_give_the_map_of_one_pass(scene, encoder, tmp_path):
    _embed(scene, encoder, tmp_path / "whole.tif")
    _embed(scene, encoder, tmp_path / "blocks.tif", block_rows=5)
    whole, transform, tags = _read(tmp_path / "whole.tif")
    parts, block_transform, block_tags = _read(tmp_path / "blocks.tif")
    np.testing.assert_allclose(parts, whole, rtol=0, atol=1e-6)
    assert block_transform == transform and block_tags["weights_hash"] == tags["weights_hash"]
    assert not blocks_folder(tmp_path / "blocks.tif").exists()  # removed once assembled


def test_a_killed_run_resumes_from_its_finished_blocks(scene, encoder, tmp_path, monkeypatch):
    out = tmp_path / "map.tif"
    calls: list[tuple[int, int]] = []
    original = blocks.embed_reader

    def dies_on_the_third_block(*args, **kwargs):
        if len(calls) == 2:
            raise KeyboardInterrupt  # as if the run were killed here
        calls.append(kwargs["rows"])
        return original(*args, **kwargs)

    monkeypatch.setattr(blocks, "embed_reader", dies_on_the_third_block)
    with pytest.raises(KeyboardInterrupt):
        _embed(scene, encoder, out, block_rows=3)
    assert not out.exists()
    finished = sorted(p.name for p in blocks_folder(out).glob("rows_*.npy"))
    assert len(finished) == 2
    calls.clear()
    monkeypatch.setattr(blocks, "embed_reader", lambda *a, **k: (calls.append(k["rows"]),
                                                                 original(*a, **k))[1])  # fmt: skip
    _embed(scene, encoder, out, block_rows=3, resume=True)
    total = len(block_ranges(12, 3))
    assert len(calls) == total - 2  # only the missing blocks were encoded
    _embed(scene, encoder, tmp_path / "whole.tif")
    np.testing.assert_allclose(_read(out)[0], _read(tmp_path / "whole.tif")[0], atol=1e-6)


def test_a_rerun_without_resume_says_it_discards_finished_blocks(
    scene, encoder, tmp_path, monkeypatch
):
    out = tmp_path / "map.tif"
    original = blocks.embed_reader
    calls: list[int] = []

    def dies_on_the_second_block(*args, **kwargs):
        if calls:
            raise KeyboardInterrupt
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(blocks, "embed_reader", dies_on_the_second_block)
    with pytest.raises(KeyboardInterrupt):
        _embed(scene, encoder, out, block_rows=3)
    monkeypatch.setattr(blocks, "embed_reader", original)
    with pytest.warns(UserWarning, match="discarding 1 finished blocks.*pass --resume"):
        _embed(scene, encoder, out, block_rows=3)
    _embed(scene, encoder, tmp_path / "whole.tif")
    np.testing.assert_allclose(_read(out)[0], _read(tmp_path / "whole.tif")[0], atol=1e-6)


def test_blocks_of_another_configuration_are_not_mixed_in(scene, encoder, tmp_path):
    out = tmp_path / "map.tif"
    folder = blocks_folder(out)
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text('{"stride": 999}')
    np.save(folder / "rows_000000_000003.npy", np.zeros((1, 1, 1), np.float32))
    with pytest.warns(UserWarning, match="discarding 1 finished blocks.*settings or model differ"):
        _embed(scene, encoder, out, block_rows=3, resume=True)
    _embed(scene, encoder, tmp_path / "whole.tif")
    np.testing.assert_allclose(_read(out)[0], _read(tmp_path / "whole.tif")[0], atol=1e-6)


def test_block_options_that_cannot_work_are_refused(scene, encoder, tmp_path):
    with pytest.raises(ValueError, match="not parquet"):
        _embed(scene, encoder, tmp_path / "rows.parquet", output_format="parquet", block_rows=2)
    with pytest.raises(ValueError, match="positive"):
        _embed(scene, encoder, tmp_path / "map.tif", block_rows=0)
