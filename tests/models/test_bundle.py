"""Model bundles: safetensors + config.json round trips."""

from __future__ import annotations

import json

import pytest
import torch

from satmae.models import create_model, load_encoder, load_mae, save_bundle
from satmae.normalization import load_stats

STATS = {
    "mean": {
        b: 1000.0 + i
        for i, b in enumerate(
            ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
        )
    },
    "std": {
        b: 500.0 for b in ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
    },
}


@pytest.mark.parametrize("single_file", [False, True])
def test_mae_bundle_round_trip(tmp_path, single_file):
    model = create_model("satmae_tiny", decoder="cross")
    path = tmp_path / ("m.safetensors" if single_file else "bundle")
    save_bundle(model, path, normalization=STATS, provenance={"run": "test"})
    loaded = load_mae(path)
    assert loaded.config == model.config
    assert loaded.normalization is not None and loaded.normalization.mode == "zscore"
    assert loaded.normalization.stats.mean == STATS["mean"]
    assert loaded.normalization.stats.std == STATS["std"]
    assert loaded.provenance["run"] == "test"
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    x = torch.rand(1, 2, 10, 16, 16)
    times = torch.tensor([[1_600_000_000, 1_610_000_000]])
    gen = torch.Generator
    torch.testing.assert_close(
        loaded(x, times, generator=gen().manual_seed(0)).loss,
        model(x, times, generator=gen().manual_seed(0)).loss,
    )
    encoder = load_encoder(path)
    assert not encoder.training and encoder.normalization == loaded.normalization
    torch.testing.assert_close(encoder.embed(x, times), model.encoder.eval().embed(x, times))


def test_config_json_schema(tmp_path):
    save_bundle(create_model("satmae_tiny", normalization=None), tmp_path / "b")
    meta = json.loads((tmp_path / "b" / "config.json").read_text())
    assert meta["format"] == "satmae-bundle" and meta["version"] == 2
    assert meta["contents"] == "mae"
    architecture = meta["architecture"]
    assert architecture["band_groups"][2] == ["B11", "B12"]
    assert architecture["time_fields"] == ["year", "day_of_year"]
    assert architecture["patch_size"] == 8 and architecture["img_size"] == [32, 32]
    assert architecture["embed_dim"] == 64 and architecture["input_bands"] is None
    assert meta["normalization"] is None
    assert meta["provenance"] == {"registry": "satmae_tiny"}


def test_registry_statistics_are_saved_with_mode_and_convention(tmp_path):
    save_bundle(create_model("satmae_tiny"), tmp_path / "b")
    stored = json.loads((tmp_path / "b" / "config.json").read_text())["normalization"]
    assert stored["mode"] == "zscore" and stored["format"] == "satmae-stats"
    assert list(stored["bands"]) == list(create_model("satmae_tiny").config.bands)
    assert stored["bands"]["B04"]["mean"] == pytest.approx(
        load_stats("s2_l2a").mean["B04"], rel=1e-12
    )


def test_version_1_bundle_still_loads(tmp_path):
    model = create_model("satmae_tiny", normalization=None)
    save_bundle(model, tmp_path / "b")
    meta_path = tmp_path / "b" / "config.json"
    meta = json.loads(meta_path.read_text())
    architecture = {k: v for k, v in meta["architecture"].items() if k != "input_bands"}
    legacy = {
        "format": "satmae-bundle",
        "version": 1,
        "contents": "mae",
        "architecture": architecture,
        "bands": list(model.config.bands),
        "band_groups": architecture["band_groups"],
        "time_fields": architecture["time_fields"],
        "patch_size": 8,
        "img_size": [32, 32],
        "normalization": STATS,
        "provenance": {},
    }
    meta_path.write_text(json.dumps(legacy))
    loaded = load_encoder(tmp_path / "b")
    assert loaded.normalization is not None and loaded.normalization.mode == "zscore"
    assert loaded.normalization.stats.mean == STATS["mean"]
    assert torch.equal(loaded.cls_token, model.encoder.cls_token)


def test_encoder_bundle(tmp_path):
    encoder = create_model("satmae_tiny").encoder
    save_bundle(encoder, tmp_path / "enc")
    loaded = load_encoder(tmp_path / "enc")
    assert torch.equal(loaded.cls_token, encoder.cls_token)
    with pytest.raises(ValueError, match="encoder without a decoder"):
        load_mae(tmp_path / "enc")


def test_bundle_of_another_architecture_is_rejected(tmp_path):
    save_bundle(create_model("satmae_tiny"), tmp_path / "b")
    meta_path = tmp_path / "b" / "config.json"
    meta = json.loads(meta_path.read_text())
    meta["architecture"]["embed_dim"] = 96
    meta["architecture"]["group_dim"] = 16
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"another architecture.*expected"):
        load_mae(tmp_path / "b")


def test_normalization_must_cover_bands(tmp_path):
    with pytest.raises(ValueError, match=r"lack bands \['B02'"):
        save_bundle(
            create_model("satmae_tiny"), tmp_path / "b", normalization={"mean": {}, "std": {}}
        )


def test_lightning_checkpoint_with_bundle_config(tmp_path):
    model = create_model("satmae_tiny")
    state = {f"model.{key}": value for key, value in model.state_dict().items()}
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": state, "satmae_config": model.spec.to_json(), "epoch": 3}, path)
    loaded = load_mae(path)
    assert torch.equal(loaded.encoder.cls_token, model.encoder.cls_token)
    assert torch.equal(
        load_encoder(path).blocks[0].attn.qkv.weight, model.encoder.blocks[0].attn.qkv.weight
    )
    assert loaded.normalization == model.normalization


def test_package_exports_are_lazy():
    import satmae

    assert satmae.create_model is create_model
    assert satmae.load_mae is load_mae and satmae.load_encoder is load_encoder
