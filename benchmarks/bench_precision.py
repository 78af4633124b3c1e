"""Encoder forward time in fp32 and under bf16 autocast, by model width, in one run.

Decides where ``--precision auto`` should pick bf16: a bf16 matmul pays only when the matrices
are wide enough for the native bf16 units to outrun the casts around them. Interleaves the two
precisions and reports the median of ``--repeats`` timed forwards of a batch of windows.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_precision.py
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from satmae.cli.info import collect_info
from satmae.models import create_model
from satmae.train.precision import inference_autocast


def time_forward(encoder: torch.nn.Module, inputs: tuple, precision: str) -> float:
    with torch.no_grad(), inference_autocast(precision, "cpu"):
        start = time.perf_counter()
        encoder(*inputs).dense("mean")
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    models = ["satmae_tiny", "satmae_small", "satmae_base"]
    parser.add_argument("--models", nargs="+", default=models)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/precision.json"))
    args = parser.parse_args()
    rows = []
    for name in args.models:
        model = create_model(name, img_size=(args.window, args.window))
        encoder = model.encoder.eval()
        bands = model.config.bands
        image = torch.rand(args.batch, 1, len(bands), args.window, args.window)
        times = torch.full((args.batch, 1), 1_688_169_600)
        sample = (image, times, bands)
        seconds: dict[str, list[float]] = {"32": [], "bf16": []}
        for precision in ("32", "bf16"):
            time_forward(encoder, sample, precision)  # warm-up
        for _ in range(args.repeats):
            for precision in ("32", "bf16"):
                seconds[precision].append(time_forward(encoder, sample, precision))
        fp32, bf16 = (statistics.median(seconds[p]) for p in ("32", "bf16"))
        row = {"model": name, "embed_dim": model.config.embed_dim, "fp32_s": fp32,
               "bf16_s": bf16, "bf16_speedup": fp32 / bf16}  # fmt: skip
        print(json.dumps(row), flush=True)
        rows.append(row)
    record = {"command": " ".join(sys.argv), "cpu": collect_info()["cpu"], "results": rows}
    args.out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
