"""A frozen linear readout of change: how much change information an encoder's features hold.

This is the cheap probe of pretraining quality (seconds per encoder on the OSCD cities, no
trained decoder): each date is encoded alone (Siamese) in non-overlapping windows of the
encoder's size, the last block's tokens of every band group are kept apart (``G·D`` channels
per patch), and ``|f2 − f1|`` is the feature of each patch. A logistic regression on those
features, bilinearly interpolated to pixels, is fit on sampled pixels of the fit cities
(every change pixel and a seeded sample of unchanged ones), its threshold is chosen on the
validation cities, and change F1 is pooled over the test cities. Nothing else learns: unlike
:func:`~satmae.eval.change.evaluate.evaluate_change`, no decoder and no pixel branch can make up
for weak features, so the score moves with the encoder.

Logits are computed on the patch grid and interpolated to pixels; bilinear interpolation is
linear with weights that sum to 1, so this equals the regression applied to interpolated
features, at a fraction of the memory.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from satmae.eval.change.data import OSCDSplit
from satmae.eval.change.evaluate import choose_val_cities
from satmae.eval.change.metrics import best_threshold, scores_at_threshold
from satmae.eval.probes import fit_logistic
from satmae.models.encoder import SatMAEEncoder
from satmae.models.inputs import ModelInputs


@dataclass(frozen=True)
class ReadoutConfig:
    """How the linear readout is fit.

    Attributes:
        negatives: unchanged pixels sampled per change pixel of a fit city.
        min_negatives: unchanged pixels sampled per fit city at least.
        weight_decay: L2 penalty of the logistic regression (on standardised features).
        max_iter: L-BFGS iterations.
        batch_size: windows per forward pass.
        seed: seed of the first pixel sample (the fit is otherwise deterministic).
        repeats: pixel samples, each fit and scored on its own; the scores are their means
            (a threshold chosen on two or three cities moves with the sample: measured ±0.02
            F1 between samples on the real cities, against ±0.003 average precision).
    """

    negatives: int = 4
    min_negatives: int = 2000
    weight_decay: float = 1e-3
    max_iter: int = 100
    batch_size: int = 64
    seed: int = 0
    repeats: int = 3

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly fields."""
        return asdict(self)


@dataclass
class CityFeatures:
    """``|f2 − f1|`` of one city on its patch grid, with what scoring needs.

    Attributes:
        name: the city.
        features: ``(F, h, w)`` patch features of the padded city (``F = G·D``).
        size: ``(H, W)`` of the city in pixels (the padded grid is ``(h·p, w·p)``).
        mask: ``(H, W)`` float, 1 = change.
        valid: ``(H, W)`` bool, valid on both dates.
        patch: pixels per patch side.
    """

    name: str
    features: Tensor
    size: tuple[int, int]
    mask: Tensor
    valid: Tensor
    patch: int


def _window_size(encoder: SatMAEEncoder) -> int:
    """The side of the encoder's default image (its pretraining window), in pixels."""
    return max(encoder.config.img_size)


@torch.no_grad()
def city_features(
    encoder: SatMAEEncoder, sample: Mapping[str, Any], batch_size: int = 64
) -> CityFeatures:
    """Encode both dates of a city alone, window by window; returns ``|f2 − f1|`` per patch.

    The city is reflect-padded to a multiple of the window side; each window of each date is
    a one-frame series with that date's time.

    Raises:
        ValueError: for a sample without two dates or a change mask.
    """
    if "mask" not in sample:
        raise ValueError(f"city {sample.get('location', '?')} has no change mask to read out")
    inputs = encoder.prepare(dict(sample))
    image = inputs.image[0].float()  # (2, C, H, W)
    if image.shape[0] != 2:
        raise ValueError(f"change readout takes two dates per city, got {image.shape[0]}")
    height, width = image.shape[-2:]
    size = _window_size(encoder)
    pad_h, pad_w = -height % size, -width % size
    if pad_h or pad_w:
        mode = "reflect" if pad_h < height and pad_w < width else "replicate"
        image = F.pad(image, (0, pad_w, 0, pad_h), mode=mode)
    rows, cols = image.shape[-2] // size, image.shape[-1] // size
    windows = (
        image.unfold(2, size, size).unfold(3, size, size)  # (2, C, rows, cols, s, s)
        .permute(2, 3, 0, 1, 4, 5)
        .reshape(rows * cols * 2, 1, image.shape[1], size, size)
    )  # fmt: skip
    times = None
    if inputs.times is not None:
        times = inputs.times[0].repeat(rows * cols).reshape(-1, 1)  # (2·n, 1)
    dtype = encoder.cls_token.dtype
    parts = []
    for start in range(0, windows.shape[0], 2 * batch_size):
        chunk = slice(start, start + 2 * batch_size)
        encoded = encoder.encode(
            ModelInputs(
                windows[chunk].to(dtype), None if times is None else times[chunk], inputs.bands
            )
        )
        tokens = encoded.tokens.float()  # (2·b, 1, G, h', w', D)
        grid = tokens[:, 0].permute(0, 1, 4, 2, 3).flatten(1, 2)  # (2·b, G·D, h', w')
        parts.append((grid[1::2] - grid[0::2]).abs())
    patches = torch.cat(parts)  # (rows·cols, F, h', w')
    channels, ph, pw = patches.shape[1:]
    features = (
        patches.reshape(rows, cols, channels, ph, pw)
        .permute(2, 0, 3, 1, 4)
        .reshape(channels, rows * ph, cols * pw)
    )
    mask = torch.as_tensor(sample["mask"]).reshape(height, width).float()
    valid = torch.as_tensor(sample["valid"]).reshape(-1, height, width).all(dim=0)
    return CityFeatures(
        str(sample.get("location", "?")),
        features,
        (height, width),
        mask,
        valid,
        encoder.config.patch_size,
    )


def _pixel_features(city: CityFeatures, rows: Tensor, cols: Tensor) -> Tensor:
    """Bilinear features ``(K, F)`` at pixel centres, as ``F.interpolate`` would give them."""
    _, h, w = city.features.shape
    padded_h, padded_w = h * city.patch, w * city.patch
    x = (cols.float() + 0.5) / padded_w * 2 - 1
    y = (rows.float() + 0.5) / padded_h * 2 - 1
    grid = torch.stack([x, y], dim=-1)[None, None]  # (1, 1, K, 2)
    sampled = F.grid_sample(
        city.features[None], grid, mode="bilinear", padding_mode="border", align_corners=False
    )
    return sampled[0, :, 0].T  # (K, F)


def _score_map(city: CityFeatures, weight: Tensor, bias: Tensor) -> Tensor:
    """``(H, W)`` change logits of a city: the patch-grid logits interpolated to pixels."""
    logits = torch.einsum("fhw,f->hw", city.features, weight) + bias
    size = (logits.shape[0] * city.patch, logits.shape[1] * city.patch)
    full = F.interpolate(logits[None, None], size=size, mode="bilinear", align_corners=False)
    height, width = city.size
    return full[0, 0, :height, :width]


def _sample_pixels(
    city: CityFeatures, config: ReadoutConfig, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Features ``(K, F)`` and labels ``(K,)`` of every valid change pixel and sampled others."""
    change = (city.mask > 0) & city.valid
    unchanged = (city.mask <= 0) & city.valid
    positives = torch.nonzero(change)
    others = torch.nonzero(unchanged)
    wanted = max(config.min_negatives, config.negatives * len(positives))
    pick = torch.randperm(len(others), generator=generator)[: min(wanted, len(others))]
    pixels = torch.cat([positives, others[pick]])
    labels = torch.cat([torch.ones(len(positives)), torch.zeros(len(pick))])
    return _pixel_features(city, pixels[:, 0], pixels[:, 1]), labels


def _fit_and_score(
    fit: list[CityFeatures],
    val: list[CityFeatures],
    test: list[CityFeatures],
    config: ReadoutConfig,
    seed: int,
) -> dict[str, float]:
    """One pixel sample: fit on ``fit``, threshold on ``val``, scores on ``test``."""
    generator = torch.Generator().manual_seed(seed)
    sampled = [_sample_pixels(city, config, generator) for city in fit]
    features = torch.cat([f for f, _ in sampled])
    labels = torch.cat([y for _, y in sampled])
    mean = features.mean(0)
    std = features.std(0, unbiased=False).clamp_min(1e-6)
    weight, bias = fit_logistic(
        (features - mean) / std, labels[:, None], 1, True, config.weight_decay, config.max_iter
    )
    # Fold the standardisation into the weights: logit = ((f - mean) / std) @ w + b.
    folded = weight[:, 0] / std
    offset = bias[0] - (mean / std * weight[:, 0]).sum()

    def maps(cities: list[CityFeatures]) -> list[Tensor]:
        return [_score_map(city, folded, offset) for city in cities]

    def truth(cities: list[CityFeatures]) -> tuple[list[Tensor], list[Tensor]]:
        return [c.mask for c in cities], [c.valid for c in cities]

    val_maps, test_maps = maps(val), maps(test)
    threshold = best_threshold(val_maps, *truth(val))
    val_scores, _ = scores_at_threshold(val_maps, *truth(val), threshold)
    scores, _ = scores_at_threshold(test_maps, *truth(test), threshold)
    return {
        **scores,
        "change_ap": average_precision(test_maps, *truth(test)),
        "val_change_f1": val_scores["change_f1"],
        "threshold": threshold,
    }


def average_precision(scores: list[Tensor], refs: list[Tensor], valids: list[Tensor]) -> float:
    """Average precision of the change class over the valid pixels of all cities, pooled.

    Threshold-free, so it does not carry the noise of a threshold chosen on other cities.
    """
    values = torch.cat([s[v].flatten() for s, v in zip(scores, valids, strict=True)])
    labels = torch.cat([r.reshape(v.shape)[v].flatten() for r, v in zip(refs, valids, strict=True)])
    positives = labels.sum()
    if positives == 0:
        return 0.0
    ordered = labels[torch.argsort(values, descending=True)].double()
    precision = torch.cumsum(ordered, 0) / torch.arange(1, len(ordered) + 1)
    return float((precision * ordered).sum() / positives)


def readout_change(
    encoder: SatMAEEncoder,
    split: OSCDSplit,
    config: ReadoutConfig | None = None,
    val_cities: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Change F1 of a frozen linear readout of ``encoder`` on the held-out cities of ``split``.

    Args:
        encoder: the frozen encoder (evaluated in eval mode, its own normalisation applied).
        split: training cities (fit and threshold) and test cities (scored), all with masks.
        config: see :class:`ReadoutConfig`.
        val_cities: training cities that choose the threshold (default: the seeded quarter of
            :func:`~satmae.eval.change.evaluate.choose_val_cities`).

    Returns:
        ``change_f1``, ``change_precision``, ``change_recall``, ``change_iou`` pooled over the
        test cities at the threshold chosen on the validation cities, ``change_ap`` (average
        precision, threshold-free), ``val_change_f1`` and ``threshold``, each the mean over
        the ``repeats`` pixel samples (``per_sample`` holds each), the ``split`` used and
        ``seconds``.

    Raises:
        ValueError: for a split without training or test cities, or cities without masks.
    """
    config = config or ReadoutConfig()
    if not split.train or not split.test:
        raise ValueError(
            f"the change readout needs training and test cities; got {len(split.train)} "
            f"training and {len(split.test)} test cities"
        )
    started = time.perf_counter()
    names = [str(sample["location"]) for sample in split.train]
    chosen = choose_val_cities(names, val_cities)
    was_training = encoder.training
    encoder.eval()
    try:
        train = [city_features(encoder, s, config.batch_size) for s in split.train]
        test = [city_features(encoder, s, config.batch_size) for s in split.test]
    finally:
        encoder.train(was_training)
    fit = [city for city in train if city.name not in chosen]
    val = [city for city in train if city.name in chosen]
    runs = [_fit_and_score(fit, val, test, config, config.seed + r) for r in range(config.repeats)]
    scores = {name: statistics.fmean(run[name] for run in runs) for name in runs[0]}
    return {
        **scores,
        "per_sample": runs,
        "split": {
            "fit": [c.name for c in fit],
            "val": [c.name for c in val],
            "test": [c.name for c in test],
        },
        "config": config.to_dict(),
        "seconds": time.perf_counter() - started,
    }
