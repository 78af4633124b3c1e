"""A change-detection network on a SatMAE encoder: Siamese or temporal features, light decoder.

Two ways to get per-date features from the one encoder (shared weights either way):

- ``"siamese"``: each date is encoded alone as a one-frame series (with its own time when
  the encoder is temporal), so the two feature maps never attend to each other;
- ``"temporal"``: both dates are encoded together as one two-frame series with their
  timestamps, so every token sees the other date (needs an encoder with a time encoding).

From several blocks, the two dates' patch maps (band groups kept apart, ``G·D`` channels) are
fused by difference and by concatenation (``[|f2 - f1|, f1, f2]``), projected and summed
into one coarse map. The decoder then doubles the resolution step by step back to the pixel
grid, and at each scale concatenates a pixel branch computed from both normalised images and
their difference. ViT patches are 40-80 m at 10 m pixels while urban change is often a few
pixels, so the full-resolution branch carries the detail and the encoder the context.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from satmae.models.encoder import SatMAEEncoder
from satmae.models.inputs import ModelInputs

ChangeMode = Literal["siamese", "temporal"]
CHANGE_MODES: tuple[str, ...] = ("siamese", "temporal")


@dataclass(frozen=True)
class ChangeConfig:
    """The change network's shape.

    Attributes:
        mode: ``"siamese"`` (each date alone) or ``"temporal"`` (both dates as one series).
        blocks: encoder blocks whose outputs are fused (negative counts from the end);
            ``None`` takes the middle block and the last one.
        width: channels of the decoder.
        pixel_width: channels of the full-resolution pixel branch (0 turns it off).
        finetune: train the encoder too (else it is frozen and runs without gradients).
    """

    mode: ChangeMode = "siamese"
    blocks: tuple[int, ...] | None = None
    width: int = 64
    pixel_width: int = 32
    finetune: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly fields."""
        blocks = None if self.blocks is None else list(self.blocks)
        return {**asdict(self), "blocks": blocks}

    def resolved_blocks(self, depth: int) -> tuple[int, ...]:
        """Block indices in ``[0, depth)``, ascending, without repeats."""
        blocks = (depth // 2 - 1, depth - 1) if self.blocks is None else self.blocks
        return tuple(sorted({block % depth for block in blocks}))


def _conv(inputs: int, outputs: int, kernel: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inputs, outputs, kernel, padding=kernel // 2, bias=False),
        nn.GroupNorm(math.gcd(8, outputs), outputs),
        nn.GELU(),
    )


@dataclass
class DateFeatures:
    """Per-block patch maps of both dates.

    Attributes:
        first: block -> ``(B, G·D, h, w)`` features of date 1.
        second: block -> ``(B, G·D, h, w)`` features of date 2.
    """

    first: dict[int, Tensor] = field(default_factory=dict)
    second: dict[int, Tensor] = field(default_factory=dict)


class ChangeNet(nn.Module):
    """Change logits for a two-date series, from a SatMAE encoder and a light decoder.

    Args:
        encoder: the encoder (its own band order and normalisation are applied by
            :meth:`prepare`).
        config: see :class:`ChangeConfig`.

    Raises:
        ValueError: for an unknown mode, a temporal mode with an encoder that has no time
            encoding or holds fewer than two frames, or blocks outside the encoder.
    """

    def __init__(self, encoder: SatMAEEncoder, config: ChangeConfig | None = None) -> None:
        super().__init__()
        config = config or ChangeConfig()
        check_change_config(encoder, config)
        depth = len(encoder.blocks)
        self.blocks = config.resolved_blocks(depth)
        self.config = replace(config, blocks=self.blocks)
        self.encoder = encoder
        encoder.requires_grad_(config.finetune)
        groups = len(encoder.config.band_groups)
        dim = encoder.config.embed_dim
        width = config.width
        self.fuse = nn.ModuleDict(
            {str(block): _conv(3 * groups * dim, width, kernel=1) for block in self.blocks}
        )
        self.patch = encoder.config.patch_size
        stages = max(1, math.ceil(math.log2(self.patch)))
        channels = len(encoder.bands)
        pixel = config.pixel_width
        self.pixel = _conv(3 * channels, pixel) if pixel else None
        self.up = nn.ModuleList(_conv(width + pixel, width) for _ in range(stages))
        self.head = nn.Sequential(_conv(width + pixel, width), nn.Conv2d(width, 1, 1))

    def prepare(self, batch: dict[str, Any]) -> ModelInputs:
        """A batch of two-date series as read -> the encoder's inputs (bands by name, normalised).

        Raises:
            ValueError: for a batch that does not hold exactly two dates.
        """
        inputs = self.encoder.prepare(batch)
        if inputs.image.shape[1] != 2:
            raise ValueError(
                f"change detection takes two dates per sample, got {inputs.image.shape[1]}"
            )
        return inputs

    def date_features(self, inputs: ModelInputs) -> DateFeatures:
        """Per-block ``(B, G·D, h, w)`` maps of each date (see the module docstring)."""
        batch = inputs.image.shape[0]
        blocks = self.blocks
        with torch.set_grad_enabled(self.config.finetune and torch.is_grad_enabled()):
            if self.config.mode == "temporal":
                encoded = self.encoder.encode(inputs, blocks)
                maps = {b: encoded.intermediates[b] for b in blocks}  # (B, 2, G, h, w, D)
            else:
                single = ModelInputs(
                    inputs.image.flatten(0, 1).unsqueeze(1),
                    None if inputs.times is None else inputs.times.reshape(-1, 1),
                    inputs.bands,
                    None if inputs.valid is None else inputs.valid.flatten(0, 1).unsqueeze(1),
                )
                encoded = self.encoder.encode(single, blocks)
                maps = {
                    b: encoded.intermediates[b].reshape(
                        batch, 2, *encoded.intermediates[b].shape[2:]
                    )
                    for b in blocks
                }
        out = DateFeatures()
        for block, tokens in maps.items():
            # (B, 2, G, h, w, D) -> two (B, G·D, h, w)
            grid = tokens.float().permute(0, 1, 2, 5, 3, 4).flatten(2, 3)
            out.first[block], out.second[block] = grid[:, 0], grid[:, 1]
        return out

    def forward(self, inputs: ModelInputs) -> Tensor:
        """``(B, 1, H, W)`` change logits for prepared two-date inputs ``(B, 2, C, H, W)``."""
        image = inputs.image.float()
        height, width = image.shape[-2:]
        features = self.date_features(inputs)
        coarse: Tensor | None = None
        for block in self.blocks:
            first, second = features.first[block], features.second[block]
            fused = self.fuse[str(block)](torch.cat([(second - first).abs(), first, second], 1))
            coarse = fused if coarse is None else coarse + fused
        assert coarse is not None
        pixel = None
        if self.pixel is not None:
            one, two = image[:, 0], image[:, 1]
            pixel = self.pixel(torch.cat([one, two, two - one], dim=1))  # (B, P, H, W)
        x = coarse
        for index, stage in enumerate(self.up):
            scale = 2 ** (len(self.up) - index)
            size = (max(1, height // scale), max(1, width // scale))
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            x = stage(_with_pixels(x, pixel))
        x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)
        return self.head(_with_pixels(x, pixel))  # type: ignore[no-any-return]

    def trainable(self) -> list[nn.Parameter]:
        """Parameters the optimiser updates (the encoder's only when fine-tuning)."""
        return [p for p in self.parameters() if p.requires_grad]


def _with_pixels(x: Tensor, pixel: Tensor | None) -> Tensor:
    """``x`` with the pixel branch pooled to its size appended on channels."""
    if pixel is None:
        return x
    return torch.cat([x, F.adaptive_avg_pool2d(pixel, (x.shape[-2], x.shape[-1]))], dim=1)


def check_change_config(encoder: SatMAEEncoder, config: ChangeConfig) -> None:
    """Refuse a change setup the encoder cannot run, before any heavy work.

    Raises:
        ValueError: for an unknown mode, a temporal mode on an encoder without a time
            encoding or with a single frame, or blocks outside the encoder.
    """
    if config.mode not in CHANGE_MODES:
        raise ValueError(f"change mode must be one of {CHANGE_MODES}, got {config.mode!r}")
    name = encoder.provenance.get("registry") or encoder.provenance.get("source") or "the model"
    if config.mode == "temporal":
        if not encoder.config.temporal:
            raise ValueError(
                f"{name} has no time encoding, so it cannot take both dates as one series "
                "(--change-mode temporal); use --change-mode siamese, or a temporal encoder"
            )
        if encoder.config.max_frames < 2:
            raise ValueError(
                f"{name} takes at most {encoder.config.max_frames} frame; the temporal change "
                "mode needs two; use --change-mode siamese"
            )
    depth = len(encoder.blocks)
    if config.blocks is None:
        return
    if bad := [b for b in config.blocks if not -depth <= b < depth]:
        raise ValueError(f"blocks {bad} are outside the encoder's {depth} blocks")
    if not config.blocks:
        raise ValueError("give at least one encoder block to fuse (e.g. --blocks -1)")


def change_loss(logits: Tensor, target: Tensor, valid: Tensor, pos_weight: float) -> Tensor:
    """Imbalance-aware loss over valid pixels: weighted BCE plus soft Dice of the change class.

    Change covers ~1-5 % of OSCD pixels, so plain BCE learns "no change". The positive weight
    lifts the rare class; the Dice term scores the overlap itself, whatever the class balance.

    Args:
        logits: ``(B, 1, H, W)``.
        target: ``(B, 1, H, W)`` 1 = change.
        valid: ``(B, 1, H, W)`` bool, pixels that count.
        pos_weight: weight of change pixels in the BCE term.

    Returns:
        the scalar loss.
    """
    weight = valid.float()
    target = target.float()
    bce = (
        F.binary_cross_entropy_with_logits(
            logits, target, weight=weight, pos_weight=torch.tensor(pos_weight, device=logits.device)
        )
        * weight.numel()
        / weight.sum().clamp_min(1)
    )
    prob = torch.sigmoid(logits) * weight
    overlap = (prob * target).sum()
    dice = 1 - (2 * overlap + 1) / (prob.sum() + (target * weight).sum() + 1)
    return bce + dice


def date_blocks(values: Sequence[int] | str | None) -> tuple[int, ...] | None:
    """Blocks from ``"-3,-1"`` or a sequence of ints; ``None`` stays ``None`` (the default)."""
    if values is None:
        return None
    if isinstance(values, str):
        return tuple(int(v) for v in values.split(",") if v.strip())
    return tuple(int(v) for v in values)
