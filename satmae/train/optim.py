"""AdamW with the MAE recipe: scaled learning rate and no decay on norms, biases and tokens."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

REFERENCE_BATCH = 256
"""Batch size at which the learning rate equals the base learning rate ``blr``."""

NO_DECAY_SUFFIXES = ("cls_token", "mask_token")
"""Parameter names ending in one of these are learned tokens and are not decayed."""

NO_DECAY_PARTS = ("encodings.",)
"""Parameter names containing one of these are learned encoding tables, not decayed."""


@dataclass(frozen=True)
class OptimizerConfig:
    """AdamW hyperparameters of a pretraining run.

    Attributes:
        blr: base learning rate per 256 samples; the rate used is ``blr * batch / 256``.
        lr: absolute learning rate; when set it replaces the scaled ``blr``.
        weight_decay: decoupled weight decay of the matrices (norms, biases, tokens and
            encoding tables are never decayed).
        betas: AdamW's moment coefficients.
        warmup_steps: optimisation steps of linear learning-rate warmup.
        min_lr_ratio: final learning rate of the cosine decay as a fraction of the peak.
        clip_grad: maximum global gradient norm; ``None`` does not clip.
        fused: use the fused AdamW kernel; ``None`` uses it where the parameters' device has one.
    """

    blr: float = 1.5e-4
    lr: float | None = None
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    clip_grad: float | None = None
    fused: bool | None = None

    def __post_init__(self) -> None:
        """Reject values AdamW or the schedule cannot use."""
        if self.blr <= 0:
            raise ValueError(f"blr must be > 0, got {self.blr}")
        if self.lr is not None and self.lr <= 0:
            raise ValueError(f"lr must be > 0 (or None to scale blr), got {self.lr}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if len(self.betas) != 2 or not all(0.0 <= beta < 1.0 for beta in self.betas):
            raise ValueError(f"betas must be two values in [0, 1), got {self.betas}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"min_lr_ratio must lie in [0, 1], got {self.min_lr_ratio}")
        if self.clip_grad is not None and self.clip_grad <= 0:
            raise ValueError(f"clip_grad must be > 0 (or None to not clip), got {self.clip_grad}")


def scaled_lr(blr: float, effective_batch: int) -> float:
    """Learning rate for ``effective_batch`` samples per step: ``blr * effective_batch / 256``.

    Args:
        blr: base learning rate per 256 samples.
        effective_batch: samples per optimisation step over all devices and accumulated
            micro-batches (``batch_size * devices * nodes * accumulate_grad_batches``).

    Raises:
        ValueError: for a non-positive ``effective_batch``.
    """
    if effective_batch < 1:
        raise ValueError(f"effective_batch must be >= 1, got {effective_batch}")
    return blr * effective_batch / REFERENCE_BATCH


def _decays(name: str, parameter: nn.Parameter) -> bool:
    """Whether weight decay applies: to matrices and kernels, not to norms, biases or tokens."""
    if parameter.ndim <= 1:
        return False
    if name.endswith(NO_DECAY_SUFFIXES):
        return False
    return not any(part in name for part in NO_DECAY_PARTS)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Split the trainable parameters of ``model`` into a decayed and an undecayed group.

    Not decayed: 1-D parameters (norm weights, biases), learned tokens (names ending in
    ``cls_token`` or ``mask_token``) and learned encoding tables (names containing
    ``encodings.``). Parameters with ``requires_grad=False`` are left out.

    Args:
        model: the model to train.
        weight_decay: decay of the first group.

    Returns:
        ``[{"params": decayed, "weight_decay": weight_decay},
        {"params": undecayed, "weight_decay": 0.0}]``.

    Raises:
        ValueError: for a negative ``weight_decay`` or a model without trainable parameters.
    """
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    decayed: list[nn.Parameter] = []
    undecayed: list[nn.Parameter] = []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        (decayed if _decays(name, parameter) else undecayed).append(parameter)
    if not decayed and not undecayed:
        raise ValueError(
            f"{type(model).__name__} has no trainable parameters; unfreeze some before training"
        )
    return [
        {"params": decayed, "weight_decay": weight_decay},
        {"params": undecayed, "weight_decay": 0.0},
    ]


def _fused_supported(parameters: list[nn.Parameter]) -> bool:
    """Whether torch has a fused AdamW kernel for every parameter's device and dtype."""
    from torch.utils._foreach_utils import _get_fused_kernels_supported_devices

    devices = _get_fused_kernels_supported_devices()
    return all(
        parameter.device.type in devices and torch.is_floating_point(parameter)
        for parameter in parameters
    )


def build_optimizer(
    model: nn.Module, config: OptimizerConfig, effective_batch: int
) -> torch.optim.AdamW:
    """AdamW over ``model`` with the groups of :func:`param_groups` and the configured rate.

    Args:
        model: the model to train, already on its training device (the fused kernel is chosen
            from the parameters' device).
        config: hyperparameters.
        effective_batch: samples per optimisation step over all devices and accumulation,
            used to scale ``config.blr`` when ``config.lr`` is not set.

    Returns:
        The optimiser; pair it with :func:`satmae.train.schedules.lr_scheduler`.

    Raises:
        ValueError: for a non-positive ``effective_batch``, a model without trainable
            parameters, or ``fused=True`` on a device without a fused kernel.
    """
    # Checked even when lr is absolute: a non-positive count means the caller's arithmetic is off.
    lr = scaled_lr(config.blr, effective_batch)
    if config.lr is not None:
        lr = config.lr
    groups = param_groups(model, config.weight_decay)
    parameters = [parameter for group in groups for parameter in group["params"]]
    supported = _fused_supported(parameters)
    if config.fused and not supported:
        devices = sorted({parameter.device.type for parameter in parameters})
        raise ValueError(
            f"fused AdamW has no kernel for parameters on {devices}; set fused to None or False"
        )
    fused = supported if config.fused is None else config.fused
    return torch.optim.AdamW(
        groups, lr=lr, betas=config.betas, weight_decay=config.weight_decay, fused=fused
    )
