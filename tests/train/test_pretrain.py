"""satmae pretrain: the CLI on a small chip store, checkpoints that read like bundles, guards."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import satmae
from satmae.cli import main
from satmae.data.sample import collate_samples
from satmae.data.store.chipwriter import ChipStoreWriter
from satmae.models import load_encoder
from satmae.train.data import PretrainData, split_by_location
from satmae.train.module import NonFiniteLoss, PretrainModule

ROOT = Path(__file__).resolve().parents[2]
BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")


def chip(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    image = rng.integers(200, 4000, (2, len(BANDS), 32, 32)).astype(np.float32)
    return {
        "image": torch.from_numpy(image),
        "bands": BANDS,
        "times": torch.tensor([1_650_000_000 + seed, 1_660_000_000 + seed]),
        "valid": torch.ones(2, 32, 32, dtype=torch.bool),
        "location": f"loc-{seed // 2}",
    }


def pretrain_args(store: Path, run: Path, *extra: str) -> list[str]:
    """``satmae pretrain`` arguments: the demo recipe on the test store, small and quiet."""
    return [
        "pretrain",
        "--config",
        str(ROOT / "configs" / "pretrain" / "demo.yaml"),
        "--data.path",
        str(store),
        "--data.batch_size",
        "4",
        "--model.overrides",
        '{"img_size": [32, 32], "max_frames": 2}',
        "--trainer.default_root_dir",
        str(run),
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.logger",
        "false",
        "--precision",
        "32-true",
        "--checkpoint.dirpath",
        str(run / "checkpoints"),
        "--checkpoint.every_n_train_steps",
        "1",
        "--model.optimizer.warmup_steps",
        "1",
        *extra,
    ]


def pretrain(store: Path, run: Path, *extra: str) -> int:
    return main(pretrain_args(store, run, *extra))


def test_split_holds_out_whole_locations():
    locations = [f"l{i // 3}" for i in range(30)]
    train, val = split_by_location(locations, 0.2, seed=0)
    assert sorted(train + val) == list(range(30))
    assert {locations[i] for i in train}.isdisjoint({locations[i] for i in val})
    assert len({locations[i] for i in val}) == 2
    assert split_by_location(locations, 0.2, seed=0) == (train, val)
    with pytest.raises(ValueError, match=r"val_fraction must be in \[0, 1\)"):
        split_by_location(locations, 1.0, seed=0)


def test_two_step_cli_run_writes_checkpoints_that_read_like_bundles(store, tmp_path):
    assert pretrain(store, tmp_path / "run", "--trainer.max_steps", "2") == 0
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert last.is_file()
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("step*.ckpt")) == [
        "step00000001.ckpt",
        "step00000002.ckpt",
    ]
    assert list((tmp_path / "run").rglob("config.yaml")), "the resolved config is saved"
    assert (tmp_path / "run" / "figures" / "step00000002.png").is_file()
    spec = satmae.load_spec(last)
    assert spec.contents == "mae" and spec.normalization is not None
    assert main(["export", str(last), "--out", str(tmp_path / "bundle")]) == 0
    batch = collate_samples([chip(100), chip(101)])
    from_ckpt = load_encoder(last).embed(batch)
    from_bundle = load_encoder(tmp_path / "bundle").embed(batch)
    torch.testing.assert_close(from_ckpt, from_bundle, rtol=0, atol=0)
    assert main(["export", str(last), "--out", str(tmp_path / "bundle")]) == 2  # no overwrite


def test_bad_config_key_fails_before_reading_data(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        pretrain(tmp_path / "no_store_here", tmp_path / "run", "--model.mask_ration", "0.5")
    assert exit_info.value.code != 0
    assert "mask_ration" in capsys.readouterr().err


def test_nonfinite_loss_names_the_step_and_stops(store):
    module = PretrainModule(overrides={"img_size": [32, 32], "max_frames": 2})
    batch = collate_samples([chip(1), chip(2)])
    # A diverged weight of group 0's projection (NaN inputs are refused before the model);
    # attention spreads it to every group.
    module.model.encoder.tokenizer.patch_embed[0].weight.data.fill_(float("nan"))
    with pytest.raises(
        NonFiniteLoss, match=r"loss is nan at step 0 .*non-finite in band groups \[0, 1, 2\]"
    ):
        module.training_step(batch, 0)


def test_a_batch_without_valid_tokens_is_skipped_and_counted(store):
    module = PretrainModule(overrides={"img_size": [32, 32], "max_frames": 2})
    batch = collate_samples([chip(1), chip(2)])
    batch["valid"][:] = False  # all cloud: the loss would be a silent 0
    with pytest.warns(UserWarning, match="no valid hidden token"):
        assert module.training_step(batch, 0) is None
    assert module.empty_batches == 1
    checkpoint: dict = {}
    module.on_save_checkpoint(checkpoint)
    assert checkpoint["satmae_empty_batches"] == 1


def test_datamodule_rejects_a_batch_larger_than_the_data(store):
    data = PretrainData(str(store), batch_size=64)
    with pytest.raises(ValueError, match=r"fewer than data\.batch_size=64"):
        data.setup()


@pytest.mark.parametrize(("native", "expected"), [(False, "32-true"), (True, "bf16-mixed")])
def test_precision_auto_follows_the_hardware(monkeypatch, native, expected):
    from satmae.train.cli import trainer_precision

    monkeypatch.setattr("satmae.train.precision.cpu_supports_bf16", lambda: native)
    assert trainer_precision("auto", "cpu") == expected
    assert trainer_precision("32-true", "auto") == "32-true"


def test_auto_precision_is_saved_resolved(store, tmp_path, monkeypatch):
    monkeypatch.setattr("satmae.train.precision.cpu_supports_bf16", lambda: False)
    args = ["--trainer.max_steps", "1", "--precision", "auto"]
    assert pretrain(store, tmp_path / "run", *args) == 0
    saved = next((tmp_path / "run").rglob("config.yaml")).read_text()
    assert "precision: 32-true" in saved


def logged_losses(run: Path) -> dict[int, float]:
    import csv

    losses = {}
    for metrics in sorted(run.rglob("metrics.csv")):
        with metrics.open() as handle:
            for row in csv.DictReader(handle):
                if row.get("train/loss"):
                    losses[int(row["step"])] = float(row["train/loss"])
    return losses


def test_killed_run_resumes_exactly(store, tmp_path):
    """SIGKILL mid-run, resume with --ckpt_path last: the same losses as an uninterrupted run."""
    import signal
    import subprocess
    import sys
    import time

    steps = ["--trainer.max_steps", "24", "--trainer.logger", "true"]
    assert pretrain(store, tmp_path / "whole", *steps) == 0
    whole = logged_losses(tmp_path / "whole")
    assert sorted(whole) == list(range(24))

    run = tmp_path / "killed"
    argv = pretrain_args(store, run, *steps)
    code = "import sys; from satmae.cli import main; sys.exit(main(sys.argv[1:]))"
    process = subprocess.Popen([sys.executable, "-c", code, *argv], cwd=ROOT)
    deadline = time.monotonic() + 120
    while not (run / "checkpoints" / "step00000005.ckpt").exists():
        assert process.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "no checkpoint after 120 s"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    for saved in (run / "checkpoints").glob("*.ckpt"):  # complete, whatever the kill hit
        torch.load(saved, map_location="cpu", weights_only=False)
    stopped_at = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["global_step"]
    assert 4 <= stopped_at < 24  # last.ckpt is written after the step file

    assert pretrain(store, run, *steps, "--ckpt_path", "last") == 0
    assert not list(run.rglob("*.tmp")), "the resumed run removes what the kill left"
    resumed = logged_losses(run)
    assert set(resumed) >= set(range(stopped_at, 24))
    for step in range(stopped_at, 24):
        assert resumed[step] == pytest.approx(whole[step], rel=0, abs=1e-6), step


def test_ranks_read_disjoint_blocks_of_the_single_process_batch():
    from satmae.train.sampler import ResumableSampler

    single = list(ResumableSampler(40, 8, seed=3, rank=0, world_size=1))
    ranks = [list(ResumableSampler(40, 4, seed=3, rank=r, world_size=2)) for r in (0, 1)]
    assert set(ranks[0]).isdisjoint(ranks[1])
    for batch in range(5):
        merged = ranks[0][batch * 4 : batch * 4 + 4] + ranks[1][batch * 4 : batch * 4 + 4]
        assert merged == single[batch * 8 : batch * 8 + 8]
    resumed = ResumableSampler(40, 8, seed=3, rank=0, world_size=1)
    resumed.resume(epoch=0, batches=2)
    assert list(resumed) == single[16:] and len(resumed) == len(single)


@pytest.mark.slow
def test_two_process_ddp_matches_one_process_with_the_same_global_batch(store, tmp_path):
    fast = ["--trainer.max_steps", "1", "--trainer.logger", "true", "--model.optimizer.blr", "0.05"]
    fast += ["--data.augment", "false"]  # augmentations are drawn per rank
    assert pretrain(store, tmp_path / "one", *fast, "--data.batch_size", "8") == 0
    ddp = ["--trainer.accelerator", "cpu", "--trainer.devices", "2"]
    ddp += ["--trainer.strategy", "ddp_spawn", "--data.batch_size", "4"]
    assert pretrain(store, tmp_path / "two", *fast, *ddp) == 0
    one, two = logged_losses(tmp_path / "one"), logged_losses(tmp_path / "two")
    assert two[0] == pytest.approx(one[0], rel=0, abs=1e-6)
    first = torch.load(tmp_path / "one" / "checkpoints" / "last.ckpt", weights_only=False)
    second = torch.load(tmp_path / "two" / "checkpoints" / "last.ckpt", weights_only=False)
    close = total = 0
    for key, value in first["state_dict"].items():
        close += int(torch.isclose(value, second["state_dict"][key], rtol=0, atol=1e-5).sum())
        total += value.numel()
    assert close / total > 0.999  # one AdamW step from all-reduced gradients


def test_mask_ratio_schedule_is_logged_as_promised(store, tmp_path):
    from satmae.train.schedules import MaskRatioSchedule

    schedule = ["--model.mask_ratio.kind", "linear", "--model.mask_ratio.start", "0.5"]
    schedule += ["--model.mask_ratio.end", "0.8", "--model.mask_ratio.steps", "3"]
    steps = ["--trainer.max_steps", "5", "--trainer.logger", "true"]
    assert pretrain(store, tmp_path / "run", *steps, *schedule) == 0
    import csv

    logged = {}
    with next((tmp_path / "run").rglob("metrics.csv")).open() as handle:
        for row in csv.DictReader(handle):
            if row.get("train/mask_ratio"):
                logged[int(row["step"])] = float(row["train/mask_ratio"])
    promised = MaskRatioSchedule(kind="linear", start=0.5, end=0.8, steps=3)
    assert logged == pytest.approx({step: promised(step) for step in range(5)})
    assert logged[0] == pytest.approx(0.5) and logged[4] == pytest.approx(0.8)


def test_bf16_mixed_runs(store, tmp_path):
    args = ["--trainer.max_steps", "1", "--precision", "bf16-mixed"]
    with pytest.warns(UserWarning) if not _native_bf16() else _nothing():
        assert pretrain(store, tmp_path / "run", *args) == 0
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()


def _native_bf16() -> bool:
    from satmae.train.precision import cpu_supports_bf16

    return cpu_supports_bf16()


def _nothing():
    import contextlib

    return contextlib.nullcontext()


def test_pretraining_reads_scene_folders_directly(tmp_path):
    from satmae.data.synthetic import DemoConfig, write_demo_set

    demo = write_demo_set(tmp_path / "demo", DemoConfig(size=64, num_dates=3))
    args = ["--data.size", "32", "--data.frames", "2", "--data.windows_per_scene", "8"]
    args += ["--data.val_fraction", "0", "--trainer.max_steps", "2"]
    assert pretrain(demo.root, tmp_path / "run", *args) == 0
    spec = satmae.load_spec(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert spec.max_frames == 2


def test_continued_pretraining_from_a_bundle_and_an_official_checkpoint(store, tmp_path):
    import argparse

    from satmae.models import create_model, save_bundle
    from tests.models.official_reference import group_channel_state

    start = create_model("satmae_tiny", img_size=(32, 32), max_frames=2, normalization="s2_l1c")
    save_bundle(start, tmp_path / "start")
    args = ["--trainer.max_steps", "1", "--model.init_from", str(tmp_path / "start")]
    assert pretrain(store, tmp_path / "run", *args) == 0
    spec = satmae.load_spec(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert spec.normalization == start.normalization  # the bundle's statistics are kept

    single = tmp_path / "single"
    with ChipStoreWriter(single, "part", bands=BANDS, frames=1, height=32, width=32) as writer:
        for seed in range(8):
            one = chip(seed)
            one.update(image=one["image"][:1], times=one["times"][:1], valid=one["valid"][:1])
            writer.add(one)
    official = group_channel_state(64, 1, [[0, 1, 2, 6], [3, 4, 5, 7], [8, 9]], 8, 4, 16, 32, 1, 8)
    torch.save({"model": official, "args": argparse.Namespace(num_heads=2)}, tmp_path / "o.pth")
    args = ["--trainer.max_steps", "1", "--model.init_from", str(tmp_path / "o.pth")]
    args += ["--model.overrides", "null", "--data.val_fraction", "0"]
    assert pretrain(single, tmp_path / "official", *args) == 0
    resumed = satmae.load_spec(tmp_path / "official" / "checkpoints" / "last.ckpt")
    assert resumed.provenance["official"] == "group_channel"
    assert resumed.normalization is not None and resumed.normalization.mode == "satmae"


def test_data_that_does_not_fit_the_model_fails_before_the_first_step(tmp_path, capsys):
    few = tmp_path / "few_bands"
    bands = ("B02", "B03", "B04", "B05")  # group 0 lacks B08: the model cannot take it
    with ChipStoreWriter(few, "part", bands=bands, frames=2, height=32, width=32) as writer:
        for seed in range(8):
            one = chip(seed)
            one.update(image=one["image"][:, 1:4].clone(), bands=bands)
            one["image"] = torch.cat([one["image"], one["image"][:, :1]], 1)
            writer.add(one)
    run = tmp_path / "run"
    assert pretrain(few, run, "--trainer.max_steps", "1") == 2
    error = capsys.readouterr().err
    assert "does not fit the model" in error and "missing ['B08']" in error
    assert not (run / "checkpoints").exists()


def test_bad_value_fails_before_reading_data(tmp_path, capsys):
    assert pretrain(tmp_path / "missing", tmp_path / "run", "--data.batch_size", "0") == 2
    assert "data.batch_size must be at least 1, got 0" in capsys.readouterr().err


def test_statistics_are_computed_when_the_config_names_none(store, tmp_path):
    args = ["--trainer.max_steps", "1", "--model.normalization", "null"]
    assert pretrain(store, tmp_path / "run", *args) == 0
    spec = satmae.load_spec(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert spec.normalization is not None
    assert "computed by satmae pretrain" in spec.normalization.stats.provenance
    assert set(spec.normalization.stats.mean) == set(spec.bands)
    assert 200 < spec.normalization.stats.mean["B04"] < 4000  # chips hold 200-4000


def test_runs_log_to_tensorboard_and_csv_in_one_folder(store, tmp_path):
    assert (
        pretrain(store, tmp_path / "run", "--trainer.max_steps", "2", "--trainer.logger", "true")
        == 0
    )
    version = tmp_path / "run" / "lightning_logs" / "version_0"
    assert (version / "metrics.csv").is_file()
    assert list(version.glob("events.out.tfevents.*"))
    assert "train/lr" in (version / "metrics.csv").read_text().splitlines()[0]


def test_excluded_locations_are_never_read_and_typos_are_refused(tmp_path):
    from satmae.train.data import PretrainData
    from tests.eval.fake_oscd import write_fake_oscd

    root = write_fake_oscd(tmp_path / "oscd", cities=("aguas", "bercy", "nantes", "paris"))
    data = PretrainData(
        str(root), batch_size=2, size=32, windows_per_scene=2, val_fraction=0.3, exclude=["paris"]
    )
    data.setup()
    seen = set(data.train_set.locations) | set(data.val_set.locations)
    assert seen == {"aguas", "bercy", "nantes"}
    typo = PretrainData(str(root), batch_size=2, size=32, exclude=["pariss"])
    with pytest.raises(ValueError, match=r"data.exclude names \['pariss'\]"):
        typo.setup()
