"""Cost of the one input check against a forward pass of the tiny model.

Times :func:`satmae.models.inputs.check_model_inputs` (what every entry point runs once) and
the encoder forward of ``satmae_tiny`` on the same ``(B, T, C, H, W)`` input, and prints the
ratio. The check must stay well under 1 % of the forward.

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/bench_input_check.py
"""

from __future__ import annotations

import argparse

import torch
from torch.utils.benchmark import Timer

from satmae.models import ModelInputs, create_model
from satmae.models.inputs import check_model_inputs


def main() -> None:
    """Print check time, forward time and their ratio for a few batch sizes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seconds", type=float, default=1.0, help="time budget per measurement")
    args = parser.parse_args()
    device = torch.device(args.device)
    encoder = create_model("satmae_tiny").encoder.eval().to(device)
    weight = encoder.cls_token
    print(f"device {device}, threads {torch.get_num_threads()}, torch {torch.__version__}")
    print("batch | check (us) | forward (us) | check / forward")
    for batch in (1, 8, 32):
        x = torch.randn(batch, 4, 10, 32, 32, device=device)
        times = torch.full((batch, 4), 1_600_000_000, device=device)
        inputs = ModelInputs(x, times)
        scope = {
            "check": check_model_inputs,
            "config": encoder.config,
            "inputs": inputs,
            "device": weight.device,
            "dtype": weight.dtype,
            "encoder": encoder,
            "x": x,
            "times": times,
            "torch": torch,
        }
        check = Timer("check(config, inputs, device, dtype)", globals=scope).blocked_autorange(
            min_run_time=args.seconds
        )
        forward = Timer("with torch.no_grad(): encoder(x, times)", globals=scope).blocked_autorange(
            min_run_time=args.seconds
        )
        ratio = check.median / forward.median
        print(
            f"{batch:5d} | {check.median * 1e6:10.1f} | {forward.median * 1e6:12.1f} | "
            f"{100 * ratio:.2f} %"
        )


if __name__ == "__main__":
    main()
