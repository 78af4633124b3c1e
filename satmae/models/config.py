"""The architecture of a SatMAE: one frozen dataclass that every other module reads."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from satmae.bands import SATMAE_GROUPS, canonical_bands

MaskMode = Literal["independent", "consistent"]
DecoderKind = Literal["full", "cross"]
NormPixScope = Literal["token", "location"]
EncodingKind = Literal["sincos", "learned"]

TIME_FIELDS: tuple[str, ...] = ("years_since_2002", "month0", "hour", "year", "day_of_year")
"""Calendar fields a time encoding can use; see :mod:`satmae.models.encodings`."""

SATMAE_TIME_FIELDS: tuple[str, ...] = ("years_since_2002", "month0", "hour")
"""The official SatMAE temporal fields: (year − 2002, month − 1, hour)."""

S2_TIME_FIELDS: tuple[str, ...] = ("year", "day_of_year")
"""The Sentinel-2 default: calendar year and zero-based day of year."""


@dataclass(frozen=True)
class MAEConfig:
    """Architecture of a SatMAE masked autoencoder and its encoder.

    Encodings are concatenated per token as ``[spatial | group | time]``; the spatial width is
    whatever remains of the model width. The group width is used only when there is more than
    one band group and the time width only when ``time_fields`` is not empty, so a single-group,
    single-frame configuration is exactly a vanilla MAE.

    Attributes:
        band_groups: band names of each group, canonical spelling; one patch projection each.
        head_bands: bands predicted by each decoder head, in head output order. ``None`` means
            ``band_groups`` (head g predicts exactly group g). Official group-channel checkpoints
            use the legacy slot order (SatMAE reference §3.2.6).
        img_size: default (H, W) in pixels; the model accepts any size divisible by the patch.
        patch_size: side of a square patch in pixels.
        embed_dim: encoder width D.
        depth: number of encoder blocks.
        num_heads: encoder attention heads.
        mlp_ratio: hidden width of the MLPs relative to the block width.
        group_dim: width of the band-group encoding in the encoder (used when G > 1).
        time_dim: width of the time encoding in the encoder, split evenly over ``time_fields``.
        time_fields: calendar fields of the time encoding; empty for a non-temporal model.
        max_frames: the most frames T a sample may have.
        decoder: ``"full"`` (mask tokens + self-attention over every token) or ``"cross"``
            (hidden-token queries cross-attending to the encoded visible tokens).
        decoder_fraction: fraction of hidden tokens the cross decoder reconstructs in training.
        decoder_dim: decoder width.
        decoder_depth: number of decoder blocks.
        decoder_num_heads: decoder attention heads.
        decoder_group_dim: width of the group encoding in the decoder (used when G > 1).
        decoder_time_dim: width of the time encoding in the decoder (used when temporal).
        mask_ratio: fraction of tokens hidden from the encoder in pretraining.
        mask_time: ``"consistent"`` hides the same locations in every frame.
        mask_groups: ``"consistent"`` hides a location in all groups or none.
        norm_pix_loss: standardise each target patch before the loss.
        norm_pix_scope: ``"token"`` standardises each group token on its own; ``"location"``
            pools all bands of a location and frame (the official group-channel behaviour).
        min_valid_fraction: tokens with a smaller fraction of valid pixels are hidden first and
            left out of the loss.
        encoding: ``"sincos"`` computes fixed encodings for any grid; ``"learned"`` stores
            trainable spatial and group tables for the ``img_size`` grid (official fine-tuned
            checkpoints).
        global_pool_norm: the encoder pools tokens by mean and applies ``fc_norm`` instead of a
            final ``norm`` (the official fine-tuned ViTs).
        num_classes: size of a classification head on the pooled features; 0 for none.
    """

    band_groups: tuple[tuple[str, ...], ...] = SATMAE_GROUPS
    head_bands: tuple[tuple[str, ...], ...] | None = None
    img_size: tuple[int, int] = (96, 96)
    patch_size: int = 8
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    group_dim: int = 128
    time_dim: int = 128
    time_fields: tuple[str, ...] = S2_TIME_FIELDS
    max_frames: int = 4
    decoder: DecoderKind = "full"
    decoder_fraction: float = 1.0
    decoder_dim: int = 512
    decoder_depth: int = 8
    decoder_num_heads: int = 16
    decoder_group_dim: int = 64
    decoder_time_dim: int = 64
    mask_ratio: float = 0.75
    mask_time: MaskMode = "consistent"
    mask_groups: MaskMode = "independent"
    norm_pix_loss: bool = False
    norm_pix_scope: NormPixScope = "token"
    min_valid_fraction: float = 0.5
    encoding: EncodingKind = "sincos"
    global_pool_norm: bool = False
    num_classes: int = 0

    def __post_init__(self) -> None:
        groups = tuple(canonical_bands(group) for group in self.band_groups)
        object.__setattr__(self, "band_groups", groups)
        canonical_bands(band for group in groups for band in group)  # rejects duplicates
        if self.head_bands is not None:
            heads = tuple(canonical_bands(head) for head in self.head_bands)
            object.__setattr__(self, "head_bands", heads)
        size = self.img_size
        object.__setattr__(
            self, "img_size", (size, size) if isinstance(size, int) else tuple(int(s) for s in size)
        )
        object.__setattr__(self, "time_fields", tuple(self.time_fields))
        self.validate()

    # Derived sizes ------------------------------------------------------------------------

    @property
    def bands(self) -> tuple[str, ...]:
        """All bands in model channel order (the groups concatenated)."""
        return tuple(band for group in self.band_groups for band in group)

    @property
    def heads(self) -> tuple[tuple[str, ...], ...]:
        """Bands predicted by each head (``head_bands`` or the groups)."""
        return self.head_bands if self.head_bands is not None else self.band_groups

    @property
    def num_groups(self) -> int:
        """Number of band groups G."""
        return len(self.band_groups)

    @property
    def temporal(self) -> bool:
        """Whether tokens carry a time encoding."""
        return bool(self.time_fields)

    def widths(self, decoder: bool = False) -> tuple[int, int, int]:
        """Widths of the (spatial, group, time) encodings of the encoder or decoder."""
        width = self.decoder_dim if decoder else self.embed_dim
        group = (self.decoder_group_dim if decoder else self.group_dim) * (self.num_groups > 1)
        time = (self.decoder_time_dim if decoder else self.time_dim) * self.temporal
        return width - group - time, group, time

    def validate(self) -> None:
        """Raise ValueError if the fields are inconsistent."""
        if not self.band_groups or any(not group for group in self.band_groups):
            raise ValueError(
                f"band_groups must be non-empty groups of bands, got {self.band_groups}"
            )
        if self.head_bands is not None:
            if len(self.head_bands) != self.num_groups or sorted(
                b for h in self.head_bands for b in h
            ) != sorted(self.bands):
                raise ValueError(
                    f"head_bands {self.head_bands} must have one head per group and cover the "
                    f"bands {self.bands} exactly once"
                )
            if tuple(map(len, self.head_bands)) != tuple(map(len, self.band_groups)):
                raise ValueError(
                    f"head {tuple(map(len, self.head_bands))} and group "
                    f"{tuple(map(len, self.band_groups))} sizes differ"
                )
        unknown = [name for name in self.time_fields if name not in TIME_FIELDS]
        if unknown:
            raise ValueError(f"unknown time fields {unknown}; choose from {TIME_FIELDS}")
        for name, value, options in (
            ("mask_time", self.mask_time, ("independent", "consistent")),
            ("mask_groups", self.mask_groups, ("independent", "consistent")),
            ("decoder", self.decoder, ("full", "cross")),
            ("norm_pix_scope", self.norm_pix_scope, ("token", "location")),
            ("encoding", self.encoding, ("sincos", "learned")),
        ):
            if value not in options:
                raise ValueError(f"{name} must be one of {options}, got {value!r}")
        if not 0.0 <= self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in [0, 1), got {self.mask_ratio}")
        if not 0.0 < self.decoder_fraction <= 1.0:
            raise ValueError(f"decoder_fraction must be in (0, 1], got {self.decoder_fraction}")
        if self.max_frames < 1:
            raise ValueError(f"max_frames must be >= 1, got {self.max_frames}")
        for decoder in (False, True):
            spatial, group, time = self.widths(decoder)
            where = "decoder" if decoder else "encoder"
            if spatial <= 0 or spatial % 4:
                raise ValueError(
                    f"{where} spatial encoding width {spatial} (width − group − time) must be a "
                    "positive multiple of 4; change the widths"
                )
            if group % 2:
                raise ValueError(f"{where} group encoding width must be even, got {group}")
            fields_ = max(len(self.time_fields), 1)
            if time % fields_ or (time // fields_) % 2:
                raise ValueError(f"{where} time width {time} must split into {fields_} even parts")
        if self.embed_dim % self.num_heads or self.decoder_dim % self.decoder_num_heads:
            raise ValueError(
                f"widths ({self.embed_dim}, {self.decoder_dim}) must be divisible by the head "
                f"counts ({self.num_heads}, {self.decoder_num_heads})"
            )
        if self.decoder == "cross" and any(
            set(head) != set(group)
            for head, group in zip(self.heads, self.band_groups, strict=True)
        ):
            raise ValueError(
                "the cross decoder needs each head to predict its own group's bands; "
                "use head_bands=None"
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
    def from_dict(cls, data: dict[str, Any]) -> MAEConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ValueError."""
        known = {f.name for f in fields(cls)}
        if unknown := sorted(set(data) - known):
            raise ValueError(
                f"unknown MAEConfig fields {unknown}; expected a subset of {sorted(known)}"
            )
        values = dict(data)
        for key in ("band_groups", "head_bands"):
            if values.get(key) is not None:
                values[key] = tuple(tuple(group) for group in values[key])
        for key in ("img_size", "time_fields"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)


def _listify(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_listify(item) for item in value]
    if isinstance(value, dict):
        return {key: _listify(item) for key, item in value.items()}
    return value
