"""Convert official SatMAE / SatMAE++ state dicts to ours and back.

Three official layouts are supported (reference note §3, §4, §6): group-channel (``group_c``),
temporal (3 RGB frames) and vanilla, each as a pretraining MAE or a fine-tuned ViT. The key
mapping is documented in ``docs/checkpoints.md``.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from satmae.bands import L1C_BANDS, SATMAE_BANDS, SATMAE_GROUPS
from satmae.models.config import SATMAE_TIME_FIELDS, EncoderConfig, MAEConfig
from satmae.models.encodings import index_encoding, spatial_encoding
from satmae.normalization import Normalization, load_stats
from satmae.spec import ModelSpec

OfficialKind = Literal["group_channel", "temporal", "vanilla"]
Stage = Literal["pretrain", "finetune"]

RGB_BANDS_ORDER: tuple[str, ...] = ("B04", "B03", "B02")
TABLE_TOLERANCE = 1e-5  # SatMAE++ builds tables in float32: up to 7.2e-7 from ours
OFFICIAL_FACTORIES: dict[str, tuple[int, int, int]] = {
    "mae_vit_base_patch16": (768, 12, 12),
    "mae_vit_base_patch16_dec512d8b": (768, 12, 12),
    "mae_vit_large_patch16": (1024, 24, 16),
    "mae_vit_large_patch16_dec512d8b": (1024, 24, 16),
    "mae_vit_large_patch16_samemask": (1024, 24, 16),
    "mae_vit_huge_patch14": (1280, 32, 16),
    "mae_vit_huge_patch14_dec512d8b": (1280, 32, 16),
    "vit_base_patch16": (768, 12, 12),
    "vit_large_patch16": (1024, 24, 16),
    "vit_huge_patch14": (1280, 32, 16),
}
"""Official factories (``args.model``) -> (width, depth, heads); reference §3.1, §3.3, §4.1."""

OFFICIAL_VARIANTS: dict[tuple[int, int], int] = {(768, 12): 12, (1024, 24): 16, (1280, 32): 16}
"""(width, depth) of the published ViT-B/L/H -> heads, for checkpoints saved without args."""

OFFICIAL_DECODER_HEADS = 16
"""Every official MAE factory uses a 16-head decoder."""
_SATMAE_PP_PREFIXES = ("proj_up_conv.", "proj_up_norm.", "up_block")


@dataclass
class ConversionReport:
    """What a conversion did.

    Attributes:
        kind: the official layout.
        stage: ``"pretrain"`` (MAE with decoder) or ``"finetune"`` (ViT with head).
        missing: keys the target needed but the source lacked.
        unexpected: source keys that were not used (e.g. SatMAE++ upsamplers).
        notes: other facts worth knowing (stored tables kept, legacy slot order, …).
    """

    kind: OfficialKind
    stage: Stage
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def official_state(
    checkpoint: Any, source: str | Path = "checkpoint"
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """The state dict and training arguments of a loaded official checkpoint.

    Accepts ``{"model": state_dict, "args": Namespace, ...}`` or a bare state dict.

    Raises:
        ValueError: if it is not an official SatMAE checkpoint.
    """
    state: Any = checkpoint
    args: dict[str, Any] = {}
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("model"), Mapping):
        state = dict(checkpoint["model"])
        raw = checkpoint.get("args")
        args = vars(raw) if isinstance(raw, argparse.Namespace) else dict(raw or {})
    if not isinstance(state, Mapping) or not is_official_state_dict(state):
        keys = sorted(state)[:8] if isinstance(state, Mapping) else type(state).__name__
        raise ValueError(
            f"{source} is not a satmae bundle, Lightning checkpoint with a 'satmae_config' entry "
            f"or official SatMAE checkpoint: expected {{'model': state_dict, 'args': ...}} with "
            f"'cls_token' and 'patch_embed.*' keys, got {keys}"
        )
    return dict(state), args


def is_official_state_dict(state: Mapping[str, Any]) -> bool:
    """Whether the keys look like an official SatMAE layout (not ours)."""
    return "cls_token" in state and any(key.startswith("patch_embed.") for key in state)


def detect(state: Mapping[str, Tensor]) -> tuple[OfficialKind, Stage]:
    """Name the official layout of a state dict.

    Raises:
        ValueError: if the keys match no official layout.
    """
    if not is_official_state_dict(state):
        raise ValueError(
            "not an official SatMAE state dict: expected 'cls_token' and 'patch_embed.*' keys, "
            f"got {sorted(state)[:6]}…"
        )
    stage: Stage = "pretrain" if "decoder_embed.weight" in state else "finetune"
    if "patch_embed.0.proj.weight" in state:
        return "group_channel", stage
    width = state["pos_embed"].shape[-1]
    return ("vanilla" if width == state["cls_token"].shape[-1] else "temporal"), stage


def _count(state: Mapping[str, Tensor], prefix: str) -> int:
    pattern = re.compile(rf"^{re.escape(prefix)}\.(\d+)\.")
    return len({match.group(1) for key in state if (match := pattern.match(key))})


def official_heads(width: int, depth: int, args: Mapping[str, Any]) -> int:
    """Encoder head counts of an official checkpoint, never guessed.

    The head count does not change any weight shape, so it must come from the checkpoint's
    ``args``: an explicit ``num_heads``, else the model factory named in ``args.model``, else
    the published variant with this width and depth (:data:`OFFICIAL_VARIANTS`).

    Raises:
        ValueError: if ``args.model`` contradicts the weights, or nothing identifies the count.
    """
    if args.get("num_heads"):
        return int(args["num_heads"])
    model = str(args.get("model") or "")
    if model in OFFICIAL_FACTORIES:
        factory_width, factory_depth, heads = OFFICIAL_FACTORIES[model]
        if (factory_width, factory_depth) != (width, depth):
            raise ValueError(
                f"the checkpoint's args name the official factory {model!r} (width "
                f"{factory_width}, depth {factory_depth}) but its weights have width {width} and "
                f"depth {depth}; fix args.model or give args.num_heads"
            )
        return heads
    if (width, depth) in OFFICIAL_VARIANTS:
        return OFFICIAL_VARIANTS[(width, depth)]
    known = ", ".join(f"{w}x{d}" for w, d in OFFICIAL_VARIANTS)
    raise ValueError(
        f"an official checkpoint of width {width} and depth {depth} fits no published SatMAE "
        f"variant (width x depth: {known}) and its args name no known factory "
        f"({model or 'none'}); the head count cannot be read from the weights, so give it as "
        "args.num_heads (torch.save({'model': state, 'args': {'num_heads': N}}, path))"
    )


def official_config(
    state: Mapping[str, Tensor], args: Mapping[str, Any] | None = None
) -> EncoderConfig:
    """Our configuration for an official state dict (and its training ``args``).

    Returns:
        an :class:`MAEConfig` for a pretraining checkpoint, an :class:`EncoderConfig` for a
        fine-tuned one (it has no decoder).

    Raises:
        ValueError: for a layout or size that fits no official variant.
    """
    args = dict(args or {})
    kind, stage = detect(state)
    dim = state["cls_token"].shape[-1]
    patches = state["pos_embed"].shape[1] - 1
    grid = math.isqrt(patches)
    if kind == "group_channel":
        convs = [state[f"patch_embed.{g}.proj.weight"] for g in range(_count(state, "patch_embed"))]
        patch = convs[0].shape[-1]
        dropped = set(args.get("dropped_bands") or (0, 9, 10))
        kept = [band for index, band in enumerate(L1C_BANDS) if index not in dropped]
        grouped = args.get("grouped_bands") or [[0, 1, 2, 6], [3, 4, 5, 7], [8, 9]]
        if [len(g) for g in grouped] != [conv.shape[1] for conv in convs]:
            raise ValueError(
                f"checkpoint patch embeddings take {[c.shape[1] for c in convs]} bands per group "
                f"but the groups are {grouped}; pass the training args"
            )
        groups = tuple(tuple(kept[i] for i in group) for group in grouped)
        sizes = [len(group) for group in groups]
        offsets = [sum(sizes[:i]) for i in range(len(sizes))]
        heads = tuple(tuple(kept[o : o + n]) for o, n in zip(offsets, sizes, strict=True))
        fields: dict[str, Any] = {
            "band_groups": groups,
            "input_bands": tuple(kept),
            "group_dim": state["channel_embed"].shape[-1],
            "time_fields": (),
            "max_frames": 1,
        }
        pretrain_fields: dict[str, Any] = {
            "head_bands": heads if heads != groups else None,
            "mask_groups": "consistent" if args.get("spatial_mask") else "independent",
            "norm_pix_scope": "location",
        }
    else:
        conv = state["patch_embed.proj.weight"]
        patch = conv.shape[-1]
        channels = conv.shape[1]
        if channels == 3:
            groups = (RGB_BANDS_ORDER,)
        elif channels == len(SATMAE_BANDS):
            groups = (SATMAE_BANDS,)
        else:
            raise ValueError(
                f"official {kind} model with {channels} input channels is not supported; "
                "expected 3 or 10"
            )
        fields = {"band_groups": groups, "group_dim": 0}
        pretrain_fields = {}
        if kind == "temporal":
            samemask = "samemask" in str(args.get("model", ""))
            fields |= {
                "time_fields": SATMAE_TIME_FIELDS,
                "time_dim": dim - state["pos_embed"].shape[-1],
                "max_frames": 3,
            }
            pretrain_fields["mask_time"] = "consistent" if samemask else "independent"
        else:
            fields |= {"time_fields": (), "max_frames": 1}
    depth = _count(state, "blocks")
    fields |= {
        "img_size": (grid * patch, grid * patch),
        "patch_size": patch,
        "embed_dim": dim,
        "depth": depth,
        "num_heads": official_heads(dim, depth, args),
    }
    if stage == "finetune":
        return EncoderConfig(
            **fields,
            global_pool_norm="fc_norm.weight" in state,
            num_classes=state["head.weight"].shape[0] if "head.weight" in state else 0,
        )
    decoder_dim = state["decoder_embed.weight"].shape[0]
    pretrain_fields |= {
        "mask_ratio": float(args.get("mask_ratio", 0.75)),
        "norm_pix_loss": bool(args.get("norm_pix_loss", False)),
        "decoder_dim": decoder_dim,
        "decoder_depth": _count(state, "decoder_blocks"),
        "decoder_num_heads": int(args.get("decoder_num_heads") or OFFICIAL_DECODER_HEADS),
    }
    if kind == "group_channel":
        pretrain_fields["decoder_group_dim"] = state["decoder_channel_embed"].shape[-1]
    if kind == "temporal":
        pretrain_fields["decoder_time_dim"] = decoder_dim - state["decoder_pos_embed"].shape[-1]
    return MAEConfig(**fields, **pretrain_fields)


def official_normalization(config: EncoderConfig) -> Normalization:
    """The statistics and mode the official code trained this model with (reference §7.2).

    Sentinel-2 models (group-channel and 10-band) use the fMoW-Sentinel statistics with the
    ``clip(0.5 + z/4)`` mapping on L1C reflectance ×10000; RGB models use the fMoW-RGB
    statistics, stored ×255 so that 8-bit pixel values are standardised as ``ToTensor`` +
    ``Normalize`` did.
    """
    if set(config.bands) <= set(RGB_BANDS_ORDER):
        return Normalization(load_stats("fmow_rgb"), "zscore").for_bands(config.bands)
    return Normalization(load_stats("satmae_official"), "satmae").for_bands(config.bands)


def convert_official(
    checkpoint: Any, source: str | Path = "checkpoint"
) -> tuple[dict[str, Tensor], ModelSpec, list[str]]:
    """Our state dict, spec (official statistics included) and unused keys of a loaded ``.pth``.

    Raises:
        ValueError: if it is not an official checkpoint or fits no official variant.
    """
    state, args = official_state(checkpoint, source)
    config, converted, report = from_official(state, args)
    provenance = {
        "source": str(source),
        "official": report.kind,
        "stage": report.stage,
        "notes": report.notes,
    }
    spec = ModelSpec.from_config(
        config.to_dict(),
        official_normalization(config),
        provenance,
        contents="mae" if report.stage == "pretrain" else "encoder",
        source=str(source),
    )
    return converted, spec, report.unexpected


def official_spec(checkpoint: Any, source: str | Path = "checkpoint") -> ModelSpec:
    """The spec of a loaded official checkpoint (see :func:`convert_official`)."""
    return convert_official(checkpoint, source)[1]


def _pred_rows_to_ours(weight: Tensor, channels: int) -> Tensor:
    """Vanilla/temporal ``decoder_pred`` rows ordered (p, q, c) -> ours (c, p, q)."""
    rest = weight.shape[1:]
    return weight.reshape(-1, channels, *rest).transpose(0, 1).reshape(weight.shape)


def _pred_rows_to_official(weight: Tensor, channels: int) -> Tensor:
    """Inverse of :func:`_pred_rows_to_ours`."""
    rest = weight.shape[1:]
    return weight.reshape(channels, -1, *rest).transpose(0, 1).reshape(weight.shape)


def _matches(table: Tensor, reference: Tensor) -> bool:
    return table.shape == reference.shape and bool(
        (table.float() - reference).abs().max() <= TABLE_TOLERANCE
    )


def from_official(
    state: Mapping[str, Tensor], args: Mapping[str, Any] | None = None
) -> tuple[EncoderConfig, dict[str, Tensor], ConversionReport]:
    """Convert an official state dict to our configuration and key names.

    Frozen sin-cos tables are dropped when they equal ours (they are recomputed); tables that
    were fine-tuned are kept as learned tables (``encoding="learned"``). The cls encodings of
    fine-tuned models (``pos_embed[0]``, ``channel_cls_embed``) are folded into ``cls_token``.

    Returns:
        our config (an :class:`MAEConfig` for pretraining, an :class:`EncoderConfig` for a
        fine-tuned ViT), our state dict (``encoder.*`` and, for pretraining, ``decoder.*``) and
        a report naming every unused key.
    """
    kind, stage = detect(state)
    config = official_config(state, args)
    report = ConversionReport(kind, stage)
    used: set[str] = set()
    out: dict[str, Tensor] = {}

    def take(key: str) -> Tensor:
        if key not in state:
            report.missing.append(key)
            raise ValueError(
                f"official {kind} {stage} checkpoint lacks key {key!r}; expected the full "
                f"layout of reference §6, given {len(state)} keys"
            )
        used.add(key)
        return state[key]

    cpu = torch.device("cpu")
    spatial_dim, group_dim, _ = config.widths()
    grid = config.patch_grid()
    pos = take("pos_embed")[0]  # (L+1, Ds)
    cls = take("cls_token")
    learned = False
    if not _matches(pos[1:], spatial_encoding(spatial_dim, *grid, cpu)):
        learned = True
    if kind == "group_channel":
        channel = take("channel_embed")[0]
        if not _matches(channel, index_encoding(group_dim, config.num_groups, cpu)):
            learned = True
    if stage == "finetune":
        cls_code = pos[:1]
        if kind == "group_channel":
            extra = take("channel_cls_embed")[0] if "channel_cls_embed" in state else None
            cls_code = torch.cat(
                [cls_code, extra if extra is not None else pos.new_zeros(1, group_dim)], -1
            )
        elif kind == "temporal":
            cls_code = torch.cat([cls_code, pos.new_zeros(1, config.embed_dim - spatial_dim)], -1)
        cls = cls + cls_code
    out["encoder.cls_token"] = cls
    if learned:
        config = replace(config, encoding="learned")
        out["encoder.tokenizer.encodings.spatial_table"] = pos[1:].clone()
        out["encoder.tokenizer.encodings.group_table"] = (
            channel.clone() if kind == "group_channel" else pos.new_zeros(1, 0)
        )
        report.notes.append(
            "encoder tables differ from sin-cos (fine-tuned): kept as learned tables"
        )
    if kind == "group_channel":
        for group in range(config.num_groups):
            for name in ("weight", "bias"):
                out[f"encoder.tokenizer.patch_embed.{group}.{name}"] = take(
                    f"patch_embed.{group}.proj.{name}"
                )
    else:
        for name in ("weight", "bias"):
            out[f"encoder.tokenizer.patch_embed.0.{name}"] = take(f"patch_embed.proj.{name}")
    for key in state:
        if key.startswith("blocks.") or key.startswith(("norm.", "fc_norm.", "head.")):
            out[f"encoder.{key}"] = take(key)
    if isinstance(config, MAEConfig):
        out["decoder.mask_token"] = take("mask_token")
        for key in state:
            if key.startswith("decoder_blocks."):
                out["decoder.blocks." + key.removeprefix("decoder_blocks.")] = take(key)
            elif key.startswith(("decoder_embed.", "decoder_norm.")):
                out["decoder." + key.removeprefix("decoder_")] = take(key)
        dec_spatial, dec_group, _ = config.widths(decoder=True)
        if not _matches(
            take("decoder_pos_embed")[0, 1:], spatial_encoding(dec_spatial, *grid, cpu)
        ):
            report.notes.append("decoder_pos_embed differs from sin-cos; recomputed sin-cos used")
        if kind == "group_channel":
            table = take("decoder_channel_embed")[0]
            if not _matches(table, index_encoding(dec_group, config.num_groups + 1, cpu)):
                report.notes.append("decoder_channel_embed differs from sin-cos; recomputed used")
            for group in range(config.num_groups):
                for name in ("weight", "bias"):
                    out[f"decoder.heads.{group}.{name}"] = take(f"decoder_pred.{group}.{name}")
            if config.head_bands is not None:
                report.notes.append(
                    f"legacy decoder slot order kept: heads emit {config.head_bands} "
                    "(reference §3.2.6); set head_bands=None before further pretraining"
                )
        else:
            channels = len(config.bands)
            out["decoder.heads.0.weight"] = _pred_rows_to_ours(
                take("decoder_pred.weight"), channels
            )
            out["decoder.heads.0.bias"] = _pred_rows_to_ours(take("decoder_pred.bias"), channels)
    has_upsampler = any(key.startswith(_SATMAE_PP_PREFIXES) for key in state)
    if has_upsampler and not isinstance(config, MAEConfig):
        raise ValueError(
            f"official {kind} checkpoint has SatMAE++ up-sampler keys but no decoder "
            "(decoder_embed.*) for them to up-sample: a multi-scale model needs its decoder; "
            "load the pretraining checkpoint, or drop the proj_up_*/up_block* keys to read "
            "the encoder"
        )
    if isinstance(config, MAEConfig) and has_upsampler:
        config = upsampler_from_official(state, config, kind, take, out)
        report.notes.append(
            f"SatMAE++ up-sampler loaded: scales {config.upsample_scales}, SatMAE++ loss "
            "(multiscale_loss='satmae_pp'); set multiscale_loss='masked' for the corrected one"
        )
    report.unexpected = sorted(set(state) - used)
    return config, out, report


def _upsampler_names(kind: OfficialKind, num_blocks: int) -> dict[str, str]:
    """Our up-sampler key prefixes -> official ones (reference §6.2, SatMAE++ extra keys).

    Group-channel checkpoints name their blocks ``up_block1``, ``up_block2``; the vanilla one
    has a single ``up_block``.

    Raises:
        ValueError: for a layout SatMAE++ never had (temporal, or a vanilla model with more
            than one block).
    """
    if kind == "temporal" or (kind == "vanilla" and num_blocks != 1):
        raise ValueError(
            f"SatMAE++ has no official {kind} layout with {num_blocks} up-sampling blocks "
            "(group-channel: up_block1, up_block2, …; vanilla: one up_block); keep this model "
            "in our format (satmae export)"
        )
    names = {"upsampler.proj.": "proj_up_conv.", "upsampler.proj_norm.": "proj_up_norm."}
    for index in range(num_blocks):
        official = "up_block." if kind == "vanilla" else f"up_block{index + 1}."
        names[f"upsampler.blocks.{index}."] = official
    return names


def upsampler_from_official(
    state: Mapping[str, Tensor],
    config: MAEConfig,
    kind: OfficialKind,
    take: Callable[[str], Tensor],
    out: dict[str, Tensor],
) -> MAEConfig:
    """Add a SatMAE++ checkpoint's up-sampler to ``out`` and its scales to the config.

    Args:
        state: the official state dict.
        config: our configuration so far.
        kind: the official layout.
        take: reads a key of ``state`` and records it as used (raises for a missing one).
        out: our state dict, completed in place.

    Returns:
        the configuration with ``upsample_scales`` and SatMAE++'s loss.

    Raises:
        ValueError: for up-sampler keys without any up-sampling block.
    """
    if kind == "vanilla":
        num_blocks = int("up_block.up_conv.weight" in state)
    else:
        num_blocks = _count_numbered(state, "up_block")
    if num_blocks == 0:
        found = sorted(key for key in state if key.startswith(_SATMAE_PP_PREFIXES))[:6]
        raise ValueError(
            f"official {kind} checkpoint has SatMAE++ up-sampler keys {found} but no up-sampling "
            "block (expected up_block1.* for group-channel, up_block.* for vanilla)"
        )
    for required in ("proj_up_conv.weight", "proj_up_norm.weight"):
        take(required)
    for ours_prefix, official_prefix in _upsampler_names(kind, num_blocks).items():
        for key in [k for k in state if k.startswith(official_prefix)]:
            out[ours_prefix + key.removeprefix(official_prefix)] = take(key)
    return replace(
        config,
        upsample_scales=tuple(2 ** (index + 1) for index in range(num_blocks)),
        multiscale_loss="satmae_pp",
    )


def _count_numbered(state: Mapping[str, Tensor], prefix: str) -> int:
    pattern = re.compile(rf"^{re.escape(prefix)}(\d+)\.")
    return len({match.group(1) for key in state if (match := pattern.match(key))})


def to_official(
    config: EncoderConfig, state: Mapping[str, Tensor], stage: Stage | None = None
) -> dict[str, Tensor]:
    """Convert our state dict (``encoder.*`` and ``decoder.*`` keys) to the official layout.

    Args:
        config: our configuration; must be group-channel (G > 1, no time), temporal (G = 1,
            time) or vanilla (G = 1, no time).
        state: our state dict.
        stage: ``"pretrain"`` (needs decoder keys) or ``"finetune"``; default from the keys.

    Raises:
        ValueError: for a spectro-temporal configuration, which has no official layout.
    """
    if config.num_groups > 1 and config.temporal:
        raise ValueError(
            "spectro-temporal models (several groups and a time encoding) have no official "
            f"SatMAE layout; got groups {config.band_groups} and time fields {config.time_fields}"
        )
    kind: OfficialKind = (
        "group_channel" if config.num_groups > 1 else "temporal" if config.temporal else "vanilla"
    )
    if stage is None:
        stage = "pretrain" if any(key.startswith("decoder.") for key in state) else "finetune"
    if stage == "pretrain" and not isinstance(config, MAEConfig):
        raise ValueError("a pretraining checkpoint needs an MAEConfig (decoder fields)")
    cpu = torch.device("cpu")
    grid = config.patch_grid()
    spatial_dim, group_dim, _ = config.widths()
    if config.encoding == "learned":
        spatial = state["encoder.tokenizer.encodings.spatial_table"]
        group_table = state["encoder.tokenizer.encodings.group_table"]
    else:
        spatial = spatial_encoding(spatial_dim, *grid, cpu)
        group_table = index_encoding(group_dim, config.num_groups, cpu)
    out: dict[str, Tensor] = {
        "cls_token": state["encoder.cls_token"],
        "pos_embed": torch.cat([spatial.new_zeros(1, spatial_dim), spatial])[None],
    }
    if kind == "group_channel":
        out["channel_embed"] = group_table[None]
        if stage == "finetune":
            out["channel_cls_embed"] = group_table.new_zeros(1, 1, group_dim)
        for group in range(config.num_groups):
            for name in ("weight", "bias"):
                out[f"patch_embed.{group}.proj.{name}"] = state[
                    f"encoder.tokenizer.patch_embed.{group}.{name}"
                ]
    else:
        for name in ("weight", "bias"):
            out[f"patch_embed.proj.{name}"] = state[f"encoder.tokenizer.patch_embed.0.{name}"]
    for key, value in state.items():
        if key.startswith(
            ("encoder.blocks.", "encoder.norm.", "encoder.fc_norm.", "encoder.head.")
        ):
            out[key.removeprefix("encoder.")] = value
    if isinstance(config, MAEConfig) and stage == "pretrain":
        dec_spatial, dec_group, _ = config.widths(decoder=True)
        table = spatial_encoding(dec_spatial, *grid, cpu)
        out["mask_token"] = state["decoder.mask_token"]
        out["decoder_embed.weight"] = state["decoder.embed.weight"]
        out["decoder_embed.bias"] = state["decoder.embed.bias"]
        out["decoder_pos_embed"] = torch.cat([table.new_zeros(1, dec_spatial), table])[None]
        if kind == "group_channel":
            out["decoder_channel_embed"] = index_encoding(dec_group, config.num_groups + 1, cpu)[
                None
            ]
        for key, value in state.items():
            if key.startswith("decoder.blocks."):
                out["decoder_blocks." + key.removeprefix("decoder.blocks.")] = value
        out["decoder_norm.weight"] = state["decoder.norm.weight"]
        out["decoder_norm.bias"] = state["decoder.norm.bias"]
        if kind == "group_channel":
            for group in range(config.num_groups):
                for name in ("weight", "bias"):
                    out[f"decoder_pred.{group}.{name}"] = state[f"decoder.heads.{group}.{name}"]
        else:
            channels = len(config.bands)
            out["decoder_pred.weight"] = _pred_rows_to_official(
                state["decoder.heads.0.weight"], channels
            )
            out["decoder_pred.bias"] = _pred_rows_to_official(
                state["decoder.heads.0.bias"], channels
            )
        if config.upsample_scales:
            names = _upsampler_names(kind, len(config.upsample_scales))
            for key, value in state.items():
                for ours_prefix, official_prefix in names.items():
                    if key.startswith(ours_prefix):
                        out[official_prefix + key.removeprefix(ours_prefix)] = value
    return out


def official_group_channel_heads() -> tuple[tuple[str, ...], ...]:
    """Bands emitted by each official group-channel decoder head (legacy slot order)."""
    sizes = [len(group) for group in SATMAE_GROUPS]
    offsets = [sum(sizes[:i]) for i in range(len(sizes))]
    return tuple(tuple(SATMAE_BANDS[o : o + n]) for o, n in zip(offsets, sizes, strict=True))
