"""Raw-band change baselines for OSCD, fit on training cities only and scored on test cities.

- :func:`change_vector_analysis`: the length of the per-pixel band-difference vector after
  normalisation, either a z-score per band with statistics of the training cities
  (``"zscore"``) or each date of each city standardised by itself (``"per_image"``).
- :func:`pixel_logistic_regression`: logistic regression on the normalised band differences
  and their absolute values, class-balanced, fit by L-BFGS on a bounded subsample of
  training pixels.

Every threshold is the one that maximises pooled F1 on the training cities. Each baseline
returns ``{"metrics": {change scores}, "config": {...}, "maps": {city: (H, W) score map},
"per_city": {city: {change scores}}}``; ``maps`` holds tensors (for figures), the rest is
JSON-serialisable.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from satmae.data.sample import Sample
from satmae.eval.change.metrics import best_threshold, change_scores, scores_at_threshold

NORMALIZATIONS = ("zscore", "per_image")
"""Band normalisations of change-vector analysis."""


def _city(sample: Sample) -> str:
    return str(sample.get("location", ""))


def _both_valid(sample: Sample) -> Tensor:
    """``(H, W)`` pixels valid on both dates."""
    return sample["valid"].bool().all(dim=0)


def band_statistics(samples: Sequence[Sample]) -> tuple[Tensor, Tensor]:
    """Per-band mean and std ``(C,)`` over the valid pixels of both dates of ``samples``."""
    total = torch.zeros(samples[0]["image"].shape[1], dtype=torch.float64)
    squares, count = torch.zeros_like(total), 0
    for sample in samples:
        pixels = sample["image"].double().permute(1, 0, 2, 3)[:, sample["valid"].bool()]  # (C, N)
        total += pixels.sum(dim=1)
        squares += (pixels**2).sum(dim=1)
        count += pixels.shape[1]
    if count == 0:
        raise ValueError("no valid pixel in the training cities to compute band statistics")
    mean = total / count
    std = (squares / count - mean**2).clamp(min=0).sqrt().clamp(min=1e-6)
    return mean.float(), std.float()


def normalized_difference(
    sample: Sample, normalization: str, stats: tuple[Tensor, Tensor] | None = None
) -> Tensor:
    """Date-2 minus date-1 normalised bands, ``(C, H, W)``.

    Args:
        sample: a two-date scene ``image (2, C, H, W)``.
        normalization: ``"zscore"`` (per band, with ``stats`` of the training cities) or
            ``"per_image"`` (each date standardised per band by its own valid pixels).
        stats: ``(mean, std)`` per band, for ``"zscore"``.

    Raises:
        ValueError: for an unknown normalisation, a missing ``stats`` or not two dates.
    """
    image = sample["image"].float()
    if image.ndim != 4 or image.shape[0] != 2:
        raise ValueError(f"change baselines need two dates (2, C, H, W), got {tuple(image.shape)}")
    if normalization == "zscore":
        if stats is None:
            raise ValueError("zscore normalisation needs the training cities' (mean, std)")
        mean, std = stats
        return (image[1] - image[0]) / std[:, None, None]  # the means cancel
    if normalization == "per_image":
        valid = _both_valid(sample)
        dates = []
        for date in image:
            pixels = date[:, valid]  # (C, N)
            mean = pixels.mean(dim=1)[:, None, None]
            std = pixels.std(dim=1).clamp(min=1e-6)[:, None, None]
            dates.append((date - mean) / std)
        change: Tensor = dates[1] - dates[0]
        return change
    raise ValueError(f"unknown normalization {normalization!r}; choose one of {NORMALIZATIONS}")


def _result(
    train_maps: list[Tensor],
    train: Sequence[Sample],
    test_maps: list[Tensor],
    test: Sequence[Sample],
    config: dict[str, Any],
) -> dict[str, Any]:
    """Threshold on training cities, pooled and per-city scores on test cities."""
    threshold = best_threshold(
        train_maps, [s["mask"] for s in train], [_both_valid(s) for s in train]
    )
    train_scores, _ = scores_at_threshold(
        train_maps, [s["mask"] for s in train], [_both_valid(s) for s in train], threshold
    )
    metrics, counts = scores_at_threshold(
        test_maps, [s["mask"] for s in test], [_both_valid(s) for s in test], threshold
    )
    return {
        "metrics": metrics,
        "config": {**config, "threshold": threshold, "train_f1": train_scores["change_f1"]},
        "maps": {_city(s): m for s, m in zip(test, test_maps, strict=True)},
        "per_city": {_city(s): change_scores(c) for s, c in zip(test, counts, strict=True)},
    }


def _check(train: Sequence[Sample], test: Sequence[Sample]) -> None:
    if not train or not test:
        raise ValueError(f"need training and test cities, got {len(train)} and {len(test)}")
    for sample in (*train, *test):
        if "mask" not in sample:
            raise ValueError(f"city {_city(sample)!r} has no change mask")
        if tuple(sample["bands"]) != tuple(train[0]["bands"]):
            raise ValueError(
                f"city {_city(sample)!r} has bands {sample['bands']}, but the first training "
                f"city has {train[0]['bands']}; read every city with the same bands"
            )


def change_vector_analysis(
    train: Sequence[Sample], test: Sequence[Sample], *, normalization: str = "zscore"
) -> dict[str, Any]:
    """Change-vector analysis: magnitude of the normalised band difference, thresholded.

    Args:
        train: training cities (whole scenes with ``mask``); the threshold and, for
            ``"zscore"``, the band statistics come from them only.
        test: test cities, scored with that threshold.
        normalization: ``"zscore"`` or ``"per_image"`` (see :func:`normalized_difference`).

    Returns:
        ``{"metrics", "config", "maps", "per_city"}`` (see the module docstring); the score
        map is the root-mean-square normalised band difference ``(H, W)``.
    """
    _check(train, test)
    stats = band_statistics(train) if normalization == "zscore" else None

    def magnitude(sample: Sample) -> Tensor:
        difference = normalized_difference(sample, normalization, stats)
        return difference.pow(2).mean(dim=0).sqrt()

    config = {"method": "change_vector_analysis", "normalization": normalization}
    return _result([magnitude(s) for s in train], train, [magnitude(s) for s in test], test, config)


def _features(sample: Sample, stats: tuple[Tensor, Tensor]) -> Tensor:
    """Per-pixel features ``(2C, H, W)``: z-scored band differences and their absolute values."""
    difference = normalized_difference(sample, "zscore", stats)
    return torch.cat([difference, difference.abs()])


def pixel_logistic_regression(
    train: Sequence[Sample],
    test: Sequence[Sample],
    seed: int = 0,
    *,
    max_pixels: int = 200_000,
    weight_decay: float = 1e-4,
    max_iter: int = 100,
) -> dict[str, Any]:
    """Per-pixel logistic regression on band differences, fit on training cities.

    Features are the band differences z-scored with the training cities' statistics and
    their absolute values, standardised with the subsample's statistics. The loss weighs
    change and no-change pixels equally (change is a few percent of the pixels).

    Args:
        train: training cities (whole scenes with ``mask``).
        test: test cities.
        seed: seed of the training-pixel subsample.
        max_pixels: at most this many valid training pixels are drawn for the fit.
        weight_decay: L2 penalty on the weights.
        max_iter: L-BFGS iterations.

    Returns:
        ``{"metrics", "config", "maps", "per_city"}``; the score map is the predicted
        probability of change ``(H, W)``.
    """
    _check(train, test)
    stats = band_statistics(train)
    features, labels = [], []
    for sample in train:
        valid = _both_valid(sample)
        features.append(_features(sample, stats)[:, valid].T)  # (N, 2C)
        labels.append(sample["mask"][0][valid].float())
    x, y = torch.cat(features), torch.cat(labels)
    generator = torch.Generator().manual_seed(seed)
    if x.shape[0] > max_pixels:
        pick = torch.randperm(x.shape[0], generator=generator)[:max_pixels]
        x, y = x[pick], y[pick]
    positives = float(y.sum())
    if positives == 0 or positives == y.numel():
        raise ValueError("the training pixels hold only one class; logistic regression needs both")
    mean, std = x.mean(dim=0), x.std(dim=0).clamp(min=1e-6)
    x = (x - mean) / std
    pos_weight = torch.tensor((y.numel() - positives) / positives)
    weight = torch.zeros(x.shape[1], requires_grad=True)
    bias = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        optimizer.zero_grad()
        logits = x @ weight + bias
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            logits, y, pos_weight=pos_weight
        )
        loss = loss + weight_decay * weight.pow(2).sum()
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    optimizer.step(closure)  # type: ignore[no-untyped-call]

    def probability(sample: Sample) -> Tensor:
        pixels = (_features(sample, stats).permute(1, 2, 0) - mean) / std  # (H, W, 2C)
        with torch.no_grad():
            return torch.sigmoid(pixels @ weight + bias).detach()

    config = {
        "method": "pixel_logistic_regression",
        "features": "zscore band differences and their absolute values",
        "pixels": int(x.shape[0]),
        "seed": seed,
        "weight_decay": weight_decay,
        "max_iter": max_iter,
        "class_balanced": True,
    }
    return _result(
        [probability(s) for s in train], train, [probability(s) for s in test], test, config
    )


def run_baselines(
    train: Sequence[Sample], test: Sequence[Sample], seed: int = 0
) -> dict[str, dict[str, Any]]:
    """Every OSCD baseline, by name: ``cva_zscore``, ``cva_per_image``, ``pixel_logreg``."""
    return {
        "cva_zscore": change_vector_analysis(train, test, normalization="zscore"),
        "cva_per_image": change_vector_analysis(train, test, normalization="per_image"),
        "pixel_logreg": pixel_logistic_regression(train, test, seed),
    }
