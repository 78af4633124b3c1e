"""Batch augmentations that treat a time series as one picture.

Kornia draws one set of parameters per sample and applies it to every frame and band of that
sample (frames and bands are folded into the channel axis), to the valid mask (nearest
neighbour, so it stays boolean) and to dense targets such as change masks. Pixels that a
rotation of a non-square chip brings in from outside become invalid.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import kornia.augmentation as K
import torch
from torch import Tensor, nn


class SeriesAugment(nn.Module):
    """Random flips, 90° rotations and resized crops for batches ``(B, T, C, H, W)``.

    Args:
        hflip: probability of a horizontal flip.
        vflip: probability of a vertical flip.
        rot90: rotate by a random multiple of 90°.
        crop_scale: area range of a random resized crop, or None for no crop.
        crop_ratio: aspect-ratio range of the crop.
        dense_keys: batch keys of dense integer targets ``(B, K, H, W)`` transformed with the
            image (nearest neighbour), e.g. ``"mask"`` for change maps.
    """

    def __init__(
        self,
        *,
        hflip: float = 0.5,
        vflip: float = 0.5,
        rot90: bool = True,
        crop_scale: tuple[float, float] | None = (0.5, 1.0),
        crop_ratio: tuple[float, float] = (3 / 4, 4 / 3),
        dense_keys: Sequence[str] = ("mask",),
    ) -> None:
        super().__init__()
        self.crop_scale, self.crop_ratio = crop_scale, crop_ratio
        self.dense_keys = tuple(dense_keys)
        steps: list[K.AugmentationBase2D] = []
        if hflip > 0:
            steps.append(K.RandomHorizontalFlip(p=hflip))
        if vflip > 0:
            steps.append(K.RandomVerticalFlip(p=vflip))
        if rot90:
            steps.append(K.RandomRotation90(times=(0, 3), p=1.0))
        self.steps = steps

    def _pipeline(self, height: int, width: int, data_keys: list[str]) -> nn.Module:
        steps: list[Any] = list(self.steps)
        if self.crop_scale is not None:
            steps.append(
                K.RandomResizedCrop((height, width), scale=self.crop_scale, ratio=self.crop_ratio)
            )
        return K.AugmentationSequential(*steps, data_keys=data_keys)

    def transform(
        self, image: Tensor, valid: Tensor | None = None, *dense: Tensor
    ) -> tuple[Tensor, Tensor, list[Tensor]]:
        """Augment one batch.

        Args:
            image: ``(B, T, C, H, W)`` pixels.
            valid: ``(B, T, H, W)`` bool, or None (all valid).
            dense: further ``(B, K, H, W)`` targets.

        Returns:
            The augmented image ``(B, T, C, H, W)``, valid ``(B, T, H, W)`` and dense targets.

        Raises:
            ValueError: on shapes that do not match.
        """
        if image.ndim != 5:
            raise ValueError(f"expected image of shape (B, T, C, H, W), got {tuple(image.shape)}")
        batch, frames, channels, height, width = image.shape
        if valid is None:
            valid = torch.ones(batch, frames, height, width, dtype=torch.bool, device=image.device)
        if tuple(valid.shape) != (batch, frames, height, width):
            raise ValueError(
                f"expected valid of shape {(batch, frames, height, width)}, "
                f"got {tuple(valid.shape)}"
            )
        for target in dense:
            if target.ndim != 4 or tuple(target.shape[-2:]) != (height, width):
                raise ValueError(
                    f"expected a dense target (B, K, {height}, {width}), got {tuple(target.shape)}"
                )
        # An all-ones layer tracks the pixels a rotation or crop brings in from outside.
        inside = torch.ones(batch, 1, height, width, device=image.device)
        masks = [valid.float(), inside, *(target.float() for target in dense)]
        keys = ["input"] + ["mask"] * len(masks)
        pipeline = self._pipeline(height, width, keys)
        folded = image.reshape(batch, frames * channels, height, width)  # (B, T*C, H, W)
        outputs = pipeline(folded.float(), *masks)
        out_image = outputs[0].reshape(batch, frames, channels, height, width).to(image.dtype)
        out_inside = outputs[2] > 0.5  # (B, 1, H, W)
        out_valid = (outputs[1] > 0.5) & out_inside
        out_dense = [
            out.round().to(target.dtype) for out, target in zip(outputs[3:], dense, strict=True)
        ]
        return out_image, out_valid, out_dense

    def forward(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        """Augment a collated batch dict; ``image``, ``valid`` and dense keys are replaced."""
        dense_keys = [key for key in self.dense_keys if isinstance(batch.get(key), Tensor)]
        image, valid, dense = self.transform(
            batch["image"], batch.get("valid"), *(batch[key] for key in dense_keys)
        )
        out = dict(batch)
        out.update(image=image, valid=valid, **dict(zip(dense_keys, dense, strict=True)))
        return out
