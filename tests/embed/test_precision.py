"""Inference precision: ``auto`` follows the hardware, outputs record what ran."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import rasterio
import torch

import satmae.train.precision as precision_module
from satmae.data.synthetic import DemoConfig, write_demo_set
from satmae.embed.raster import embed_raster
from satmae.models import create_model
from satmae.train.precision import inference_autocast, inference_precision


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    root = tmp_path_factory.mktemp("precision")
    return write_demo_set(root / "demo", DemoConfig(size=96, num_dates=2)).root


def _map(path):
    with rasterio.open(path) as dataset:
        return dataset.read(), dataset.tags()


def test_auto_follows_native_bf16(monkeypatch):
    monkeypatch.setattr(precision_module, "native_bf16", lambda device_type: True)
    assert inference_precision("auto", "cpu") == "bf16"
    assert inference_precision("auto", "cpu", width=768) == "bf16"
    assert inference_precision("auto", "cpu", width=64) == "32"  # too narrow to gain on a CPU
    assert inference_precision("auto", "cuda", width=64) == "bf16"
    assert inference_precision("bf16", "cpu", width=64) == "bf16"  # asked for, given
    monkeypatch.setattr(precision_module, "native_bf16", lambda device_type: False)
    assert inference_precision("auto", "cpu") == "32"
    assert inference_precision("32", "cpu") == "32"
    with pytest.warns(UserWarning, match="emulated"):
        assert inference_precision("bf16", "cpu") == "bf16"


def test_unknown_precision_names_the_choices():
    with pytest.raises(ValueError, match=r"'fp8'.*auto, 32, bf16"):
        inference_precision("fp8", "cpu")


def test_bf16_autocast_runs_linear_layers_in_bf16(monkeypatch):
    monkeypatch.setattr(precision_module, "native_bf16", lambda device_type: True)
    layer = torch.nn.Linear(4, 4)
    with inference_autocast("bf16", "cpu"):
        assert layer(torch.ones(1, 4)).dtype == torch.bfloat16
    with inference_autocast("32", "cpu"):
        assert layer(torch.ones(1, 4)).dtype == torch.float32


def test_maps_record_their_precision_and_bf16_stays_close_to_fp32(scene, tmp_path):
    encoder = create_model("satmae_tiny").encoder.eval()
    options = {"size": 32, "stride": 16, "progress": False}
    embed_raster(scene, encoder, tmp_path / "fp32.tif", precision="32", **options)
    embed_raster(scene, encoder, tmp_path / "auto.tif", precision="auto", **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # emulated bf16 on CPUs without it: slow, still right
        embed_raster(scene, encoder, tmp_path / "bf16.tif", precision="bf16", **options)
    exact, exact_tags = _map(tmp_path / "fp32.tif")
    auto, auto_tags = _map(tmp_path / "auto.tif")
    bf16, bf16_tags = _map(tmp_path / "bf16.tif")
    assert exact_tags["precision"] == "32" and bf16_tags["precision"] == "bf16"
    assert auto_tags["precision"] == "32"  # the tiny encoder is too narrow for bf16 to pay
    np.testing.assert_array_equal(auto, exact)
    finite = np.isfinite(exact)
    assert finite.any() and np.array_equal(finite, np.isfinite(bf16))
    error = np.linalg.norm(bf16[finite] - exact[finite]) / np.linalg.norm(exact[finite])
    assert 0 < error < 2e-2
