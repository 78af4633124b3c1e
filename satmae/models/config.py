"""The architecture of a SatMAE, split by role: encoder, decoder, masking and loss.

:class:`EncoderConfig` is all an encoder needs (it validates without decoder values);
:class:`DecoderConfig` and :class:`MaskingConfig` hold what pretraining adds; :class:`MAEConfig`
is the flat union that the registry, bundles and ``create_model(name, **overrides)`` use. Allowed
values of every choice field come from its ``Literal`` type.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, TypeVar, get_args

from satmae.bands import SATMAE_GROUPS, canonical_bands
from satmae.models.validation import (
    DECODER_ITEM_LIMITS,
    DECODER_LIMITS,
    ENCODER_LIMITS,
    MASKING_ITEM_LIMITS,
    MASKING_LIMITS,
    check_fields,
    check_items,
)
from satmae.spec import band_lists, band_names, check_img_size

MaskMode = Literal["independent", "consistent"]
DecoderKind = Literal["full", "cross"]
DecoderSelection = Literal["random", "balanced"]
NormPixScope = Literal["token", "location"]
EncodingKind = Literal["sincos", "learned"]
MultiscaleLoss = Literal["masked", "satmae_pp"]

TIME_FIELDS: tuple[str, ...] = ("years_since_2002", "month0", "hour", "year", "day_of_year")
"""Calendar fields a time encoding can use; see :mod:`satmae.models.encodings`."""

SATMAE_TIME_FIELDS: tuple[str, ...] = ("years_since_2002", "month0", "hour")
"""The official SatMAE temporal fields: (year − 2002, month − 1, hour)."""

S2_TIME_FIELDS: tuple[str, ...] = ("year", "day_of_year")
"""The Sentinel-2 default: calendar year and zero-based day of year."""

_Config = TypeVar("_Config", bound="EncoderConfig | DecoderConfig | MaskingConfig")


def _as_tuple(config: object, *names: str) -> None:
    """Store list fields as tuples (lists come from JSON and YAML); other values stay for checks."""
    for name in names:
        value = getattr(config, name)
        if isinstance(value, list):
            object.__setattr__(config, name, tuple(value))


def _check_choice(name: str, value: object, kind: object) -> None:
    options = get_args(kind)
    if value not in options:
        raise ValueError(f"{name} must be one of {options}, got {value!r}")


@dataclass(frozen=True)
class EncoderConfig:
    """What the tokenizer and transformer of an encoder are.

    Encodings are concatenated per token as ``[spatial | group | time]``; the spatial width is
    whatever remains of the model width. The group width is used only when there is more than
    one band group and the time width only when ``time_fields`` is not empty, so a single-group,
    single-frame configuration is exactly a vanilla ViT.

    Attributes:
        band_groups: band names of each group, canonical spelling; one patch projection each.
        input_bands: the channel order a plain tensor is taken to be in when no band names are
            given (e.g. the official SatMAE channel order); ``None`` means the groups
            concatenated. Must contain every band of the groups.
        patch_size: side of a square patch in pixels.
        embed_dim: encoder width D.
        depth: number of encoder blocks.
        img_size: default (H, W) in pixels; the model accepts any size divisible by the patch.
        num_heads: encoder attention heads.
        mlp_ratio: hidden width of the MLPs relative to the block width.
        group_dim: width of the band-group encoding (used when G > 1).
        time_fields: calendar fields of the time encoding; empty for a non-temporal model.
        time_dim: width of the time encoding, split evenly over ``time_fields``.
        max_frames: the most frames T a sample may have.
        encoding: ``"sincos"`` computes fixed encodings for any grid; ``"learned"`` stores
            trainable spatial and group tables for the ``img_size`` grid (official fine-tuned
            checkpoints).
        global_pool_norm: the encoder pools tokens by mean and applies ``fc_norm`` instead of a
            final ``norm`` (the official fine-tuned ViTs).
        num_classes: size of a classification head on the pooled features; 0 for none.
    """

    band_groups: tuple[tuple[str, ...], ...] = SATMAE_GROUPS
    input_bands: tuple[str, ...] | None = None
    patch_size: int = 8
    embed_dim: int = 768
    depth: int = 12
    img_size: tuple[int, int] = (96, 96)
    num_heads: int = 12
    mlp_ratio: float = 4.0
    group_dim: int = 128
    time_fields: tuple[str, ...] = S2_TIME_FIELDS
    time_dim: int = 128
    max_frames: int = 4
    encoding: EncodingKind = "sincos"
    global_pool_norm: bool = False
    num_classes: int = 0

    def __post_init__(self) -> None:
        self._canonicalize()
        self.validate()

    def _canonicalize(self) -> None:
        """Canonical band spellings and tuple-typed sequences (lists come from JSON)."""
        groups = band_lists(self.band_groups, "band_groups")
        object.__setattr__(self, "band_groups", groups)
        canonical_bands(band for group in groups for band in group)  # rejects duplicates
        if self.input_bands is not None:
            object.__setattr__(self, "input_bands", band_names(self.input_bands, "input_bands"))
        object.__setattr__(self, "img_size", check_img_size(self.img_size))
        if not isinstance(self.time_fields, tuple | list):
            raise ValueError(f"time_fields must be a list of names, got {self.time_fields!r}")
        object.__setattr__(self, "time_fields", tuple(self.time_fields))

    # Derived sizes ------------------------------------------------------------------------

    @property
    def bands(self) -> tuple[str, ...]:
        """All bands in model channel order (the groups concatenated)."""
        return tuple(band for group in self.band_groups for band in group)

    @property
    def input_order(self) -> tuple[str, ...]:
        """The channel order assumed for a tensor given without band names."""
        return self.input_bands if self.input_bands is not None else self.bands

    @property
    def group_sizes(self) -> tuple[int, ...]:
        """Number of bands of each group."""
        return tuple(len(group) for group in self.band_groups)

    @property
    def num_groups(self) -> int:
        """Number of band groups G."""
        return len(self.band_groups)

    @property
    def temporal(self) -> bool:
        """Whether tokens carry a time encoding."""
        return bool(self.time_fields)

    def patch_grid(self, size: tuple[int, int] | None = None) -> tuple[int, int]:
        """Patch grid ``(h, w)`` of an image of ``size`` pixels (default ``img_size``)."""
        height, width = size if size is not None else self.img_size
        return height // self.patch_size, width // self.patch_size

    def widths(self) -> tuple[int, int, int]:
        """Widths of the encoder's (spatial, group, time) encodings."""
        return _widths(self.embed_dim, self.group_dim, self.time_dim, self)

    # Validation ---------------------------------------------------------------------------

    def validate(self) -> None:
        """Raise ValueError if the encoder fields are out of range or inconsistent."""
        check_fields(self, ENCODER_LIMITS)
        if not self.band_groups or any(not group for group in self.band_groups):
            raise ValueError(
                f"band_groups must be non-empty groups of bands, got {self.band_groups}"
            )
        if self.input_bands is not None and (
            missing := [band for band in self.bands if band not in self.input_bands]
        ):
            raise ValueError(
                f"input_bands {list(self.input_bands)} lack the model bands {missing}; list "
                "every band of band_groups"
            )
        unknown = [name for name in self.time_fields if name not in TIME_FIELDS]
        if unknown:
            raise ValueError(f"unknown time_fields {unknown}; choose from {TIME_FIELDS}")
        _check_choice("encoding", self.encoding, EncodingKind)
        if self.max_frames < 1:
            raise ValueError(f"max_frames must be >= 1, got {self.max_frames}")
        _check_widths("encoder", self.widths(), self.time_fields)
        if self.embed_dim % self.num_heads:
            raise ValueError(
                f"embed_dim {self.embed_dim} must be divisible by num_heads {self.num_heads}"
            )
        height, width = self.img_size
        if height % self.patch_size or width % self.patch_size:
            raise ValueError(
                f"img_size {self.img_size} is not divisible by patch_size={self.patch_size}"
            )

    # Serialisation ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field (tuples become lists)."""
        return _listify(asdict(self))  # type: ignore[no-any-return]

    @classmethod
    def from_dict(cls: type[_Config], data: dict[str, Any]) -> _Config:
        """Inverse of :meth:`to_dict`.

        Keys of the other roles (e.g. decoder fields in an encoder's config) are ignored; keys
        that belong to no role raise ValueError.
        """
        return _from_dict(cls, data)

    def encoder_config(self) -> EncoderConfig:
        """Only the encoder fields."""
        return _role(EncoderConfig, self)


@dataclass(frozen=True)
class DecoderConfig:
    """What the pretraining decoder is.

    Attributes:
        decoder: ``"full"`` (mask tokens + self-attention over every token) or ``"cross"``
            (hidden-token queries cross-attending to the encoded visible tokens).
        decoder_fraction: fraction of hidden tokens the cross decoder reconstructs in training.
        decoder_selection: which hidden tokens the cross decoder reconstructs in training when
            ``decoder_fraction < 1``: ``"random"`` (a uniform draw over all hidden tokens) or
            ``"balanced"`` (the same number Q of tokens, split as evenly as possible over the
            present band groups: tokens are ranked by the same random draw within their own
            group and taken round-robin over the groups, so each group gets Q/G' ± 1 unless it
            has fewer hidden tokens, whose share goes to the others). Eval mode reconstructs
            every hidden token either way; the full decoder ignores it.
        decoder_context: encoder blocks whose outputs the cross decoder attends to (CrossMAE);
            negative indices count from the end. ``(-1,)`` is the encoder's final, normed
            output (plain SatMAE, no extra weights). With several blocks each non-final one gets
            its own decoder LayerNorm and every decoder block its own learned weights over the
            K maps (started at 1/K each: the mean), mixed before the decoder's ``embed``. More
            than the last block needs ``decoder="cross"``.
        decoder_dim: decoder width.
        head_bands: bands predicted by each decoder head, in head output order. ``None`` means
            ``band_groups`` (head g predicts exactly group g). Official group-channel checkpoints
            use the legacy slot order (SatMAE reference §3.2.6).
        decoder_depth: number of decoder blocks.
        decoder_num_heads: decoder attention heads.
        decoder_group_dim: width of the group encoding in the decoder (used when G > 1).
        decoder_time_dim: width of the time encoding in the decoder (used when temporal).
    """

    decoder: DecoderKind = "full"
    decoder_fraction: float = 1.0
    decoder_selection: DecoderSelection = "random"
    decoder_context: tuple[int, ...] = (-1,)
    decoder_dim: int = 512
    head_bands: tuple[tuple[str, ...], ...] | None = None
    decoder_depth: int = 8
    decoder_num_heads: int = 16
    decoder_group_dim: int = 64
    decoder_time_dim: int = 64

    def __post_init__(self) -> None:
        _as_tuple(self, "decoder_context")
        self.validate_decoder()

    def validate_decoder(self) -> None:
        """Raise ValueError if the decoder fields are out of range or inconsistent on their own."""
        check_fields(self, DECODER_LIMITS)
        check_items(self, DECODER_ITEM_LIMITS)
        _check_choice("decoder", self.decoder, DecoderKind)
        _check_choice("decoder_selection", self.decoder_selection, DecoderSelection)
        if not 0.0 < self.decoder_fraction <= 1.0:
            raise ValueError(f"decoder_fraction must be in (0, 1], got {self.decoder_fraction}")
        if self.decoder_dim % self.decoder_num_heads:
            raise ValueError(
                f"decoder_dim {self.decoder_dim} must be divisible by decoder_num_heads "
                f"{self.decoder_num_heads}"
            )


@dataclass(frozen=True)
class MaskingConfig:
    """How pretraining hides tokens and scores the reconstruction.

    Attributes:
        mask_ratio: fraction of tokens hidden from the encoder.
        mask_time: ``"consistent"`` hides the same locations in every frame.
        mask_groups: ``"consistent"`` hides a location in all groups or none.
        norm_pix_loss: standardise each target patch before the loss.
        norm_pix_scope: ``"token"`` standardises each group token on its own; ``"location"``
            pools all bands of a location and frame (the official group-channel behaviour).
        min_valid_fraction: tokens with a smaller fraction of valid pixels are hidden first and
            left out of the loss.
        group_loss_weights: weight of each band group in the MSE loss, one finite number >= 0
            per group of ``band_groups`` (not all 0); ``None`` weighs every counted token
            equally (plain SatMAE). Each token counted in the loss weighs its group's entry, so
            ``loss = Σ token_loss·w / Σ w``; ``MAEOutput.group_losses`` stay the unweighted
            mean of each group and ``MAEOutput.weight`` stays 0/1. The multi-scale L1 terms
            (``upsample_scales``) are not affected: they weigh every counted token equally.
            A batch whose counted tokens all lie in groups of weight 0 gives ``loss`` 0 while
            ``MAEOutput.empty`` stays False (``empty`` counts tokens, not weights).
    """

    mask_ratio: float = 0.75
    mask_time: MaskMode = "consistent"
    mask_groups: MaskMode = "independent"
    norm_pix_loss: bool = False
    norm_pix_scope: NormPixScope = "token"
    min_valid_fraction: float = 0.5
    group_loss_weights: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        _as_tuple(self, "group_loss_weights")
        self.validate_masking()

    def validate_masking(self) -> None:
        """Raise ValueError if the masking and loss fields are out of range."""
        check_fields(self, MASKING_LIMITS)
        check_items(self, MASKING_ITEM_LIMITS)
        if self.group_loss_weights is not None and not any(self.group_loss_weights):
            raise ValueError(
                f"group_loss_weights must not all be 0 (nothing would be learnt), got "
                f"{self.group_loss_weights}; give a positive weight to at least one group"
            )
        _check_choice("mask_time", self.mask_time, MaskMode)
        _check_choice("mask_groups", self.mask_groups, MaskMode)
        _check_choice("norm_pix_scope", self.norm_pix_scope, NormPixScope)
        if not 0.0 <= self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in [0, 1), got {self.mask_ratio}")
        if not 0.0 <= self.min_valid_fraction <= 1.0:
            raise ValueError(f"min_valid_fraction must be in [0, 1], got {self.min_valid_fraction}")


@dataclass(frozen=True)
class MAEConfig(EncoderConfig, DecoderConfig, MaskingConfig):
    """Architecture of a SatMAE masked autoencoder: encoder, decoder, masking and loss fields.

    See :class:`EncoderConfig`, :class:`DecoderConfig` and :class:`MaskingConfig` for the
    fields of each role. The multi-scale fields (SatMAE++, reference §5) come last:

    Attributes:
        upsample_scales: scales the up-sampler reconstructs besides the input scale, doubling
            each time: ``()`` (none, plain SatMAE), ``(2,)``, ``(2, 4)``, …
        multiscale_loss: ``"masked"`` (L1 on hidden, valid pixels with targets standardised
            like the MSE target under ``norm_pix_loss``) or ``"satmae_pp"`` (SatMAE++'s L1 over
            every pixel, raw targets).
        mse_weight: weight of the masked MSE in the total loss (with ``upsample_scales``).
        l1_weight: weight of the mean over scales of the L1 terms.
    """

    upsample_scales: tuple[int, ...] = ()
    multiscale_loss: MultiscaleLoss = "masked"
    mse_weight: float = 0.6
    l1_weight: float = 0.4

    def __post_init__(self) -> None:
        self._canonicalize()
        if self.head_bands is not None:
            heads = band_lists(self.head_bands, "head_bands")
            object.__setattr__(self, "head_bands", heads)
        object.__setattr__(self, "upsample_scales", tuple(int(s) for s in self.upsample_scales))
        _as_tuple(self, "decoder_context", "group_loss_weights")
        self.validate()

    @property
    def context_blocks(self) -> tuple[int, ...]:
        """``decoder_context`` as block indices in ``[0, depth)``, in the given order."""
        return tuple(index % self.depth for index in self.decoder_context)

    @property
    def heads(self) -> tuple[tuple[str, ...], ...]:
        """Bands predicted by each head (``head_bands`` or the groups)."""
        return self.head_bands if self.head_bands is not None else self.band_groups

    def widths(self, decoder: bool = False) -> tuple[int, int, int]:
        """Widths of the (spatial, group, time) encodings of the encoder or decoder."""
        if not decoder:
            return super().widths()
        return _widths(self.decoder_dim, self.decoder_group_dim, self.decoder_time_dim, self)

    def validate(self) -> None:
        """Raise ValueError if any role's fields, or the roles together, are inconsistent."""
        super().validate()
        self.validate_decoder()
        self.validate_masking()
        _check_widths("decoder", self.widths(decoder=True), self.time_fields)
        if self.head_bands is not None:
            if len(self.head_bands) != self.num_groups or sorted(
                b for h in self.head_bands for b in h
            ) != sorted(self.bands):
                raise ValueError(
                    f"head_bands {self.head_bands} must have one head per group and cover the "
                    f"bands {self.bands} exactly once"
                )
            if tuple(map(len, self.head_bands)) != self.group_sizes:
                raise ValueError(
                    f"head {tuple(map(len, self.head_bands))} and group {self.group_sizes} "
                    "sizes differ"
                )
        if self.decoder == "cross" and any(
            set(head) != set(group)
            for head, group in zip(self.heads, self.band_groups, strict=True)
        ):
            raise ValueError(
                "the cross decoder needs each head to predict its own group's bands; "
                "use head_bands=None"
            )
        _check_decoder_context(self)
        if self.group_loss_weights is not None and len(self.group_loss_weights) != self.num_groups:
            raise ValueError(
                f"group_loss_weights must have one weight per band group: expected "
                f"{self.num_groups} (band_groups {self.band_groups}), given "
                f"{len(self.group_loss_weights)} ({self.group_loss_weights})"
            )
        _check_multiscale(self)

    def decoder_config(self) -> DecoderConfig:
        """Only the decoder fields."""
        return _role(DecoderConfig, self)

    def masking_config(self) -> MaskingConfig:
        """Only the masking and loss fields."""
        return _role(MaskingConfig, self)


def _check_decoder_context(config: MAEConfig) -> None:
    """Raise ValueError if ``decoder_context`` is outside the encoder, repeats or needs cross."""
    depth = config.depth
    if outside := [index for index in config.decoder_context if not -depth <= index < depth]:
        raise ValueError(
            f"decoder_context {config.decoder_context} names blocks {outside} outside the "
            f"encoder's {depth} blocks: expected integers from {-depth} to {depth - 1} "
            "(negative ones count from the end)"
        )
    blocks = config.context_blocks
    if repeated := sorted({index for index in blocks if blocks.count(index) > 1}):
        raise ValueError(
            f"decoder_context {config.decoder_context} names blocks {repeated} more than once "
            f"(negative indices count from the end of the {depth} blocks): expected each "
            "block once"
        )
    if blocks != (depth - 1,) and config.decoder != "cross":
        raise ValueError(
            f"decoder_context {config.decoder_context} needs decoder='cross': the "
            f"{config.decoder!r} decoder takes mask tokens and the encoder's last output only; "
            "use decoder_context=(-1,) or decoder='cross'"
        )


def _check_multiscale(config: MAEConfig) -> None:
    """Raise ValueError if the multi-scale fields are inconsistent."""
    _check_choice("multiscale_loss", config.multiscale_loss, MultiscaleLoss)
    scales = config.upsample_scales
    expected = tuple(2 ** (index + 1) for index in range(len(scales)))
    if scales != expected:
        raise ValueError(
            f"upsample_scales must double from 2 (each up-sampling block doubles the size), "
            f"e.g. (2,) or (2, 4); got {scales}, expected {expected}"
        )
    if config.mse_weight < 0 or config.l1_weight < 0:
        raise ValueError(
            f"mse_weight and l1_weight must be >= 0, got {config.mse_weight} and {config.l1_weight}"
        )
    if scales and config.multiscale_loss == "satmae_pp" and config.decoder != "full":
        raise ValueError(
            "multiscale_loss='satmae_pp' scores every pixel, which needs a prediction for every "
            "token: use decoder='full', or multiscale_loss='masked' with the cross decoder"
        )


def _widths(
    width: int, group_dim: int, time_dim: int, config: EncoderConfig
) -> tuple[int, int, int]:
    group = group_dim * (config.num_groups > 1)
    time = time_dim * config.temporal
    return width - group - time, group, time


def _check_widths(where: str, widths: tuple[int, int, int], time_fields: tuple[str, ...]) -> None:
    spatial, group, time = widths
    prefix = "decoder_" if where == "decoder" else ""
    width = "decoder_dim" if where == "decoder" else "embed_dim"
    if spatial <= 0 or spatial % 4:
        raise ValueError(
            f"{where} spatial encoding width {spatial} ({width} − {prefix}group_dim − "
            f"{prefix}time_dim) must be a positive multiple of 4; change the widths"
        )
    if group % 2:
        raise ValueError(f"{prefix}group_dim must be even, got {group}")
    parts = max(len(time_fields), 1)
    if time % parts or (time // parts) % 2:
        raise ValueError(
            f"{prefix}time_dim {time} must split into {parts} even parts (one per time field)"
        )


_ALL_FIELDS = {f.name for f in fields(MAEConfig)}


def _from_dict(cls: type[_Config], data: dict[str, Any]) -> _Config:
    if unknown := sorted(set(data) - _ALL_FIELDS):
        raise ValueError(
            f"unknown {cls.__name__} fields {unknown}; expected a subset of "
            f"{sorted(f.name for f in fields(cls))}"
        )
    own = {f.name for f in fields(cls)}
    # Lists from JSON become tuples when the config canonicalises itself.
    return cls(**{key: value for key, value in data.items() if key in own})


def _role(cls: type[_Config], config: object) -> _Config:
    return cls(**{f.name: getattr(config, f.name) for f in fields(cls)})


def _listify(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_listify(item) for item in value]
    if isinstance(value, dict):
        return {key: _listify(item) for key, item in value.items()}
    return value
