"""Throughput of ``satmae pretrain``: samples/s, tokens/s, FLOP/s against the measured peak.

:class:`Throughput` logs samples/s, tokens/s, achieved FLOP/s against the matmul peak measured
on the same device at fit start, the fraction of step time spent outside the step (waiting for
data) and the forward / backward / optimizer split. The peak and FLOP counters are usable on
their own (``benchmarks/gpu_pretrain.py`` does).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, fields
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities.types import STEP_OUTPUT
from torch import Tensor
from torch.optim import Optimizer
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

from satmae.models import MaskedAutoencoder
from satmae.models.tokenizer import select_bands
from satmae.train.callbacks import current_mask_ratio, masked_autoencoder

RECOUNT_RATIO_CHANGE = 0.05
"""Mask-ratio change after which :class:`Throughput` counts the step's FLOPs again."""


def matmul_dtype(precision: str) -> torch.dtype:
    """The dtype matrix products run in under a Lightning precision string."""
    if "bf16" in precision:
        return torch.bfloat16
    if precision.startswith("16"):
        return torch.float16
    return torch.float32


def measure_matmul_peak(
    device: torch.device, dtype: torch.dtype, min_seconds: float = 0.01, repeats: int = 3
) -> float:
    """Measured FLOP/s of square ``torch.mm`` on ``device`` in ``dtype``: the peak to compare to.

    The matrices double from 256 until one product takes ``min_seconds`` (or 8192 on a GPU,
    2048 on a CPU), so the benchmark stays short where the dtype is slow (bf16 emulated on a
    CPU); the best of ``repeats`` timings is taken.
    """
    largest = 8192 if device.type == "cuda" else 2048
    size = 256
    while True:
        left = torch.randn(size, size, device=device, dtype=dtype)
        right = torch.randn(size, size, device=device, dtype=dtype)
        torch.mm(left, right)  # first call: kernel selection, allocation
        seconds = _time_products(left, right, 1)
        if seconds >= min_seconds or size >= largest:
            break
        size *= 2
    per_timing = max(1, min(50, math.ceil(min_seconds / max(seconds, 1e-9))))
    best = min(_time_products(left, right, per_timing) for _ in range(repeats))
    return 2.0 * size**3 / best


def _time_products(left: Tensor, right: Tensor, count: int) -> float:
    _synchronize(left.device)
    start = time.perf_counter()
    for _ in range(count):
        torch.mm(left, right)
    _synchronize(left.device)
    return (time.perf_counter() - start) / count


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _sdpa_cpu_flops(query: Any, key: Any, value: Any, *args: Any, **kwargs: Any) -> int:
    flops: int = sdpa_flop_count(query, key, value)  # type: ignore[no-untyped-call]
    return flops


def _sdpa_cpu_backward_flops(
    grad_out: Any, query: Any, key: Any, value: Any, *args: Any, **kwargs: Any
) -> int:
    flops: int = sdpa_backward_flop_count(  # type: ignore[no-untyped-call]
        grad_out, query, key, value
    )
    return flops


# torch counts the GPU attention kernels but not the fused CPU one; count it the same way.
_CPU_ATTENTION_FLOPS = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu_flops,
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: _sdpa_cpu_backward_flops,
}


def count_step_flops(model: MaskedAutoencoder, batch: Any, mask_ratio: float) -> int:
    """FLOPs of one forward and backward pass of ``model`` on ``batch``.

    Gradients are returned by :func:`torch.autograd.grad` and dropped, so the parameters'
    ``.grad`` are untouched, and the random state is restored, so a run with this count trains
    exactly as one without.
    """
    parameters = [parameter for parameter in model.parameters() if parameter.requires_grad]
    device = next(model.parameters()).device
    rng_devices = [device] if device.type == "cuda" else []
    with (
        torch.random.fork_rng(devices=rng_devices),
        FlopCounterMode(display=False, custom_mapping=_CPU_ATTENTION_FLOPS) as counter,
    ):
        loss = model(batch, mask_ratio=mask_ratio).loss
        torch.autograd.grad(loss, parameters, allow_unused=True)
    return int(counter.get_total_flops())


@dataclass
class _Tally:
    """Sums over the batches of a step, or over the steps of a logging interval."""

    seconds: float = 0.0  # wall time, end of the previous step to end of the last one
    wait: float = 0.0
    forward: float = 0.0
    backward: float = 0.0
    optimizer: float = 0.0
    samples: int = 0
    tokens: int = 0
    batches: int = 0
    flops: float = 0.0
    steps: int = 0

    def add(self, other: _Tally) -> None:
        for item in fields(self):
            setattr(self, item.name, getattr(self, item.name) + getattr(other, item.name))


class Throughput(L.Callback):
    """Log throughput, achieved FLOP/s and a step-time breakdown of optimisation steps.

    Logged under ``perf/`` to the trainer's loggers every ``trainer.log_every_n_steps``
    optimisation steps (after ``warmup_steps`` steps), as averages over the steps since the
    last log (per step when ``log_every_n_steps`` is 1):

    - ``step_s``: wall time of a step, from the end of the previous step to the end of this one;
    - ``samples_per_s``, ``tokens_per_s``: global (all devices) samples and input tokens
      ``B·T·G'·L`` (the encoder sees their visible fraction) per second;
    - ``data_wait_fraction``: the part of ``step_s`` between the end of a step and the start
      of the next batch: loading data, and whatever else runs between steps (writing a
      checkpoint or a figure; a validation pass is not counted);
    - ``forward_s``, ``backward_s``, ``optimizer_s``: batch start to backward, backward, and
      gradient clipping + optimizer + scheduler, summed over accumulated batches;
    - ``flops_per_s``: FLOPs of forward + backward on this device (counted once with
      :class:`~torch.utils.flop_counter.FlopCounterMode`, again when the mask ratio moves by
      more than 0.05) per second;
    - ``fraction_of_peak``: ``flops_per_s`` over ``peak_flops_per_s``, the ``torch.mm`` peak
      measured at fit start in the run's precision (bf16, fp16 or fp32) on the same device.

    On a GPU every timestamp synchronises the device, so the breakdown is the device's time.

    Args:
        warmup_steps: optimisation steps (of this fit) not logged: compilation, allocator and
            data-loader warm-up.
    """

    def __init__(self, warmup_steps: int = 2) -> None:
        super().__init__()
        if warmup_steps < 0:
            raise ValueError(f"throughput.warmup_steps must be at least 0, got {warmup_steps}")
        self.warmup_steps = warmup_steps
        self.peak_flops: float | None = None
        self.step_flops: int | None = None
        self._flops_ratio = math.nan
        self._device = torch.device("cpu")
        self._steps = 0
        self._tokens_per_sample: dict[tuple[Any, ...], int] = {}
        self._previous_end: float | None = None
        self._step = _Tally()
        self._interval = _Tally()
        self._step_start: float | None = None
        self._ratio = math.nan
        self._reset_batch()

    def _reset_batch(self) -> None:
        self._batch_start = 0.0
        self._before_backward: float | None = None
        self._after_backward: float | None = None
        self._before_optimizer: float | None = None
        self._global_step = -1

    def _now(self) -> float:
        _synchronize(self._device)
        return time.perf_counter()

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Measure the matmul peak of this device in the run's precision."""
        masked_autoencoder(pl_module)
        self._device = pl_module.device
        self.peak_flops = measure_matmul_peak(self._device, matmul_dtype(str(trainer.precision)))
        self._steps = 0
        self._previous_end = self._step_start = None
        self._step, self._interval = _Tally(), _Tally()

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        """Close the data wait; count the batch's samples and tokens."""
        now = self._now()
        self._reset_batch()
        self._batch_start = now
        self._global_step = trainer.global_step
        if self._step_start is None:
            self._step_start = now if self._previous_end is None else self._previous_end
            self._ratio = current_mask_ratio(pl_module, trainer.global_step)
        if self._previous_end is not None:
            self._step.wait += now - self._previous_end
        size = int(batch["image"].shape[0])  # (B, T, C, H, W)
        self._step.samples += size
        self._step.tokens += size * self._tokens_per_item(pl_module, batch)
        self._step.batches += 1

    def _tokens_per_item(self, pl_module: L.LightningModule, batch: Any) -> int:
        """``T·G'·L`` of a batch: frames × present band groups × patches per frame."""
        _, frames, channels, height, width = batch["image"].shape
        bands = batch["bands"]
        names = (bands,) if isinstance(bands, str) else tuple(bands)
        key = (frames, channels, height, width, names)
        if key not in self._tokens_per_sample:
            config = masked_autoencoder(pl_module).config
            groups = len(select_bands(config, names, channels).groups)
            patches = (height // config.patch_size) * (width // config.patch_size)
            self._tokens_per_sample[key] = frames * groups * patches
        return self._tokens_per_sample[key]

    def on_before_backward(
        self, trainer: L.Trainer, pl_module: L.LightningModule, loss: Tensor
    ) -> None:
        """End of the forward pass."""
        self._before_backward = self._now()

    def on_after_backward(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """End of the backward pass."""
        self._after_backward = self._now()

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Optimizer
    ) -> None:
        """Start of clipping and the optimizer update."""
        self._before_optimizer = self._now()

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: STEP_OUTPUT,
        batch: Any,
        batch_idx: int,
    ) -> None:
        """Add up the batch; after an optimisation step, add it up and log when it is time."""
        end = self._now()
        step = self._step
        step.forward += (self._before_backward or end) - self._batch_start
        if self._before_backward is not None and self._after_backward is not None:
            step.backward += self._after_backward - self._before_backward
        if self._before_optimizer is not None:
            step.optimizer += end - self._before_optimizer
        self._previous_end = end
        if trainer.global_step == self._global_step:
            return  # accumulating gradients: the optimisation step is not over
        assert self._step_start is not None, "on_train_batch_start opens every step"
        step.seconds, step.steps = end - self._step_start, 1
        self._step, self._step_start = _Tally(), None
        self._steps += 1
        if self._steps <= self.warmup_steps:
            return
        if self.step_flops is None or abs(self._ratio - self._flops_ratio) > RECOUNT_RATIO_CHANGE:
            with trainer.precision_plugin.train_step_context():
                model = masked_autoencoder(pl_module)
                self.step_flops = count_step_flops(model, batch, self._ratio)
            self._flops_ratio = self._ratio
            self._previous_end = self._now()  # the count is not data wait
        step.flops = float(self.step_flops * step.batches)
        self._interval.add(step)
        every = int(getattr(trainer, "log_every_n_steps", 1))  # set by Trainer; 0 = never
        if every and trainer.global_step % every == 0:
            self._log(trainer, self._interval)
            self._interval = _Tally()

    def _log(self, trainer: L.Trainer, tally: _Tally) -> None:
        """Log an interval's averages (rank 0; loggers write on rank 0 only)."""
        seconds = max(tally.seconds, 1e-9)
        metrics = {
            "perf/step_s": tally.seconds / tally.steps,
            "perf/samples_per_s": tally.samples * trainer.world_size / seconds,
            "perf/tokens_per_s": tally.tokens * trainer.world_size / seconds,
            "perf/data_wait_fraction": min(max(tally.wait / seconds, 0.0), 1.0),
            "perf/forward_s": tally.forward / tally.steps,
            "perf/backward_s": tally.backward / tally.steps,
            "perf/optimizer_s": tally.optimizer / tally.steps,
            "perf/flops_per_s": tally.flops / seconds,
        }
        if self.peak_flops:
            metrics["perf/fraction_of_peak"] = metrics["perf/flops_per_s"] / self.peak_flops
            metrics["perf/peak_flops_per_s"] = self.peak_flops
        # The loggers directly: pl_module.log costs more than the rest of this callback.
        # The step is Lightning's logging step, so the row lines up with train/loss.
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step - 1)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Do not count a validation pass as data wait."""
        if self._previous_end is not None:  # None in the sanity check before training
            self._previous_end = self._now()


# Reconstruction figures --------------------------------------------------------------------
