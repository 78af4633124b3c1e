"""Time one pretraining step of ``bench_model``'s model, for A/B runs across two checkouts.

Run it inside each checkout in alternation (A B B A …) so that both see the same machine
state; it uses that checkout's ``satmae`` and ``benchmarks/bench_model.py`` and prints the median
and every step time:

    cd /tmp/base && PYTHONPATH=. python ~/satmae/benchmarks/step_time.py --label base
    cd ~/satmae && PYTHONPATH=. python benchmarks/step_time.py --label new
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from pathlib import Path

import torch

CONFIGS = {
    "full": {},
    "fast": {"decoder": "cross", "decoder_fraction": 0.25},
    "fast_shallow": {"decoder": "cross", "decoder_fraction": 0.25, "decoder_depth": 4},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default=".")
    parser.add_argument("--config", choices=sorted(CONFIGS), default="fast")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    # make_step of the checkout we run in (its benchmarks/bench_model.py and its satmae).
    spec = importlib.util.spec_from_file_location("bench_model", Path("benchmarks/bench_model.py"))
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    step, _ = bench.make_step(CONFIGS[args.config], getattr(torch, args.dtype), 8)
    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    steps = " ".join(f"{t:.3f}" for t in times)
    median = statistics.median(times)
    print(f"{args.label} {args.config} {args.dtype}: median {median:.3f} s [{steps}]")


if __name__ == "__main__":
    main()
