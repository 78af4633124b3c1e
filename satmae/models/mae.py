"""The SatMAE masked autoencoder: tokenizer -> masking -> encoder -> decoder -> loss."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor, nn

from satmae.models.config import MAEConfig
from satmae.models.decoder import TokenGrid, build_decoder
from satmae.models.encoder import ModelInput, SatMAEEncoder
from satmae.models.inputs import ModelInputs
from satmae.models.masking import Masking, RandomMasking
from satmae.models.tokenizer import BandSelection, patchify, unpatchify
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
        loss: scalar mean squared error over the hidden tokens counted in the loss.
        pred: ``(B, T, C', L, p*p)`` predictions in model band order of the present bands
            (standardised patches when ``norm_pix_loss``).
        target: ``(B, T, C', L, p*p)`` the targets the loss compared against.
        mask: ``(B, T, G', L)`` bool, True = hidden from the encoder.
        predicted: ``(B, T, G', L)`` bool, tokens the decoder reconstructed (all of them for the
            full decoder; hidden ones, or a fraction of them, for the cross decoder).
        weight: ``(B, T, G', L)`` 1 for tokens counted in the loss (hidden, predicted, mostly
            valid, real frame), else 0.
        token_losses: ``(B, T, G', L)`` per-token error (mean over the group's bands).
        group_losses: ``(G',)`` loss per present group.
        frame_losses: ``(T,)`` loss per frame.
        latent: ``(B, 1+N_keep, D)`` encoder output (cls first, visible tokens in spatial order).
        groups: model indices of the present groups.
        bands: the present bands, in the order of ``pred``'s C' axis.
        patch_grid: ``(h, w)``.
        target_stats: per-patch ``(mean, std)`` that standardised ``target`` (broadcastable
            to it) when ``norm_pix_loss``, else ``None``.
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

        Returns:
            the named outputs; ``loss`` is what to backpropagate.
        """
        inputs = (
            self.prepare(x)
            if isinstance(x, Mapping)
            else ModelInputs(x, times, bands, valid, frame_mask)
        )
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
        latent, _ = encoder.run_blocks(visible, attn_mask)  # (B, 1+N_keep, D)

        grid = TokenGrid(
            frames, tokenized.selection.groups, tokenized.patch_grid, times, tokenized.frame_mask
        )
        pred, predicted = self.decoder(latent, masking, grid, generator)
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
        return out

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
        loss = weighted.sum() / weight.sum().clamp_min(1.0)
        group_losses = weighted.sum((0, 1, 3)) / weight.sum((0, 1, 3)).clamp_min(1.0)
        frame_losses = weighted.sum((0, 2, 3)) / weight.sum((0, 2, 3)).clamp_min(1.0)
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
        was_training = self.training
        self.eval()
        try:
            out = self.forward(x, *args, **kwargs)
        finally:
            self.train(was_training)
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
        return unpatchify(pred, out.patch_grid)
