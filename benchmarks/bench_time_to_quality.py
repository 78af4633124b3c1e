"""Time to quality: downstream quality of the encoder per minute of pretraining, per lever.

For every arm (a set of ``satmae pretrain`` arguments on ``configs/pretrain/real_cpu.yaml``)
and seed, this pretrains on the OSCD training cities (the held-out test cities are excluded
with ``--data.exclude``) for the arm's wall-clock budget, keeping a checkpoint every
``--every`` steps, and scores the encoder of the checkpoints nearest to the ``--at`` minutes
(wall time since the ``satmae pretrain`` process started, start-up included) with the frozen
linear change readout of :mod:`satmae.eval.change.readout`: change F1 pooled over the held-out
cities, threshold chosen on validation cities among the training ones. Minute 0 is the random
initialisation of the seed. ``--landcover NAME=ROOT`` adds a kNN land-cover probe
(``satmae evaluate``'s, e.g. ``eurosat=/data/eurosat``) where such a labelled set is at hand.

The readout reports change F1 at a threshold chosen on the validation cities and the
threshold-free average precision, each the mean of three pixel samples of the fit.

The first arm (``full``, SatMAE's full decoder: the recipe) is the baseline: its mean score at
its whole budget, less one standard deviation over seeds, is the quality to reach. For each arm
and score the result says the first minute at which its mean reaches it, and that minute as a
fraction of the baseline's budget (the target is ≤ 1/3).

Writes ``benchmarks/results/time_to_quality.json`` (per arm and seed: steps, F1 at each
minute; per arm the mean ± std curve; the baseline; ``satmae info``; the command) and the
figure ``time_to_quality.png`` beside it. Each (arm, seed) result is kept under ``--work`` and
reused by a later run with ``--reuse`` (say so when you report figures from two runs).

    PYTHONPATH=. .venv/bin/python benchmarks/bench_time_to_quality.py \
        --arms full cross --seeds 0 1 2 --minutes 4.5 --at 0.5 1 1.5 3 4.5

Run it alone on the machine: other work slows pretraining and so lowers every curve unevenly.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HELD_OUT = ("bordeaux", "hongkong", "rennes")
METRICS = ("change_f1", "change_ap")
"""Scores of the readout: F1 at the validation cities' threshold, and average precision."""
RECIPE = "configs/pretrain/real_cpu.yaml"
BASE: tuple[str, ...] = ("--model.overrides.norm_pix_loss", "false")
"""Put before every arm's arguments: the recipe as it was measured (plain MSE). The recipe now
uses ``norm_pix_loss`` over a location, the winner of this benchmark; an arm that sets the
loss itself overrides this."""


@dataclass(frozen=True)
class Arm:
    """One configuration: its ``satmae pretrain`` arguments and what lever it moves."""

    args: tuple[str, ...]
    lever: str


def _overrides(**values: Any) -> tuple[str, ...]:
    out: list[str] = []
    for key, value in values.items():
        out += [
            f"--model.overrides.{key}",
            json.dumps(value) if not isinstance(value, str) else value,
        ]
    return tuple(out)


ARMS: dict[str, Arm] = {
    "full": Arm((), "baseline: SatMAE's full decoder, plain MSE (the recipe as measured)"),
    # decoders
    "cross": Arm(_overrides(decoder="cross"), "decoder: cross attention to the last block"),
    "cross_f25": Arm(
        _overrides(decoder="cross", decoder_fraction=0.25),
        "reconstruction fraction: cross decoder, a random quarter of the hidden tokens",
    ),
    "cross_f25_balanced": Arm(
        _overrides(decoder="cross", decoder_fraction=0.25, decoder_selection="balanced"),
        "reconstruction fraction: a quarter, balanced over band groups",
    ),
    "cross_blocks": Arm(
        _overrides(decoder="cross", decoder_context=[1, -1]),
        "decoder: cross attention to encoder blocks 2 and 4 (CrossMAE)",
    ),
    "full_depth1": Arm(_overrides(decoder_depth=1), "decoder depth 1 (recipe: 2)"),
    "full_narrow": Arm(
        _overrides(decoder_dim=48, decoder_num_heads=4), "decoder width 48 (recipe: 64)"
    ),
    # masking
    "mask90": Arm(("--model.mask_ratio.start", "0.9"), "mask ratio 0.9 (recipe: 0.75)"),
    "mask_ramp": Arm(
        (
            "--model.mask_ratio.kind",
            "linear",
            "--model.mask_ratio.start",
            "0.6",
            "--model.mask_ratio.end",
            "0.9",
            "--model.mask_ratio.steps",
            "200",
        ),
        "mask ratio schedule: 0.6 -> 0.9 over 200 steps",
    ),
    "groups_consistent": Arm(
        _overrides(mask_groups="consistent"), "consistent masking across band groups"
    ),
    "time_independent": Arm(
        _overrides(mask_time="independent"), "independent masking across dates"
    ),
    # targets
    "normpix": Arm(_overrides(norm_pix_loss=True), "targets: norm_pix_loss per group token"),
    "normpix_location": Arm(
        _overrides(norm_pix_loss=True, norm_pix_scope="location"),
        "targets: norm_pix_loss over all bands of a location",
    ),
    "group_weights": Arm(
        _overrides(group_loss_weights=[2.0, 1.0, 1.0]),
        "targets: the 10 m group weighs twice in the loss",
    ),
    # batch and learning rate at fixed time
    "batch32": Arm(("--data.batch_size", "32"), "batch 32 (recipe: 16), lr scaled by blr"),
    "batch8": Arm(("--data.batch_size", "8"), "batch 8, lr scaled by blr"),
    "lr_budget": Arm(
        ("--trainer.max_steps", "250"),
        "learning-rate cosine ending at the budget (250 steps, about 1 min in bf16) instead "
        "of at the recipe's max_steps 100000",
    ),
    # speed only (same math)
    "fp32": Arm(("--precision", "32-true"), "precision fp32 (recipe: auto)"),
    "bf16": Arm(("--precision", "bf16-mixed"), "precision bf16-mixed"),
    "compile": Arm(("--model.compile", "true"), "torch.compile"),
}
"""Every arm this benchmark knows; ``--arms`` picks some (the first is the baseline)."""


def run_pretrain(
    arm: str, seed: int, minutes: float, every: int, work: Path, root: str
) -> dict[str, Any]:
    """Pretrain one (arm, seed); returns steps and the checkpoints with their wall times."""
    run = work / arm / f"seed{seed}"
    checkpoints = run / "checkpoints"
    seconds = round(minutes * 60)
    command = [
        sys.executable,
        "-m",
        "satmae",
        "pretrain",
        "--config",
        RECIPE,
        "--data.path",
        root,
        "--data.exclude",
        f"[{','.join(HELD_OUT)}]",
        "--seed_everything",
        str(seed),
        *ARMS[arm].args,
        "--trainer.max_time",
        f"00:00:{seconds // 60:02d}:{seconds % 60:02d}",
        "--trainer.default_root_dir",
        str(run),
        "--checkpoint.dirpath",
        str(checkpoints),
        "--checkpoint.every_n_train_steps",
        str(every),
    ]
    start = time.time()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    wall = time.time() - start
    snapshots = []
    for path in sorted(checkpoints.glob("step*.ckpt")):
        step = int(path.stem.removeprefix("step"))
        snapshots.append(
            {"step": step, "minutes": (path.stat().st_mtime - start) / 60, "path": str(path)}
        )
    return {"wall_minutes": wall / 60, "snapshots": snapshots, "run": str(run)}


def _nearest(snapshots: list[dict[str, Any]], minute: float) -> dict[str, Any] | None:
    """The last snapshot written by ``minute``."""
    done = [s for s in snapshots if s["minutes"] <= minute + 1e-9]
    return done[-1] if done else None


def probe_run(
    arm: str,
    seed: int,
    pretrained: dict[str, Any],
    at: list[float],
    split: Any,
    landcover: dict[str, str],
    with_random_init: bool = True,
) -> list[dict[str, Any]]:
    """Change readout (and land-cover probes) of the snapshots nearest to each minute.

    ``with_random_init`` also scores the seed's random initialisation (minute 0).
    """
    import torch

    from satmae.eval.change.readout import readout_change
    from satmae.models.bundle import load_encoder
    from satmae.models.encoder import SatMAEEncoder

    points = []
    if not pretrained["snapshots"]:
        raise SystemExit(f"{arm} seed {seed}: no checkpoint was written; lower --every")
    todo: list[tuple[float, int, Any]] = []
    if with_random_init:  # the architecture of the run, with the seed's random weights
        trained = load_encoder(pretrained["snapshots"][0]["path"])
        torch.manual_seed(seed)
        random_init = SatMAEEncoder(trained.config)
        random_init.set_normalization(trained.normalization)
        todo.append((0.0, 0, random_init))
    for minute in at:
        snapshot = _nearest(pretrained["snapshots"], minute)
        if snapshot is not None and minute <= pretrained["wall_minutes"] + 1e-9:
            todo.append((snapshot["minutes"], snapshot["step"], snapshot["path"]))
    seen: set[int] = set()
    for minutes, step, source in todo:
        if step in seen:
            continue
        seen.add(step)
        encoder = source if isinstance(source, SatMAEEncoder) else load_encoder(source)
        result = readout_change(encoder, split)
        point = {
            "minutes": minutes,
            "step": step,
            "change_f1": result["change_f1"],
            "change_ap": result["change_ap"],
            "val_change_f1": result["val_change_f1"],
            "probe_seconds": result["seconds"],
        }
        for name, root in landcover.items():
            point[f"{name}_knn"] = _landcover(encoder, name, root)
        print(
            f"  {arm} seed {seed}: {minutes:5.2f} min, step {step:5d}, change F1 "
            f"{result['change_f1']:.3f}, AP {result['change_ap']:.3f}",
            flush=True,
        )
        points.append(point)
    return points


def _landcover(encoder: Any, name: str, root: str) -> float:
    """The primary metric of ``satmae evaluate``'s kNN probe on a land-cover benchmark."""
    from satmae.eval.classification import evaluate_classification

    date = "2018-06-01" if encoder.config.temporal else None
    result = evaluate_classification(encoder, name, root, "knn", date=date, progress=False)
    return float(result["metrics"][result["primary"]]["mean"])


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "n": len(values),
    }


def curves(points: dict[int, list[dict[str, Any]]], at: list[float]) -> list[dict[str, Any]]:
    """Mean ± std of change F1 over seeds at minute 0 and at each of ``at`` the seeds reached."""
    out = []
    for minute in [0.0, *at]:
        values: dict[str, list[float]] = {metric: [] for metric in METRICS}
        steps = []
        for seed_points in points.values():
            if minute == 0.0:
                chosen = [p for p in seed_points if p["step"] == 0]
            else:  # the latest snapshot scored at or before this minute
                chosen = [p for p in seed_points if p["step"] > 0 and p["minutes"] <= minute + 1e-9]
            if chosen:
                for metric in METRICS:
                    values[metric].append(chosen[-1][metric])
                steps.append(chosen[-1]["step"])
        if steps:
            out.append(
                {
                    "minutes": minute,
                    "steps": statistics.fmean(steps),
                    **{metric: _summary(values[metric]) for metric in METRICS},
                }
            )
    return out


def reach(curve: list[dict[str, Any]], target: float, metric: str) -> float | None:
    """The first minute (> 0) whose mean ``metric`` reaches ``target``, or None."""
    for point in curve:
        if point["minutes"] > 0 and point[metric]["mean"] >= target:
            return float(point["minutes"])
    return None


def figure(summary: dict[str, Any], path: Path) -> None:
    """F1 and average precision (mean ± std over seeds) against minutes, one line per arm."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 5), layout="constrained")
    axes = fig.subplots(1, len(METRICS))
    labels = {"change_f1": "change F1", "change_ap": "change average precision"}
    base = summary["baseline"]
    for axis, metric in zip(axes, METRICS, strict=True):
        for name, arm in summary["arms"].items():
            curve = arm["curve"]
            x = [p["minutes"] for p in curve]
            y = [p[metric]["mean"] for p in curve]
            s = [p[metric]["std"] for p in curve]
            style = {"linewidth": 2.5, "color": "black"} if name == base["arm"] else {}
            line = axis.plot(
                x, y, marker="o", markersize=3, label=f"{name} (n={arm['seeds']})", **style
            )
            axis.fill_between(
                x,
                [a - b for a, b in zip(y, s, strict=True)],
                [a + b for a, b in zip(y, s, strict=True)],
                color=line[0].get_color(),
                alpha=0.10,
            )
        axis.axhline(
            base["target"][metric],
            color="gray",
            linestyle="--",
            linewidth=1,
            label=f"baseline at {base['minutes']} min, mean - std",
        )
        axis.axvline(
            base["minutes"] / 3, color="gray", linestyle=":", linewidth=1, label="1/3 of its time"
        )
        axis.set_xlabel("minutes of pretraining (wall time, start-up included)")
        axis.set_ylabel(f"{labels[metric]}, frozen linear readout (held-out cities)")
    axes[0].legend(fontsize=6, ncol=2)
    info = summary["info"]["cpu"]
    fig.suptitle(
        f"OSCD time to quality, {info['capability']} CPU (bf16 {info['bf16']}), "
        f"{info['threads']} threads",
        fontsize=9,
    )
    FigureCanvasAgg(fig).print_png(str(path))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="../shared/data/real/oscd")
    parser.add_argument("--arms", nargs="+", default=["full", "cross"], choices=list(ARMS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument(
        "--arm-seeds",
        nargs="+",
        type=int,
        help="seeds of the arms other than the baseline (default --seeds)",
    )
    parser.add_argument("--minutes", type=float, default=4.5, help="the baseline's budget")
    parser.add_argument(
        "--arm-minutes", type=float, help="budget of the other arms (default --minutes / 3)"
    )
    parser.add_argument(
        "--at",
        nargs="+",
        type=float,
        default=[0.5, 1.0, 1.5, 3.0, 4.5],
        help="minutes at which the encoder is scored",
    )
    parser.add_argument("--every", type=int, default=20, help="steps between checkpoints")
    parser.add_argument(
        "--landcover",
        nargs="*",
        default=[],
        help="NAME=ROOT of satmae evaluate classification benchmarks to probe",
    )
    parser.add_argument(
        "--random-init",
        action="store_true",
        help="score every arm's random initialisation too (default: the baseline's only)",
    )
    parser.add_argument(
        "--reuse", action="store_true", help="keep (arm, seed) results already under --work"
    )
    parser.add_argument("--work", type=Path, default=Path("/tmp/satmae_bench_ttq"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/time_to_quality.json"))
    args = parser.parse_args()

    from satmae.cli.info import collect_info
    from satmae.eval.change.data import open_oscd

    landcover = dict(item.split("=", 1) for item in args.landcover)
    split = open_oscd(args.root, test_cities=list(HELD_OUT), progress=False)
    baseline = args.arms[0]
    arm_minutes = args.arm_minutes or args.minutes / 3
    results: dict[str, dict[int, list[dict[str, Any]]]] = {}
    runs: dict[str, dict[int, dict[str, Any]]] = {}
    for arm in args.arms:
        minutes = args.minutes if arm == baseline else arm_minutes
        seeds = args.seeds if arm == baseline or not args.arm_seeds else args.arm_seeds
        at = [m for m in args.at if m <= minutes + 1e-9]
        for seed in seeds:
            record = args.work / arm / f"seed{seed}" / "result.json"
            if args.reuse and record.exists():
                saved = json.loads(record.read_text())
                if saved["minutes"] == minutes and saved["at"] == at:
                    results.setdefault(arm, {})[seed] = saved["points"]
                    runs.setdefault(arm, {})[seed] = saved["pretrain"]
                    print(f"{arm} seed {seed}: reused {record}")
                    continue
            print(f"{arm} seed {seed}: pretraining {minutes} min", flush=True)
            pretrained = run_pretrain(arm, seed, minutes, args.every, args.work, args.root)
            points = probe_run(
                arm, seed, pretrained, at, split, landcover, arm == baseline or args.random_init
            )
            kept = {
                "wall_minutes": pretrained["wall_minutes"],
                "steps": max((s["step"] for s in pretrained["snapshots"]), default=0),
            }
            for snapshot in pretrained["snapshots"]:  # the encoders are scored: free the disk
                Path(snapshot["path"]).unlink(missing_ok=True)
            record.write_text(
                json.dumps(
                    {"minutes": minutes, "at": at, "points": points, "pretrain": kept}, indent=1
                )
                + "\n"
            )
            results.setdefault(arm, {})[seed] = points
            runs.setdefault(arm, {})[seed] = kept

    base_curve = curves(results[baseline], [m for m in args.at if m <= args.minutes + 1e-9])
    final = {metric: base_curve[-1][metric] for metric in METRICS}
    target = {metric: final[metric]["mean"] - final[metric]["std"] for metric in METRICS}
    summary: dict[str, Any] = {
        "baseline": {
            "arm": baseline,
            "minutes": args.minutes,
            "final": final,
            "target": target,
            "rule": "the baseline's mean at its budget less one std over seeds",
        },
        "arms": {},
        "held_out": list(HELD_OUT),
        "recipe": RECIPE,
        "command": " ".join(sys.argv),
        "info": collect_info(),
    }
    for arm, by_seed in results.items():
        minutes = args.minutes if arm == baseline else arm_minutes
        curve = curves(by_seed, [m for m in args.at if m <= minutes + 1e-9])
        reached = {metric: reach(curve, target[metric], metric) for metric in METRICS}
        summary["arms"][arm] = {
            "lever": ARMS[arm].lever,
            "args": list(ARMS[arm].args),
            "budget_minutes": minutes,
            "seeds": len(by_seed),
            "steps": {seed: run["steps"] for seed, run in runs[arm].items()},
            "curve": curve,
            "final": {metric: curve[-1][metric] for metric in METRICS},
            "minutes_to_baseline": reached,
            "fraction_of_baseline_time": {
                metric: None if value is None else value / args.minutes
                for metric, value in reached.items()
            },
            "per_seed": by_seed,
        }
        f1, ap = curve[-1]["change_f1"], curve[-1]["change_ap"]
        print(
            f"{arm:20s} {minutes:4.1f} min, {curve[-1]['steps']:6.0f} steps: "
            f"F1 {f1['mean']:.3f} ± {f1['std']:.3f}, AP {ap['mean']:.3f} ± {ap['std']:.3f} "
            f"(n={f1['n']}); reaches the baseline at {reached['change_f1']} min (F1), "
            f"{reached['change_ap']} min (AP)"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    figure(summary, args.out.with_suffix(".png"))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
