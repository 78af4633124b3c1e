"""Classification and multi-label scores (torchmetrics' functional API), and seed summaries.

Multi-label ``map_micro`` is the micro-averaged average precision over every (sample, class)
pair: the measure of the torchgeo-bench table for BigEarthNet.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_confusion_matrix,
    multiclass_f1_score,
    multiclass_precision,
    multiclass_recall,
    multilabel_average_precision,
    multilabel_f1_score,
    multilabel_precision,
    multilabel_recall,
)

MULTILABEL_THRESHOLD = 0.5
"""Score above which a class counts as predicted for the F1 scores."""


def classification_metrics(scores: Tensor, labels: Tensor) -> dict[str, Any]:
    """Single-label scores of class scores against true classes.

    Args:
        scores: ``(N, K)`` class scores or probabilities (higher = more likely).
        labels: ``(N,)`` true class indices.

    Returns:
        ``top1`` (and ``top5`` when K > 5), ``confusion`` (K x K counts, rows = true class),
        and per-class ``precision``, ``recall`` and ``f1`` lists.

    Raises:
        ValueError: if the shapes disagree.
    """
    if scores.ndim != 2 or labels.shape != scores.shape[:1]:
        raise ValueError(
            f"expected scores (N, K) and labels (N,), got {tuple(scores.shape)} and "
            f"{tuple(labels.shape)}"
        )
    scores = scores.detach().float().cpu()
    labels = labels.detach().long().cpu()
    classes = scores.shape[1]
    predicted = scores.argmax(dim=1)
    result: dict[str, Any] = {
        "top1": float((predicted == labels).float().mean()),
    }
    if classes > 5:
        result["top5"] = float(
            multiclass_accuracy(scores, labels, num_classes=classes, top_k=5, average="micro")
        )
    confusion = multiclass_confusion_matrix(predicted, labels, num_classes=classes)
    result["confusion"] = confusion.tolist()
    per_class = {"num_classes": classes, "average": None, "zero_division": 0}
    result["precision"] = multiclass_precision(predicted, labels, **per_class).tolist()  # type: ignore[arg-type]
    result["recall"] = multiclass_recall(predicted, labels, **per_class).tolist()  # type: ignore[arg-type]
    result["f1"] = multiclass_f1_score(predicted, labels, **per_class).tolist()  # type: ignore[arg-type]
    return result


def multilabel_metrics(scores: Tensor, targets: Tensor) -> dict[str, Any]:
    """Multi-label scores of per-class probabilities against multi-hot targets.

    Args:
        scores: ``(N, K)`` per-class probabilities in [0, 1].
        targets: ``(N, K)`` multi-hot targets (0/1).

    Returns:
        ``map_micro``, ``map_macro`` (mean over classes that have a positive), ``f1_micro``,
        ``f1_macro`` (threshold 0.5), and per-class ``precision``, ``recall`` and ``f1``.

    Raises:
        ValueError: if the shapes disagree.
    """
    if scores.ndim != 2 or targets.shape != scores.shape:
        raise ValueError(
            f"expected scores and targets of one shape (N, K), got {tuple(scores.shape)} and "
            f"{tuple(targets.shape)}"
        )
    scores = scores.detach().float().cpu()
    truth = targets.detach().cpu().round().long()
    labels = scores.shape[1]
    micro_ap = multilabel_average_precision(scores, truth, num_labels=labels, average="micro")
    with warnings.catch_warnings():
        # Classes without positives are expected (rare classes in a small split); they are
        # left out of the macro average below instead.
        warnings.filterwarnings("ignore", message="No positive samples")
        per_class_ap = multilabel_average_precision(
            scores, truth, num_labels=labels, average="none"
        )
    # A class without positives has no defined AP; average over the others.
    present = truth.sum(dim=0) > 0
    macro_ap = per_class_ap[present].nanmean() if bool(present.any()) else torch.tensor(0.0)
    options = {"num_labels": labels, "threshold": MULTILABEL_THRESHOLD, "zero_division": 0}
    return {
        "map_micro": float(micro_ap),
        "map_macro": float(macro_ap),
        "f1_micro": float(multilabel_f1_score(scores, truth, average="micro", **options)),  # type: ignore[arg-type]
        "f1_macro": float(multilabel_f1_score(scores, truth, average="macro", **options)),  # type: ignore[arg-type]
        "precision": multilabel_precision(scores, truth, average=None, **options).tolist(),  # type: ignore[arg-type]
        "recall": multilabel_recall(scores, truth, average=None, **options).tolist(),  # type: ignore[arg-type]
        "f1": multilabel_f1_score(scores, truth, average=None, **options).tolist(),  # type: ignore[arg-type]
    }


def summarize(values: Sequence[float]) -> dict[str, Any]:
    """``{"mean", "std", "values"}`` over seeds; std is the population std (0.0 for one seed).

    Raises:
        ValueError: for no values.
    """
    if not values:
        raise ValueError("cannot summarise an empty list of values; run at least one seed")
    array = np.asarray(values, dtype=np.float64)
    return {
        "mean": float(array.mean()),
        "std": float(array.std(ddof=0)),
        "values": [float(value) for value in values],
    }
