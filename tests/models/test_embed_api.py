"""encoder.embed on numpy, xarray, layers, batch_size; load_encoder with a dtype."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from satmae.models import create_model, load_encoder, save_bundle

xr = pytest.importorskip("xarray")
pytest.importorskip("rioxarray")


@pytest.fixture
def series():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(3, 2, 10, 16, 24, generator=gen)  # (B, T, C, H, W)
    times = 1_600_000_000 + torch.randint(0, 10**7, (3, 2), generator=gen)
    return x, times


@pytest.fixture
def cube(encoder):
    rng = np.random.default_rng(0)
    bands = list(encoder.bands)
    values = rng.uniform(0, 3000, (2, len(bands), 16, 24)).astype("float32")
    array = xr.DataArray(
        values,
        dims=("time", "band", "y", "x"),
        coords={
            "time": np.array(["2020-01-01", "2020-06-01"], "datetime64[ns]"),
            "band": bands,
            "y": 5_000_000 - 10.0 * np.arange(16) - 5,
            "x": 300_000 + 10.0 * np.arange(24) + 5,
        },
    )
    return array.rio.write_crs("EPSG:32633")


def as_sample(cube):
    seconds = cube["time"].values.astype("datetime64[s]").astype(np.int64)
    return {
        "image": torch.from_numpy(cube.values),
        "bands": list(cube["band"].values),
        "times": torch.from_numpy(seconds),
    }


def test_numpy_equals_tensor(encoder, series):
    x, times = series
    torch.testing.assert_close(encoder.embed(x.numpy(), times), encoder.embed(x, times))


@pytest.mark.parametrize("pool", ["mean", "cls"])
def test_xarray_pooled(encoder, cube, pool):
    out = encoder.embed(cube, pool=pool)
    assert isinstance(out, xr.DataArray)
    assert out.dims == ("feature",)
    expected = encoder.embed(as_sample(cube), pool=pool)[0]
    np.testing.assert_allclose(out.values, expected.numpy(), rtol=1e-5, atol=1e-6)


def test_xarray_tokens_keep_coords_crs_and_times(encoder, cube):
    out = encoder.embed(cube, pool="none")
    assert out.dims == ("time", "group", "feature", "y", "x")
    assert out.shape == (2, 3, 64, 2, 3)
    np.testing.assert_array_equal(out["time"].values, cube["time"].values)
    np.testing.assert_allclose(out["x"].values, 300_000 + 80.0 * np.arange(3) + 40)
    np.testing.assert_allclose(out["y"].values, 5_000_000 - 80.0 * np.arange(2) - 40)
    assert out.rio.crs == cube.rio.crs
    assert out.rio.transform().a == 80.0
    tokens = encoder.embed(as_sample(cube), pool="none")[0]  # (T, G, h, w, D)
    np.testing.assert_allclose(out.values, tokens.permute(0, 1, 4, 2, 3).numpy(), rtol=1e-5)


def test_xarray_single_date_and_nodata(encoder, cube):
    image = cube.isel(time=0).copy()
    image[:, :8, :8] = np.nan  # one whole patch invalid
    out = encoder.embed(image, pool="none")
    assert out.dims == ("group", "feature", "y", "x")
    assert np.isnan(out.values[:, :, 0, 0]).all()
    assert np.isfinite(out.values[:, :, 1, 1]).all()


def test_layers(encoder, series):
    x, times = series
    out = encoder.embed(x, times, layers=[0, -1])
    assert sorted(out) == [-1, 0]
    features = encoder(x, times, blocks=[1])
    torch.testing.assert_close(out[-1], features.intermediates[1].mean(dim=(1, 2, 3, 4)))
    tokens = encoder.embed(x, times, pool="none", layers=[1])
    assert tokens[1].shape == (3, 2, 3, 2, 3, 64)
    assert encoder.embed(x, times, pool="cls", layers=[0])[0].shape == (3, 64)
    with pytest.raises(ValueError, match="outside the model"):
        encoder.embed(x, times, layers=[5])


def test_xarray_layers(encoder, cube):
    out = encoder.embed(cube, layers=[0, 1])
    assert sorted(out) == [0, 1]
    assert out[1].dims == ("feature",)


@pytest.mark.parametrize("pool", ["mean", "cls", "none"])
def test_batch_size_chunks_give_identical_results(encoder, series, pool):
    x, times = series
    whole = encoder.embed(x, times, pool=pool)
    torch.testing.assert_close(encoder.embed(x, times, pool=pool, batch_size=2), whole)
    with pytest.raises(ValueError, match="batch_size"):
        encoder.embed(x, times, batch_size=0)


def test_bf16_dtype_close_to_fp32(tmp_path, series):
    torch.manual_seed(0)
    path = save_bundle(create_model("satmae_tiny"), tmp_path / "bundle")
    full = load_encoder(path)
    half = load_encoder(path, dtype=torch.bfloat16)
    assert half.cls_token.dtype == torch.bfloat16
    x, times = series
    out = half.embed(x, times)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, full.embed(x, times), rtol=5e-2, atol=5e-2)
