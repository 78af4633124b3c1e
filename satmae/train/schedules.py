"""Per-step schedules: learning-rate warmup then cosine decay, and mask-ratio ramps.

Both schedules are functions of the optimisation step (not the epoch), so a run resumed at
step ``k`` continues exactly where it stopped, and a change of dataset size does not stretch
the warmup.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

MaskRatioKind = Literal["constant", "linear", "cosine"]
"""How the mask ratio moves from ``start`` to ``end``."""


def _half_cosine(progress: float) -> float:
    """1 at ``progress=0`` falling along a half cosine to 0 at ``progress=1``."""
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, min_ratio: float = 0.0) -> float:
    """Learning-rate multiplier: linear warmup, then half-cosine decay to ``min_ratio``.

    During warmup the multiplier is ``(step + 1) / warmup_steps``, so the first step already
    trains (never a zero learning rate) and step ``warmup_steps - 1`` reaches 1. From
    ``warmup_steps`` the multiplier falls along a half cosine from 1 to ``min_ratio`` at
    ``total_steps`` and stays at ``min_ratio`` afterwards.

    Args:
        step: optimisation step, counted from 0.
        warmup_steps: length of the linear warmup; 0 starts the cosine at once.
        total_steps: step at which the cosine reaches ``min_ratio``.
        min_ratio: final multiplier, in [0, 1].

    Returns:
        The multiplier of the base learning rate at ``step``.

    Raises:
        ValueError: for a negative step or warmup, ``total_steps`` < 1 or below
            ``warmup_steps``, or ``min_ratio`` outside [0, 1].
    """
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    if not 0 <= warmup_steps <= total_steps:
        raise ValueError(
            f"warmup_steps must lie in [0, total_steps={total_steps}], got {warmup_steps}; "
            "shorten the warmup or train for more steps"
        )
    if not 0.0 <= min_ratio <= 1.0:
        raise ValueError(f"min_ratio must lie in [0, 1], got {min_ratio}")
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if step >= total_steps:
        return min_ratio
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    return min_ratio + (1.0 - min_ratio) * _half_cosine(progress)


def lr_scheduler(
    optimizer: Optimizer, warmup_steps: int, total_steps: int, min_ratio: float = 0.0
) -> LambdaLR:
    """Warmup-then-cosine scheduler over every group of ``optimizer``, stepped once per step.

    Call ``scheduler.step()`` after every optimisation step (in Lightning: ``"interval":
    "step"``); the learning rate of step ``k`` is the group's base rate times
    :func:`warmup_cosine` of ``k``.

    Args:
        optimizer: the optimiser whose groups' ``lr`` is the base rate.
        warmup_steps: length of the linear warmup in optimisation steps.
        total_steps: optimisation steps of the whole run.
        min_ratio: final learning rate as a fraction of the base rate.

    Returns:
        A ``LambdaLR`` that has already set the rate of step 0.

    Raises:
        ValueError: for the arguments :func:`warmup_cosine` rejects.
    """
    # Validate now rather than at the first step inside the training loop.
    warmup_cosine(0, warmup_steps, total_steps, min_ratio)

    def multiplier(step: int) -> float:
        return warmup_cosine(step, warmup_steps, total_steps, min_ratio)

    return LambdaLR(optimizer, multiplier)


@dataclass(frozen=True)
class MaskRatioSchedule:
    """Mask ratio as a function of the optimisation step.

    Attributes:
        kind: ``"constant"`` keeps ``start``; ``"linear"`` and ``"cosine"`` ramp from ``start``
            to ``end`` over ``steps`` (straight, or along a half cosine that starts and ends
            flat) and keep ``end`` afterwards.
        start: ratio at step 0, in [0, 1).
        end: ratio after the ramp, in [0, 1); ``None`` means ``start``.
        steps: length of the ramp in optimisation steps; a ramp needs at least one.
    """

    kind: MaskRatioKind = "constant"
    start: float = 0.75
    end: float | None = None
    steps: int = 0

    def __post_init__(self) -> None:
        """Reject a kind, ratio or ramp length the schedule cannot follow."""
        kinds = get_args(MaskRatioKind)
        if self.kind not in kinds:
            raise ValueError(
                f"unknown mask-ratio schedule kind {self.kind!r}; choose one of {', '.join(kinds)}"
            )
        for name, ratio in (("start", self.start), ("end", self.end)):
            if ratio is not None and not 0.0 <= ratio < 1.0:
                raise ValueError(
                    f"mask ratio {name}={ratio} must lie in [0, 1); 1 would hide every patch"
                )
        if self.steps < 0:
            raise ValueError(f"steps must be >= 0, got {self.steps}")
        if self.kind == "constant" and self.end is not None and self.end != self.start:
            raise ValueError(
                f"a constant schedule keeps start={self.start} but end={self.end} was given; "
                "set kind='linear' or 'cosine' to ramp, or drop end"
            )
        if self.kind != "constant" and self.steps == 0:
            raise ValueError(
                f"a {self.kind} ramp needs steps >= 1 (the ramp length in optimisation steps)"
            )

    @property
    def final(self) -> float:
        """Ratio once the ramp is over."""
        return self.start if self.end is None else self.end

    def __call__(self, step: int) -> float:
        """Mask ratio at optimisation ``step`` (counted from 0)."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        if self.kind == "constant":
            return self.start
        if step >= self.steps:
            return self.final
        progress = step / self.steps
        if self.kind == "cosine":
            progress = 1.0 - _half_cosine(progress)
        return self.start + (self.final - self.start) * progress
