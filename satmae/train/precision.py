"""Choose a numeric precision the hardware runs fast.

``"auto"`` resolves to bf16 mixed precision where the device multiplies bf16 natively (GPUs
with bf16, CPUs with AVX512-BF16 or AMX, as ``satmae info`` reports) and to fp32 elsewhere:
on a CPU without native bf16 a bf16 matmul is emulated and runs hundreds of times slower
than fp32 (measured on an AVX2 machine: 0.3 vs 128 GFLOP/s).
"""

from __future__ import annotations

import warnings
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Literal, get_args

import torch

Precision = Literal[
    "auto",
    "32-true",
    "32",
    "64-true",
    "64",
    "bf16-mixed",
    "bf16",
    "bf16-true",
    "16-mixed",
    "16",
    "16-true",
]
"""Accepted precisions: ``"auto"`` and Lightning's spellings, which pass through unchanged."""

BF16_PRECISIONS = ("bf16-mixed", "bf16", "bf16-true")
"""Requests that compute in bf16."""

FP16_MIXED_PRECISIONS = ("16-mixed", "16")
"""Requests for fp16 autocast with a gradient scaler, which needs a GPU."""


def native_bf16(device_type: str) -> bool:
    """Whether devices of ``device_type`` run bf16 matmuls natively.

    Args:
        device_type: a ``torch.device`` type such as ``"cuda"`` or ``"cpu"``; other types
            (``"mps"``, ...) are reported as not native, so ``"auto"`` picks fp32 there.
    """
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device_type == "cpu":
        return cpu_supports_bf16()
    return False


def cpu_supports_bf16() -> bool:
    """Whether a bf16 matmul on this CPU runs natively (AVX-512 BF16 or AMX)."""
    capability = torch.backends.cpu.get_cpu_capability()
    if capability in ("AVX512_BF16", "AMX"):
        return True
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            flags = cpuinfo.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(requested: str, device_type: str) -> str:
    """Turn a requested precision into the one Lightning's ``Trainer`` should run.

    Args:
        requested: ``"auto"`` or one of Lightning's precision strings (``"32-true"``,
            ``"bf16-mixed"``, ``"16-mixed"``, ... and the short forms ``"32"``, ``"bf16"``, ...).
        device_type: the accelerator's ``torch.device`` type, e.g. ``"cuda"`` or ``"cpu"``.

    Returns:
        ``"bf16-mixed"`` or ``"32-true"`` for ``"auto"``; any other request unchanged.

    Raises:
        ValueError: for an unknown precision, or fp16 mixed precision on a CPU.

    Warns:
        UserWarning: for a bf16 request on a CPU without native bf16, where it is very slow.
    """
    allowed = get_args(Precision)
    if requested not in allowed:
        raise ValueError(f"unknown precision {requested!r}; choose one of {', '.join(allowed)}")
    if requested == "auto":
        return "bf16-mixed" if native_bf16(device_type) else "32-true"
    if device_type == "cpu":
        if requested in FP16_MIXED_PRECISIONS:
            raise ValueError(
                f"precision {requested!r} (fp16 autocast with a gradient scaler) is not supported "
                "on CPU; use 'auto', '32-true' or 'bf16-mixed'"
            )
        if requested in BF16_PRECISIONS and not native_bf16(device_type):
            warnings.warn(
                f"precision {requested!r} on a CPU without native bf16 (no AVX512-BF16 or AMX): "
                "a bf16 matmul here runs hundreds of times slower than fp32 (measured on an "
                "AVX2 machine: 0.3 vs 128 GFLOP/s); choose fp32 with --trainer.precision "
                "32-true (or 'auto', which picks fp32 on this CPU)",
                UserWarning,
                stacklevel=2,
            )
    return requested


InferencePrecision = Literal["auto", "32", "bf16"]
"""Precisions for inference (embedding): ``"auto"`` picks bf16 where it is native and pays."""

CPU_BF16_MIN_WIDTH = 768
"""Narrowest encoder (``embed_dim``) that ``"auto"`` runs in bf16 on a CPU with native bf16.

Measured with ``benchmarks/bench_precision.py`` (batch 64 of 64 px windows, AMX CPU, 2
threads): bf16 autocast ran the tiny encoder (64 wide) at 0.52x the fp32 speed, the small one
(384) at 1.05x and the base one (768) at 1.25x; narrower matmuls do not outrun the casts."""


def inference_precision(
    requested: str, device_type: str, width: int | None = None
) -> Literal["32", "bf16"]:
    """Resolve an inference precision for a device.

    Args:
        requested: ``"auto"`` (bf16 where the device multiplies bf16 natively and, on a CPU,
            the model is at least :data:`CPU_BF16_MIN_WIDTH` wide; else fp32), ``"32"`` or
            ``"bf16"``.
        device_type: a ``torch.device`` type such as ``"cpu"`` or ``"cuda"``.
        width: the model's ``embed_dim``; ``None`` leaves the width out of the choice.

    Raises:
        ValueError: for another request.

    Warns:
        UserWarning: for ``"bf16"`` on a device without native bf16, where it is very slow.
    """
    if requested not in get_args(InferencePrecision):
        raise ValueError(
            f"unknown inference precision {requested!r}; choose one of "
            f"{', '.join(get_args(InferencePrecision))}"
        )
    native = native_bf16(device_type)
    if requested == "auto":
        narrow = device_type == "cpu" and width is not None and width < CPU_BF16_MIN_WIDTH
        return "bf16" if native and not narrow else "32"
    if requested == "bf16" and not native:
        warnings.warn(
            f"bf16 on a {device_type} without native bf16 is emulated and can run hundreds of "
            "times slower than fp32; use --precision 32 (or auto, which picks fp32 here)",
            UserWarning,
            stacklevel=2,
        )
    return "bf16" if requested == "bf16" else "32"


def inference_autocast(
    precision: str, device_type: str, width: int | None = None
) -> AbstractContextManager[Any]:
    """A context that runs the model's matmuls in ``precision`` on ``device_type``.

    bf16 is autocast (matmuls and convolutions in bf16, normalisations and softmax in fp32);
    ``"32"`` is a no-op context. ``width`` as in :func:`inference_precision`.
    """
    if inference_precision(precision, device_type, width) == "bf16":
        return torch.autocast(device_type, dtype=torch.bfloat16)
    return nullcontext()
