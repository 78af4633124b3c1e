"""One OSCD change-detection evaluation: baselines, the change network over seeds, a result.

Whole test cities are scored (sliding windows at 10 m, :mod:`~satmae.eval.change.inference`)
and pooled: true/false positives and negatives of every test city are summed before F1,
precision, recall and IoU are computed, so large cities weigh by their pixels. Nothing is fit
on test cities: the network trains on the training cities minus a few validation cities, and
the probability threshold is the one that maximises F1 on those validation cities.
"""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from satmae.eval.change.baselines import run_baselines
from satmae.eval.change.data import OSCDSplit, open_oscd, oscd_checksum
from satmae.eval.change.figures import change_overlay
from satmae.eval.change.inference import predict_scene
from satmae.eval.change.metrics import best_threshold, change_scores, scores_at_threshold
from satmae.eval.change.model import ChangeConfig, ChangeNet, check_change_config
from satmae.eval.change.train import FitConfig, fit_change
from satmae.eval.metrics import summarize
from satmae.models.encoder import SatMAEEncoder

PRIMARY = "change_f1"


@dataclass
class ChangeOptions:
    """What one change evaluation runs.

    Attributes:
        model: the change network's shape (mode, blocks, frozen or fine-tuned encoder).
        fit: its training.
        seeds: one trained network per seed; metrics are mean ± std over them.
        val_cities: training cities that choose the threshold instead of training the network
            (default: a quarter of the training cities, at least one, chosen with seed 0).
        stride: step of the sliding windows at test time (default half a window).
        train_cities: cities to train on (default the root's ``train.txt``).
        test_cities: cities to score (default the root's ``test.txt``).
        download: fetch OSCD through torchgeo when absent.
    """

    model: ChangeConfig = field(default_factory=ChangeConfig)
    fit: FitConfig = field(default_factory=FitConfig)
    seeds: Sequence[int] = (0,)
    val_cities: Sequence[str] | None = None
    stride: int | None = None
    train_cities: Sequence[str] | None = None
    test_cities: Sequence[str] | None = None
    download: bool = False

    @property
    def protocol(self) -> str:
        """``siamese-frozen``, ``temporal-finetune``, ..."""
        return f"{self.model.mode}-{'finetune' if self.model.finetune else 'frozen'}"


def choose_val_cities(train: Sequence[str], wanted: Sequence[str] | None) -> list[str]:
    """The validation cities: the given ones (checked), else a seeded quarter of ``train``.

    Raises:
        ValueError: for a validation city that is not a training city, or no city left to
            train on.
    """
    if wanted is not None:
        if unknown := sorted(set(wanted) - set(train)):
            raise ValueError(
                f"validation cities {unknown} are not training cities; choose among {list(train)}"
            )
        chosen = list(wanted)
    else:
        count = max(1, round(len(train) / 4))
        chosen = sorted(random.Random(0).sample(sorted(train), count))
    if len(chosen) >= len(train):
        raise ValueError(
            f"no training city left after holding out {chosen} for the threshold; give more "
            "training cities or fewer --val-cities"
        )
    return chosen


def _scores(
    maps: Mapping[str, torch.Tensor], cities: Sequence[Mapping[str, Any]], threshold: float
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Pooled scores over ``cities`` and each city's own scores at ``threshold``."""
    names = [str(city["location"]) for city in cities]
    pooled, counts = scores_at_threshold(
        [maps[name] for name in names],
        [torch.as_tensor(city["mask"])[0] for city in cities],
        [torch.as_tensor(city["valid"]) for city in cities],
        threshold,
    )
    return pooled, {name: change_scores(count) for name, count in zip(names, counts, strict=True)}


def evaluate_change(
    encoder: SatMAEEncoder,
    root: str | Path,
    options: ChangeOptions | None = None,
    *,
    figures_dir: str | Path | None = None,
    model_info: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate ``encoder`` on OSCD change detection; returns the result dict of a report.

    Args:
        encoder: the encoder (copied per seed; the original is left untouched).
        root: the OSCD root (torchgeo's layout or the native per-band folders).
        options: see :class:`ChangeOptions`.
        figures_dir: where the change-map overlays of the test cities go (seed 0).
        model_info: the report's ``model`` entry (source, name, weights hash, ...).
        progress: progress bars.

    Raises:
        ValueError: for a change mode the encoder cannot run, bands the data lacks, or a
            split without training or test cities.
        FileNotFoundError: for a missing data root (with the expected layout).
    """
    options = options or ChangeOptions()
    check_change_config(encoder, options.model)
    started = time.perf_counter()
    split = open_oscd(
        root,
        train_cities=options.train_cities,
        test_cities=options.test_cities,
        download=options.download,
        progress=progress,
    )
    _check_split(encoder, split)
    train_names = [str(s["location"]) for s in split.train]
    val_names = choose_val_cities(train_names, options.val_cities)
    fit_cities = [s for s in split.train if s["location"] not in val_names]
    val_cities = [s for s in split.train if s["location"] in val_names]
    read_s = time.perf_counter() - started

    started = time.perf_counter()
    baselines = run_baselines(split.train, split.test, seed=0)
    baseline_s = time.perf_counter() - started

    values: dict[str, list[float]] = {}
    per_city_runs: list[dict[str, dict[str, float]]] = []
    thresholds: list[float] = []
    val_f1: list[float] = []
    fit_s = predict_s = 0.0
    first_maps: dict[str, torch.Tensor] = {}
    for seed in tqdm(options.seeds, desc="seeds", disable=not progress or len(options.seeds) < 2):
        torch.manual_seed(seed)
        net = ChangeNet(copy.deepcopy(encoder), options.model)
        tick = time.perf_counter()
        fit_change(net, fit_cities, options.fit, seed=seed, progress=progress)
        fit_s += time.perf_counter() - tick
        tick = time.perf_counter()
        val_maps = [predict_scene(net, city, stride=options.stride) for city in val_cities]
        val_refs = [torch.as_tensor(c["mask"])[0] for c in val_cities]
        val_valid = [torch.as_tensor(c["valid"]) for c in val_cities]
        threshold = best_threshold(val_maps, val_refs, val_valid)
        val_f1.append(scores_at_threshold(val_maps, val_refs, val_valid, threshold)[0]["change_f1"])
        maps = {
            str(city["location"]): predict_scene(net, city, stride=options.stride)
            for city in split.test
        }
        predict_s += time.perf_counter() - tick
        pooled, per_city = _scores(maps, split.test, threshold)
        for name, value in pooled.items():
            values.setdefault(name, []).append(value)
        per_city_runs.append(per_city)
        thresholds.append(threshold)
        if not first_maps:
            first_maps = maps
    metrics = {name: summarize(v) for name, v in values.items()}
    baseline_entries = {
        name: {
            "metrics": {k: summarize([v]) for k, v in b["metrics"].items()},
            "config": dict(b.get("config", {})),
            "per_city": b.get("per_city", {}),
        }
        for name, b in baselines.items()
    }
    figures = {}
    if figures_dir is not None:
        folder = Path(figures_dir)
        folder.mkdir(parents=True, exist_ok=True)
        for city in split.test:
            name = str(city["location"])
            path = folder / f"change_{name}.png"
            change_overlay(
                city,
                first_maps[name] >= thresholds[0],
                path,
                title=f"{name}: {options.protocol}, seed {options.seeds[0]}",
            )
            figures[f"change_{name}"] = str(path)
    return {
        "benchmark": "oscd",
        "task": "change",
        "protocol": options.protocol,
        "model": dict(model_info or {}),
        "data": {
            "root": str(root),
            "sizes": {
                "train": len(fit_cities),
                "val": len(val_cities),
                "test": len(split.test),
            },
            "checksums": {
                "train": oscd_checksum(split.train),
                "test": oscd_checksum(split.test),
            },
            "splits": {
                "train": [str(s["location"]) for s in fit_cities],
                "val": val_names,
                "test": [str(s["location"]) for s in split.test],
            },
            "skipped": list(split.skipped),
            "note": split.note,
        },
        "config": {
            "model": options.model.to_dict(),
            "fit": options.fit.to_dict(),
            "stride": options.stride,
            "threshold": "maximises F1 on the validation cities (never the test cities)",
        },
        "seeds": list(options.seeds),
        "metrics": metrics,
        "primary": PRIMARY,
        "baselines": baseline_entries,
        "verdict": verdict(metrics, baseline_entries),
        "runtime_s": {
            "read": read_s,
            "baselines": baseline_s,
            "fit": fit_s,
            "predict": predict_s,
            "total": read_s + baseline_s + fit_s + predict_s,
        },
        "figures": figures,
        "extra": {
            "thresholds": thresholds,
            "val_change_f1": val_f1,
            "per_city": per_city_runs,
        },
    }


def verdict(metrics: Mapping[str, Any], baselines: Mapping[str, Any]) -> str:
    """One line: does the encoder beat every baseline on change F1?"""
    ours = metrics[PRIMARY]["mean"]
    others = {name: b["metrics"][PRIMARY]["mean"] for name, b in baselines.items()}
    best_name = max(others, key=lambda name: others[name])
    best = others[best_name]
    if ours > best:
        return (
            f"the encoder beats every baseline: change F1 {ours:.3f} vs {best:.3f} "
            f"({best_name}, the best baseline)"
        )
    return (
        f"the encoder does NOT beat the baselines: change F1 {ours:.3f} vs {best:.3f} ({best_name})"
    )


def _check_split(encoder: SatMAEEncoder, split: OSCDSplit) -> None:
    """Refuse a split without cities, or data that lacks the encoder's bands."""
    if not split.train or not split.test:
        raise ValueError(
            f"OSCD split has {len(split.train)} training and {len(split.test)} test cities; "
            "both are needed (give --train-cities and --test-cities)"
        )
    if missing := [band for band in encoder.bands if band not in split.bands]:
        raise ValueError(
            f"the model reads bands {missing} that the OSCD data lacks; it has {list(split.bands)}"
        )
