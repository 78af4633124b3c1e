from __future__ import annotations

import math

import pytest
import torch

from satmae.train.schedules import MaskRatioSchedule, lr_scheduler, warmup_cosine


def test_warmup_starts_small_and_reaches_one() -> None:
    assert warmup_cosine(0, 10, 110) == pytest.approx(0.1)
    assert warmup_cosine(4, 10, 110) == pytest.approx(0.5)
    assert warmup_cosine(9, 10, 110) == pytest.approx(1.0)
    assert warmup_cosine(10, 10, 110) == pytest.approx(1.0)


@pytest.mark.parametrize("min_ratio", [0.0, 0.1])
def test_cosine_mid_end_and_after(min_ratio: float) -> None:
    # Cosine spans steps 10..110: halfway at 60, a quarter at 35.
    assert warmup_cosine(60, 10, 110, min_ratio) == pytest.approx(min_ratio + (1 - min_ratio) / 2)
    quarter = min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi / 4))
    assert warmup_cosine(35, 10, 110, min_ratio) == pytest.approx(quarter)
    assert warmup_cosine(110, 10, 110, min_ratio) == pytest.approx(min_ratio)
    assert warmup_cosine(500, 10, 110, min_ratio) == min_ratio


def test_no_warmup_starts_at_one() -> None:
    assert warmup_cosine(0, 0, 100) == 1.0
    assert warmup_cosine(50, 0, 100) == pytest.approx(0.5)


def test_warmup_over_the_whole_run_then_min_ratio() -> None:
    assert warmup_cosine(4, 5, 5, 0.2) == pytest.approx(1.0)
    assert warmup_cosine(5, 5, 5, 0.2) == 0.2


def test_multiplier_never_zero_during_training() -> None:
    values = [warmup_cosine(step, 7, 50) for step in range(50)]
    assert all(value > 0 for value in values)
    assert max(values) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((-1, 10, 100, 0.0), "step must be >= 0"),
        ((0, 10, 0, 0.0), "total_steps must be >= 1"),
        ((0, -1, 100, 0.0), "warmup_steps must lie in"),
        ((0, 101, 100, 0.0), "warmup_steps must lie in"),
        ((0, 10, 100, -0.1), "min_ratio must lie in"),
        ((0, 10, 100, 1.5), "min_ratio must lie in"),
    ],
)
def test_warmup_cosine_rejects_bad_arguments(args: tuple[int, int, int, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        warmup_cosine(*args)


def test_lr_scheduler_sets_the_rate_of_every_step() -> None:
    weight = torch.nn.Parameter(torch.zeros(2, 2))
    optimizer = torch.optim.SGD([weight], lr=1.0)
    scheduler = lr_scheduler(optimizer, warmup_steps=4, total_steps=20, min_ratio=0.1)
    rates = []
    for _ in range(25):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates == pytest.approx([warmup_cosine(step, 4, 20, 0.1) for step in range(25)])


def test_lr_scheduler_validates_before_the_first_step() -> None:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ValueError, match="warmup_steps must lie in"):
        lr_scheduler(optimizer, warmup_steps=30, total_steps=20)


def test_constant_mask_ratio() -> None:
    schedule = MaskRatioSchedule(start=0.6)
    assert [schedule(step) for step in (0, 50, 10**6)] == [0.6, 0.6, 0.6]
    assert MaskRatioSchedule()(0) == 0.75
    assert MaskRatioSchedule(start=0.6, end=0.6)(3) == 0.6


def test_linear_mask_ratio_ramp() -> None:
    schedule = MaskRatioSchedule(kind="linear", start=0.5, end=0.9, steps=100)
    assert schedule(0) == 0.5
    assert schedule(50) == pytest.approx(0.7)
    assert schedule(100) == 0.9
    assert schedule(1000) == 0.9


def test_cosine_mask_ratio_ramp() -> None:
    schedule = MaskRatioSchedule(kind="cosine", start=0.5, end=0.9, steps=100)
    assert schedule(0) == pytest.approx(0.5)
    assert schedule(25) == pytest.approx(0.5 + 0.4 * (1 - math.cos(math.pi / 4)) / 2)
    assert schedule(50) == pytest.approx(0.7)
    assert schedule(100) == 0.9
    assert schedule(1000) == 0.9


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_mask_ratio_ramp_down_and_end_defaults_to_start(kind: str) -> None:
    down = MaskRatioSchedule(kind=kind, start=0.9, end=0.5, steps=10)  # type: ignore[arg-type]
    assert down(0) == pytest.approx(0.9)
    assert down(5) == pytest.approx(0.7)
    assert down(10) == 0.5
    flat = MaskRatioSchedule(kind=kind, start=0.4, steps=10)  # type: ignore[arg-type]
    assert [flat(step) for step in (0, 5, 10, 20)] == pytest.approx([0.4] * 4)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kind": "exponential"}, "unknown mask-ratio schedule kind 'exponential'"),
        ({"start": 1.0}, r"start=1.0 must lie in \[0, 1\)"),
        ({"start": -0.1}, r"start=-0.1 must lie in \[0, 1\)"),
        ({"kind": "linear", "end": 1.2, "steps": 5}, r"end=1.2 must lie in \[0, 1\)"),
        ({"steps": -1}, "steps must be >= 0"),
        ({"end": 0.9}, "a constant schedule keeps start=0.75 but end=0.9"),
        ({"kind": "cosine", "end": 0.9}, "a cosine ramp needs steps >= 1"),
    ],
)
def test_mask_ratio_schedule_rejects_bad_values(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        MaskRatioSchedule(**kwargs)  # type: ignore[arg-type]


def test_mask_ratio_schedule_rejects_negative_step() -> None:
    with pytest.raises(ValueError, match="step must be >= 0"):
        MaskRatioSchedule()(-1)
