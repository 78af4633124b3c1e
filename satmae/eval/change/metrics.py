"""Change-detection scores: F1, precision, recall and IoU of the change class, and thresholds.

Scores are pooled over whole test scenes: the confusion counts of every test city are summed,
then the scores are computed once (a city with little change does not weigh as much as a city
with much). A pixel is predicted as change when its score is at least the threshold.

Thresholds are chosen on training cities only (:func:`best_threshold`), never on test cities.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor


class Counts(NamedTuple):
    """Confusion counts of the change class over valid pixels."""

    tp: int
    fp: int
    fn: int
    tn: int


def _plane(tensor: Tensor, name: str) -> Tensor:
    """A ``(H, W)`` view of a ``(H, W)`` or ``(1, H, W)`` tensor."""
    if tensor.ndim == 3 and tensor.shape[0] == 1:
        tensor = tensor[0]
    if tensor.ndim != 2:
        raise ValueError(f"{name} must be (H, W) or (1, H, W), got shape {tuple(tensor.shape)}")
    return tensor


def _valid_plane(valid: Tensor | None, shape: torch.Size) -> Tensor:
    """``(H, W)`` bool: pixels valid on every date (``valid`` may be (H, W) or (T, H, W))."""
    if valid is None:
        return torch.ones(shape, dtype=torch.bool)
    plane = valid.bool().all(dim=0) if valid.ndim == 3 else valid.bool()
    if plane.shape != shape:
        raise ValueError(
            f"valid has shape {tuple(valid.shape)}; expected (T, {shape[0]}, {shape[1]})"
        )
    return plane


def change_counts(pred: Tensor, ref: Tensor, valid: Tensor | None = None) -> Counts:
    """Confusion counts of a predicted change map against the reference.

    Args:
        pred: ``(H, W)`` bool (or 0/1), True = change predicted.
        ref: ``(H, W)`` or ``(1, H, W)`` reference, 1 = change.
        valid: ``(H, W)`` or ``(T, H, W)`` bool; only pixels valid on every date count
            (default all pixels).

    Returns:
        ``Counts(tp, fp, fn, tn)``.

    Raises:
        ValueError: if the shapes disagree.
    """
    pred, ref = _plane(pred, "pred").bool(), _plane(ref, "ref").bool()
    if pred.shape != ref.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and ref {tuple(ref.shape)} differ in shape")
    keep = _valid_plane(valid, ref.shape)
    pred, ref = pred[keep], ref[keep]
    tp = int((pred & ref).sum())
    fp = int((pred & ~ref).sum())
    fn = int((~pred & ref).sum())
    return Counts(tp, fp, fn, int(ref.numel()) - tp - fp - fn)


def pool_counts(counts: Sequence[Counts | Sequence[int]]) -> Counts:
    """The sum of several cities' counts."""
    totals = [0, 0, 0, 0]
    for entry in counts:
        for index, value in enumerate(entry):
            totals[index] += int(value)
    return Counts(*totals)


def change_scores(counts: Counts | Sequence[Counts]) -> dict[str, float]:
    """F1, precision, recall and IoU of the change class.

    Args:
        counts: one ``Counts``, or one per city, summed first (pooled scores).

    Returns:
        ``{"change_f1", "change_precision", "change_recall", "change_iou"}``; a ratio whose
        denominator is 0 is 0.0.
    """
    if isinstance(counts, Counts):
        tp, fp, fn, _ = counts
    else:
        tp, fp, fn, _ = pool_counts(counts)

    def ratio(numerator: int, denominator: int) -> float:
        return numerator / denominator if denominator else 0.0

    return {
        "change_f1": ratio(2 * tp, 2 * tp + fp + fn),
        "change_precision": ratio(tp, tp + fp),
        "change_recall": ratio(tp, tp + fn),
        "change_iou": ratio(tp, tp + fp + fn),
    }


def _pooled(
    scores: Sequence[Tensor], refs: Sequence[Tensor], valids: Sequence[Tensor | None]
) -> tuple[Tensor, Tensor]:
    """Valid pixels of every city: scores (N,) float64 and references (N,) bool."""
    if not (len(scores) == len(refs) == len(valids)) or not scores:
        raise ValueError(
            f"need one score map, reference and valid mask per city (at least one), got "
            f"{len(scores)}, {len(refs)} and {len(valids)}"
        )
    values, labels = [], []
    for score, ref, valid in zip(scores, refs, valids, strict=True):
        score, ref = _plane(score, "score"), _plane(ref, "ref")
        if score.shape != ref.shape:
            raise ValueError(f"score {tuple(score.shape)} and ref {tuple(ref.shape)} differ")
        keep = _valid_plane(valid, ref.shape)
        values.append(score[keep].double())
        labels.append(ref[keep].bool())
    return torch.cat(values), torch.cat(labels)


def default_candidates(values: Tensor, count: int = 256) -> Tensor:
    """Candidate thresholds: quantiles of ``values`` (scores that occur), dense near the top.

    Change is a few percent of the pixels, so half of the candidates sit in the top 5 % of the
    scores, spaced logarithmically up to the 99.99th percentile.
    """
    levels = torch.cat(
        [
            torch.linspace(0.0, 0.95, count // 2, dtype=torch.float64),
            1.0 - torch.logspace(-1.3, -4.0, count - count // 2, dtype=torch.float64),
        ]
    )
    sample = values
    if values.numel() > 1_000_000:  # quantile of a subsample: fast and close enough
        step = values.numel() // 1_000_000 + 1
        sample = values[::step]
    quantiles = torch.quantile(sample, levels.clamp(0.0, 1.0), interpolation="higher")
    unique: Tensor = torch.unique(quantiles)  # scores that occur: none between two pixels
    return unique


def _f1_per_threshold(values: Tensor, labels: Tensor, candidates: Tensor) -> Tensor:
    """Pooled F1 of ``values >= t`` for every candidate ``t`` (one sort, no loop)."""
    order = torch.argsort(values)
    sorted_values, sorted_labels = values[order], labels[order].double()
    # positives below each position: cumulative sum of labels in ascending score order
    below = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(sorted_labels, 0)])
    total_pos = below[-1]
    start = torch.searchsorted(sorted_values, candidates.double(), side="left")
    predicted = values.numel() - start  # pixels with score >= t
    tp = total_pos - below[start]
    fp = predicted - tp
    fn = total_pos - tp
    denominator = 2 * tp + fp + fn
    f1: Tensor = torch.where(denominator > 0, 2 * tp / denominator.clamp(min=1), 0.0 * tp)
    return f1


def best_threshold(
    scores: Sequence[Tensor],
    refs: Sequence[Tensor],
    valids: Sequence[Tensor | None],
    candidates: Sequence[float] | Tensor | None = None,
) -> float:
    """The threshold that maximises pooled F1 over the given cities.

    Call it with training cities only: a threshold chosen on test cities inflates the test
    score.

    Args:
        scores: per city a ``(H, W)`` change score map (higher = more likely change).
        refs: per city the ``(H, W)`` or ``(1, H, W)`` reference, 1 = change.
        valids: per city ``(H, W)`` or ``(T, H, W)`` valid pixels, or None.
        candidates: thresholds to try (default :func:`default_candidates` of the scores).

    Returns:
        the best candidate (the lowest among equals).

    Raises:
        ValueError: if the lists differ in length or are empty.
    """
    values, labels = _pooled(scores, refs, valids)
    trial = (
        default_candidates(values)
        if candidates is None
        else torch.as_tensor(candidates, dtype=torch.float64).flatten()
    )
    if trial.numel() == 0:
        raise ValueError("no candidate thresholds given")
    f1 = _f1_per_threshold(values, labels, trial)
    return float(trial[int(torch.argmax(f1))])


def scores_at_threshold(
    scores: Sequence[Tensor],
    refs: Sequence[Tensor],
    valids: Sequence[Tensor | None],
    threshold: float,
) -> tuple[dict[str, float], list[Counts]]:
    """Pooled change scores of ``score >= threshold`` and the per-city counts.

    Returns:
        the pooled scores (:func:`change_scores`) and one ``Counts`` per city, in order.
    """
    counts = [
        change_counts(_plane(score, "score") >= threshold, ref, valid)
        for score, ref, valid in zip(scores, refs, valids, strict=True)
    ]
    return change_scores(counts), counts
