"""One GPU, bf16: samples/s and the fraction of the measured bf16 matmul peak of pretraining.

The spectro-temporal ViT-B recipe's model (``satmae_base``: 3 band groups x 4 dates, 96 px,
masks consistent in time and independent across groups, cross decoder) runs ``--steps``
optimisation steps on synthetic raw Sentinel-2 batches (the model normalises them itself),
with and without ``torch.compile``, after a warm-up. Runs on a CPU too (for a check of the
script, with ``--device cpu --model satmae_tiny``).

    python benchmarks/gpu_pretrain.py --steps 50
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from satmae.models import create_model
from satmae.train.optim import OptimizerConfig, build_optimizer
from satmae.train.throughput import count_step_flops, measure_matmul_peak

S2_BANDS = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
RECIPE: dict[str, Any] = {
    "mask_time": "consistent",
    "mask_groups": "independent",
    "decoder": "cross",
    "decoder_fraction": 0.25,
}


def synthetic_batch(batch: int, frames: int, size: int, device: torch.device) -> dict[str, Any]:
    """Raw reflectance x10000 with dates, as a reader returns it."""
    generator = torch.Generator().manual_seed(0)
    image = torch.randint(
        100, 5000, (batch, frames, len(S2_BANDS), size, size), generator=generator
    )
    days = torch.arange(frames) * 30 * 86_400 + 1_650_000_000
    return {
        "image": image.float().to(device),
        "times": days.expand(batch, frames).to(device),
        "bands": S2_BANDS,
        "valid": torch.ones(batch, frames, size, size, dtype=torch.bool, device=device),
    }


def run(args: argparse.Namespace, compiled: bool, peak: float) -> dict[str, Any]:
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = create_model(args.model, **RECIPE).to(device).train()
    if compiled:
        model.compile()
    optimizer = build_optimizer(model, OptimizerConfig(), args.batch)
    config = model.config
    batch = synthetic_batch(args.batch, config.max_frames, config.img_size[0], device)
    dtype = torch.bfloat16 if args.dtype == "bfloat16" else torch.float32
    flops = count_step_flops(model, batch, 0.75)

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            loss = model(batch, mask_ratio=0.75).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(args.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / args.steps
    return {
        "compile": compiled,
        "s_per_step": seconds,
        "samples_per_s": args.batch / seconds,
        "gflop_per_step": flops / 1e9,
        "fraction_of_peak": flops / seconds / peak,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="satmae_base")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--dtype", choices=("bfloat16", "float32"), default="bfloat16")
    parser.add_argument("--no-compile", action="store_true", help="skip the compiled run")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/gpu_pretrain.json"))
    args = parser.parse_args()
    device = torch.device(args.device)
    dtype = torch.bfloat16 if args.dtype == "bfloat16" else torch.float32
    peak = measure_matmul_peak(device, dtype)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"{name}: measured {args.dtype} matmul peak {peak / 1e12:.1f} TFLOP/s", flush=True)
    results = []
    for compiled in (False,) if args.no_compile else (False, True):
        result = run(args, compiled, peak)
        results.append(result)
        print(
            f"compile={compiled}: {result['samples_per_s']:.1f} samples/s, "
            f"{result['gflop_per_step']:.0f} GFLOP/step, "
            f"{100 * result['fraction_of_peak']:.1f} % of the measured peak",
            flush=True,
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"device": name, "model": args.model, "batch": args.batch, "dtype": args.dtype,
            "peak_flops": peak, "torch": torch.__version__}  # fmt: skip
    args.out.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
