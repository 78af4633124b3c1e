"""Damaged or foreign model files give one ValueError naming the file, never a raw error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import satmae
from satmae.models import create_model, load_encoder, load_mae, save_bundle


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return save_bundle(create_model("satmae_tiny"), tmp_path_factory.mktemp("b") / "good")


def _copy(bundle: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(bundle, tmp_path / "copy"))


@pytest.mark.parametrize("content", [b"", b"hello world", b"\x80\x02garbage"])
def test_files_that_are_no_checkpoint(tmp_path, content):
    path = tmp_path / "model.pth"
    path.write_bytes(content)
    for loader in (satmae.load_spec, load_encoder):
        with pytest.raises(ValueError, match=r"model\.pth is not a readable checkpoint"):
            loader(path)


def test_damaged_bundle_weights_name_the_file(bundle, tmp_path):
    copy = _copy(bundle, tmp_path)
    (copy / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"copy/model\.safetensors is not a readable safetensors"):
        load_encoder(copy)


def test_broken_config_names_the_file(bundle, tmp_path):
    copy = _copy(bundle, tmp_path)
    (copy / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"config\.json is not valid JSON"):
        load_encoder(copy)
    document = json.loads((bundle / "config.json").read_text())
    del document["architecture"]
    (copy / "config.json").write_text(json.dumps(document))
    with pytest.raises(ValueError, match="architecture"):
        load_encoder(copy)


def test_nan_weights_are_refused(bundle, tmp_path):
    copy = _copy(bundle, tmp_path)
    state = load_file(str(copy / "model.safetensors"))
    key = next(k for k in state if k.startswith("encoder.blocks"))
    state[key] = torch.full_like(state[key], float("nan"))
    save_file(state, str(copy / "model.safetensors"))
    for loader in (load_encoder, load_mae):
        with pytest.raises(ValueError, match="NaN or inf"):
            loader(copy)


@pytest.mark.parametrize("name", ["model.safetensors", "model.ckpt", "model.pt"])
@pytest.mark.parametrize("content", [b"", b"hello world\n", b"\x00" * 64])
def test_text_and_empty_files_under_any_model_suffix(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    for loader in (satmae.load_spec, load_encoder, load_mae):
        with pytest.raises(ValueError, match=str(path)):
            loader(path)


def test_single_file_bundle_with_broken_metadata_names_the_file(tmp_path):
    path = tmp_path / "one.safetensors"
    save_file({"x": torch.zeros(1)}, str(path), metadata={"satmae_config": "{not json"})
    with pytest.raises(ValueError, match=r"one\.safetensors: its 'satmae_config' metadata"):
        load_encoder(path)


def _depth(bundle: Path, tmp_path: Path, depth: int) -> Path:
    copy = _copy(bundle, tmp_path)
    document = json.loads((copy / "config.json").read_text())
    document["architecture"]["depth"] = depth
    (copy / "config.json").write_text(json.dumps(document))
    return copy


def test_weights_the_config_lacks_are_refused_unless_not_strict(bundle, tmp_path):
    copy = _depth(bundle, tmp_path, 1)  # the weights hold 2 encoder blocks
    for loader in (load_encoder, load_mae):
        with pytest.raises(ValueError, match=r"copy holds \d+ weights .*blocks\.1\..*strict=False"):
            loader(copy)
    with pytest.warns(UserWarning, match="skipped"):
        encoder = load_encoder(copy, strict=False)
    assert len(encoder.blocks) == 1


def test_weights_missing_for_the_config_are_refused(bundle, tmp_path):
    copy = _depth(bundle, tmp_path, 3)
    with pytest.raises(ValueError, match=r"missing keys \['encoder\.blocks\.2"):
        load_mae(copy, strict=False)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("patch_size", 0, "patch_size must be an integer >= 1, got 0"),
        ("depth", -1, "depth must be an integer >= 1, got -1"),
        ("embed_dim", "64", "embed_dim must be an integer"),
        ("img_size", "big", "img_size must be two integers"),
        ("band_groups", 5, "band_groups must be a list of band lists"),
        ("decoder_num_heads", 0, "decoder_num_heads must be an integer >= 1"),
        ("mask_ratio", None, r"mask_ratio must be a number in \[0, 1\)"),
    ],
)
def test_invalid_architecture_names_the_file_and_field(bundle, tmp_path, field, value, message):
    copy = _copy(bundle, tmp_path)
    document = json.loads((copy / "config.json").read_text())
    document["architecture"][field] = value
    (copy / "config.json").write_text(json.dumps(document))
    with pytest.raises(ValueError, match=rf"copy.*{message}"):
        load_mae(copy)


def test_summary_that_disagrees_with_the_architecture_is_refused(bundle, tmp_path):
    copy = _copy(bundle, tmp_path)
    document = json.loads((copy / "config.json").read_text())
    document |= {"version": 1, "patch_size": 16, "bands": ["B04", "B03", "B02"]}
    (copy / "config.json").write_text(json.dumps(document))
    for loader in (satmae.load_spec, load_encoder):
        with pytest.raises(ValueError, match=r"copy describes another model .*patch_size 16"):
            loader(copy)


def test_contents_that_disagree_with_the_weights_are_refused(bundle, tmp_path):
    copy = _copy(bundle, tmp_path)
    document = json.loads((copy / "config.json").read_text())
    document["contents"] = "encoder"
    (copy / "config.json").write_text(json.dumps(document))
    for loader in (load_encoder, load_mae):
        with pytest.raises(ValueError, match="says it holds"):
            loader(copy)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda n: n["bands"].pop("B02"), r"lack the model bands \['B02'\]"),
        (lambda n: n["bands"]["B03"].update(std=0.0), "band B03 has std 0.0"),
        (lambda n: n["bands"]["B03"].update(std=-1.0), "band B03 has std -1.0"),
        (lambda n: n["bands"]["B03"].update(mean=float("nan")), "B03 needs a finite number"),
        (lambda n: n["bands"]["B03"].pop("mean"), "B03 needs a finite number as mean"),
        (lambda n: n["bands"].update(B99={"mean": 1, "std": 1}), "unknown band 'B99'"),
        (lambda n: n.update(mode="minmax"), "mode must be one of"),
        (lambda n: n.update(bands=[1, 2]), "'bands' must map each band"),
    ],
)
def test_malformed_normalisation_names_the_file(bundle, tmp_path, change, message):
    copy = _copy(bundle, tmp_path)
    document = json.loads((copy / "config.json").read_text())
    change(document["normalization"])
    (copy / "config.json").write_text(json.dumps(document))
    with pytest.raises(ValueError, match=rf"copy.*{message}"):
        load_encoder(copy)


def test_version_1_statistics_of_different_bands_are_refused(tmp_path):
    from satmae.normalization import BandStats

    with pytest.raises(ValueError, match=r"'mean' covers bands \['B02', 'B03'\] but 'std'"):
        BandStats.from_dict({"mean": {"B02": 1, "B03": 2}, "std": {"B02": 1}}, "v1")


def test_lightning_checkpoint_without_weights_names_the_file(tmp_path):
    path = tmp_path / "last.ckpt"
    torch.save({"satmae_config": create_model("satmae_tiny").spec.to_json()}, path)
    with pytest.raises(ValueError, match=r"last\.ckpt has a 'satmae_config' entry but no"):
        load_encoder(path)


def test_export_refuses_weights_its_config_lacks_unless_not_strict(bundle, tmp_path, capsys):
    from satmae.cli import main

    copy = _depth(bundle, tmp_path, 1)
    assert main(["export", str(copy), "--out", str(tmp_path / "out")]) != 0
    assert "strict=False" in capsys.readouterr().err
    with pytest.warns(UserWarning, match="skipped"):
        assert main(["export", str(copy), "--out", str(tmp_path / "out"), "--not-strict"]) == 0
    assert len(load_mae(tmp_path / "out").encoder.blocks) == 1
