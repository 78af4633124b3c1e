"""Named model configurations: sizes, SatMAE's published setups, the Sentinel-2 default.

Every entry is also registered with timm, so ``timm.create_model("satmae_tiny")`` (the MAE) and
``timm.create_model("satmae_tiny_encoder", in_chans=10, features_only=...)`` (the encoder as a
timm backbone) work once ``satmae.models`` has been imported.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any

from satmae.bands import SATMAE_BANDS, SATMAE_GROUPS
from satmae.models.backbone import FeatureMaps
from satmae.models.config import SATMAE_TIME_FIELDS, MAEConfig
from satmae.models.encoder import SatMAEEncoder
from satmae.models.mae import MaskedAutoencoder
from satmae.models.official import official_normalization
from satmae.normalization import StatsLike

RGB_GROUP: tuple[tuple[str, ...], ...] = (("B04", "B03", "B02"),)
"""fMoW-RGB models read red, green, blue."""

_S2 = MAEConfig()  # spectro-temporal Sentinel-2 base: 10 bands, 3 groups, (year, day of year)

_OFFICIAL_DECODER: dict[str, Any] = {
    "decoder_dim": 512,
    "decoder_depth": 8,
    "decoder_num_heads": 16,
}
_GROUP_CHANNEL = MAEConfig(
    band_groups=SATMAE_GROUPS,
    input_bands=SATMAE_BANDS,
    img_size=(96, 96),
    patch_size=8,
    group_dim=256,
    time_fields=(),
    max_frames=1,
    decoder_group_dim=128,
    mask_groups="independent",
    norm_pix_loss=False,
    norm_pix_scope="location",
    **_OFFICIAL_DECODER,
)
_LARGE: dict[str, Any] = {"embed_dim": 1024, "depth": 24, "num_heads": 16}

MODEL_CONFIGS: dict[str, MAEConfig] = {
    # Tiny: for tests; spectro-temporal with every axis exercised.
    "satmae_tiny": MAEConfig(
        img_size=(32, 32), patch_size=8, embed_dim=64, depth=2, num_heads=2, group_dim=16,
        time_dim=16, decoder_dim=32, decoder_depth=1, decoder_num_heads=2, decoder_group_dim=8,
        decoder_time_dim=8, max_frames=4,
    ),
    # Spectro-temporal Sentinel-2 sizes (SatMAE groups, time = year and day of year).
    "satmae_small": replace(_S2, embed_dim=384, depth=12, num_heads=6, group_dim=64, time_dim=64),
    "satmae_base": _S2,
    "satmae_large": replace(_S2, **_LARGE, group_dim=192, time_dim=192),
    "satmae_huge": replace(
        _S2, embed_dim=1280, depth=32, num_heads=16, group_dim=256, time_dim=256
    ),
    # SatMAE's published setups (official checkpoints load into these).
    "satmae_group_channel_vit_base_patch8_96": _GROUP_CHANNEL,
    "satmae_group_channel_vit_large_patch8_96": replace(_GROUP_CHANNEL, **_LARGE),
    "satmae_temporal_vit_large_patch16_224": MAEConfig(
        band_groups=RGB_GROUP, img_size=(224, 224), patch_size=16, **_LARGE,
        time_fields=SATMAE_TIME_FIELDS, time_dim=384, max_frames=3, decoder_time_dim=192,
        mask_time="independent", norm_pix_loss=True, **_OFFICIAL_DECODER,
    ),
    "satmae_vit_large_patch16_224": MAEConfig(
        band_groups=RGB_GROUP, img_size=(224, 224), patch_size=16, **_LARGE, time_fields=(),
        max_frames=1, **_OFFICIAL_DECODER,
    ),
}  # fmt: skip
"""Registered configurations by name."""

_SATMAE_PP: dict[str, Any] = {"multiscale_loss": "satmae_pp", "mse_weight": 0.6, "l1_weight": 0.4}
MODEL_CONFIGS |= {
    # SatMAE++'s published setups (reference §5): the SatMAE models plus the up-sampler, with
    # its exact loss; official SatMAE++ checkpoints load into these.
    "satmae_pp_group_channel_vit_base_patch8_96": replace(
        _GROUP_CHANNEL, upsample_scales=(2, 4), **_SATMAE_PP
    ),
    "satmae_pp_group_channel_vit_large_patch8_96": replace(
        _GROUP_CHANNEL, **_LARGE, upsample_scales=(2, 4), **_SATMAE_PP
    ),
    "satmae_pp_vit_large_patch16_224": replace(
        MODEL_CONFIGS["satmae_vit_large_patch16_224"], upsample_scales=(2,), **_SATMAE_PP
    ),
}

MODEL_CONFIGS["satmae_s2_default"] = MODEL_CONFIGS["satmae_base"]


DEFAULT_STATS = "s2_l2a"
"""Statistics that registry models carry unless told otherwise (Sentinel-2 L2A, ×10000)."""

PUBLISHED_SETUPS: tuple[str, ...] = (
    "satmae_group_channel_vit_base_patch8_96",
    "satmae_group_channel_vit_large_patch8_96",
    "satmae_temporal_vit_large_patch16_224",
    "satmae_vit_large_patch16_224",
    "satmae_pp_group_channel_vit_base_patch8_96",
    "satmae_pp_group_channel_vit_large_patch8_96",
    "satmae_pp_vit_large_patch16_224",
)
"""SatMAE's published setups: they carry the official statistics and mode by default."""


def create_model(
    name: str,
    normalization: StatsLike | None = DEFAULT_STATS,
    **overrides: Any,
) -> MaskedAutoencoder:
    """Build a registered model; ``overrides`` replace fields of its config.

    Args:
        name: a key of :data:`MODEL_CONFIGS`.
        normalization: statistics the model applies to raw reflectance in ``prepare``: a
            built-in name (``"s2_l2a"``, the default, or ``"s2_l1c"``), a stats file, a
            :class:`BandStats` or :class:`Normalization`, or ``None`` for none. SatMAE's
            published setups take the official statistics by default.
        **overrides: :class:`MAEConfig` fields, e.g. ``mask_ratio=0.9`` or ``decoder="cross"``.

    Raises:
        KeyError: for an unknown name.
        ValueError: for invalid overrides or statistics that lack a model band.
    """
    if name not in MODEL_CONFIGS:
        known = ", ".join(sorted(MODEL_CONFIGS))
        raise KeyError(f"unknown model {name!r}; registered models: {known}")
    model = MaskedAutoencoder(replace(MODEL_CONFIGS[name], **overrides))
    if normalization == DEFAULT_STATS and name in PUBLISHED_SETUPS:
        normalization = official_normalization(model.config)
    model.set_normalization(normalization)
    model.provenance["registry"] = name
    return model


TIMM_KEYS: tuple[str, ...] = ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir")
"""Arguments timm passes to every factory that our models do not take."""


def create_encoder(
    name: str, in_chans: int | None = None, features_only: bool = False, **kwargs: Any
) -> SatMAEEncoder | FeatureMaps:
    """The encoder of a registered model as a timm backbone (random weights).

    Args:
        name: a key of :data:`MODEL_CONFIGS`.
        in_chans: number of input channels; must equal the model's band count.
        features_only: return a :class:`FeatureMaps` giving a list of ``(B, D, h, w)`` maps.
        **kwargs: ``out_indices`` / ``feature_norm`` (``features_only``), ``normalization`` and
            config overrides as in :func:`create_model`.

    Raises:
        ValueError: if ``in_chans`` differs from the model's band count.
    """
    out_indices = kwargs.pop("out_indices", 4)
    norm = kwargs.pop("feature_norm", False)
    encoder = create_model(name, **kwargs).encoder
    bands = encoder.config.input_order
    if in_chans is not None and in_chans != len(bands):
        raise ValueError(
            f"{name} reads {len(bands)} bands {list(bands)}, got in_chans={in_chans}; pass "
            f"in_chans={len(bands)} with the channels in this order, or override band_groups"
        )
    return FeatureMaps(encoder, out_indices, norm) if features_only else encoder


def _timm_factory(entry: str, build: Callable[..., Any], loader: str) -> Callable[..., Any]:
    """A timm entry point named ``entry`` that builds with ``build`` and has no weights."""

    def factory(pretrained: bool = False, **kwargs: Any) -> Any:
        if pretrained:
            raise ValueError(
                f"{entry} has no downloadable weights; load a bundle or checkpoint with "
                f"satmae.{loader}(path)"
            )
        for key in TIMM_KEYS:
            kwargs.pop(key, None)
        return build(**kwargs)

    factory.__name__ = factory.__qualname__ = entry
    factory.__module__ = __name__
    return factory


def _register_with_timm() -> None:
    """Expose every entry through ``timm.create_model``: the MAE and ``<name>_encoder``."""
    from timm.models import register_model

    registry = sys.modules[__name__]
    for name in MODEL_CONFIGS:
        for entry, build, loader in (
            (name, partial(create_model, name), "load_mae"),
            (f"{name}_encoder", partial(create_encoder, name), "load_encoder"),
        ):
            function = _timm_factory(entry, build, loader)
            setattr(registry, entry, function)
            register_model(function)


_register_with_timm()
