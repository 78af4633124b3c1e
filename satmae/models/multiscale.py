"""Multi-scale reconstruction (SatMAE++): the up-sampled predictions and their L1 terms.

The 1× prediction of the decoder, un-patchified to an image, goes through the
:class:`~satmae.models.upsampler.Upsampler`; each output is scored with an L1 against the
image at that scale (batch keys ``image_x2``, ``image_x4``, …, see
:mod:`satmae.data.multiscale`). Two rules, one config value (``multiscale_loss``):

- ``"satmae_pp"``: SatMAE++ exactly (reference note §5.1): the L1 is a plain mean over every
  pixel and band (visible ones included, validity ignored) and the targets stay raw even under
  ``norm_pix_loss``.
- ``"masked"`` (default): the L1 covers only what the MSE covers, hidden, predicted, mostly
  valid tokens of real frames, each at its footprint of ``s·p × s·p`` pixels, weighted by the
  pixel validity at that scale; under ``norm_pix_loss`` each footprint of the target is
  standardised like the MSE target (per group token or per location).

The up-sampler reads the bands in the model's input order (``config.input_order``), which for a
converted official checkpoint is the official channel order, so the decoder's output slots
meet the up-sampler's channels as in the official code (reference §3.2.6).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from satmae.bands import canonical_bands
from satmae.models.config import MAEConfig
from satmae.models.tokenizer import patchify, unpatchify
from satmae.models.upsampler import Upsampler
from satmae.normalization import Normalization

NORM_PIX_EPS = 1e-6


@dataclass
class ScaleTarget:
    """The image a scale is scored against.

    Attributes:
        image: ``(B, T, C_s, s·H, s·W)`` normalised images of ``bands``.
        bands: the C_s model bands of ``image`` (a subset when only some bands have real
            detail at that scale).
        valid: ``(B, T, s·H, s·W)`` bool valid pixels, or ``None``.
    """

    image: Tensor
    bands: tuple[str, ...]
    valid: Tensor | None = None


@dataclass
class ScaleResult:
    """Up-sampled predictions and their losses.

    Attributes:
        preds: scale -> ``(B, T, C, s·H, s·W)`` predictions in model band order (standardised
            per footprint under ``norm_pix_loss`` with the ``"masked"`` rule).
        losses: scale -> scalar L1 (only the scales that had a target).
        stats: scale -> per-footprint ``(mean, std)`` of the target, ``(B, T, C_s, L, 1)``
            each, when the target was standardised.
    """

    preds: dict[int, Tensor]
    losses: dict[int, Tensor]
    stats: dict[int, tuple[Tensor, Tensor]]


def scale_key(scale: int, name: str = "image") -> str:
    """Batch key of a scale: ``image_x2``, ``valid_x4``, ``bands_x2``."""
    return f"{name}_x{scale}"


def prepare_scale_targets(
    config: MAEConfig, normalization: Normalization | None, batch: Mapping[str, Any]
) -> dict[int, ScaleTarget]:
    """The scale targets of a batch as read: reordered by band name and normalised.

    Reads ``image_x{s}`` (``(B, T, C_s, s·H, s·W)`` or a sample's ``(T, C_s, …)``),
    ``bands_x{s}`` (default: the batch's ``bands``) and ``valid_x{s}`` for every scale of
    ``config.upsample_scales`` present in the batch; bands the model does not use are dropped.

    Raises:
        ValueError: for a model without statistics or a target without any model band.
    """
    targets: dict[int, ScaleTarget] = {}
    for scale in config.upsample_scales:
        if batch.get(scale_key(scale)) is None:
            continue
        image = torch.as_tensor(np.asarray(batch[scale_key(scale)]))
        valid = batch.get(scale_key(scale, "valid"))
        valid_tensor = None if valid is None else torch.as_tensor(np.asarray(valid)).bool()
        if image.ndim == 4:  # a single sample
            image = image[None]
            valid_tensor = None if valid_tensor is None else valid_tensor[None]
        raw_bands = batch.get(scale_key(scale, "bands"), batch.get("bands"))
        if raw_bands is None:
            raise ValueError(
                f"{scale_key(scale)} needs band names: give 'bands' or 'bands_x{scale}'"
            )
        names = canonical_bands((raw_bands,) if isinstance(raw_bands, str) else raw_bands)
        if len(names) != image.shape[2]:
            raise ValueError(
                f"{scale_key(scale, 'bands')} names {len(names)} bands {list(names)} but "
                f"{scale_key(scale)} of shape {tuple(image.shape)} has {image.shape[2]}"
            )
        keep = [index for index, band in enumerate(names) if band in config.bands]
        if not keep:
            raise ValueError(
                f"{scale_key(scale)} holds none of the model bands {list(config.bands)}: got "
                f"{list(names)}"
            )
        if normalization is None:
            raise ValueError(
                f"{scale_key(scale)} is raw reflectance but the model has no normalisation "
                "statistics; attach them with model.set_normalization(...)"
            )
        bands = tuple(names[index] for index in keep)
        targets[scale] = ScaleTarget(
            normalization.apply(image[:, :, keep].float(), bands), bands, valid_tensor
        )
    return targets


def check_scale_target(
    scale: int, target: ScaleTarget, shape: tuple[int, int, int, int, int]
) -> None:
    """Raise ValueError unless ``target`` is ``scale`` times an input of ``shape`` (B,T,C,H,W)."""
    batch, frames, _, height, width = shape
    expected = (batch, frames, scale * height, scale * width)
    got = tuple(target.image.shape)
    if len(got) != 5 or (got[0], got[1], got[3], got[4]) != expected:
        raise ValueError(
            f"{scale_key(scale)} of shape {got} does not fit a {height}x{width} input: expected "
            f"(B={batch}, T={frames}, C, {scale * height}, {scale * width}); crop the data at "
            f"{scale}x the model input (data.scales in satmae pretrain)"
        )
    if target.valid is not None and tuple(target.valid.shape) != expected:
        raise ValueError(
            f"{scale_key(scale, 'valid')} of shape {tuple(target.valid.shape)} does not match "
            f"{scale_key(scale)} {got}: expected {expected}"
        )


def upsampler_input(
    pred: Tensor, target: Tensor, mask: Tensor, predicted: Tensor, sizes: Sequence[int]
) -> Tensor:
    """The 1× patches the up-sampler reads: the prediction where there is one.

    Visible tokens the decoder did not predict (cross decoder) show their target, which the
    encoder saw anyway; hidden tokens it did not predict are zero.

    Args:
        pred: ``(B, T, C, L, p*p)`` predictions.
        target: ``(B, T, C, L, p*p)`` targets.
        mask: ``(B, T, G, L)`` hidden tokens.
        predicted: ``(B, T, G, L)`` predicted tokens.
        sizes: bands per group.
    """
    repeats = torch.tensor(list(sizes), device=pred.device)
    use_pred = torch.repeat_interleave(predicted, repeats, dim=2)[..., None]  # (B, T, C, L, 1)
    visible = torch.repeat_interleave(~mask, repeats, dim=2)[..., None]
    return torch.where(use_pred, pred, torch.where(visible, target, torch.zeros_like(pred)))


def standardize_footprints(
    patches: Tensor, spans: Sequence[Sequence[int]]
) -> tuple[Tensor, Tensor, Tensor]:
    """Standardise each footprint over the bands of each span.

    Args:
        patches: ``(B, T, C, L, A)`` footprints of ``A`` pixels.
        spans: channel indices standardised together (a group, or all bands).

    Returns:
        standardised patches and their ``(mean, std)``, each ``(B, T, C, L, 1)``.
    """
    mean = torch.zeros_like(patches[..., :1])
    std = torch.ones_like(patches[..., :1])
    for span in spans:
        index = list(span)
        part = patches[:, :, index]  # (B, T, c, L, A)
        values = part.transpose(2, 3).flatten(3)  # (B, T, L, c*A)
        mean[:, :, index] = values.mean(-1)[:, :, None, :, None].expand(-1, -1, len(index), -1, -1)
        std_part = (values.var(-1) + NORM_PIX_EPS) ** 0.5
        std[:, :, index] = std_part[:, :, None, :, None].expand(-1, -1, len(index), -1, -1)
    return (patches - mean) / std, mean, std


def multiscale_predictions(
    config: MAEConfig,
    upsampler: Upsampler,
    pred: Tensor,
    target: Tensor,
    mask: Tensor,
    predicted: Tensor,
    patch_grid: tuple[int, int],
) -> dict[int, Tensor]:
    """Up-sampled predictions ``scale -> (B, T, C, s·H, s·W)`` in model band order.

    Args:
        config: the model configuration (all band groups must be present).
        upsampler: the model's up-sampler.
        pred: ``(B, T, C, L, p*p)`` 1× predictions in model band order.
        target: ``(B, T, C, L, p*p)`` 1× targets.
        mask: ``(B, T, G, L)`` hidden tokens.
        predicted: ``(B, T, G, L)`` predicted tokens.
        patch_grid: ``(h, w)``.
    """
    patches = upsampler_input(pred, target, mask, predicted, config.group_sizes)
    image = unpatchify(patches, patch_grid)  # (B, T, C, H, W)
    batch, frames = image.shape[:2]
    to_input = [config.bands.index(band) for band in config.input_order]
    to_model = [config.input_order.index(band) for band in config.bands]
    outputs = upsampler(image[:, :, to_input].flatten(0, 1))  # [(B*T, C, sH, sW), …]
    return {
        scale: out.unflatten(0, (batch, frames))[:, :, to_model]
        for scale, out in zip(config.upsample_scales, outputs, strict=True)
    }


def scale_losses(
    config: MAEConfig,
    preds: Mapping[int, Tensor],
    targets: Mapping[int, ScaleTarget],
    weight: Tensor,
    frame_mask: Tensor | None,
) -> tuple[dict[int, Tensor], dict[int, tuple[Tensor, Tensor]]]:
    """The L1 term of every scale that has a target.

    Args:
        config: the model configuration (``multiscale_loss``, ``norm_pix_loss``, groups).
        preds: scale -> ``(B, T, C, s·H, s·W)`` predictions in model band order.
        targets: scale -> its target (checked with :func:`check_scale_target` by the caller).
        weight: ``(B, T, G, L)`` tokens the MSE counts (hidden, predicted, usable).
        frame_mask: ``(B, T)`` real frames or ``None``.

    Returns:
        scale -> scalar L1, and scale -> the target's footprint ``(mean, std)`` when it was
        standardised.
    """
    losses: dict[int, Tensor] = {}
    stats: dict[int, tuple[Tensor, Tensor]] = {}
    group_of = {band: index for index, group in enumerate(config.band_groups) for band in group}
    for scale, target in targets.items():
        channels = [config.bands.index(band) for band in target.bands]
        pred = preds[scale][:, :, channels].float()  # (B, T, C_s, sH, sW)
        truth = target.image.to(pred)
        if config.multiscale_loss == "satmae_pp":
            error = (pred - truth).abs().mean((2, 3, 4))  # (B, T)
            if frame_mask is None:
                losses[scale] = error.mean()
            else:
                real = frame_mask.float()
                losses[scale] = (error * real).sum() / real.sum().clamp_min(1.0)
            continue
        footprint = scale * config.patch_size
        pred_p = patchify(pred, footprint)  # (B, T, C_s, L, (s·p)²)
        truth_p = patchify(truth, footprint)
        if config.norm_pix_loss:
            if config.norm_pix_scope == "location":
                spans: list[list[int]] = [list(range(len(target.bands)))]
            else:
                spans = [
                    [i for i, band in enumerate(target.bands) if group_of[band] == group]
                    for group in sorted({group_of[band] for band in target.bands})
                ]
            truth_p, mean, std = standardize_footprints(truth_p, spans)
            stats[scale] = (mean, std)
        band_groups = torch.tensor([group_of[band] for band in target.bands], device=pred.device)
        token_weight = weight.float()[:, :, band_groups, :, None]  # (B, T, C_s, L, 1)
        if target.valid is not None:
            pixels = patchify(target.valid[:, :, None].to(pred), footprint)  # (B, T, 1, L, A)
            token_weight = token_weight * pixels
        full = token_weight.expand_as(pred_p)
        losses[scale] = ((pred_p - truth_p).abs() * full).sum() / full.sum().clamp_min(1.0)
    return losses, stats


def combine(config: MAEConfig, mse: Tensor, losses: Mapping[int, Tensor]) -> Tensor:
    """``mse_weight·MSE + l1_weight·mean_s(L1_s)``; the MSE alone without scale terms."""
    if not losses:
        return mse
    l1 = torch.stack(list(losses.values())).mean()
    return config.mse_weight * mse + config.l1_weight * l1


def run_multiscale(
    config: MAEConfig,
    upsampler: Upsampler,
    out: Any,
    targets: Mapping[int, ScaleTarget],
    frame_mask: Tensor | None,
    input_shape: tuple[int, int, int, int, int],
) -> ScaleResult:
    """Predictions at every scale and the L1 terms of those with a target.

    Args:
        config: the model configuration.
        upsampler: the model's up-sampler.
        out: the :class:`~satmae.models.mae.MAEOutput` of the 1× pass.
        targets: scale -> target (may be empty: predictions only).
        frame_mask: ``(B, T)`` real frames or ``None``.
        input_shape: ``(B, T, C, H, W)`` of the model input.

    Raises:
        ValueError: if a group is missing from the input, or a target does not fit.
    """
    if len(out.groups) != config.num_groups:
        missing = [config.band_groups[g] for g in range(config.num_groups) if g not in out.groups]
        raise ValueError(
            f"multi-scale reconstruction (upsample_scales={config.upsample_scales}) needs every "
            f"band group; the input lacks {missing}. Give all bands, or build the model with "
            "upsample_scales=()"
        )
    if unknown := sorted(set(targets) - set(config.upsample_scales)):
        raise ValueError(
            f"targets at scales {unknown} but the model reconstructs {config.upsample_scales}"
        )
    for scale, target in targets.items():
        check_scale_target(scale, target, input_shape)
    preds = multiscale_predictions(
        config, upsampler, out.pred, out.target, out.mask, out.predicted, out.patch_grid
    )
    losses, stats = scale_losses(config, preds, targets, out.weight, frame_mask)
    return ScaleResult(preds, losses, stats)
