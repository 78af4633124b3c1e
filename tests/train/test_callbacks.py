"""Pretraining callbacks: throughput with a step-time breakdown, reconstruction figures."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from unittest.mock import Mock

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from PIL import Image

from satmae.data.sample import collate_samples
from satmae.train.callbacks import ReconstructionFigures
from satmae.train.data import PretrainData
from satmae.train.module import PretrainModule
from satmae.train.optim import OptimizerConfig
from satmae.train.throughput import (
    Throughput,
    count_step_flops,
    matmul_dtype,
    measure_matmul_peak,
)
from tests.train.test_pretrain import chip

PERF = (
    "perf/step_s",
    "perf/samples_per_s",
    "perf/tokens_per_s",
    "perf/data_wait_fraction",
    "perf/forward_s",
    "perf/backward_s",
    "perf/optimizer_s",
    "perf/flops_per_s",
    "perf/fraction_of_peak",
)


def tiny_module() -> PretrainModule:
    module = PretrainModule(overrides={"img_size": [32, 32], "max_frames": 2})
    # Set after construction: a frozen OptimizerConfig among the hyperparameters makes
    # CSVLogger.log_hyperparams fail (Lightning's apply_to_collection rejects frozen dataclasses).
    module.optimizer_config = OptimizerConfig(warmup_steps=1)
    return module


def fit(
    store: Path,
    root: Path,
    callbacks: list[L.Callback],
    val_fraction: float = 0.25,
    max_steps: int = 3,
    **options,
):
    torch.manual_seed(0)
    trainer = L.Trainer(
        max_steps=max_steps,
        logger=CSVLogger(root),
        callbacks=callbacks,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
        num_sanity_val_steps=0,
        accelerator="cpu",
        **options,
    )
    module = tiny_module()
    trainer.fit(module, PretrainData(str(store), batch_size=4, val_fraction=val_fraction))
    return trainer, module


@pytest.fixture(scope="module")
def run(store, tmp_path_factory) -> tuple[L.Trainer, PretrainModule, ReconstructionFigures]:
    figures = ReconstructionFigures(every_n_steps=2, samples=2)
    trainer, module = fit(store, tmp_path_factory.mktemp("run"), [Throughput(1), figures])
    return trainer, module, figures


def read_rows(trainer: L.Trainer) -> list[dict[str, str]]:
    with open(Path(trainer.log_dir) / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_figures_are_written_every_n_steps_and_at_the_end(run):
    trainer, module, figures = run
    assert module.training, "train mode is restored after drawing"
    folder = Path(trainer.log_dir) / "figures"
    assert sorted(p.name for p in folder.iterdir()) == ["step00000002.png", "step00000003.png"]
    with Image.open(folder / "step00000003.png") as image:
        width, height = image.size
        assert image.format == "PNG"
    # 2 samples x 2 frames = 4 rows; 4 composites + 3 double-width group panels
    assert 600 < width < 3000 and 300 < height < 2000 and width > height
    assert figures._batch is not None and figures._batch["image"].shape[0] == 2


def test_throughput_logs_the_perf_columns(run):
    trainer, _, _ = run
    rows = [row for row in read_rows(trainer) if row.get("perf/step_s")]
    assert [int(row["step"]) for row in rows] == [1, 2], "steps after the warm-up step are logged"
    for row in rows:
        values = {name: float(row[name]) for name in PERF}
        assert all(value > 0 for name, value in values.items() if name != "perf/data_wait_fraction")
        assert 0.0 <= values["perf/data_wait_fraction"] <= 1.0
        assert 0.0 < values["perf/fraction_of_peak"] <= 1.5
        breakdown = (
            values["perf/forward_s"] + values["perf/backward_s"] + values["perf/optimizer_s"]
        )
        assert breakdown <= values["perf/step_s"]
        # 4 samples of 2 frames x 3 groups x 16 patches per optimisation step
        tokens = values["perf/tokens_per_s"] / values["perf/samples_per_s"]
        assert tokens == pytest.approx(2 * 3 * 16)


def test_throughput_counts_accumulated_batches_in_one_step(store, tmp_path):
    trainer, _ = fit(
        store, tmp_path, [Throughput(0)], val_fraction=0.0, max_steps=2, accumulate_grad_batches=2
    )
    rows = [row for row in read_rows(trainer) if row.get("perf/step_s")]
    assert [int(row["step"]) for row in rows] == [0, 1]
    for row in rows:
        samples = float(row["perf/samples_per_s"]) * float(row["perf/step_s"])
        assert samples == pytest.approx(2 * 4, rel=1e-4)  # two batches of 4 per step
        assert float(row["perf/backward_s"]) > 0 and float(row["perf/optimizer_s"]) > 0


def test_figures_use_the_training_batch_without_validation_data(store, tmp_path):
    figures = ReconstructionFigures(every_n_steps=5, samples=1)
    trainer, _ = fit(store, tmp_path, [figures], val_fraction=0.0)
    assert [p.name for p in figures.written] == ["step00000003.png"]  # only the end of fit
    assert figures.written[0].parent == Path(trainer.log_dir) / "figures"
    assert figures._batch is not None and figures._batch["image"].shape[0] == 1


def test_figures_go_to_tensorboard_when_it_is_the_logger(run, monkeypatch):
    trainer, module, figures = run
    board = Mock(spec=TensorBoardLogger)  # tensorboard itself may not be installed
    monkeypatch.setattr(trainer, "loggers", [board])
    figures.draw(trainer, module)
    call = board.experiment.add_image.call_args
    pixels = call.args[1]
    assert call.args[0] == "figures/reconstruction" and call.kwargs["dataformats"] == "HWC"
    assert pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[2] == 3
    assert call.kwargs["global_step"] == 3


def test_flop_count_leaves_gradients_and_random_state_alone():
    module = tiny_module()
    batch = collate_samples([chip(1), chip(2)])
    torch.manual_seed(0)
    state = torch.get_rng_state()
    flops = count_step_flops(module.model, batch, 0.75)
    assert torch.equal(torch.get_rng_state(), state)
    assert all(parameter.grad is None for parameter in module.model.parameters())
    # more visible tokens cost more: the encoder sees only the visible ones
    assert count_step_flops(module.model, batch, 0.25) > flops > 0


@pytest.mark.parametrize(
    ("precision", "dtype"),
    [("32-true", torch.float32), ("bf16-mixed", torch.bfloat16), ("16-mixed", torch.float16)],
)
def test_peak_dtype_follows_the_precision(precision, dtype):
    assert matmul_dtype(precision) is dtype


def test_matmul_peak_is_a_plausible_rate():
    peak = measure_matmul_peak(torch.device("cpu"), torch.float32, min_seconds=0.002)
    assert math.isfinite(peak) and 1e8 < peak < 1e14


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: Throughput(warmup_steps=-1), r"warmup_steps must be at least 0"),
        (lambda: ReconstructionFigures(every_n_steps=0), r"every_n_steps must be at least 1"),
        (lambda: ReconstructionFigures(samples=0), r"samples must be at least 1"),
    ],
)
def test_bad_arguments_name_the_option(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_callbacks_need_a_masked_autoencoder(tmp_path):
    class Other(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model = torch.nn.Linear(2, 2)

    with pytest.raises(TypeError, match=r"\.model is a satmae MaskedAutoencoder"):
        ReconstructionFigures().setup(Mock(log_dir=str(tmp_path)), Other(), "fit")
