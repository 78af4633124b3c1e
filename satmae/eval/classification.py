"""One classification evaluation: a protocol over seeds plus the raw-band baseline -> result.

Train on ``train``, choose hyperparameters on ``val`` (the logistic regression's L2 strength,
the fine-tuning epoch), report on ``test``. The baseline uses the same protocol on
per-band mean/std features of the raw image (for ``finetune``, the linear protocol, since
there is no network to fine-tune). The result follows the schema of
:mod:`satmae.eval.report`.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from satmae.embed.raster import weights_hash
from satmae.eval.benchmarks import (
    BenchmarkInfo,
    BenchmarkSplit,
    benchmark_info,
    open_split,
    split_checksum,
)
from satmae.eval.features import FeatureSet, extract_features, raw_band_features
from satmae.eval.finetune import finetune
from satmae.eval.metrics import classification_metrics, multilabel_metrics, summarize
from satmae.eval.probes import knn_probe, linear_probe, select_weight_decay
from satmae.eval.report import package_versions
from satmae.models.encoder import SatMAEEncoder

PROTOCOLS: tuple[str, ...] = ("knn", "linear", "finetune")
"""The classification protocols."""

KNN_K = 5
"""Neighbours of the kNN probe (the torchgeo-bench setting)."""

BASELINE = "raw-band mean/std"
"""Name of the baseline in the result."""

FINETUNE_DEFAULTS: dict[str, Any] = {
    "epochs": 10,
    "lr": 1e-3,
    "layer_decay": 0.75,
    "drop_path": 0.1,
    "weight_decay": 0.05,
    "warmup_epochs": 1.0,
    "batch_size": 32,
}
"""Fine-tuning hyperparameters; ``finetune_options`` overrides any of them."""


def check_model_fits(encoder: SatMAEEncoder, info: BenchmarkInfo, date: str | None) -> None:
    """Fail early when the encoder cannot read the benchmark.

    Raises:
        ValueError: if the encoder needs bands the dataset lacks, or is temporal and no nominal
            date was given.
    """
    if missing := [band for band in encoder.bands if band not in info.bands]:
        raise ValueError(
            f"the model needs bands {missing} that {info.title} lacks; its bands are "
            f"{', '.join(info.bands)}"
        )
    if encoder.config.temporal and date is None:
        name = encoder.provenance.get("registry") or encoder.provenance.get("name") or "the model"
        raise ValueError(
            f"model {name} is temporal and {info.title} has no dates; pass --date YYYY-MM-DD "
            "to give every image a nominal date"
        )


def _machine(encoder: SatMAEEncoder) -> dict[str, Any]:
    device = encoder.cls_token.device
    return {
        "platform": platform.platform(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
    }


def _scores_to_metrics(scores: Tensor, labels: Tensor, multilabel: bool) -> dict[str, Any]:
    if multilabel:
        return multilabel_metrics(scores, labels)
    return classification_metrics(scores, labels)


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    return {key: value for key, value in metrics.items() if isinstance(value, float)}


def _summaries(per_seed: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    names = _scalars(per_seed[0])
    return {name: summarize([metrics[name] for metrics in per_seed]) for name in names}


def _probe_runs(
    protocol: str,
    features: dict[str, FeatureSet],
    *,
    seeds: Sequence[int],
    multilabel: bool,
    num_classes: int,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Metrics of a frozen probe for each seed, and the probe's config."""
    train, val, test = features["train"], features["val"], features["test"]
    if protocol == "knn":
        config: dict[str, Any] = {"k": KNN_K, "similarity": "cosine", "fit_on": "train"}
        runs = []
        for _ in seeds:  # deterministic: every seed gives the same scores
            scores = knn_probe(train, test, KNN_K, multilabel, num_classes=num_classes)
            runs.append(_scores_to_metrics(scores, test.labels, multilabel))
        return runs, config
    weight_decay, tried = select_weight_decay(
        train, val, multilabel=multilabel, num_classes=num_classes
    )
    config = {
        "solver": "L-BFGS",
        "standardise": "train mean/std",
        "weight_decay": weight_decay,
        "weight_decay_chosen_on": "val",
        "val_scores": {str(key): value for key, value in tried.items()},
        "fit_on": "train",
    }
    runs = []
    for seed in seeds:
        scores = linear_probe(
            train,
            test,
            multilabel=multilabel,
            num_classes=num_classes,
            weight_decay=weight_decay,
            seed=seed,
        )
        runs.append(_scores_to_metrics(scores, test.labels, multilabel))
    return runs, config


def _verdict(primary: str, metrics: dict[str, Any], baselines: dict[str, Any]) -> str:
    ours = metrics[primary]
    text = f"{ours['mean']:.4f} ± {ours['std']:.4f}"
    others = {name: entry["metrics"][primary]["mean"] for name, entry in baselines.items()}
    compared = ", ".join(f"{name} {value:.4f}" for name, value in others.items())
    if all(ours["mean"] > value for value in others.values()):
        return f"the encoder beats every baseline on {primary}: {text} vs {compared}"
    losers = [name for name, value in others.items() if ours["mean"] <= value]
    return f"the encoder does not beat {', '.join(losers)} on {primary}: {text} vs {compared}"


def evaluate_classification(
    encoder: SatMAEEncoder,
    benchmark: str,
    root: str | Path,
    protocol: str,
    *,
    seeds: Sequence[int] = (0,),
    download: bool = False,
    date: str | None = None,
    cache_dir: str | Path | None = None,
    batch_size: int = 64,
    finetune_options: dict[str, Any] | None = None,
    progress: bool = True,
    model_info: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Evaluate an encoder on a classification benchmark; the result dict of the report.

    Args:
        encoder: the encoder (frozen for ``knn``/``linear``; a copy is trained by ``finetune``).
        benchmark: ``"eurosat"``, ``"eurosat-spatial"``, ``"bigearthnet"`` or
            ``"bigearthnet-v2"``.
        root: the data folder in torchgeo's layout.
        protocol: ``"knn"``, ``"linear"`` or ``"finetune"``.
        seeds: one run per seed.
        download: let torchgeo fetch missing data.
        date: nominal ISO date for every image (required by temporal encoders).
        cache_dir: feature cache folder; ``None`` disables the cache.
        batch_size: samples per forward pass.
        finetune_options: overrides of :data:`FINETUNE_DEFAULTS`.
        progress: show progress bars.
        model_info: ``source``, ``name``, ``random_init`` (and optionally ``normalization``)
            of the model, for the report; the weights hash and bands are filled in here.

    Returns:
        the result dict (benchmark, task, protocol, model, data, config, seeds, metrics,
        primary, baselines, verdict, per_class, confusion, runtime_s, throughput, versions,
        machine, extra).

    Raises:
        ValueError: for an unknown benchmark or protocol, a change benchmark, no seeds, or an
            encoder that cannot read the data (see :func:`check_model_fits`).
        FileNotFoundError: when the data is missing (listing the expected files).
    """
    started = time.perf_counter()
    info = benchmark_info(benchmark)
    if info.task == "change":
        raise ValueError(f"{benchmark} is a change benchmark; evaluate it with satmae.eval.change")
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}")
    if not seeds:
        raise ValueError("give at least one seed")
    options = {**FINETUNE_DEFAULTS, **(finetune_options or {})}
    if unknown := sorted(set(options) - set(FINETUNE_DEFAULTS)):
        raise ValueError(
            f"unknown fine-tuning options {unknown}; known: {', '.join(FINETUNE_DEFAULTS)}"
        )
    check_model_fits(encoder, info, date)
    splits: dict[str, BenchmarkSplit] = {
        split: open_split(benchmark, root, split, download=download, date=date)
        for split in ("train", "val", "test")
    }
    first = splits["train"]
    multilabel = first.multilabel
    num_classes = len(first.classes)
    primary = "map_micro" if multilabel else "top1"
    runtime = {"features": 0.0, "probe": 0.0, "baselines": 0.0}
    throughput: dict[str, float] | None = None

    clock = time.perf_counter()
    if protocol == "finetune":
        config: dict[str, Any] = {**options, "pool": "mean", "head": "linear"}
        runs = []
        for seed in seeds:
            outcome = finetune(
                encoder,
                splits["train"],
                splits["val"],
                splits["test"],
                num_classes=num_classes,
                multilabel=multilabel,
                seed=seed,
                progress=progress,
                **options,
            )
            runs.append(_scores_to_metrics(outcome.scores, outcome.labels, multilabel))
            config.setdefault("best_epoch", []).append(outcome.best_epoch)
        runtime["probe"] = time.perf_counter() - clock
    else:
        features = {
            split: extract_features(
                encoder,
                dataset,
                batch_size=batch_size,
                pool="mean",
                cache_dir=cache_dir,
                progress=progress,
            )
            for split, dataset in splits.items()
        }
        runtime["features"] = time.perf_counter() - clock
        count = sum(len(feature_set) for feature_set in features.values() if not feature_set.cached)
        if count and runtime["features"] > 0:
            throughput = {"features_per_s": count / runtime["features"]}
        clock = time.perf_counter()
        runs, config = _probe_runs(
            protocol, features, seeds=seeds, multilabel=multilabel, num_classes=num_classes
        )
        config["pool"] = "mean"
        runtime["probe"] = time.perf_counter() - clock

    clock = time.perf_counter()
    raw = {
        split: raw_band_features(dataset, batch_size=batch_size, progress=progress)
        for split, dataset in splits.items()
    }
    baseline_protocol = "linear" if protocol == "finetune" else protocol
    baseline_runs, baseline_config = _probe_runs(
        baseline_protocol, raw, seeds=seeds, multilabel=multilabel, num_classes=num_classes
    )
    baseline_config = {
        "features": f"per-band mean and std over valid pixels ({2 * len(first.bands)} values)",
        "protocol": baseline_protocol,
        **baseline_config,
    }
    if protocol == "finetune":
        baseline_config["note"] = "linear probe on raw features (nothing to fine-tune)"
    runtime["baselines"] = time.perf_counter() - clock

    metrics = _summaries(runs)
    normalization = "none" if encoder.normalization is None else encoder.normalization.mode
    baselines = {BASELINE: {"metrics": _summaries(baseline_runs), "config": baseline_config}}
    seed0 = runs[0]
    result: dict[str, Any] = {
        "benchmark": benchmark,
        "task": info.task,
        "protocol": protocol,
        "model": {
            "source": "",
            "name": "",
            "random_init": False,
            "normalization": normalization,
            **(model_info or {}),
            "weights_hash": weights_hash(encoder),
            "bands": list(encoder.bands),
        },
        "data": {
            "root": str(root),
            "sizes": {split: len(dataset) for split, dataset in splits.items()},
            "checksums": {split: split_checksum(dataset) for split, dataset in splits.items()},
            "classes": list(first.classes),
            "bands": list(first.bands),
            "date": date,
            "skipped": [],
        },
        "config": config,
        "seeds": list(seeds),
        "metrics": metrics,
        "primary": primary,
        "baselines": baselines,
        "verdict": _verdict(primary, metrics, baselines),
        "per_class": {
            "names": list(first.classes),
            "f1": seed0["f1"],
            "precision": seed0["precision"],
            "recall": seed0["recall"],
        },
        "runtime_s": {**runtime, "total": time.perf_counter() - started},
        "versions": package_versions(),
        "machine": _machine(encoder),
        "extra": {},
    }
    if not multilabel:
        result["confusion"] = seed0["confusion"]
    if throughput is not None:
        result["throughput"] = throughput
    return result
