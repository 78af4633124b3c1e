"""Lightning's overhead: steady-state samples/s of satmae pretrain against a bare loop.

Both run the same model, optimiser, schedule, masks and batches from the same chip store
(``num_workers=0``), alternating bare / Lightning ``--rounds`` times in one process; the ratio of
the medians is reported with ``satmae info``'s CPU facts.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_pretrain.py --store demo_chips
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch

from satmae.cli.info import collect_info
from satmae.train.data import PretrainData
from satmae.train.module import PretrainModule
from satmae.train.optim import OptimizerConfig, build_optimizer
from satmae.train.schedules import MaskRatioSchedule, lr_scheduler

OVERRIDES: dict[str, Any] = {"img_size": [64, 64], "max_frames": 4}


def make_module(seed: int = 0) -> PretrainModule:
    torch.manual_seed(seed)
    return PretrainModule(
        overrides=OVERRIDES,
        optimizer=OptimizerConfig(blr=1.5e-3, warmup_steps=2),
        mask_ratio=MaskRatioSchedule(start=0.75),
    )


def bare_loop(data: PretrainData, warmup: int, steps: int, precision: str) -> float:
    """Seconds per step of a hand-written loop doing what the module does."""
    module = make_module()
    optimizer = build_optimizer(module.model, module.optimizer_config, data.batch_size)
    scheduler = lr_scheduler(optimizer, 2, warmup + steps)
    loader = data.train_dataloader()
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled="bf16" in precision)
    times: list[float] = []
    batches = iter(loader)
    for step in range(warmup + steps):
        start = time.perf_counter()
        try:
            batch = next(batches)
        except StopIteration:
            batches = iter(loader)
            batch = next(batches)
        inputs = module.model.prepare(batch)
        with autocast:
            out = module.model(
                inputs.image, inputs.times, inputs.bands, inputs.valid, mask_ratio=0.75,
                noise=_noise(module, inputs, step),
            )  # fmt: skip
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        optimizer.step()
        scheduler.step()
        if step >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def _noise(module: PretrainModule, inputs: Any, step: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(step)
    batch, frames = inputs.image.shape[:2]
    config = module.model.config
    grid = config.patch_grid((inputs.image.shape[-2], inputs.image.shape[-1]))
    shape = module.model.masking.noise_shape(batch, frames, config.num_groups, grid[0] * grid[1])
    return torch.rand(shape, generator=generator)


class StepTimer(L.Callback):
    """Wall time of each training step after ``warmup`` steps (batch fetch included)."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.times, self.last = warmup, [], 0.0

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        now = time.perf_counter()
        if trainer.global_step > self.warmup:
            self.times.append(now - self.last)
        self.last = now


def lightning_loop(data: PretrainData, warmup: int, steps: int, precision: str) -> float:
    """Seconds per step of ``Trainer.fit`` with the pretraining module (no logger/checkpoints)."""
    timer = StepTimer(warmup)
    trainer = L.Trainer(
        max_steps=warmup + steps + 1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        use_distributed_sampler=False,
        precision=precision,  # type: ignore[arg-type]
        callbacks=[timer],
    )
    trainer.fit(make_module(), datamodule=data)
    return statistics.median(timer.times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="demo_chips")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--precision", default="32-true")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/pretrain.json"))
    args = parser.parse_args()
    data = PretrainData(args.store, batch_size=args.batch, val_fraction=0.0)
    data.setup()
    bare, lightning = [], []
    for _ in range(args.rounds):
        bare.append(bare_loop(data, args.warmup, args.steps, args.precision))
        lightning.append(lightning_loop(data, args.warmup, args.steps, args.precision))
        print(f"bare {bare[-1]:.3f} s/step, lightning {lightning[-1]:.3f} s/step", flush=True)
    ratio = statistics.median(bare) / statistics.median(lightning)
    info = collect_info()
    result = {
        "cpu": info["cpu"],
        "torch": torch.__version__,
        "batch": args.batch,
        "precision": args.precision,
        "bare_s_per_step": bare,
        "lightning_s_per_step": lightning,
        "samples_per_s_ratio": ratio,
    }
    print(
        f"Lightning / bare samples/s = {ratio:.3f} (target >= 0.9); "
        f"cpu {info['cpu']['capability']}, bf16 {info['cpu']['bf16']}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
