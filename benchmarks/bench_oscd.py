"""OSCD change detection on the real cities: does pretraining help, and does the fast decoder?

Runs, in one process tree and one after the other (run it alone on the machine):

1. ``satmae pretrain --config configs/pretrain/real_cpu.yaml`` on the OSCD training cities only
   (the held-out test cities are excluded with ``--data.exclude``), for ``--minutes`` of wall
   time, once with SatMAE's full decoder (the recipe) and once with the fast cross decoder;
2. ``satmae evaluate --benchmark oscd`` on (b) the recipe's architecture with random weights,
   (c) the full-decoder encoder and (d) the cross-decoder encoder, each report carrying the
   (a) baselines computed in the same run on the same split.

Writes ``benchmarks/results/oscd.json`` (change F1/precision/recall/IoU of every arm, the
baselines, pretraining steps and wall times, ``satmae info``) and the reports under ``--work``.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_oscd.py --minutes 10
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HELD_OUT = "[bordeaux,hongkong,rennes]"


def satmae(*args: str) -> float:
    """Run a satmae command; returns its wall time in seconds."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "satmae", *args], check=True)
    return time.perf_counter() - start


def pretrain(root: str, work: Path, name: str, minutes: float, decoder: str) -> dict[str, Any]:
    run = work / name
    seconds = satmae(
        "pretrain", "--config", "configs/pretrain/real_cpu.yaml",
        "--data.path", root, "--data.exclude", HELD_OUT,
        "--model.overrides.decoder", decoder,
        "--trainer.max_time", f"00:00:{int(minutes):02d}:{int(minutes % 1 * 60):02d}",
        "--trainer.default_root_dir", str(run),
        "--checkpoint.dirpath", str(run / "checkpoints"),
    )  # fmt: skip
    metrics = sorted(run.glob("lightning_logs/*/metrics.csv"))[-1].read_text().splitlines()
    header = metrics[0].split(",")
    steps = max(
        int(row.split(",")[header.index("step")])
        for row in metrics[1:]
        if row.split(",")[header.index("step")]
    )
    return {"checkpoint": str(run / "checkpoints" / "last.ckpt"), "seconds": seconds,
            "steps": steps + 1}  # fmt: skip


def evaluate(root: str, work: Path, name: str, model: str, extra: list[str]) -> dict[str, Any]:
    out = work / f"report_{name}"
    seconds = satmae(
        "evaluate", "--benchmark", "oscd", "--data-root", root, "--model", model,
        "--out", str(out), "--overwrite", "--quiet", *extra,
    )  # fmt: skip
    result = json.loads((out / "report.json").read_text())["results"][0]
    return {"seconds": seconds, "report": str(out / "report.json"), **result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="../shared/data/real/oscd")
    parser.add_argument("--minutes", type=float, default=10.0, help="pretraining wall time")
    parser.add_argument("--seeds", nargs="+", default=["0"], help="seeds of the change head")
    parser.add_argument("--work", type=Path, default=Path("/tmp/satmae_bench_oscd"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/oscd.json"))
    args = parser.parse_args()
    from satmae.cli.info import collect_info

    args.work.mkdir(parents=True, exist_ok=True)
    seeds = ["--seeds", *args.seeds]
    runs = {
        "full": pretrain(args.root, args.work, "full", args.minutes, "full"),
        "cross": pretrain(args.root, args.work, "cross", args.minutes, "cross"),
    }
    arms = {
        "random_init": evaluate(args.root, args.work, "random", runs["full"]["checkpoint"],
                                [*seeds, "--random-init"]),
        "pretrained_full_decoder": evaluate(args.root, args.work, "full",
                                            runs["full"]["checkpoint"], seeds),
        "pretrained_cross_decoder": evaluate(args.root, args.work, "cross",
                                             runs["cross"]["checkpoint"], seeds),
    }  # fmt: skip
    summary: dict[str, Any] = {
        "baselines": {
            name: entry["metrics"]["change_f1"]["mean"]
            for name, entry in arms["random_init"]["baselines"].items()
        },
        "arms": {
            name: {
                "change_f1": arm["metrics"]["change_f1"],
                "change_precision": arm["metrics"]["change_precision"]["mean"],
                "change_recall": arm["metrics"]["change_recall"]["mean"],
                "change_iou": arm["metrics"]["change_iou"]["mean"],
                "evaluate_seconds": arm["seconds"],
                "verdict": arm["verdict"],
                "report": arm["report"],
            }
            for name, arm in arms.items()
        },
        "pretraining": runs,
        "split": arms["random_init"]["data"]["splits"],
        "seeds": [int(seed) for seed in args.seeds],
        "cpu": collect_info()["cpu"],
    }
    for name, arm in summary["arms"].items():
        print(f"{name}: change F1 {arm['change_f1']['mean']:.3f} ± {arm['change_f1']['std']:.3f}")
    print("baselines:", json.dumps(summary["baselines"]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
