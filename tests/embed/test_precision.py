"""Inference precision: ``auto`` follows the hardware, outputs record what ran."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import torch

import satmae.train.precision as precision_module
from satmae.data.synthetic import DemoConfig, write_demo_set
from satmae.embed.raster import embed_raster
from satmae.models import create_model
from satmae.train.precision import inference_autocast, inference_precision, native_bf16


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


def test_maps_record_their_precision_and_auto_stays_close_to_fp32(scene, tmp_path):
    encoder = create_model("satmae_tiny").encoder.eval()
    options = {"size": 32, "stride": 16, "progress": False}
    embed_raster(scene, encoder, tmp_path / "fp32.tif", precision="32", **options)
    embed_raster(scene, encoder, tmp_path / "auto.tif", precision="auto", **options)
    exact, exact_tags = _map(tmp_path / "fp32.tif")
    auto, auto_tags = _map(tmp_path / "auto.tif")
    assert exact_tags["precision"] == "32"
    expected = "bf16" if native_bf16("cpu") else "32"
    assert auto_tags["precision"] == expected
    finite = np.isfinite(exact)
    assert finite.any() and np.array_equal(finite, np.isfinite(auto))
    error = np.linalg.norm(auto[finite] - exact[finite]) / np.linalg.norm(exact[finite])
    assert error < (2e-2 if expected == "bf16" else 1e-6)
