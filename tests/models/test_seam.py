"""The seam from data to model: models carry, apply and save their own normalisation."""

from __future__ import annotations

import argparse
import ast
import json

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin

import satmae
from satmae.cli import main
from satmae.data.sample import collate_samples
from satmae.data.stats import Normalize
from satmae.models import create_model, load_encoder, load_mae, save_bundle
from satmae.normalization import BandStats, Normalization, load_stats
from satmae.spec import load_spec

from .official_reference import group_channel_state

L2A_ORDER = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")


def raw_sample(frames: int = 2, seed: int = 0) -> dict:
    """A sample as a reader returns it: uint16-range reflectance in catalog order, dated."""
    gen = torch.Generator().manual_seed(seed)
    image = torch.randint(0, 6000, (frames, len(L2A_ORDER), 32, 32), generator=gen).float()
    valid = torch.ones(frames, 32, 32, dtype=torch.bool)
    valid[:, :6] = False  # 6 of the 8 rows of patch row 0
    times = torch.tensor([1_650_000_000 + 86_400 * 10 * t for t in range(frames)])
    return {"image": image, "times": times, "bands": L2A_ORDER, "valid": valid}


def test_embed_of_raw_sample_equals_manual_normalisation():
    encoder = create_model("satmae_tiny").encoder.eval()
    sample = raw_sample()
    by_hand = Normalize(load_stats("s2_l2a"))(sample)
    expected = encoder.embed(by_hand["image"][None], by_hand["times"][None], bands=L2A_ORDER)
    got = encoder.embed(sample)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    batch = collate_samples([raw_sample(seed=1), raw_sample(seed=2)])
    assert encoder.embed(batch).shape == (2, 64)


def test_prepare_reorders_by_name_drops_extra_bands_and_passes_masks():
    model = create_model("satmae_tiny")
    sample = raw_sample()
    reversed_sample = {
        **sample,
        "image": sample["image"].flip(1),
        "bands": tuple(reversed(L2A_ORDER)),
    }
    inputs = model.prepare(reversed_sample)
    assert inputs.bands == model.config.bands  # group order, B01/B09 dropped
    assert inputs.image.shape == (1, 2, 10, 32, 32)
    torch.testing.assert_close(inputs.image, model.prepare(sample).image, rtol=0, atol=0)
    assert inputs.valid is not None and inputs.valid.shape == (1, 2, 32, 32)
    assert not inputs.valid[0, 0, 0, 0] and inputs.valid[0, 0, 10, 0]
    channel = model.config.bands.index("B04")
    mean, std = load_stats("s2_l2a").mean["B04"], load_stats("s2_l2a").std["B04"]
    pixel = sample["image"][0, L2A_ORDER.index("B04"), 5, 7]
    assert inputs.image[0, 0, channel, 5, 7].item() == pytest.approx((pixel - mean) / std)


def test_mae_takes_the_batch_dict_and_uses_its_validity():
    model = create_model("satmae_tiny")
    sample = raw_sample()
    out = model(sample, generator=torch.Generator().manual_seed(0))
    inputs = model.prepare(sample)
    manual = model(
        inputs.image,
        inputs.times,
        inputs.bands,
        valid=inputs.valid,
        generator=torch.Generator().manual_seed(0),
    )
    torch.testing.assert_close(out.loss, manual.loss, rtol=0, atol=0)
    # Patch row 0 is mostly invalid: none of its tokens counts in the loss.
    assert out.weight[..., :4].sum() == 0 and out.weight.sum() > 0


def test_numpy_sample_works_like_a_tensor_sample():
    encoder = create_model("satmae_tiny").encoder.eval()
    sample = raw_sample()
    as_numpy = {
        key: value.numpy() if isinstance(value, torch.Tensor) else value
        for key, value in sample.items()
    }
    as_numpy["image"] = as_numpy["image"].astype(np.uint16)
    torch.testing.assert_close(encoder.embed(as_numpy), encoder.embed(sample), rtol=0, atol=0)


def test_model_without_statistics_refuses_raw_input_and_says_how_to_attach():
    model = create_model("satmae_tiny", normalization=None)
    with pytest.raises(ValueError, match=r"satmae stats DATA.*set_normalization"):
        model.encoder.embed(raw_sample())
    model.set_normalization("s2_l1c")
    assert model.normalization is not None
    assert model.normalization.stats.mean["B02"] == load_stats("s2_l1c").mean["B02"]
    assert model.encoder.embed(raw_sample()).shape == (1, 64)


def test_prepare_errors_name_the_problem():
    model = create_model("satmae_tiny")
    sample = raw_sample()
    with pytest.raises(ValueError, match=r"no 'times'"):
        model.prepare({k: v for k, v in sample.items() if k != "times"})
    with pytest.raises(ValueError, match=r"lacks \['bands'\]"):
        model.prepare({"image": sample["image"]})
    with pytest.raises(ValueError, match=r"only partly present: missing \['B12'\]"):
        model.prepare({**sample, "image": sample["image"][:, :-1], "bands": L2A_ORDER[:-1]})
    with pytest.raises(ValueError, match=r"valid of shape"):
        model.prepare({**sample, "valid": sample["valid"][:, :16]})


def test_statistics_must_cover_the_model_bands():
    partial = BandStats(mean={"B02": 1.0}, std={"B02": 1.0})
    with pytest.raises(ValueError, match=r"lack bands \['B03'"):
        create_model("satmae_tiny", normalization=partial)


def test_registry_models_carry_builtin_statistics():
    assert create_model("satmae_tiny").normalization == Normalization(
        load_stats("s2_l2a"), "zscore"
    ).for_bands(create_model("satmae_tiny").config.bands)
    l1c = create_model("satmae_tiny", normalization="s2_l1c").normalization
    assert l1c is not None and l1c.stats.mean["B02"] == load_stats("s2_l1c").mean["B02"]
    with torch.device("meta"):
        official = create_model("satmae_group_channel_vit_base_patch8_96")
        rgb = create_model("satmae_temporal_vit_large_patch16_224")
    assert official.normalization is not None and official.normalization.mode == "satmae"
    assert rgb.normalization is not None and rgb.normalization.stats.bands == ("B04", "B03", "B02")


@pytest.mark.parametrize("single_file", [False, True])
def test_bundle_saved_with_stats_applies_the_same_ones(tmp_path, single_file):
    stats = load_stats("s2_l1c")  # the BandStats that load_stats returns
    model = create_model("satmae_tiny", decoder="cross")
    path = tmp_path / ("m.safetensors" if single_file else "bundle")
    save_bundle(model, path, normalization=stats, mode="satmae")
    encoder = load_encoder(path)
    assert encoder.normalization is not None and encoder.normalization.mode == "satmae"
    sample = raw_sample()
    by_hand = Normalize(stats, mode="satmae")(sample)
    expected = model.encoder.eval().embed(by_hand["image"][None], by_hand["times"][None], L2A_ORDER)
    torch.testing.assert_close(encoder.embed(sample), expected, rtol=0, atol=0)
    mae = load_mae(path)
    gen = torch.Generator
    torch.testing.assert_close(
        mae(sample, generator=gen().manual_seed(1)).loss,
        model(
            by_hand["image"][None],
            by_hand["times"][None],
            L2A_ORDER,
            valid=sample["valid"][None],
            generator=gen().manual_seed(1),
        ).loss,
    )


def test_load_spec_reads_all_four_checkpoint_forms(tmp_path):
    model = create_model("satmae_tiny")
    save_bundle(model, tmp_path / "bundle")
    save_bundle(model.encoder, tmp_path / "enc.safetensors")
    torch.save(
        {
            "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
            "satmae_config": model.spec.to_json(),
        },
        tmp_path / "last.ckpt",
    )
    official = group_channel_state(
        128, 1, [[0, 1, 2, 6], [3, 4, 5, 7], [8, 9]], 8, 4, 32, 64, 1, 16
    )
    torch.save(
        {"model": official, "args": argparse.Namespace(num_heads=2)}, tmp_path / "official.pth"
    )
    specs = {
        name: load_spec(tmp_path / name)
        for name in ("bundle", "enc.safetensors", "last.ckpt", "official.pth")
    }
    for name in ("bundle", "enc.safetensors", "last.ckpt"):
        assert specs[name].band_groups == model.config.band_groups
        assert specs[name].input_bands == model.config.bands
        assert specs[name].normalization == model.normalization
        assert specs[name].time_fields == ("year", "day_of_year")
    assert specs["enc.safetensors"].contents == "encoder"
    pth = specs["official.pth"]
    assert pth.input_bands == ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
    assert pth.normalization is not None and pth.normalization.mode == "satmae"
    assert pth.contents == "mae" and pth.provenance["official"] == "group_channel"
    assert satmae.load_spec is load_spec


def test_load_spec_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model at"):
        load_spec(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"has no config\.json"):
        load_spec(tmp_path / "empty")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="not a satmae bundle"):
        load_spec(tmp_path / "other.pth")


def _model_files(tmp_path):
    """The same kind of model in the four forms satmae check --model accepts."""

    model = create_model("satmae_tiny", time_fields=(), max_frames=1)
    save_bundle(model, tmp_path / "bundle")
    save_bundle(model.encoder, tmp_path / "encoder.safetensors")
    state = {f"model.{key}": value for key, value in model.state_dict().items()}
    torch.save({"state_dict": state, "satmae_config": model.spec.to_json()}, tmp_path / "last.ckpt")
    official = group_channel_state(64, 1, [[0, 1, 2, 6], [3, 4, 5, 7], [8, 9]], 8, 4, 16, 32, 1, 8)
    torch.save({"model": official, "args": argparse.Namespace(num_heads=2)}, tmp_path / "o.pth")
    return ["bundle", "encoder.safetensors", "last.ckpt", "o.pth"]


def test_check_accepts_all_four_model_forms(tmp_path, capsys):
    rng = np.random.default_rng(1)
    with rasterio.open(
        tmp_path / "s2.tif",
        "w",
        driver="GTiff",
        width=32,
        height=32,
        count=3,
        dtype="uint16",
        crs="EPSG:4326",
        transform=from_origin(2.36, 48.87, 1e-4, 1e-4),
    ) as dst:
        dst.write(rng.integers(500, 3000, (3, 32, 32)).astype(np.uint16))
        for index, name in enumerate(("B02", "B03", "B04"), start=1):
            dst.set_band_description(index, name)
    for name in _model_files(tmp_path):
        args = ["check", str(tmp_path / "s2.tif"), "--model", str(tmp_path / name), "--json"]
        assert main(args) == 1, name
        results = {r["check"]: r for r in json.loads(capsys.readouterr().out)}
        assert results["model bands"]["status"] == "error", name
        missing = results["model bands"]["detail"].split("lacks ")[1].split(";")[0]
        expected = ["B05", "B06", "B07", "B08", "B11", "B12", "B8A"]
        assert sorted(ast.literal_eval(missing)) == expected, name


def test_load_stats_reads_a_model_files_statistics(tmp_path):
    model = create_model("satmae_tiny", normalization="s2_l1c")
    save_bundle(model, tmp_path / "bundle")
    save_bundle(model.encoder, tmp_path / "enc.safetensors")
    for name in ("bundle", "enc.safetensors"):
        stats = load_stats(tmp_path / name)
        assert stats.mean == load_stats("s2_l1c").subset(model.config.bands).mean
    save_bundle(create_model("satmae_tiny", normalization=None), tmp_path / "bare")
    with pytest.raises(ValueError, match="without normalisation statistics"):
        load_stats(tmp_path / "bare")


def test_a_file_that_is_no_checkpoint_is_a_clear_error(tmp_path):
    (tmp_path / "notes.pth").write_text("not a checkpoint")
    with pytest.raises(ValueError, match=r"notes\.pth is not a readable checkpoint"):
        load_spec(tmp_path / "notes.pth")
    with pytest.raises(ValueError, match="never unpickled"):
        load_encoder(tmp_path / "notes.pth")
