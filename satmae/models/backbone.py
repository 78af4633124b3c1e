"""timm's backbone interface for :class:`SatMAEEncoder`, and its ``features_only`` wrapper.

Downstream libraries build on timm models through ``forward_features``,
``forward_intermediates``, ``forward_head``, ``num_features`` and ``features_only=True``. These
functions implement them on the encoder's named steps; the encoder's methods delegate here.
Inputs are normalised ``(B, C, H, W)`` (or ``(B, T, C, H, W)``) tensors in the model's input order
(``config.input_order``); temporal models also need ``times``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from timm.models._features import FeatureInfo
from torch import Tensor, nn

from satmae.models.inputs import ModelInputs, block_indices

if TYPE_CHECKING:
    from satmae.models.encoder import EncoderFeatures, SatMAEEncoder

OUTPUT_FORMATS: tuple[str, ...] = ("NCHW", "NLC")


def encode(
    encoder: SatMAEEncoder, x: Tensor, times: Tensor | None, blocks: Sequence[int] = ()
) -> EncoderFeatures:
    """Run the encoder on a timm-style tensor: ``(B, C, H, W)`` is one frame per sample."""
    if isinstance(x, Tensor) and x.ndim == 4:
        x = x.unsqueeze(1)  # (B, 1, C, H, W)
        times = None if times is None else times.reshape(-1, 1)
    if encoder.config.temporal and times is None:
        raise ValueError(
            f"this encoder encodes acquisition time {encoder.config.time_fields}: pass "
            "times=(B, T) int64 seconds since epoch, or build a model without time "
            "(timm.create_model(..., time_fields=()))"
        )
    return encoder.encode(ModelInputs(x, times), blocks)


def forward_features(encoder: SatMAEEncoder, x: Tensor, times: Tensor | None = None) -> Tensor:
    """Tokens after the final norm, cls first: ``(B, 1+N, D)`` with ``N = T·G·h·w``."""
    features = encode(encoder, x, times)
    return torch.cat([features.cls[:, None], features.tokens.flatten(1, 4)], dim=1)


def forward_head(encoder: SatMAEEncoder, x: Tensor, pre_logits: bool = False) -> Tensor:
    """Pool ``(B, 1+N, D)`` tokens from :func:`forward_features` and apply the head if any."""
    pooled = x[:, 1:].mean(dim=1)
    if encoder.fc_norm is not None:
        pooled = encoder.fc_norm(pooled)
    if pre_logits or encoder.head is None:
        return pooled
    logits: Tensor = encoder.head(pooled)
    return logits


def forward_intermediates(
    encoder: SatMAEEncoder,
    x: Tensor,
    indices: int | Sequence[int] | None = None,
    norm: bool = False,
    output_fmt: str = "NCHW",
    intermediates_only: bool = False,
    times: Tensor | None = None,
) -> list[Tensor] | tuple[Tensor, list[Tensor]]:
    """Block outputs in timm's convention.

    Args:
        encoder: the encoder.
        x: ``(B, C, H, W)`` or ``(B, T, C, H, W)`` normalised input.
        indices: an int n takes the last n blocks, a sequence the listed blocks, ``None`` all.
        norm: apply the final norm to each intermediate.
        output_fmt: ``"NCHW"`` -> ``(B, D, h, w)`` maps averaged over frames and groups;
            ``"NLC"`` -> ``(B, N, D)`` patch tokens.
        intermediates_only: return only the intermediates.
        times: ``(B, T)`` (or ``(B,)``) seconds since epoch, for temporal models.

    Returns:
        the list of intermediates, or ``(final tokens (B, 1+N, D), intermediates)``.
    """
    if output_fmt not in OUTPUT_FORMATS:
        raise ValueError(f"output_fmt must be one of {OUTPUT_FORMATS}, got {output_fmt!r}")
    take = _take(len(encoder.blocks), indices, "indices")
    features = encode(encoder, x, times, blocks=take)
    intermediates = []
    for index in take:
        tokens = features.intermediates[index]  # (B, T, G, h, w, D)
        if norm:
            tokens = encoder.norm(tokens)
        if output_fmt == "NCHW":
            intermediates.append(features.dense("mean", tokens))  # (B, D, h, w)
        else:
            intermediates.append(tokens.flatten(1, 4))  # (B, N, D)
    if intermediates_only:
        return intermediates
    final = torch.cat([features.cls[:, None], features.tokens.flatten(1, 4)], dim=1)
    return final, intermediates


def _take(depth: int, indices: int | Sequence[int] | None, name: str) -> list[int]:
    """Block indices in timm's convention: n = the last n blocks, a sequence = those blocks.

    Raises:
        ValueError: for a count outside ``[1, depth]`` or an index outside the model.
    """
    if indices is None:
        return list(range(depth))
    if isinstance(indices, int) and not isinstance(indices, bool):
        if not 1 <= indices <= depth:
            raise ValueError(
                f"{name}={indices} asks for the last {indices} blocks, outside the model's "
                f"{depth} blocks; give 1 to {depth}, or a list of block indices"
            )
        return list(range(depth - indices, depth))
    if isinstance(indices, str) or not isinstance(indices, Sequence) or not indices:
        raise ValueError(
            f"{name} must be a block count or a non-empty list of indices, got {indices!r}"
        )
    return block_indices(indices, depth, name)


def feature_info(encoder: SatMAEEncoder) -> list[dict[str, Any]]:
    """Timm's per-block feature description: channels and reduction (the patch size)."""
    return [
        {"module": f"blocks.{index}", "num_chs": encoder.num_features,
         "reduction": encoder.config.patch_size}
        for index in range(len(encoder.blocks))
    ]  # fmt: skip


class FeatureMaps(nn.Module):
    """``features_only`` view of an encoder: ``forward(x)`` -> list of ``(B, D, h, w)`` maps.

    Args:
        encoder: the encoder (blocks after the last wanted one are dropped).
        out_indices: an int n takes the last n blocks, a sequence the listed blocks.
        norm: apply the final norm to each map.
    """

    def __init__(
        self, encoder: SatMAEEncoder, out_indices: int | Sequence[int] = 4, norm: bool = False
    ) -> None:
        super().__init__()
        depth = len(encoder.blocks)
        count = min(out_indices, depth) if isinstance(out_indices, int) else out_indices
        take = _take(depth, count, "out_indices")
        last = max(take)
        encoder.blocks = encoder.blocks[: last + 1]
        encoder.head = None
        self.model = encoder
        self.out_indices = tuple(take)
        self.norm = norm
        self.feature_info = FeatureInfo(feature_info(encoder), tuple(take))

    def forward(self, x: Tensor, times: Tensor | None = None) -> list[Tensor]:
        """``(B, C, H, W)`` (or ``(B, T, C, H, W)``) -> one ``(B, D, h, w)`` map per index."""
        maps = forward_intermediates(
            self.model, x, self.out_indices, self.norm, "NCHW", True, times
        )
        assert isinstance(maps, list)
        return maps
