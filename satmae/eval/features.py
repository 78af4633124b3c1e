"""Frozen features of a benchmark split, cached on disk, and the raw-band baseline features.

The cache file is ``<cache_dir>/<weights_hash>-<split_checksum>-<pool>.safetensors``; its header
also records the encoder's bands, normalisation and input size, and a file whose header does
not match the request is recomputed rather than trusted.

Image size: an encoder with fixed sin-cos encodings accepts any size divisible by its patch,
so EuroSAT's 64x64 images are encoded at their native size; sizes not divisible by the patch
are centre-cropped to the largest multiple of it (BigEarthNet's 120 px with a 16 px patch ->
112 px). An encoder with *learned* spatial tables (official fine-tuned checkpoints) needs its
``img_size``: images are then resized bilinearly to it (validity by nearest neighbour).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from satmae.data import collate_samples
from satmae.embed.raster import weights_hash
from satmae.eval.benchmarks import BenchmarkSplit, split_checksum
from satmae.io import atomic_path
from satmae.models.encoder import SatMAEEncoder


@dataclass
class FeatureSet:
    """Features of every sample of a split.

    Attributes:
        features: ``(N, D)`` float32.
        labels: ``(N,)`` long class indices or ``(N, K)`` float multi-hot targets.
        ids: the N sample ids, in order.
        cached: whether the features were read from the cache.
    """

    features: Tensor
    labels: Tensor
    ids: tuple[str, ...]
    cached: bool = False

    def __len__(self) -> int:
        """Number of samples N."""
        return int(self.features.shape[0])


def model_input_size(encoder: SatMAEEncoder, height: int, width: int) -> tuple[int, int]:
    """The (H, W) an image of ``height x width`` pixels is fitted to for ``encoder``."""
    config = encoder.config
    if config.encoding == "learned":
        return config.img_size
    patch = config.patch_size
    return height // patch * patch, width // patch * patch


def fit_to_encoder(batch: dict[str, Any], encoder: SatMAEEncoder) -> dict[str, Any]:
    """Crop or resize a collated batch's ``image`` and ``valid`` to what ``encoder`` accepts.

    See the module docstring for the rule. ``image`` is ``(B, T, C, H, W)``, ``valid``
    ``(B, T, H, W)``; other keys pass through.
    """
    image: Tensor = batch["image"]
    height, width = image.shape[-2:]
    target = model_input_size(encoder, height, width)
    if target == (height, width):
        return batch
    if min(target) < 1:
        raise ValueError(
            f"images of {height}x{width} pixels are smaller than the encoder's patch "
            f"({encoder.config.patch_size} px)"
        )
    fitted = dict(batch)
    if encoder.config.encoding == "learned":
        flat = image.flatten(0, 1)  # (B*T, C, H, W)
        resized = F.interpolate(flat, size=target, mode="bilinear", antialias=True)
        fitted["image"] = resized.reshape(*image.shape[:3], *target)
        if batch.get("valid") is not None:
            valid = batch["valid"].float()  # (B, T, H, W)
            fitted["valid"] = F.interpolate(valid, size=target, mode="nearest") > 0.5
        return fitted
    top, left = (height - target[0]) // 2, (width - target[1]) // 2
    rows, cols = slice(top, top + target[0]), slice(left, left + target[1])
    fitted["image"] = image[..., rows, cols]
    if batch.get("valid") is not None:
        fitted["valid"] = batch["valid"][..., rows, cols]
    return fitted


def _batches(
    dataset: Dataset[dict[str, Any]], batch_size: int, progress: bool, what: str
) -> Iterator[dict[str, Any]]:
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_samples)
    total = len(loader)
    yield from tqdm(loader, total=total, desc=what, disable=not progress, leave=False)


def _stack_labels(labels: list[Tensor]) -> Tensor:
    return torch.cat(labels) if labels else torch.zeros(0, dtype=torch.long)


def _cache_header(encoder: SatMAEEncoder, dataset: BenchmarkSplit, pool: str) -> dict[str, str]:
    normalization = encoder.normalization
    described = (
        "none"
        if normalization is None
        else json.dumps(
            {
                "mode": normalization.mode,
                "mean": normalization.stats.mean,
                "std": normalization.stats.std,
            },
            sort_keys=True,
        )
    )
    return {
        "benchmark": dataset.name,
        "split": dataset.split,
        "pool": pool,
        "bands": ",".join(encoder.bands),
        "normalization": described,
        "encoding": encoder.config.encoding,
        "img_size": "x".join(str(side) for side in encoder.config.img_size),
        "patch_size": str(encoder.config.patch_size),
    }


def cache_path(
    cache_dir: str | Path, encoder: SatMAEEncoder, dataset: BenchmarkSplit, pool: str
) -> Path:
    """``<cache_dir>/<weights_hash>-<split_checksum>-<pool>.safetensors``."""
    return Path(cache_dir) / f"{weights_hash(encoder)}-{split_checksum(dataset)}-{pool}.safetensors"


def _read_cache(path: Path, header: dict[str, str]) -> FeatureSet | None:
    """The cached features at ``path`` when its header matches ``header``, else ``None``."""
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as stored:
            metadata = stored.metadata() or {}
            if any(metadata.get(key) != value for key, value in header.items()):
                return None
            features = stored.get_tensor("features")
            labels = stored.get_tensor("labels")
            ids_bytes = stored.get_tensor("ids")
    except (OSError, ValueError, RuntimeError, KeyError):
        return None  # unreadable or foreign: recompute and overwrite
    text = bytes(ids_bytes.tolist()).decode()
    ids = tuple(text.split("\n")) if text else ()
    if len(ids) != features.shape[0]:
        return None
    return FeatureSet(features, labels, ids, cached=True)


def _write_cache(path: Path, features: FeatureSet, header: dict[str, str]) -> None:
    ids = torch.tensor(list("\n".join(features.ids).encode()), dtype=torch.uint8)
    tensors = {
        "features": features.features.contiguous(),
        "labels": features.labels.contiguous(),
        "ids": ids,
    }
    with atomic_path(path) as staging:
        save_file(tensors, str(staging), metadata=header)


@torch.no_grad()
def extract_features(
    encoder: SatMAEEncoder,
    dataset: BenchmarkSplit,
    *,
    batch_size: int = 64,
    pool: Literal["mean", "cls"] = "mean",
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> FeatureSet:
    """Frozen features of every sample of a split, read from or written to a cache.

    Args:
        encoder: the frozen encoder (its own ``prepare`` maps bands by name and normalises).
        dataset: the split.
        batch_size: samples per forward pass.
        pool: ``"mean"`` (pooled tokens) or ``"cls"``.
        cache_dir: folder of the safetensors cache; ``None`` disables it.
        progress: show a progress bar.

    Returns:
        ``(N, D)`` float32 features with the split's labels and ids.
    """
    if pool not in ("mean", "cls"):
        raise ValueError(f"pool must be 'mean' or 'cls' for a feature vector, got {pool!r}")
    header = _cache_header(encoder, dataset, pool)
    path = None if cache_dir is None else cache_path(cache_dir, encoder, dataset, pool)
    if path is not None and (cached := _read_cache(path, header)) is not None:
        return cached
    was_training = encoder.training
    encoder.eval()
    features, labels = [], []
    what = f"features {dataset.name} {dataset.split}"
    for batch in _batches(dataset, batch_size, progress, what):
        batch = fit_to_encoder(batch, encoder)
        embedding = encoder.embed(batch, pool=pool)
        assert isinstance(embedding, Tensor)
        features.append(embedding.float().cpu())
        labels.append(batch["label"])
    encoder.train(was_training)
    result = FeatureSet(
        torch.cat(features) if features else torch.zeros(0, encoder.num_features),
        _stack_labels(labels),
        tuple(dataset.ids),
    )
    if path is not None:
        _write_cache(path, result, header)
    return result


def raw_band_features(
    dataset: BenchmarkSplit, *, batch_size: int = 64, progress: bool = True
) -> FeatureSet:
    """The baseline's features: per-band mean and std of the raw image over valid pixels.

    Args:
        dataset: the split.
        batch_size: samples read at a time.
        progress: show a progress bar.

    Returns:
        ``(N, 2C)`` features: C means then C standard deviations, in the dataset's band order.
    """
    features, labels = [], []
    for batch in _batches(dataset, batch_size, progress, f"raw bands {dataset.split}"):
        image = batch["image"].double().transpose(1, 2)  # (B, C, T, H, W)
        image = image.flatten(2)  # (B, C, T*H*W)
        valid = batch["valid"].flatten(1)[:, None, :].double()  # (B, 1, T*H*W)
        count = valid.sum(dim=2).clamp(min=1.0)
        mean = (image * valid).sum(dim=2) / count  # (B, C)
        variance = (((image - mean[..., None]) ** 2) * valid).sum(dim=2) / count
        features.append(torch.cat([mean, variance.sqrt()], dim=1).float())
        labels.append(batch["label"])
    channels = 2 * len(dataset.bands)
    return FeatureSet(
        torch.cat(features) if features else torch.zeros(0, channels),
        _stack_labels(labels),
        tuple(dataset.ids),
    )
