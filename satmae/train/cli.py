"""``satmae pretrain`` on LightningCLI: ``model`` / ``data`` / ``trainer`` sections from YAML.

The resolved configuration is saved as ``config.yaml`` in the run folder; ``--ckpt_path last``
resumes the run from its last complete checkpoint. ``--precision auto`` (the default) picks
bf16-mixed where the hardware computes bf16 natively (GPUs with bf16, CPUs with AMX or
AVX512-BF16) and fp32 elsewhere.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from satmae.train.callbacks import ReconstructionFigures
from satmae.train.checkpoint_io import AtomicCheckpointIO
from satmae.train.data import PretrainData
from satmae.train.module import PretrainModule
from satmae.train.precision import resolve_precision
from satmae.train.throughput import Throughput

CHECKPOINT_EVERY = 100
"""Default steps between periodic checkpoints (``last.ckpt`` is rewritten each time)."""


class PretrainCLI(LightningCLI):
    """LightningCLI with the run-level options of ``satmae pretrain``."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """``--ckpt_path`` (``last`` resumes) and ``--precision`` (``auto`` by hardware)."""
        parser.add_argument(
            "--ckpt_path",
            type=str | None,
            default=None,
            help="checkpoint to resume from; 'last' resumes the run's last checkpoint",
        )
        parser.add_argument(
            "--precision",
            type=str,
            default="auto",
            help="auto (bf16-mixed where the hardware has native bf16, else 32-true) or a "
            "Lightning precision (32-true, bf16-mixed, 16-mixed)",
        )
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.add_lightning_class_args(ReconstructionFigures, "figures")
        parser.add_lightning_class_args(Throughput, "throughput")
        parser.set_defaults(
            {
                "checkpoint.every_n_train_steps": CHECKPOINT_EVERY,
                "checkpoint.save_last": True,
                "checkpoint.save_top_k": -1,
                "checkpoint.filename": "step{step:08d}",
                "checkpoint.auto_insert_metric_name": False,
            }
        )

    def before_instantiate_classes(self) -> None:
        """Resolve ``--precision``; log to TensorBoard and CSV unless a logger is configured."""
        config = self.config
        config.trainer.precision = trainer_precision(
            str(config.precision), str(config.trainer.accelerator)
        )
        if config.trainer.logger in (None, True):
            config.trainer.logger = default_loggers(config.trainer.default_root_dir or ".")


def default_loggers(root: str) -> list[dict[str, Any]]:
    """TensorBoard and CSV loggers writing into the same ``lightning_logs/version_N`` folder."""
    logs = Path(root) / "lightning_logs"
    taken = [int(p.name.split("_")[1]) for p in logs.glob("version_*") if p.name[8:].isdigit()]
    version = max(taken, default=-1) + 1
    init = {"save_dir": root, "name": "lightning_logs", "version": version}
    # CSV first: it warns about a version folder that exists, and TensorBoard's does not.
    return [
        {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": init},
        {"class_path": "lightning.pytorch.loggers.TensorBoardLogger", "init_args": init},
    ]


def trainer_precision(requested: str, accelerator: str) -> str:
    """Lightning's precision for ``--precision`` on the device ``accelerator`` names."""
    device = "cuda" if accelerator in ("gpu", "cuda") else "cpu"
    if accelerator == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    return resolve_precision(requested, device)


def run_pretrain(argv: Sequence[str]) -> int:
    """Parse ``argv`` as ``satmae pretrain`` does, then fit (or resume)."""
    # LightningCLI also looks at sys.argv; it holds `satmae pretrain ...`, already parsed here.
    saved, sys.argv = sys.argv, sys.argv[:1]
    try:
        cli = PretrainCLI(
            PretrainModule,
            PretrainData,
            args=list(argv),
            run=False,
            seed_everything_default=0,
            save_config_kwargs={"overwrite": True},
            trainer_defaults={
                "log_every_n_steps": 1,
                # The data module's sampler shards by rank itself and resumes mid-epoch.
                "use_distributed_sampler": False,
            },
            parser_kwargs={"prog": "satmae pretrain"},
        )
    finally:
        sys.argv = saved
    cli.trainer.strategy.checkpoint_io = AtomicCheckpointIO()
    trainer = cli.trainer
    trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=cli.config.ckpt_path)
    if trainer.is_global_zero:
        print(outputs_summary(trainer))
    return 0


def outputs_summary(trainer: Any) -> str:
    """Where a finished run put its outputs, for people."""
    run = Path(trainer.log_dir or trainer.default_root_dir)
    lines = [f"run folder   {run}"]
    checkpoint = trainer.checkpoint_callback
    if checkpoint is not None and checkpoint.dirpath:
        lines.append(f"checkpoints  {checkpoint.dirpath} (last.ckpt is the newest)")
    for name, path in (("metrics", run / "metrics.csv"), ("figures", run / "figures")):
        if path.exists():
            lines.append(f"{name:<12} {path}")
    lines.append(f"config       {run / 'config.yaml'}")
    return "\n".join(lines)
