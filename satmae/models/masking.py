"""Which tokens the encoder sees: random masking, consistent or independent along time and groups.

Noise is drawn over the *free* axes only (time when ``mask_time="independent"``, groups when
``mask_groups="independent"``, always space) and broadcast over the consistent ones; the tokens
with the smallest noise stay visible (DESIGN §5). Every sample keeps exactly
``floor((1 − r) · free_tokens) · broadcast_factor`` tokens, so batches stay rectangular.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from satmae.models.config import MaskMode


@dataclass
class Masking:
    """Output of a masking strategy.

    Attributes:
        mask: ``(B, T, G, L)`` bool, True = hidden from the encoder.
        visible: ``(B, N_keep)`` int64 indices into the flattened ``T·G·L`` tokens of the visible
            ones, ascending (spatial order, not shuffled).
    """

    mask: Tensor
    visible: Tensor

    @classmethod
    def from_mask(cls, mask: Tensor) -> Masking:
        """Build from a given ``(B, T, G, L)`` hidden mask with equal visible counts per sample.

        Raises:
            ValueError: if the samples keep different numbers of tokens.
        """
        if mask.ndim != 4:
            raise ValueError(f"expected a mask of shape (B, T, G, L), got {tuple(mask.shape)}")
        flat = mask.flatten(1)  # (B, N)
        kept = (~flat).sum(1)
        if bool((kept != kept[0]).any()):
            raise ValueError(
                f"every sample must keep the same number of tokens, got {kept.tolist()}"
            )
        return cls(mask.bool(), _visible_indices(flat, int(kept[0])))


def _visible_indices(hidden: Tensor, num_keep: int) -> Tensor:
    """Ascending positions of the False entries of ``hidden (B, N)``: ``(B, num_keep)``."""
    order = torch.argsort(hidden.to(torch.uint8), dim=1, stable=True)
    return order[:, :num_keep]


class RandomMasking(nn.Module):
    """Random masking with a per-axis choice of consistent or independent masks.

    The ratio is given per call, so a schedule can change it from step to step.

    Args:
        mask_time: ``"consistent"`` hides the same locations in every frame.
        mask_groups: ``"consistent"`` hides a location in all band groups or none.
    """

    def __init__(self, mask_time: MaskMode, mask_groups: MaskMode) -> None:
        super().__init__()
        self.mask_time = mask_time
        self.mask_groups = mask_groups

    def noise_shape(self, batch: int, frames: int, groups: int, patches: int) -> tuple[int, ...]:
        """Shape of the noise over the free axes: ``(B, T or 1, G or 1, L)``."""
        return (
            batch,
            frames if self.mask_time == "independent" else 1,
            groups if self.mask_groups == "independent" else 1,
            patches,
        )

    def forward(
        self,
        shape: tuple[int, int, int, int],
        device: torch.device,
        invalid: Tensor | None = None,
        generator: torch.Generator | None = None,
        noise: Tensor | None = None,
        *,
        mask_ratio: float,
    ) -> Masking:
        """Draw a mask.

        Args:
            shape: token grid ``(B, T, G, L)``.
            device: where to build the mask.
            invalid: ``(B, T, G, L)`` bool, tokens that are mostly nodata or padding; they get
                the largest noise so they are hidden first.
            generator: random generator for reproducible masks.
            mask_ratio: fraction of tokens to hide, in [0, 1).
            noise: explicit noise of shape :meth:`noise_shape` (e.g. to replay another code's
                random draw); ``generator`` is then unused.

        Returns:
            the mask and the visible indices.
        """
        ratio = mask_ratio
        if not 0.0 <= ratio < 1.0:
            raise ValueError(f"mask_ratio must be in [0, 1), got {ratio}")
        batch, frames, groups, patches = shape
        free_shape = self.noise_shape(batch, frames, groups, patches)
        if noise is None:
            noise = torch.rand(free_shape, generator=generator, device=device)
        elif tuple(noise.shape) != free_shape:
            raise ValueError(f"expected noise of shape {free_shape}, got {tuple(noise.shape)}")
        if invalid is not None:
            # Count invalid tokens over the broadcast axes: bad locations sort last.
            reduce_dims = [dim for dim in (1, 2) if free_shape[dim] == 1 and shape[dim] > 1]
            penalty = (
                invalid.float().sum(reduce_dims, keepdim=True) if reduce_dims else invalid.float()
            )
            noise = noise + penalty
        free_tokens = noise[0].numel()
        num_keep_free = int(free_tokens * (1 - ratio))
        order = torch.argsort(noise.flatten(1), dim=1)  # (B, N_free), smallest noise first
        free_hidden = torch.ones(batch, free_tokens, dtype=torch.bool, device=device)
        free_hidden.scatter_(1, order[:, :num_keep_free], False)
        hidden = free_hidden.view(free_shape).expand(shape)  # (B, T, G, L)
        num_keep = num_keep_free * (frames * groups * patches // free_tokens)
        return Masking(hidden, _visible_indices(hidden.flatten(1), num_keep))
