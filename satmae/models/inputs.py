"""The seam from data to model: a sample or batch as read -> the inputs a model takes.

A reader returns raw reflectance with band names (``image``, ``times``, ``bands``, ``valid``;
DESIGN §3). :func:`prepare_inputs` reorders the bands by name into the model's order, drops
bands the model does not use, normalises with the model's own statistics and checks the rest,
so a model is never fed data normalised differently from its training data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from satmae.models.config import EncoderConfig
from satmae.models.tokenizer import select_bands
from satmae.normalization import Normalization

NO_STATISTICS = (
    "this model has no normalisation statistics, so it cannot take raw reflectance; compute "
    "them for your data (satmae stats DATA --out stats.json) and attach them with "
    "model.set_normalization('stats.json'), or pass an already normalised tensor instead of a "
    "sample dict"
)


@dataclass
class ModelInputs:
    """What a model's forward pass takes, prepared from a sample or batch.

    Attributes:
        image: ``(B, T, C', H, W)`` float32 normalised, bands in model order.
        times: ``(B, T)`` int64 seconds since 1970-01-01 UTC, or ``None``.
        bands: the C' bands of ``image`` (the model bands present in the input); ``None``
            means the model's input order (``config.input_order``).
        valid: ``(B, T, H, W)`` bool valid pixels, or ``None``.
        frame_mask: ``(B, T)`` bool real frames, or ``None``.
    """

    image: Tensor
    times: Tensor | None = None
    bands: Sequence[str] | None = None
    valid: Tensor | None = None
    frame_mask: Tensor | None = None

    def to(self, device: torch.device | str) -> ModelInputs:
        """The same inputs on ``device``."""

        def move(value: Tensor | None) -> Tensor | None:
            return None if value is None else value.to(device)

        return ModelInputs(
            self.image.to(device),
            move(self.times),
            self.bands,
            move(self.valid),
            move(self.frame_mask),
        )


def _tensor(value: Any) -> Tensor:
    return torch.from_numpy(np.asarray(value)) if isinstance(value, np.ndarray) else value


def prepare_inputs(
    config: EncoderConfig, normalization: Normalization | None, batch: Mapping[str, Any]
) -> ModelInputs:
    """Turn raw reflectance as read into model inputs.

    Args:
        config: the model's encoder configuration (bands, groups, time fields, frames).
        normalization: the model's statistics and mode.
        batch: a sample (``image (T, C, H, W)``, ``times (T,)``, ``valid (T, H, W)``) or a
            collated batch (``image (B, T, C, H, W)``, ``times (B, T)``, ``valid (B, T, H, W)``,
            ``frame_mask (B, T)``), with ``bands`` naming the C channels.

    Returns:
        the prepared inputs.

    Raises:
        ValueError: for a missing key, a wrong shape, bands that do not cover a model group,
            missing times for a temporal model, or a model without statistics.
    """
    if not isinstance(batch, Mapping):
        raise ValueError(
            f"expected a sample or batch dict with 'image' and 'bands', got {type(batch).__name__}"
        )
    if missing := [key for key in ("image", "bands") if key not in batch]:
        raise ValueError(
            f"the sample lacks {missing}; a sample is a dict with image (T, C, H, W), bands, "
            f"times and valid (DESIGN §3), got keys {sorted(batch)}"
        )
    image = torch.as_tensor(_tensor(batch["image"]))
    if image.ndim not in (4, 5):
        raise ValueError(
            f"expected image of shape (T, C, H, W) for a sample or (B, T, C, H, W) for a batch, "
            f"got {tuple(image.shape)}"
        )
    single = image.ndim == 4
    image = image[None] if single else image

    def batched(key: str, ndim: int) -> Tensor | None:
        value = batch.get(key)
        if value is None:
            return None
        tensor = torch.as_tensor(_tensor(value))
        tensor = tensor[None] if single and tensor.ndim == ndim - 1 else tensor
        if tensor.ndim != ndim or tuple(tensor.shape[:2]) != tuple(image.shape[:2]):
            raise ValueError(
                f"{key} of shape {tuple(torch.as_tensor(_tensor(value)).shape)} does not fit "
                f"image {tuple(image.shape)}: expected {ndim - single} dimensions starting "
                "with (B, T) (or (T,) for a sample)"
            )
        return tensor

    times = batched("times", 2)
    valid = batched("valid", 4)
    frame_mask = batched("frame_mask", 2)
    if valid is not None and tuple(valid.shape[2:]) != tuple(image.shape[3:]):
        raise ValueError(
            f"valid of shape {tuple(valid.shape)} does not match image {tuple(image.shape)}"
        )
    if config.temporal and times is None:
        raise ValueError(
            f"this model encodes acquisition time {config.time_fields} but the sample has no "
            "'times'; give times (T,) as int64 seconds since 1970-01-01 UTC"
        )
    if normalization is None:
        raise ValueError(NO_STATISTICS)
    bands = batch["bands"]
    names = (bands,) if isinstance(bands, str) else tuple(bands)
    selection = select_bands(config, names, image.shape[2])
    image = image[:, :, selection.flat_channels]  # (B, T, C', H, W) in model band order
    return ModelInputs(
        image=normalization.apply(image, selection.bands),
        times=None if times is None else times.to(torch.int64),
        bands=selection.bands,
        valid=None if valid is None else valid.bool(),
        frame_mask=None if frame_mask is None else frame_mask.bool(),
    )
