"""Probes on frozen features: k-nearest neighbours and L-BFGS logistic regression.

Both return ``(N, K)`` test scores (higher = more likely), which
:mod:`satmae.eval.metrics` turns into numbers.

The logistic regression's L2 strength is chosen from :data:`WEIGHT_DECAYS` by the score on a
validation set: the benchmark's ``val`` split when given, otherwise a seeded 20 % of ``train``
held out for the choice; the final model is then fit on all of ``train``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from satmae.eval.features import FeatureSet
from satmae.eval.metrics import multilabel_metrics

WEIGHT_DECAYS: tuple[float, ...] = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)
"""L2 strengths tried by :func:`select_weight_decay` (loss = mean CE + wd/2 * ||W||^2)."""

HELD_OUT_FRACTION = 0.2
"""Part of ``train`` held out to choose the L2 strength when no validation set is given."""


def _num_classes(train: FeatureSet, multilabel: bool, num_classes: int | None) -> int:
    if num_classes is not None:
        return num_classes
    if multilabel:
        return int(train.labels.shape[1])
    return int(train.labels.max()) + 1 if len(train) else 0


@torch.no_grad()
def knn_probe(
    train: FeatureSet,
    test: FeatureSet,
    k: int = 5,
    multilabel: bool = False,
    *,
    num_classes: int | None = None,
    batch_size: int = 1024,
) -> Tensor:
    """k-nearest-neighbour scores by cosine similarity of L2-normalised features.

    Single label: the score of a class is its share of the k votes, plus a tie-break below
    1/k that favours the class of the nearest neighbour among tied classes, so ``argmax`` is the
    majority vote with ties going to the nearest. Multi-label: the score of a class is the
    fraction of the k neighbours that have it.

    Args:
        train: features ``(N_train, D)`` and labels of the reference set.
        test: features ``(N, D)`` to score.
        k: neighbours (capped at ``N_train``).
        multilabel: whether labels are multi-hot ``(N, K)``.
        num_classes: K; default from the training labels.
        batch_size: test samples compared at once (memory is ``batch_size x N_train``).

    Returns:
        ``(N, K)`` float32 scores.

    Raises:
        ValueError: for ``k < 1``, an empty training set or mismatched widths.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if len(train) == 0:
        raise ValueError("the kNN probe needs at least one training sample")
    if train.features.shape[1] != test.features.shape[1]:
        raise ValueError(
            f"train features have width {train.features.shape[1]} but test features "
            f"{test.features.shape[1]}; extract both with the same encoder and pool"
        )
    classes = _num_classes(train, multilabel, num_classes)
    neighbours = min(k, len(train))
    reference = F.normalize(train.features.float(), dim=1)
    if multilabel:
        reference_labels = train.labels.float()  # (N_train, K)
    else:
        reference_labels = F.one_hot(train.labels.long(), classes).float()  # (N_train, K)
    # Rank weights in (0, 1): the nearest neighbour's class wins a tie.
    rank_weight = torch.linspace(1.0, 0.5, neighbours)
    parts = []
    for start in range(0, len(test), batch_size):
        query = F.normalize(test.features[start : start + batch_size].float(), dim=1)
        similarity = query @ reference.T  # (b, N_train)
        index = similarity.topk(neighbours, dim=1).indices  # (b, k), nearest first
        votes = reference_labels[index]  # (b, k, K)
        scores = votes.mean(dim=1)  # (b, K)
        if not multilabel:
            first = (votes * rank_weight[None, :, None]).amax(dim=1)  # (b, K)
            scores = scores + first / (2 * neighbours * neighbours)
        parts.append(scores)
    return torch.cat(parts) if parts else torch.zeros(0, classes)


def _standardise(train: Tensor, *others: Tensor) -> list[Tensor]:
    """Centre and scale every set with the training mean and std."""
    mean = train.mean(dim=0)
    std = train.std(dim=0, unbiased=False).clamp(min=1e-6)
    return [(values - mean) / std for values in (train, *others)]


def fit_logistic(
    features: Tensor,
    labels: Tensor,
    classes: int,
    multilabel: bool,
    weight_decay: float,
    max_iter: int,
) -> tuple[Tensor, Tensor]:
    """Weights ``(D, K)`` and bias ``(K,)`` of an L2-regularised logistic regression."""
    weight = torch.zeros(features.shape[1], classes, dtype=features.dtype, requires_grad=True)
    bias = torch.zeros(classes, dtype=features.dtype, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=max_iter,
        history_size=20,
        tolerance_grad=1e-6,
        tolerance_change=1e-9,
        line_search_fn="strong_wolfe",
    )
    targets = labels.to(features.dtype) if multilabel else labels.long()

    def closure() -> Tensor:
        optimizer.zero_grad()
        logits = features @ weight + bias
        if multilabel:
            loss = F.binary_cross_entropy_with_logits(logits, targets)
        else:
            loss = F.cross_entropy(logits, targets)
        loss = loss + 0.5 * weight_decay * weight.pow(2).sum()
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    optimizer.step(closure)  # type: ignore[no-untyped-call]
    return weight.detach(), bias.detach()


def _probabilities(features: Tensor, weight: Tensor, bias: Tensor, multilabel: bool) -> Tensor:
    logits = features @ weight + bias
    return (logits.sigmoid() if multilabel else logits.softmax(dim=1)).float()


def _score(probabilities: Tensor, labels: Tensor, multilabel: bool) -> float:
    """Selection score: micro-mAP (multi-label) or top-1 accuracy."""
    if multilabel:
        return float(multilabel_metrics(probabilities, labels)["map_micro"])
    return float((probabilities.argmax(dim=1) == labels.long()).float().mean())


def select_weight_decay(
    train: FeatureSet,
    val: FeatureSet,
    *,
    multilabel: bool,
    num_classes: int | None = None,
    weight_decays: Sequence[float] = WEIGHT_DECAYS,
    max_iter: int = 1000,
) -> tuple[float, dict[float, float]]:
    """The L2 strength whose model, fit on ``train``, scores best on ``val``.

    Returns:
        the chosen strength (the largest among equal scores: the simplest model) and the
        validation score of each strength tried.
    """
    classes = _num_classes(train, multilabel, num_classes)
    train_x, val_x = _standardise(train.features.double(), val.features.double())
    scores: dict[float, float] = {}
    for weight_decay in weight_decays:
        weight, bias = fit_logistic(
            train_x, train.labels, classes, multilabel, weight_decay, max_iter
        )
        scores[weight_decay] = _score(
            _probabilities(val_x, weight, bias, multilabel), val.labels, multilabel
        )
    best = max(scores.items(), key=lambda item: (item[1], item[0]))[0]
    return best, scores


def linear_probe(
    train: FeatureSet,
    test: FeatureSet,
    *,
    multilabel: bool,
    num_classes: int | None = None,
    weight_decay: float | None = None,
    val: FeatureSet | None = None,
    max_iter: int = 1000,
    seed: int = 0,
) -> Tensor:
    """Logistic regression by L-BFGS on standardised features; test probabilities.

    Features are standardised with the training mean and std. The loss is softmax cross-entropy
    (or per-class binary cross-entropy for multi-label) plus ``weight_decay / 2 * ||W||^2``.
    The fit is full-batch from zero weights in float64, so it is deterministic; ``seed`` only
    draws the held-out part of ``train`` when the strength is chosen without ``val``.

    Args:
        train: training features and labels.
        test: features to score.
        multilabel: per-class sigmoid instead of softmax.
        num_classes: K; default from the training labels.
        weight_decay: the L2 strength; ``None`` chooses it (see the module docstring).
        val: validation features for the choice.
        max_iter: L-BFGS iterations.
        seed: seed of the held-out draw.

    Returns:
        ``(N, K)`` float32 probabilities.
    """
    if len(train) == 0:
        raise ValueError("the linear probe needs at least one training sample")
    classes = _num_classes(train, multilabel, num_classes)
    if weight_decay is None:
        if val is None:
            generator = torch.Generator().manual_seed(seed)
            order = torch.randperm(len(train), generator=generator)
            held = max(1, int(len(train) * HELD_OUT_FRACTION))
            fit_part, held_part = order[held:], order[:held]
            choose_from = FeatureSet(
                train.features[fit_part],
                train.labels[fit_part],
                tuple(train.ids[i] for i in fit_part.tolist()),
            )
            val = FeatureSet(
                train.features[held_part],
                train.labels[held_part],
                tuple(train.ids[i] for i in held_part.tolist()),
            )
        else:
            choose_from = train
        weight_decay, _ = select_weight_decay(
            choose_from, val, multilabel=multilabel, num_classes=classes, max_iter=max_iter
        )
    train_x, test_x = _standardise(train.features.double(), test.features.double())
    weight, bias = fit_logistic(train_x, train.labels, classes, multilabel, weight_decay, max_iter)
    return _probabilities(test_x, weight, bias, multilabel)
