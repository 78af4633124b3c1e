"""Benchmark one SatMAE pretraining step against the measured matmul peak of this machine.

A step is forward + backward + AdamW of the group-channel ViT-B 96/8 10-band model at batch 8
and mask ratio 0.75, in fp32 and in bf16 autocast, with the default (full) decoder and with the
fast cross-attention decoder. FLOPs are counted with ``torch.utils.flop_counter.FlopCounterMode``;
achieved FLOP/s are reported as a fraction of the matmul peak of the same dtype, measured in the
same run right before each configuration. Timings are medians after warm-up because the machine
may be shared.

    python benchmarks/bench_model.py                # full run, writes benchmarks/results/model.json
    python benchmarks/bench_model.py --steps 9 --warmup 2 --profile  # as in docs
    python benchmarks/bench_model.py --steps 2 --warmup 1             # quick look
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from satmae.models import create_model

MODEL = "satmae_group_channel_vit_base_patch8_96"
TARGETS = {"float32": 0.40, "bfloat16": 0.30}
FAST_SPEEDUP_TARGET = 2.0


def matmul_peak(dtype: torch.dtype, repeats: int = 3) -> float:
    """FLOP/s of the fastest of a few square and model-shaped matmuls in ``dtype``."""
    best = 0.0
    for m, k, n in ((2048, 2048, 2048), (872, 768, 3072), (3464, 512, 2048)):
        a = torch.randn(m, k).to(dtype)
        b = torch.randn(k, n).to(dtype)
        torch.mm(a, b)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            torch.mm(a, b)
            times.append(time.perf_counter() - start)
        best = max(best, 2 * m * k * n / min(times))
    return best


def make_step(
    overrides: dict[str, Any], dtype: torch.dtype, batch: int, seed: int = 0
) -> tuple[Callable[[], None], torch.nn.Module]:
    """A closure running one optimisation step, and the model."""
    torch.manual_seed(seed)
    model = create_model(MODEL, mask_ratio=0.75, **overrides).train()
    # The fused AdamW kernel (one pass over each parameter) exists on CPU and GPU in torch >= 2.4.
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.05, fused=True
    )
    size = model.config.img_size
    x = torch.rand(batch, 1, len(model.config.bands), *size)
    generator = torch.Generator().manual_seed(seed)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        autocast = (
            torch.autocast("cpu", dtype=torch.bfloat16)
            if dtype == torch.bfloat16
            else nullcontext()
        )
        with autocast:
            out = model(x, generator=generator)
        out.loss.backward()
        optimizer.step()

    return step, model


def run_config(
    name: str, overrides: dict[str, Any], dtype: torch.dtype, args: argparse.Namespace
) -> dict[str, Any]:
    """Time one configuration and count its FLOPs."""
    step, _ = make_step(overrides, dtype, args.batch)
    with FlopCounterMode(display=False) as counter:
        step()
    flops = counter.get_total_flops()
    for _ in range(args.warmup):
        step()
    # The machine is shared: pair each timed step with a peak measurement taken right before it,
    # so both see the same contention, and report medians.
    times, peaks = [], []
    for _ in range(args.steps):
        peaks.append(matmul_peak(dtype))
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    fractions = [flops / t / p for t, p in zip(times, peaks, strict=True)]
    seconds = statistics.median(times)
    result = {
        "config": name,
        "dtype": str(dtype).removeprefix("torch."),
        "overrides": overrides,
        "step_s_median": seconds,
        "step_s_all": times,
        "samples_per_s": args.batch / seconds,
        "gflop_per_step": flops / 1e9,
        "achieved_gflops": flops / seconds / 1e9,
        "peak_gflops": statistics.median(peaks) / 1e9,
        "peak_gflops_all": [p / 1e9 for p in peaks],
        "fraction_of_peak": statistics.median(fractions),
        "fraction_of_peak_best": max(fractions),
        "samples_per_s_best": args.batch / min(times),
    }
    if args.profile:
        result["profile"] = profile(step)
    print(
        f"{name:>12} {result['dtype']:>8}: {seconds:6.2f} s/step, "
        f"{result['samples_per_s']:5.2f} samples/s, {result['achieved_gflops']:6.1f} GFLOP/s "
        f"= {100 * result['fraction_of_peak']:4.1f} % of {result['peak_gflops']:.0f}",
        flush=True,
    )
    return result


def profile(step: Callable[[], None]) -> str:
    """Top operators of one step by self CPU time."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        step()
    return str(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5, help="timed steps (median reported)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--fast-fraction", type=float, default=0.25)
    parser.add_argument(
        "--shallow-depth", type=int, default=4, help="depth of the 'fast_shallow' cross decoder"
    )
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--profile", action="store_true", help="add torch.profiler top ops")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/model.json"))
    args = parser.parse_args()

    fast: dict[str, Any] = {"decoder": "cross", "decoder_fraction": args.fast_fraction}
    configs: dict[str, dict[str, Any]] = {
        "full": {},  # SatMAE's decoder: 8 blocks of self-attention over all 433 tokens
        "fast": fast,  # cross decoder, same depth, a quarter of the hidden tokens
        "fast_shallow": {**fast, "decoder_depth": args.shallow_depth},
    }
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor()}")
    results = []
    for dtype_name in args.dtypes.split(","):
        dtype = getattr(torch, dtype_name)
        for name, overrides in configs.items():
            results.append(run_config(name, overrides, dtype, args))

    lines = [
        "| decoder | dtype | s/step | samples/s (best) | GFLOP/step | GFLOP/s | "
        "matmul peak GFLOP/s | % of peak (best) | target |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        target = TARGETS[r["dtype"]]
        ok = "met" if r["fraction_of_peak"] >= target else "missed"
        lines.append(
            f"| {r['config']} | {r['dtype']} | {r['step_s_median']:.2f} "
            f"| {r['samples_per_s']:.2f} ({r['samples_per_s_best']:.2f}) "
            f"| {r['gflop_per_step']:.0f} | {r['achieved_gflops']:.1f} | {r['peak_gflops']:.1f} "
            f"| {100 * r['fraction_of_peak']:.1f} ({100 * r['fraction_of_peak_best']:.1f}) "
            f"| ≥ {100 * target:.0f} % ({ok}) |"
        )
    by_key = {(r["config"], r["dtype"]): r for r in results}
    lines.append("")
    for dtype_name in args.dtypes.split(","):
        full = by_key.get(("full", dtype_name))
        for name in ("fast", "fast_shallow"):
            quick = by_key.get((name, dtype_name))
            if not (full and quick):
                continue
            speedup = quick["samples_per_s"] / full["samples_per_s"]
            best = quick["samples_per_s_best"] / full["samples_per_s_best"]
            ok = "met" if speedup >= FAST_SPEEDUP_TARGET else "missed"
            lines.append(
                f"- {name} vs full ({dtype_name}): {speedup:.2f}x samples/s median, {best:.2f}x "
                f"best (target ≥ {FAST_SPEEDUP_TARGET:.0f}x, {ok})"
            )
    table = "\n".join(lines)
    print(table)
    for r in results:
        if "profile" in r:
            print(f"\n### Profile: {r['config']} {r['dtype']}\n```\n{r['profile']}\n```")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"torch": torch.__version__, "threads": torch.get_num_threads(), "batch": args.batch,
            "steps": args.steps, "warmup": args.warmup, "model": MODEL}  # fmt: skip
    args.out.write_text(json.dumps({"meta": meta, "results": results, "table": table}, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
