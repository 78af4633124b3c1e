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
