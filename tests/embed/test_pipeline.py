"""The scene pipeline: windows, blending, bounded strips, nodata."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from rasterio.windows import Window

from satmae.data.readers.series import SeriesReader
from satmae.data.synthetic import DemoConfig, write_demo_set
from satmae.embed.pipeline import Tiling, blend_weights, embed_reader
from satmae.models import create_model


class MemoryWriter:
    def __init__(self, features, shape, transform):
        self.values = np.full((features, *shape), -1.0, np.float32)
        self.transform, self.blocks = transform, []

    def write(self, window, values):
        rows = slice(window.row_off, window.row_off + window.height)
        cols = slice(window.col_off, window.col_off + window.width)
        self.values[:, rows, cols] = values
        self.blocks.append(window.row_off)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return write_demo_set(tmp_path_factory.mktemp("demo"), DemoConfig(size=96, num_dates=3)).root


def run(demo, size, stride):
    encoder = create_model("satmae_tiny").encoder.eval()
    written = {}

    def factory(features, shape, transform):
        written["writer"] = MemoryWriter(features, shape, transform)
        return written["writer"]

    with SeriesReader(demo) as reader:
        embed_reader(reader, encoder, factory, size=size, stride=stride, progress=False)
        grid = reader.grid
    return encoder, written["writer"], grid


def test_without_overlap_the_map_equals_the_api_on_each_window(demo):
    encoder, writer, grid = run(demo, 32, 32)
    assert writer.values.shape == (64, 12, 12)
    assert writer.transform == grid.transform * writer.transform.scale(8)
    with SeriesReader(demo) as reader:
        for y in (0, 32, 64):
            for x in (0, 64):
                sample = reader.read(window=Window(x, y, 32, 32))
                keys = ("image", "times", "bands", "valid")
                expected = encoder.embed({k: sample[k] for k in keys}, pool="none")
                dense = expected.mean(dim=(1, 2))[0].permute(2, 0, 1).numpy()  # (D, h, w)
                got = writer.values[:, y // 8 : y // 8 + 4, x // 8 : x // 8 + 4]
                finite = np.isfinite(got)
                assert finite.any()
                np.testing.assert_allclose(got[finite], dense[finite], rtol=1e-5, atol=1e-5)


def test_overlapping_windows_blend_and_rows_stream_out(demo):
    _, writer, _ = run(demo, 32, 16)
    assert (writer.values != -1).all(), "every map pixel is written (value or NaN)"
    assert len(writer.blocks) > 1 and writer.blocks == sorted(writer.blocks)
    assert np.isfinite(writer.values).mean() > 0.5


def test_tiling_errors_and_weights():
    with pytest.raises(ValueError, match="larger than the scene"):
        Tiling(40, 40, 48, 24, 8)
    with pytest.raises(ValueError, match="multiples of the model's patch size 8"):
        Tiling(64, 64, 30, 16, 8)
    assert Tiling(100, 72, 32, 16, 8).starts(72) == [0, 16, 32, 40]
    weights = blend_weights(4)
    assert weights.max() == 1.0 and weights[0, 0] < weights[1, 1]
    assert torch.tensor(weights).allclose(torch.tensor(weights).T)
