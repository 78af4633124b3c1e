"""Attention kernels on the CPU: flash vs math, forward + backward, at the model's shapes.

Measures ``F.scaled_dot_product_attention`` with each backend forced, in fp32 and bf16 autocast,
for the shapes a SatMAE pretraining step uses (ViT-B encoder on 110 visible tokens, the full
decoder on 434 tokens, the cross decoder's 110-token context). It backs the kernel choice in
``satmae.models.blocks.attend``.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_attention.py
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

SHAPES = {  # name: (batch, tokens, heads, head_dim)
    "encoder, 110 tokens": (8, 110, 12, 64),
    "full decoder, 434 tokens": (8, 434, 16, 32),
    "cross decoder context, 110 tokens": (8, 110, 16, 32),
}


def milliseconds(
    shape: tuple[int, int, int, int], dtype: torch.dtype, backend: SDPBackend, repeats: int
) -> float:
    """Median time of one forward + backward pass in milliseconds."""
    batch, tokens, heads, head_dim = shape
    generator = torch.Generator().manual_seed(0)
    query, key, value = (
        torch.randn(batch, heads, tokens, head_dim, generator=generator, requires_grad=True)
        for _ in range(3)
    )
    times = []
    for _ in range(repeats + 2):
        start = time.perf_counter()
        bf16 = dtype == torch.bfloat16
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16), sdpa_kernel(backend):
            out = F.scaled_dot_product_attention(query, key, value)
        out.float().sum().backward()
        times.append(time.perf_counter() - start)
    return statistics.median(times[2:]) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| shape | dtype | flash ms | math ms | math speed-up |")
    print("|---|---|---|---|---|")
    for name, shape in SHAPES.items():
        for dtype in (torch.float32, torch.bfloat16):
            flash = milliseconds(shape, dtype, SDPBackend.FLASH_ATTENTION, args.repeats)
            math = milliseconds(shape, dtype, SDPBackend.MATH, args.repeats)
            label = str(dtype).removeprefix("torch.")
            print(f"| {name} | {label} | {flash:.1f} | {math:.1f} | {flash / math:.2f}× |")


if __name__ == "__main__":
    main()
