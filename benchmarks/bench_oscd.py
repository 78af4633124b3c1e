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

``--study multiscale`` asks whether multi-scale reconstruction (SatMAE++) helps, at equal
pretraining wall time per arm (``--arms`` picks some):

- ``satmae``: the recipe as is (MSE only);
- ``satmae_pp``: SatMAE++'s rule (``multiscale_loss=satmae_pp``, L1 over every pixel) with its
  kind of targets: 64 px windows resized to 128 (bicubic) and halved back, so the 2x target is
  a bicubic copy of the same 10 m data and the input keeps the 10 m pixels the evaluation uses;
- ``masked``: the same inputs and targets, our corrected rule (L1 on hidden, valid pixels);
- ``masked_native``: the corrected rule with real detail in the targets: 128 px windows at 10 m
  halved to a 20 m input, the 2x target scoring only the 10 m bands (B02, B03, B04, B08).

Writes ``benchmarks/results/oscd_multiscale.json`` (per arm: pretraining steps and seconds,
change F1 mean ± std over ``--seeds``, precision/recall/IoU; the baselines; ``satmae info``) and
a figure ``oscd_multiscale.png`` beside it.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_oscd.py --study multiscale --minutes 10 \
        --seeds 0 1 2
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


MULTISCALE_ARMS: dict[str, list[str]] = {
    "satmae": [],
    "satmae_pp": [
        "--model.overrides.upsample_scales", "[2]", "--model.overrides.multiscale_loss",
        "satmae_pp", "--data.scales", "[2]", "--data.scale_size", "128",
    ],
    "masked": [
        "--model.overrides.upsample_scales", "[2]", "--model.overrides.multiscale_loss",
        "masked", "--data.scales", "[2]", "--data.scale_size", "128",
    ],
    "masked_native": [
        "--model.overrides.upsample_scales", "[2]", "--model.overrides.multiscale_loss",
        "masked", "--data.scales", "[2]", "--data.size", "128", "--data.scale_targets", "native",
    ],
}  # fmt: skip
"""``satmae pretrain`` arguments of each arm of ``--study multiscale`` (on real_cpu.yaml)."""


def pretrain(
    root: str,
    work: Path,
    name: str,
    minutes: float,
    decoder: str,
    extra: list[str] | None = None,
    reuse: bool = False,
) -> dict[str, Any]:
    run = work / name
    record = run / "pretrain.json"
    if reuse and (run / "checkpoints" / "last.ckpt").exists():
        # an arm pretrained by an earlier run of this command (e.g. one whose evaluation failed)
        steps = _steps(run)
        previous = json.loads(record.read_text()) if record.exists() else {}
        return {"checkpoint": str(run / "checkpoints" / "last.ckpt"), "steps": steps,
                "seconds": previous.get("seconds"), "reused": True}  # fmt: skip
    seconds = satmae(
        "pretrain", "--config", "configs/pretrain/real_cpu.yaml",
        "--data.path", root, "--data.exclude", HELD_OUT,
        "--model.overrides.decoder", decoder, *(extra or []),
        "--trainer.max_time", f"00:00:{int(minutes):02d}:{int(minutes % 1 * 60):02d}",
        "--trainer.default_root_dir", str(run),
        "--checkpoint.dirpath", str(run / "checkpoints"),
    )  # fmt: skip
    result = {"checkpoint": str(run / "checkpoints" / "last.ckpt"), "seconds": seconds,
              "steps": _steps(run)}  # fmt: skip
    record.write_text(json.dumps(result, indent=2) + "\n")
    return result


def _steps(run: Path) -> int:
    """Optimizer steps of a pretraining run, from its metrics log."""
    metrics = sorted(run.glob("lightning_logs/*/metrics.csv"))[-1].read_text().splitlines()
    header = metrics[0].split(",")
    column = header.index("step")
    return 1 + max(int(row.split(",")[column]) for row in metrics[1:] if row.split(",")[column])


def evaluate(root: str, work: Path, name: str, model: str, extra: list[str]) -> dict[str, Any]:
    out = work / f"report_{name}"
    seconds = satmae(
        "evaluate", "--benchmark", "oscd", "--data-root", root, "--model", model,
        "--out", str(out), "--overwrite", "--quiet", *extra,
    )  # fmt: skip
    result = json.loads((out / "report.json").read_text())["results"][0]
    return {"seconds": seconds, "report": str(out / "report.json"), **result}


def summarize(arm: dict[str, Any]) -> dict[str, Any]:
    """The figures of one evaluated arm."""
    return {
        "change_f1": arm["metrics"]["change_f1"],
        "change_precision": arm["metrics"]["change_precision"]["mean"],
        "change_recall": arm["metrics"]["change_recall"]["mean"],
        "change_iou": arm["metrics"]["change_iou"]["mean"],
        "evaluate_seconds": arm["seconds"],
        "verdict": arm["verdict"],
        "report": arm["report"],
    }


def multiscale_study(args: argparse.Namespace) -> None:
    """SatMAE vs SatMAE++ vs corrected multi-scale pretraining, equal wall time per arm."""
    from satmae.cli.info import collect_info

    work = args.work / "multiscale"
    work.mkdir(parents=True, exist_ok=True)
    eval_args = ["--seeds", *args.seeds, "--steps", str(args.eval_steps)]
    arms = args.arms or list(MULTISCALE_ARMS)
    if unknown := sorted(set(arms) - set(MULTISCALE_ARMS)):
        raise SystemExit(f"unknown --arms {unknown}; choose from {sorted(MULTISCALE_ARMS)}")
    runs = {
        name: pretrain(
            args.root, work, name, args.minutes, "full", MULTISCALE_ARMS[name], args.reuse
        )
        for name in arms
    }
    evaluated = {
        name: evaluate(args.root, work, name, run["checkpoint"], eval_args)
        for name, run in runs.items()
    }
    first = evaluated[arms[0]]
    summary: dict[str, Any] = {
        "study": "multiscale",
        "minutes_per_arm": args.minutes,
        "eval_steps": args.eval_steps,
        "baselines": {
            name: entry["metrics"]["change_f1"]["mean"]
            for name, entry in first["baselines"].items()
        },
        "arms": {
            name: {
                **summarize(arm),
                "pretrain_steps": runs[name]["steps"],
                "pretrain_seconds": runs[name]["seconds"],
                "pretrain_args": MULTISCALE_ARMS[name],
            }
            for name, arm in evaluated.items()
        },
        "split": first["data"]["splits"],
        "seeds": [int(seed) for seed in args.seeds],
        "command": " ".join(sys.argv),
        "info": collect_info(),
    }
    for name, arm in summary["arms"].items():
        f1 = arm["change_f1"]
        steps = arm["pretrain_steps"]
        print(f"{name}: {steps} steps, change F1 {f1['mean']:.3f} ± {f1['std']:.3f}")
    out = args.out if args.out != DEFAULT_OUT else DEFAULT_OUT.with_name("oscd_multiscale.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    multiscale_figure(summary, out.with_suffix(".png"))


def multiscale_figure(summary: dict[str, Any], path: Path) -> None:
    """Change F1 (mean ± std over seeds) per arm, baselines as lines, steps in the labels."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = list(summary["arms"])
    means = [summary["arms"][n]["change_f1"]["mean"] for n in names]
    stds = [summary["arms"][n]["change_f1"]["std"] for n in names]
    figure = Figure(figsize=(7, 4), layout="constrained")
    axis = figure.subplots()
    axis.bar(range(len(names)), means, yerr=stds, capsize=4, color="#4477aa")
    labels = [f"{n}\n{summary['arms'][n]['pretrain_steps']} steps" for n in names]
    axis.set_xticks(range(len(names)), labels, fontsize=8)
    for (name, value), style in zip(summary["baselines"].items(), (":", "--", "-."), strict=False):
        axis.axhline(value, color="#888888", linestyle=style, linewidth=1, label=name)
    axis.set_ylabel("change F1 (held-out cities)")
    axis.set_title(
        f"OSCD, {summary['minutes_per_arm']} min pretraining per arm, seeds {summary['seeds']}",
        fontsize=9,
    )
    axis.legend(fontsize=7)
    FigureCanvasAgg(figure).print_png(str(path))


DEFAULT_OUT = Path("benchmarks/results/oscd.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="../shared/data/real/oscd")
    parser.add_argument(
        "--study",
        choices=["decoder", "multiscale"],
        default="decoder",
        help="decoder: full vs cross decoder; multiscale: SatMAE vs SatMAE++ arms",
    )
    parser.add_argument("--arms", nargs="+", help="--study multiscale: arms to run (default all)")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="--study multiscale: keep arms already pretrained under --work (evaluate only)",
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="pretraining wall time")
    parser.add_argument("--seeds", nargs="+", default=["0"], help="seeds of the change head")
    parser.add_argument("--eval-steps", type=int, default=600, help="change-head training steps")
    parser.add_argument("--work", type=Path, default=Path("/tmp/satmae_bench_oscd"))
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    if args.study == "multiscale":
        multiscale_study(args)
        return
    from satmae.cli.info import collect_info

    args.work.mkdir(parents=True, exist_ok=True)
    seeds = ["--seeds", *args.seeds, "--steps", str(args.eval_steps)]
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
        "arms": {name: summarize(arm) for name, arm in arms.items()},
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
