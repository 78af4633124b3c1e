"""Runtime of each classification protocol and feature-extraction throughput, tiny model on CPU.

Writes a synthetic EuroSAT in torchgeo's exact layout (``--per-class`` images per class and
split, 13 bands, 64 x 64, B8A stored last; the test fixtures' writer), then runs
``evaluate_classification`` with the tiny registry model (random weights, a nominal date) for
each protocol and reports the wall time of its parts (features, probe, baseline) and the
frozen-feature throughput in images/s. The data are synthetic: only the times mean something.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_evaluate.py --per-class 50
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=50, help="images per class and split")
    parser.add_argument("--epochs", type=int, default=2, help="epochs of the finetune protocol")
    parser.add_argument("--work", type=Path, default=Path("/tmp/satmae_bench_evaluate"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/evaluate.json"))
    args = parser.parse_args()
    import torch

    from satmae.cli.info import collect_info
    from satmae.eval.classification import evaluate_classification
    from satmae.models import create_model
    from tests.eval.fakes import write_fake_eurosat

    root = args.work / f"eurosat_{args.per_class}"
    if not (root / "eurosat-test.txt").exists():
        write_fake_eurosat(root, per_class=args.per_class)
    torch.manual_seed(0)
    encoder = create_model("satmae_tiny").encoder.eval()
    rows: dict[str, Any] = {}
    for protocol in ("knn", "linear", "finetune"):
        start = time.perf_counter()
        result = evaluate_classification(
            encoder, "eurosat", root, protocol, date="2020-06-01", progress=False,
            finetune_options={"epochs": args.epochs},
        )  # fmt: skip
        rows[protocol] = {
            "wall_s": time.perf_counter() - start,
            "runtime_s": result["runtime_s"],
            "throughput": result.get("throughput", {}),
            "sizes": result["data"]["sizes"],
        }
        print(f"{protocol}: {rows[protocol]['wall_s']:.1f} s {json.dumps(result['runtime_s'])} "
              f"{json.dumps(result.get('throughput', {}))}", flush=True)  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    summary = {"per_class": args.per_class, "epochs": args.epochs, "protocols": rows,
               "cpu": collect_info()["cpu"]}  # fmt: skip
    args.out.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
