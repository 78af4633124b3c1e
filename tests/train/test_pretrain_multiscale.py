"""satmae pretrain with multi-scale reconstruction (SatMAE++): 2 tiny steps through the CLI."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from satmae.cli import main
from satmae.data.store.chipwriter import ChipStoreWriter
from satmae.models import create_model, load_mae
from satmae.models.official import to_official
from tests.models.tiny_sizes import TINY_OFFICIAL_SIZES

from .test_pretrain import BANDS, chip, pretrain_args

TINY_PP = {"img_size": [8, 8], "patch_size": 4, "max_frames": 2, "upsample_scales": [2, 4]}


@pytest.fixture(scope="module")
def single_date_store(tmp_path_factory) -> Path:
    """Chips of one date, as the official (non-temporal) group-channel model takes."""
    root = tmp_path_factory.mktemp("chips1")
    with ChipStoreWriter(root, "part", bands=BANDS, frames=1, height=32, width=32) as writer:
        for seed in range(16):
            sample = chip(seed)
            writer.add(sample | {key: sample[key][:1] for key in ("image", "times", "valid")})
    return root


def _args(store: Path, run: Path, overrides: dict, *extra: str) -> list[str]:
    args = pretrain_args(store, run, "--trainer.max_steps", "2", *extra)
    args[args.index("--model.overrides") + 1] = json.dumps(overrides)
    return args


@pytest.mark.parametrize("rule", ["masked", "satmae_pp"])
def test_two_step_multiscale_cli_run_logs_scales_and_draws_every_scale(store, tmp_path, rule):
    run = tmp_path / "run"
    overrides = TINY_PP | {"multiscale_loss": rule}
    extra = ("--data.scales", "[2, 4]", "--figures.every_n_steps", "1")
    assert main(_args(store, run, overrides, *extra)) == 0
    model = load_mae(run / "checkpoints" / "last.ckpt")
    assert model.config.upsample_scales == (2, 4)
    assert model.config.multiscale_loss == rule
    assert model.upsampler is not None
    assert (run / "figures" / "step00000002.png").is_file()


def test_native_targets_score_only_bands_that_resolve_the_scale(store, tmp_path):
    run = tmp_path / "run"
    extra = ("--data.scales", "[2, 4]", "--data.scale_targets", "native")
    assert main(_args(store, run, TINY_PP, *extra)) == 0


def test_model_scales_without_data_scales_fail_before_training(store, tmp_path, capsys):
    code = main(_args(store, tmp_path / "run", TINY_PP))
    assert code != 0
    assert "data.scales" in capsys.readouterr().err


def test_continued_pretraining_from_an_official_satmae_pp_checkpoint(single_date_store, tmp_path):
    """An official-layout SatMAE++ .pth (tiny, random) -> satmae pretrain --model.init_from."""
    with torch.device("cpu"):
        ours = create_model(
            "satmae_pp_group_channel_vit_base_patch8_96",
            **TINY_OFFICIAL_SIZES,
            img_size=(8, 8),
            patch_size=4,
        )
    state = to_official(ours.config, ours.state_dict())
    path = tmp_path / "official_pp.pth"
    args = argparse.Namespace(num_heads=2, decoder_num_heads=2)
    torch.save({"model": state, "args": args, "epoch": 49}, path)
    run = tmp_path / "run"
    extra = ("--model.init_from", str(path), "--data.scales", "[2, 4]")
    # Our corrected loss and each head predicting its own group, the weights kept.
    overrides = {"multiscale_loss": "masked", "head_bands": None}
    assert main(_args(single_date_store, run, overrides, *extra)) == 0
    model = load_mae(run / "checkpoints" / "last.ckpt")
    assert model.config.upsample_scales == (2, 4)
    assert model.config.multiscale_loss == "masked" and model.config.head_bands is None
    bad = _args(single_date_store, tmp_path / "bad", {"upsample_scales": [2]}, *extra)
    assert main(bad) != 0


def test_scaling_a_batch_happens_once(store):
    """Lightning may pass a batch through the transfer hooks twice (figures): halve once."""
    from satmae.train.data import PretrainData

    data = PretrainData(str(store), batch_size=4, val_fraction=0.25, scales=[2, 4])
    data.setup()
    batch = data.peek()
    assert batch["image"].shape[-2:] == (8, 8)
    assert batch["image_x2"].shape[-2:] == (16, 16)
    assert batch["image_x4"].shape[-2:] == (32, 32)
    assert data.scale_batch(batch) is batch
