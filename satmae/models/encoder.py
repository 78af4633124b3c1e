"""The downstream encoder: tokenizer + transformer, without masking, returning named features.

The encoder's steps are named so the masked autoencoder reuses them rather than re-implementing
them: :meth:`SatMAEEncoder.tokenize` (validate once, embed, encode) -> :meth:`select_visible`
(gather tokens and build the padded-frame attention mask) -> :meth:`run_blocks`. It also owns
the seam to the data: :meth:`prepare` applies the model's band order and normalisation to a
sample or batch as read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from satmae.models import backbone
from satmae.models.blocks import Block, LayerNorm
from satmae.models.config import EncoderConfig
from satmae.models.frames import frame_attention_mask
from satmae.models.initialization import init_weights
from satmae.models.inputs import (
    ModelInputs,
    block_indices,
    check_model_inputs,
    prepare_inputs,
)
from satmae.models.tokenizer import Tokenized, Tokenizer
from satmae.normalization import Normalization, NormMode, StatsLike
from satmae.spec import ModelSpec

PoolMode = Literal["mean", "cls", "none"]
POOL_MODES: tuple[str, ...] = ("mean", "cls", "none")

ModelInput = Tensor | Mapping[str, Any]
"""A normalised ``(B, T, C, H, W)`` tensor, or a sample/batch dict of raw reflectance."""

Embedding = Tensor | dict[int, Tensor] | Any
"""What :meth:`SatMAEEncoder.embed` returns: a tensor, ``{layer: tensor}``, or the same as xarray
objects for an xarray input (``Any`` keeps xarray out of this module's imports)."""


def pool_tokens(tokens: Tensor, frame_mask: Tensor | None) -> Tensor:
    """Mean of ``(B, T, G, h, w, D)`` tokens over the real frames -> ``(B, D)``."""
    if frame_mask is None:
        return tokens.mean(dim=(1, 2, 3, 4))
    batch, _, groups, height, width, _ = tokens.shape
    weight = frame_mask.to(tokens.dtype)[:, :, None, None, None, None]
    count = (weight.sum(1) * groups * height * width).reshape(batch, 1).clamp_min(1)
    return (tokens * weight).sum(dim=(1, 2, 3, 4)) / count


@dataclass
class EncoderFeatures:
    """Named outputs of :class:`SatMAEEncoder`.

    Attributes:
        cls: ``(B, D)`` the cls token after the last block (and norm).
        tokens: ``(B, T, G, h, w, D)`` patch tokens (G = groups present in the input).
        pooled: ``(B, D)`` mean of the tokens of real frames (``fc_norm`` applied when the
            encoder came from a globally pooled fine-tuned model).
        intermediates: block index -> ``(B, T, G, h, w, D)`` outputs of chosen blocks.
        intermediate_cls: block index -> ``(B, D)`` the cls token after that block.
        groups: model indices of the groups in ``tokens``.
        frame_mask: ``(B, T)`` bool real frames, or ``None``.
        logits: ``(B, classes)`` when the encoder has a classification head.
    """

    cls: Tensor
    tokens: Tensor
    pooled: Tensor
    intermediates: dict[int, Tensor] = field(default_factory=dict)
    intermediate_cls: dict[int, Tensor] = field(default_factory=dict)
    groups: tuple[int, ...] = ()
    frame_mask: Tensor | None = None
    logits: Tensor | None = None

    def dense(
        self, reduce: Literal["mean", "concat"] = "mean", tokens: Tensor | None = None
    ) -> Tensor:
        """A dense feature map of the tokens (or of an intermediate block).

        Args:
            reduce: ``"mean"`` averages frames and groups -> ``(B, D, h, w)``; ``"concat"``
                stacks them -> ``(B, T·G·D, h, w)``.
            tokens: ``(B, T, G, h, w, D)`` to use instead of ``self.tokens``.

        Returns:
            the map, channels first.
        """
        grid = self.tokens if tokens is None else tokens
        if reduce == "concat":
            batch, frames, groups, height, width, dim = grid.shape
            return grid.permute(0, 1, 2, 5, 3, 4).reshape(
                batch, frames * groups * dim, height, width
            )
        if self.frame_mask is None:
            mean = grid.mean(dim=(1, 2))  # (B, h, w, D)
        else:
            weight = self.frame_mask.to(grid.dtype)[:, :, None, None, None, None]
            count = (self.frame_mask.sum(1) * grid.shape[2]).clamp_min(1).to(grid.dtype)
            mean = (grid * weight).sum(dim=(1, 2)) / count[:, None, None, None]
        return mean.permute(0, 3, 1, 2)

    @property
    def map(self) -> Tensor:
        """``(B, D, h, w)`` tokens averaged over frames and groups."""
        return self.dense("mean")


class SatMAEEncoder(nn.Module):
    """The SatMAE encoder for feature extraction and fine-tuning.

    Args:
        config: the encoder architecture (an :class:`MAEConfig` works too; its decoder fields
            are not used).
    """

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config
        dim = config.embed_dim
        self.tokenizer = Tokenizer(config)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.blocks = nn.ModuleList(
            Block(dim, config.num_heads, config.mlp_ratio) for _ in range(config.depth)
        )
        self.norm: nn.Module = nn.Identity() if config.global_pool_norm else LayerNorm(dim)
        self.fc_norm: nn.Module | None = LayerNorm(dim) if config.global_pool_norm else None
        self.head: nn.Linear | None = (
            nn.Linear(dim, config.num_classes) if config.num_classes else None
        )
        self.normalization: Normalization | None = None
        self.provenance: dict[str, Any] = {}
        self.num_features = dim  # timm's backbone interface
        self.feature_info = backbone.feature_info(self)
        init_weights(self)
        nn.init.normal_(self.cls_token, std=0.02)

    @property
    def bands(self) -> tuple[str, ...]:
        """The bands the encoder reads, in model channel order."""
        return self.config.bands

    # The seam to the data -------------------------------------------------------------------

    def set_normalization(self, stats: StatsLike | None, mode: NormMode = "zscore") -> None:
        """Attach the statistics that :meth:`prepare` applies to raw reflectance.

        Args:
            stats: a :class:`Normalization`, a :class:`BandStats`, a built-in name
                (``"s2_l2a"``, ``"s2_l1c"``, ``"satmae_official"``, ``"fmow_rgb"``), a stats file
                or bundle config, or ``None`` to detach them.
            mode: ``"zscore"`` or ``"satmae"`` when ``stats`` is not a :class:`Normalization`.

        Raises:
            ValueError: if the statistics lack any of the model's bands.
        """
        if stats is None:
            self.normalization = None
            return
        normalization = Normalization.of(stats, mode)
        self.normalization = Normalization(
            normalization.stats.subset(self.bands), normalization.mode
        )

    def prepare(self, batch: Mapping[str, Any]) -> ModelInputs:
        """Raw reflectance as read (a sample or a collated batch) -> model inputs.

        Bands are matched by name and reordered into the model's order (others are dropped),
        normalised with the model's own statistics; times, validity and the frame mask are
        checked and passed through.

        Raises:
            ValueError: see :func:`~satmae.models.inputs.prepare_inputs`.
        """
        weight = self.cls_token
        return prepare_inputs(self.config, self.normalization, batch, weight.device, weight.dtype)

    @property
    def spec(self) -> ModelSpec:
        """What this encoder expects of its input (see :mod:`satmae.spec`)."""
        architecture = self.config.to_dict()
        return ModelSpec.from_config(architecture, self.normalization, self.provenance)

    # Named steps ----------------------------------------------------------------------------

    def check_inputs(self, inputs: ModelInputs) -> ModelInputs:
        """The one input check of every entry point (a no-op on inputs it already passed).

        Refuses non-tensors, non-float images, wrong shapes, empty batches, NaN or inf,
        times outside 1900-2100 seconds, masks of the wrong shape and inputs on another
        device than the model; casts the image to the weights' dtype. See
        :func:`~satmae.models.inputs.check_model_inputs`.
        """
        weight = self.cls_token
        return check_model_inputs(self.config, inputs, weight.device, weight.dtype)

    def tokenize(self, inputs: ModelInputs) -> Tokenized:
        """Check the inputs once (:meth:`check_inputs`) and embed them: ``(B, T, G', L, D)``."""
        inputs = self.check_inputs(inputs)
        return self.tokenizer(  # type: ignore[no-any-return]
            inputs.image, inputs.times, inputs.bands, inputs.frame_mask
        )

    def select_visible(
        self, tokenized: Tokenized, visible: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """The tokens the transformer sees and their attention mask.

        Args:
            tokenized: output of :meth:`tokenize`.
            visible: ``(B, N_keep)`` ascending indices into the flattened ``T·G'·L`` tokens;
                ``None`` keeps every token.

        Returns:
            ``(B, N_keep, D)`` tokens and the ``(B, 1, 1, 1+N_keep)`` padded-frame attention
            mask (``None`` when no frame is padded).
        """
        tokens = tokenized.tokens.flatten(1, 3)  # (B, N, D)
        batch, count, dim = tokens.shape
        if visible is None:
            index = torch.arange(count, device=tokens.device).expand(batch, -1)
        else:
            index = visible
            tokens = torch.gather(tokens, 1, visible.unsqueeze(-1).expand(-1, -1, dim))
        mask = frame_attention_mask(tokenized.frame_mask, index, tokenized.tokens_per_frame)
        return tokens, mask

    def run_blocks(
        self, tokens: Tensor, attn_mask: Tensor | None = None, keep: Sequence[int] = ()
    ) -> tuple[Tensor, dict[int, Tensor]]:
        """Prepend the cls token and run the transformer.

        Args:
            tokens: ``(B, N, D)`` embedded tokens with encodings.
            attn_mask: optional ``(B, 1, 1, 1+N)`` bool.
            keep: block indices whose outputs to return.

        Returns:
            ``(B, 1+N, D)`` normed output and ``{block: (B, 1+N, D)}`` (not normed).
        """
        wanted = set(block_indices(keep, len(self.blocks)))
        cls = self.cls_token.expand(tokens.shape[0], -1, -1).to(tokens.dtype)
        x = torch.cat([cls, tokens], dim=1)  # (B, 1+N, D)
        kept = {}
        for index, block in enumerate(self.blocks):
            x = block(x, attn_mask)
            if index in wanted:
                kept[index] = x
        return self.norm(x), kept

    # Forward ------------------------------------------------------------------------------

    def forward(
        self,
        x: ModelInput,
        times: Tensor | None = None,
        bands: Sequence[str] | None = None,
        *,
        blocks: Sequence[int] = (),
        frame_mask: Tensor | None = None,
    ) -> EncoderFeatures:
        """Encode every token of a multispectral time series.

        Args:
            x: ``(B, T, C, H, W)`` normalised inputs, or a sample/batch dict of raw reflectance
                (then :meth:`prepare` supplies the other arguments).
            times: ``(B, T)`` int64 seconds since 1970-01-01 UTC; required if temporal.
            bands: names of x's C channels; default ``config.input_order``.
            frame_mask: ``(B, T)`` bool, False for padded frames (ignored by attention).
            blocks: indices of blocks whose outputs to return in ``intermediates``.

        Returns:
            the named features.
        """
        inputs = (
            self.prepare(x)
            if isinstance(x, Mapping)
            else ModelInputs(x, times, bands, frame_mask=frame_mask)
        )
        return self.encode(inputs, blocks)

    def encode(self, inputs: ModelInputs, blocks: Sequence[int] = ()) -> EncoderFeatures:
        """:meth:`forward` on prepared inputs (cast to the weights' dtype)."""
        tokenized = self.tokenize(self.check_inputs(inputs))
        tokens, attn_mask = self.select_visible(tokenized)
        out, kept = self.run_blocks(tokens, attn_mask, blocks)
        batch, frames, groups, _, dim = tokenized.tokens.shape
        shape = (batch, frames, groups, *tokenized.patch_grid, dim)
        patch_tokens = out[:, 1:].reshape(shape)
        pooled = pool_tokens(patch_tokens, tokenized.frame_mask)
        if self.fc_norm is not None:
            pooled = self.fc_norm(pooled)
        return EncoderFeatures(
            cls=out[:, 0],
            tokens=patch_tokens,
            pooled=pooled,
            intermediates={index: value[:, 1:].reshape(shape) for index, value in kept.items()},
            intermediate_cls={index: value[:, 0] for index, value in kept.items()},
            groups=tokenized.selection.groups,
            frame_mask=tokenized.frame_mask,
            logits=None if self.head is None else self.head(pooled),
        )

    # timm's backbone interface (see satmae.models.backbone) ------------------------------------

    def forward_features(self, x: Tensor, times: Tensor | None = None) -> Tensor:
        """Tokens after the final norm, cls first: ``(B, 1+N, D)``.

        ``x`` is ``(B, C, H, W)`` or ``(B, T, C, H, W)``, normalised, in ``config.input_order``.
        """
        return backbone.forward_features(self, x, times)

    def forward_intermediates(
        self,
        x: Tensor,
        indices: int | Sequence[int] | None = None,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
        norm: bool = False,
        times: Tensor | None = None,
    ) -> list[Tensor] | tuple[Tensor, list[Tensor]]:
        """Block outputs as ``(B, D, h, w)`` maps (``"NCHW"``) or ``(B, N, D)`` (``"NLC"``).

        See :func:`satmae.models.backbone.forward_intermediates`.
        """
        return backbone.forward_intermediates(
            self, x, indices, norm, output_fmt, intermediates_only, times
        )

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Pool :meth:`forward_features` tokens; logits when the encoder has a head."""
        return backbone.forward_head(self, x, pre_logits)

    @torch.no_grad()
    def embed(
        self,
        x: ModelInput | np.ndarray[Any, Any] | Any,
        times: Tensor | None = None,
        bands: Sequence[str] | None = None,
        pool: PoolMode = "mean",
        frame_mask: Tensor | None = None,
        layers: Sequence[int] | None = None,
        batch_size: int | None = None,
    ) -> Embedding:
        """Embeddings for inference (no gradients), float32 whatever the weights' dtype.

        Args:
            x: a sample or batch dict of raw reflectance as read (normalised by the model); a
                normalised tensor or numpy array ``(B, T, C, H, W)`` / ``(B, C, H, W)`` for single
                images; or an xarray DataArray ``(time, band, y, x)`` / ``(band, y, x)`` of raw
                reflectance with band names (see :func:`satmae.models.arrays.embed_dataarray`).
            times: ``(B, T)`` (or ``(B,)`` for single images) seconds since epoch; tensors only.
            bands: names of x's channels (tensors only); default ``config.input_order``.
            pool: ``"mean"`` -> ``(B, D)`` pooled tokens, ``"cls"`` -> ``(B, D)`` cls token,
                ``"none"`` -> ``(B, T, G, h, w, D)`` tokens.
            frame_mask: ``(B, T)`` bool real frames (tensors only).
            layers: block indices (negative counts from the end) whose outputs to return,
                pooled the same way (without the final norm); the result is then
                ``{layer: embedding}``.
            batch_size: encode at most this many samples at a time to bound memory.

        Returns:
            the embedding tensor, ``{layer: tensor}`` with ``layers``, or xarray objects for an
            xarray input.

        Raises:
            ValueError: for an unknown ``pool``, a layer outside the model or a bad batch size.
        """
        if pool not in POOL_MODES:
            raise ValueError(f"pool must be one of {POOL_MODES}, got {pool!r}")
        if layers is not None:
            block_indices(layers, len(self.blocks), "layers")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
        if type(x).__module__.startswith("xarray"):
            from satmae.models.arrays import embed_dataarray

            return embed_dataarray(self, x, pool=pool, layers=layers, batch_size=batch_size)
        if isinstance(x, Mapping):
            inputs = self.prepare(x)
        else:
            image = torch.from_numpy(x) if isinstance(x, np.ndarray) else x
            if isinstance(image, Tensor) and image.ndim == 4:
                image = image.unsqueeze(1)
                times = None if times is None else torch.as_tensor(times).reshape(-1, 1)
            inputs = ModelInputs(image, times, bands, frame_mask=frame_mask)
        if isinstance(inputs.image, Tensor):
            inputs = inputs.to(self.cls_token.device)  # embed moves inputs; forward refuses
        inputs = self.check_inputs(inputs)
        size = batch_size or inputs.image.shape[0]
        parts = [
            self._embed_inputs(_batch_slice(inputs, start, start + size), pool, layers)
            for start in range(0, inputs.image.shape[0], size)
        ]
        merged = {key: torch.cat([part[key] for part in parts]) for key in parts[0]}
        return merged[None] if layers is None else {layer: merged[layer] for layer in layers}

    def _embed_inputs(
        self, inputs: ModelInputs, pool: PoolMode, layers: Sequence[int] | None
    ) -> dict[int | None, Tensor]:
        """One chunk: ``{None: final embedding}`` or ``{layer: embedding}``, float32."""
        depth = len(self.blocks)
        features = self.encode(inputs, () if layers is None else layers)
        if layers is None:
            final = {"mean": features.pooled, "cls": features.cls, "none": features.tokens}
            return {None: final[pool].float()}
        out: dict[int | None, Tensor] = {}
        for layer in layers:
            tokens = features.intermediates[layer % depth].float()
            if pool == "mean":
                out[layer] = pool_tokens(tokens, features.frame_mask)
            elif pool == "cls":
                out[layer] = features.intermediate_cls[layer % depth].float()
            else:
                out[layer] = tokens
        return out


def _batch_slice(inputs: ModelInputs, start: int, stop: int) -> ModelInputs:
    """Samples ``start:stop`` of a batch."""

    def part(value: Tensor | None) -> Tensor | None:
        return None if value is None else value[start:stop]

    return ModelInputs(
        inputs.image[start:stop],
        part(inputs.times),
        inputs.bands,
        part(inputs.valid),
        part(inputs.frame_mask),
        inputs.checked,
    )
