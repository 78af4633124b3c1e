"""The SatMAE masked autoencoder: tokenizer -> masking -> encoder -> decoder -> loss."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor, nn

from satmae.models.config import MAEConfig
from satmae.models.decoder import TokenGrid, build_decoder
from satmae.models.encoder import ModelInput, SatMAEEncoder
from satmae.models.inputs import ModelInputs
from satmae.models.masking import Masking, RandomMasking
from satmae.models.multiscale import (
    ScaleTarget,
    combine,
    prepare_scale_targets,
    run_multiscale,
    scale_key,
)
from satmae.models.tokenizer import BandSelection, patchify, unpatchify
from satmae.models.upsampler import Upsampler
from satmae.normalization import Normalization, NormMode, StatsLike
from satmae.spec import ModelSpec

NORM_PIX_EPS = 1e-6


@dataclass
class MAEOutput:
    """Named result of a pretraining forward pass.

    When no token counts in the loss (every hidden token is mostly invalid or in a padded
    frame), ``loss`` and the per-group / per-frame losses are 0 (never NaN) and :attr:`empty`
    is True: there is nothing to learn from such a batch, so skip it (pretraining skips and
    counts it) rather than backpropagate the 0.

    Attributes:
        loss: scalar mean squared error over the hidden tokens counted in the loss; with
            ``group_loss_weights`` each token weighs its group's weight,
            ``Σ token_loss·w / Σ w``.
        pred: ``(B, T, C', L, p*p)`` predictions in model band order of the present bands
            (standardised patches when ``norm_pix_loss``).
        target: ``(B, T, C', L, p*p)`` the targets the loss compared against.
        mask: ``(B, T, G', L)`` bool, True = hidden from the encoder.
        predicted: ``(B, T, G', L)`` bool, tokens the decoder reconstructed (all of them for the
            full decoder; hidden ones, or a fraction of them, for the cross decoder).
        weight: ``(B, T, G', L)`` 1 for tokens counted in the loss (hidden, predicted, mostly
            valid, real frame), else 0 (``group_loss_weights`` are not in it).
        token_losses: ``(B, T, G', L)`` per-token error (mean over the group's bands).
        group_losses: ``(G',)`` loss per present group: the unweighted mean of its counted
            tokens, whatever ``group_loss_weights`` say.
        frame_losses: ``(T,)`` loss per frame, weighted by ``group_loss_weights`` like
            ``loss``.
        latent: ``(B, 1+N_keep, D)`` encoder output (cls first, visible tokens in spatial order).
        groups: model indices of the present groups.
        bands: the present bands, in the order of ``pred``'s C' axis.
        patch_grid: ``(h, w)``.
        target_stats: per-patch ``(mean, std)`` that standardised ``target`` (broadcastable
            to it) when ``norm_pix_loss``, else ``None``.
        mse_loss: the masked MSE alone (``loss`` adds the weighted L1 terms of
            ``upsample_scales``); equals ``loss`` without scale terms.
        scale_preds: scale -> ``(B, T, C, s·H, s·W)`` up-sampled predictions in model band
            order (empty without ``upsample_scales``).
        scale_losses: scale -> L1 term (scales that had a target).
        scale_stats: scale -> the target footprints' ``(mean, std)`` ``(B, T, C_s, L, 1)``
            when the ``"masked"`` rule standardised them (``norm_pix_loss``).
        scale_bands: scale -> the bands its target had (the L1 term covers only those).
    """

    loss: Tensor
    pred: Tensor
    target: Tensor
    mask: Tensor
    predicted: Tensor
    weight: Tensor
    token_losses: Tensor
    group_losses: Tensor
    frame_losses: Tensor
    latent: Tensor
    groups: tuple[int, ...]
    bands: tuple[str, ...]
    patch_grid: tuple[int, int]
    target_stats: tuple[Tensor, Tensor] | None = None
    mse_loss: Tensor | None = None
    scale_preds: dict[int, Tensor] = field(default_factory=dict)
    scale_losses: dict[int, Tensor] = field(default_factory=dict)
    scale_stats: dict[int, tuple[Tensor, Tensor]] = field(default_factory=dict)
    scale_bands: dict[int, tuple[str, ...]] = field(default_factory=dict)

    @property
    def counted(self) -> Tensor:
        """Scalar number of tokens counted in the loss (the sum of ``weight``)."""
        return self.weight.sum()

    @property
    def empty(self) -> bool:
        """Whether no token counts in the loss (``loss`` is then 0 by definition, not learnt)."""
        return not bool(self.counted > 0)


class MaskedAutoencoder(nn.Module):
    """One model for multispectral, temporal and spectro-temporal SatMAE pretraining.

    Args:
        config: the architecture (see :class:`~satmae.models.config.MAEConfig`).
    """

    def __init__(self, config: MAEConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = SatMAEEncoder(config)
        self.masking = RandomMasking(config.mask_time, config.mask_groups)
        self.decoder = build_decoder(config)
        # SatMAE++'s multi-scale head (reference §5.1); absent for plain SatMAE.
        self.upsampler = (
            Upsampler(len(config.bands), len(config.upsample_scales))
            if config.upsample_scales
            else None
        )

    # The seam to the data (owned by the encoder) ------------------------------------------

    @property
    def normalization(self) -> Normalization | None:
        """The statistics and mode :meth:`prepare` applies (the encoder's)."""
        return self.encoder.normalization

    @property
    def provenance(self) -> dict[str, Any]:
        """Free-form facts about where the weights come from (the encoder's)."""
        return self.encoder.provenance

    def set_normalization(self, stats: StatsLike | None, mode: NormMode = "zscore") -> None:
        """Attach normalisation statistics (see :meth:`SatMAEEncoder.set_normalization`)."""
        self.encoder.set_normalization(stats, mode)

    def prepare(self, batch: Mapping[str, Any]) -> ModelInputs:
        """Raw reflectance as read -> model inputs (see :meth:`SatMAEEncoder.prepare`)."""
        return self.encoder.prepare(batch)

    def prepare_scales(self, batch: Mapping[str, Any]) -> dict[int, ScaleTarget]:
        """The batch's images at the model's ``upsample_scales`` (``image_x2``, …), normalised.

        See :func:`~satmae.models.multiscale.prepare_scale_targets`.
        """
        targets = prepare_scale_targets(self.config, self.normalization, batch)
        device = self.encoder.cls_token.device
        return {
            scale: ScaleTarget(
                t.image.to(device), t.bands, None if t.valid is None else t.valid.to(device)
            )
            for scale, t in targets.items()
        }

    @property
    def spec(self) -> ModelSpec:
        """What this model expects of its input (see :mod:`satmae.spec`)."""
        return replace(self.encoder.spec, contents="mae", architecture=self.config.to_dict())

    # Forward ------------------------------------------------------------------------------

    def forward(
        self,
        x: ModelInput,
        times: Tensor | None = None,
        bands: Sequence[str] | None = None,
        valid: Tensor | None = None,
        frame_mask: Tensor | None = None,
        *,
        mask: Tensor | None = None,
        mask_ratio: float | None = None,
        generator: torch.Generator | None = None,
        target: Tensor | None = None,
        noise: Tensor | None = None,
        scale_targets: Mapping[int, ScaleTarget] | None = None,
    ) -> MAEOutput:
        """Mask, encode the visible tokens, decode and compute the loss.

        Args:
            x: ``(B, T, C, H, W)`` normalised images, or a sample/batch dict of raw reflectance
                as read (then :meth:`prepare` supplies ``times``, ``bands``, ``valid`` and
                ``frame_mask``).
            times: ``(B, T)`` int64 seconds since 1970-01-01 UTC (temporal models only).
            bands: names of x's C channels (default ``config.input_order``). Channels of bands
                the model does not use are ignored; whole groups may be missing.
            valid: ``(B, T, H, W)`` bool valid pixels; invalid pixels weigh 0 in the loss.
            frame_mask: ``(B, T)`` bool, False for padded frames (no attention, no loss).
            mask: optional ``(B, T, G', L)`` bool hidden mask to use instead of a random one.
            mask_ratio: overrides ``config.mask_ratio``.
            generator: random generator for reproducible masks.
            target: ``(B, T, C, H, W)`` images to reconstruct instead of ``x``.
            noise: explicit masking noise (see :meth:`RandomMasking.forward`).
            scale_targets: scale -> normalised images at that scale for the L1 terms of a
                multi-scale model (taken from ``image_x2``, … of a dict ``x``). In training
                every scale needs one; in eval mode missing ones only skip their L1 term.

        Returns:
            the named outputs; ``loss`` is what to backpropagate.

        Raises:
            ValueError: for inputs that do not fit the model, or scale targets that are
                missing (in training) or do not fit the input size.
        """
        if isinstance(x, Mapping):
            if scale_targets is None and self.upsampler is not None:
                scale_targets = self.prepare_scales(x)
            inputs = self.prepare(x)
        else:
            inputs = ModelInputs(x, times, bands, valid, frame_mask)
        encoder = self.encoder
        inputs = encoder.check_inputs(inputs)
        x, times, valid = inputs.image, inputs.times, inputs.valid
        tokenized = encoder.tokenize(inputs)
        batch, frames, groups, patches, _ = tokenized.tokens.shape
        token_shape = (batch, frames, groups, patches)
        usable = self._usable_tokens(valid, tokenized.frame_mask, token_shape, x.device)
        if mask is not None:
            if tuple(mask.shape) != token_shape:
                raise ValueError(f"expected mask of shape {token_shape}, got {tuple(mask.shape)}")
            masking = Masking.from_mask(mask.to(x.device))
        else:
            masking = self.masking(
                token_shape,
                x.device,
                invalid=None if usable is None else ~usable,
                generator=generator,
                mask_ratio=self.config.mask_ratio if mask_ratio is None else mask_ratio,
                noise=noise,
            )
        visible, attn_mask = encoder.select_visible(tokenized, masking.visible)
        # (B, 1+N_keep, D) normed, and the un-normed blocks of decoder_context before the last.
        latent, features = encoder.run_blocks(visible, attn_mask, self.decoder.encoder_blocks)

        grid = TokenGrid(
            frames, tokenized.selection.groups, tokenized.patch_grid, times, tokenized.frame_mask
        )
        pred, predicted = self.decoder(latent, masking, grid, generator, features)
        source = x if target is None else target
        target_patches, target_stats = self.targets(source, tokenized.selection)
        out = self._loss(
            pred,
            target_patches,
            masking.mask,
            predicted,
            usable,
            valid,
            tokenized.selection,
            latent,
            tokenized.patch_grid,
        )
        out.target_stats = target_stats
        out.mse_loss = out.loss
        if self.upsampler is not None:
            self._add_scales(out, scale_targets or {}, tokenized.frame_mask, tuple(x.shape))
        return out

    def _add_scales(
        self,
        out: MAEOutput,
        targets: Mapping[int, ScaleTarget],
        frame_mask: Tensor | None,
        input_shape: tuple[int, ...],
    ) -> None:
        """Up-sampled predictions, their L1 terms and the combined loss (SatMAE++)."""
        assert self.upsampler is not None
        if self.training and (
            missing := [s for s in self.config.upsample_scales if s not in targets]
        ):
            raise ValueError(
                f"this model reconstructs scales {self.config.upsample_scales} but the batch "
                f"has no {[scale_key(s) for s in missing]}; give images at those scales "
                "(data.scales in satmae pretrain, or satmae.data.multiscale.MultiScaleTargets)"
                ", or build the model with upsample_scales=()"
            )
        shape = (input_shape[0], input_shape[1], input_shape[2], input_shape[3], input_shape[4])
        result = run_multiscale(self.config, self.upsampler, out, targets, frame_mask, shape)
        out.scale_preds, out.scale_losses, out.scale_stats = (
            result.preds,
            result.losses,
            result.stats,
        )
        out.scale_bands = {scale: target.bands for scale, target in targets.items()}
        out.loss = combine(self.config, out.loss, result.losses)

    # Loss ---------------------------------------------------------------------------------

    def targets(
        self, images: Tensor, selection: BandSelection
    ) -> tuple[Tensor, tuple[Tensor, Tensor] | None]:
        """Target patches in model band order, standardised when ``norm_pix_loss``.

        Returns:
            ``(B, T, C', L, p*p)`` targets and the ``(mean, std)`` used (broadcastable), or
            ``None`` without ``norm_pix_loss``.
        """
        patches = patchify(images[:, :, selection.flat_channels], self.config.patch_size)
        if not self.config.norm_pix_loss:
            return patches, None
        if self.config.norm_pix_scope == "location":
            spans = [(0, patches.shape[2])]
        else:
            sizes = selection.sizes
            starts = [sum(sizes[:i]) for i in range(len(sizes))]
            spans = [(start, start + size) for start, size in zip(starts, sizes, strict=True)]
        normed, means, stds = [], [], []
        for start, stop in spans:
            part = patches[:, :, start:stop]  # (B, T, |g|, L, p*p)
            values = part.transpose(2, 3).flatten(3)  # (B, T, L, |g|*p*p)
            mean = values.mean(-1)[:, :, None, :, None]
            std = (values.var(-1)[:, :, None, :, None] + NORM_PIX_EPS) ** 0.5
            normed.append((part - mean) / std)
            means.append(mean.expand(-1, -1, stop - start, -1, -1))
            stds.append(std.expand(-1, -1, stop - start, -1, -1))
        return torch.cat(normed, 2), (torch.cat(means, 2), torch.cat(stds, 2))

    def _usable_tokens(
        self,
        valid: Tensor | None,
        frame_mask: Tensor | None,
        shape: tuple[int, int, int, int],
        device: torch.device,
    ) -> Tensor | None:
        """``(B, T, G', L)`` tokens that are mostly valid and in real frames, or ``None``."""
        if valid is None and frame_mask is None:
            return None
        batch, frames, _, patches = shape
        usable = torch.ones(batch, frames, 1, patches, dtype=torch.bool, device=device)
        if valid is not None:  # (B, T, H, W), checked by the encoder's check_inputs
            fraction = patchify(valid[:, :, None].float(), self.config.patch_size).mean(-1)
            usable = usable & (fraction >= self.config.min_valid_fraction)  # (B, T, 1, L)
        if frame_mask is not None:
            usable = usable & frame_mask[:, :, None, None]
        return usable.expand(shape)

    def _loss(
        self,
        pred: Tensor,
        target: Tensor,
        hidden: Tensor,
        predicted: Tensor | None,
        usable: Tensor | None,
        valid: Tensor | None,
        selection: BandSelection,
        latent: Tensor,
        patch_grid: tuple[int, int],
    ) -> MAEOutput:
        squared = (pred.float() - target.float()) ** 2  # (B, T, C', L, p*p)
        if valid is None:
            band_errors = squared.mean(-1)  # (B, T, C', L)
        else:
            pixel_weight = patchify(valid[:, :, None].float(), self.config.patch_size)
            band_errors = (squared * pixel_weight).sum(-1) / pixel_weight.sum(-1).clamp_min(1.0)
        sizes = selection.sizes
        group_of_band = torch.repeat_interleave(
            torch.arange(len(sizes), device=pred.device), torch.tensor(sizes, device=pred.device)
        )
        membership = group_of_band[None] == torch.arange(len(sizes), device=pred.device)[:, None]
        membership = membership.float() / membership.sum(1, keepdim=True)  # (G', C') group means
        token_losses = torch.einsum("btcl,gc->btgl", band_errors, membership)
        weight = hidden.float()
        if predicted is not None:
            weight = weight * predicted.float()
        if usable is not None:
            weight = weight * usable.float()
        weighted = token_losses * weight
        group_losses = _mean(weighted.sum((0, 1, 3)), weight.sum((0, 1, 3)))
        loss_weight = weight
        if self.config.group_loss_weights is not None:
            weights = torch.tensor(self.config.group_loss_weights, device=pred.device)
            loss_weight = weight * weights[list(selection.groups)][None, None, :, None]
            weighted = token_losses * loss_weight
        loss = _mean(weighted.sum(), loss_weight.sum())
        frame_losses = _mean(weighted.sum((0, 2, 3)), loss_weight.sum((0, 2, 3)))
        return MAEOutput(
            loss=loss,
            pred=pred,
            target=target,
            mask=hidden,
            predicted=torch.ones_like(hidden) if predicted is None else predicted,
            weight=weight,
            token_losses=token_losses,
            group_losses=group_losses,
            frame_losses=frame_losses,
            latent=latent,
            groups=selection.groups,
            bands=selection.bands,
            patch_grid=patch_grid,
        )

    # Images -------------------------------------------------------------------------------

    @torch.no_grad()
    def reconstruct(
        self, x: ModelInput, *args: Any, keep_visible: bool = False, **kwargs: Any
    ) -> Tensor:
        """Reconstructed images ``(B, T, C', H, W)`` in model band order of the present bands.

        Predictions are de-standardised with each target patch's statistics when
        ``norm_pix_loss`` is on. Tokens without a prediction (visible tokens of the cross
        decoder) and, with ``keep_visible``, all visible tokens show the input pixels.

        Args:
            x: normalised images ``(B, T, C, H, W)`` or a sample/batch dict (see :meth:`forward`).
            *args: passed to :meth:`forward` (``times``, ``bands``, …).
            keep_visible: paste the input at visible tokens.
            **kwargs: passed to :meth:`forward` (``mask``, ``generator``, ``valid``, …).
        """
        return self.reconstruct_scales(x, *args, keep_visible=keep_visible, **kwargs)[1]

    @torch.no_grad()
    def reconstruct_scales(
        self, x: ModelInput, *args: Any, keep_visible: bool = False, **kwargs: Any
    ) -> dict[int, Tensor]:
        """Reconstructions at the input scale (1) and at every ``upsample_scales`` entry.

        Scale 1 is :meth:`reconstruct`'s image ``(B, T, C', H, W)``; scale s is the up-sampler's
        ``(B, T, C, s·H, s·W)`` in model band order, de-standardised with the target's own
        footprint statistics where the ``"masked"`` rule standardised it, else with the 1×
        patch statistics (``norm_pix_loss``).

        Args:
            x: normalised images ``(B, T, C, H, W)`` or a sample/batch dict (see :meth:`forward`).
            *args: passed to :meth:`forward`.
            keep_visible: paste the input at visible tokens of the 1× image.
            **kwargs: passed to :meth:`forward`.
        """
        was_training = self.training
        self.eval()
        try:
            out = self.forward(x, *args, **kwargs)
        finally:
            self.train(was_training)
        images = {scale: self._destandardize_scale(out, scale) for scale in out.scale_preds}
        pred, raw = out.pred, out.target
        if out.target_stats is not None:
            mean, std = out.target_stats
            pred, raw = pred * std + mean, raw * std + mean
        paste = ~out.predicted | (~out.mask if keep_visible else torch.zeros_like(out.mask))
        sizes = [self.config.group_sizes[group] for group in out.groups]
        paste_bands = torch.repeat_interleave(
            paste, torch.tensor(sizes, device=pred.device), dim=2
        )  # (B, T, C', L)
        pred = torch.where(paste_bands[..., None], raw, pred)
        return {1: unpatchify(pred, out.patch_grid), **images}

    def _destandardize_scale(self, out: MAEOutput, scale: int) -> Tensor:
        """``out.scale_preds[scale]`` in the units of the model input."""
        pred = out.scale_preds[scale]
        if out.target_stats is None or self.config.multiscale_loss == "satmae_pp":
            return pred  # SatMAE++ scores the raw targets: predictions are already raw
        footprint = scale * self.config.patch_size
        patches = patchify(pred, footprint)  # (B, T, C, L, (s·p)²)
        mean, std = (stat[..., :1] for stat in out.target_stats)  # (B, T, C, L, 1)
        if scale in out.scale_stats:
            # The scale's own target statistics for the bands it had a target for.
            channels = [self.config.bands.index(b) for b in out.scale_bands[scale]]
            mean, std = mean.clone(), std.clone()
            mean[:, :, channels], std[:, :, channels] = out.scale_stats[scale]
        return unpatchify(patches * std + mean, out.patch_grid)


def _mean(total: Tensor, weight: Tensor) -> Tensor:
    """``total / weight``, 0 where the weight is 0 (nothing counted: never NaN).

    Weights may be fractional (``group_loss_weights``), so a sum below 1 is divided by as is.
    """
    return total / torch.where(weight > 0, weight, torch.ones_like(weight))
