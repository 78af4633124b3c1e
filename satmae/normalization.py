"""Per-band normalisation statistics keyed by band name, and how a model applies them.

:class:`BandStats` is the one type for statistics everywhere: ``satmae stats`` writes it,
:func:`load_stats` reads it (built-in names, stats files, bundle configs), model bundles store it,
and :class:`Normalization` pairs it with the mapping a model was trained with:

- ``"zscore"``: ``(x − mean) / std`` per band;
- ``"satmae"``: the official SatMAE mapping ``clip(0.5 + z/4, 0, 1)`` on a 1/255 grid, as its
  uint8 round trip does (``SentinelNormalize`` then ``ToTensor``).

This module imports neither the models nor rasterio, so data checks and the CLI can use it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, get_args

import torch
from torch import Tensor

from satmae.bands import canonical_band, canonical_bands
from satmae.io import atomic_path

NormMode = Literal["zscore", "satmae"]
"""How statistics map reflectance to model inputs."""

NORM_MODES: tuple[str, ...] = get_args(NormMode)

BUILTIN_STATS: tuple[str, ...] = ("s2_l1c", "s2_l2a", "satmae_official", "fmow_rgb")
"""Names accepted by :func:`load_stats`."""

CONVENTION = "reflectance x10000, no offset"
"""The reflectance convention every reader harmonises Sentinel-2 samples to (DESIGN §3)."""

FORMAT = "satmae-stats"

MODEL_SUFFIXES: tuple[str, ...] = (".safetensors", ".ckpt", ".pth", ".pt")
"""Files :func:`load_stats` reads as model files (their statistics), besides bundle folders."""


@dataclass
class BandStats:
    """Statistics of each band, keyed by canonical band name.

    Attributes:
        mean: band -> mean of valid pixels.
        std: band -> population standard deviation of valid pixels.
        percentiles: band -> {percentile (as text, e.g. "2") -> value}.
        count: band -> number of valid pixels used.
        minimum: band -> smallest value.
        maximum: band -> largest value.
        exact: whether the percentiles are exact (False once the histogram took over for
            non-integer data).
        provenance: where the numbers come from (data, command, date).
        convention: the reflectance convention of the data they were computed on (e.g.
            ``"reflectance x10000, no offset"``, the convention every reader harmonises to).
    """

    mean: dict[str, float]
    std: dict[str, float]
    percentiles: dict[str, dict[str, float]] = field(default_factory=dict)
    count: dict[str, int] = field(default_factory=dict)
    minimum: dict[str, float] = field(default_factory=dict)
    maximum: dict[str, float] = field(default_factory=dict)
    exact: bool = True
    provenance: str = ""
    convention: str = ""

    @property
    def bands(self) -> tuple[str, ...]:
        """Bands with statistics, in stored order."""
        return tuple(self.mean)

    def vectors(self, bands: Sequence[str]) -> tuple[Tensor, Tensor]:
        """Mean and std of ``bands`` (any spelling) as float32 tensors ``(C,)``, in that order.

        Raises:
            ValueError: listing the bands these statistics do not cover.
        """
        names = canonical_bands(bands)
        if missing := [band for band in names if band not in self.mean]:
            raise ValueError(
                f"normalisation statistics lack bands {missing}; they cover {list(self.bands)}"
                " — compute stats for these bands (satmae stats DATA --out stats.json)"
            )
        mean = torch.tensor([self.mean[band] for band in names], dtype=torch.float32)
        std = torch.tensor([self.std[band] for band in names], dtype=torch.float32)
        return mean, std

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (see ``docs/bring-your-own.md`` for the schema)."""
        bands: dict[str, Any] = {}
        for band in self.bands:
            entry: dict[str, Any] = {"mean": self.mean[band], "std": self.std[band]}
            for key, table in self._optional_tables():
                if band in table:
                    entry[key] = table[band]
            bands[band] = entry
        return {
            "format": FORMAT,
            "version": 1,
            "provenance": self.provenance,
            "convention": self.convention,
            "exact_percentiles": self.exact,
            "bands": bands,
        }

    def _optional_tables(self) -> tuple[tuple[str, dict[str, Any]], ...]:
        """(JSON key, table) of the statistics besides mean and std."""
        return (
            ("count", self.count),
            ("min", self.minimum),
            ("max", self.maximum),
            ("percentiles", self.percentiles),
        )

    def subset(self, bands: Sequence[str]) -> BandStats:
        """These statistics restricted to ``bands`` (any spelling), in that order.

        Raises:
            ValueError: listing the bands these statistics do not cover.
        """
        names = canonical_bands(bands)
        self.vectors(names)  # raises for missing bands

        def pick(table: Mapping[str, Any]) -> dict[str, Any]:
            return {band: table[band] for band in names if band in table}

        return BandStats(
            mean=pick(self.mean),
            std=pick(self.std),
            percentiles=pick(self.percentiles),
            count=pick(self.count),
            minimum=pick(self.minimum),
            maximum=pick(self.maximum),
            exact=self.exact,
            provenance=self.provenance,
            convention=self.convention,
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "statistics") -> BandStats:
        """Read the JSON form, or a bundle's ``{"mean": {...}, "std": {...}}`` normalisation.

        Raises:
            ValueError: if the layout is not recognised, a band name is unknown, or a std <= 0.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"{source}: statistics must be an object, got {type(data).__name__}")
        if "bands" in data:
            entries: Any = data["bands"]
        elif "mean" in data and "std" in data:
            means, stds = data["mean"], data["std"]
            if not isinstance(means, Mapping) or not isinstance(stds, Mapping):
                raise ValueError(
                    f"{source}: 'mean' and 'std' must map band names to numbers, got "
                    f"{type(means).__name__} and {type(stds).__name__}"
                )
            if set(means) != set(stds):
                raise ValueError(
                    f"{source}: 'mean' covers bands {sorted(means)} but 'std' covers "
                    f"{sorted(stds)}; give both for the same bands"
                )
            entries = {band: {"mean": means[band], "std": stds[band]} for band in means}
        else:
            raise ValueError(
                f"{source} is neither a satmae stats file ({{'bands': {{...}}}}) nor a "
                f"normalisation dict ({{'mean': {{...}}, 'std': {{...}}}}); keys: "
                f"{sorted(map(str, data))}"
            )
        if not isinstance(entries, Mapping):
            raise ValueError(
                f"{source}: 'bands' must map each band name to its mean and std, got {entries!r}"
            )
        stats = cls(
            mean={},
            std={},
            provenance=str(data.get("provenance", "")),
            convention=str(data.get("convention", "")),
        )
        stats.exact = bool(data.get("exact_percentiles", True))
        for name, entry in entries.items():
            try:
                band = canonical_band(name)
            except (ValueError, AttributeError):
                raise ValueError(f"{source}: unknown band {name!r} in the statistics") from None
            mean, std = _stat(entry, "mean", band, source), _stat(entry, "std", band, source)
            if not std > 0:
                raise ValueError(f"{source}: band {band} has std {std}; it must be > 0")
            if band in stats.mean:
                raise ValueError(f"{source}: band {band} is given twice ({name!r})")
            stats.mean[band], stats.std[band] = mean, std
            for key, table in stats._optional_tables():
                if key in entry:
                    table[band] = entry[key]
        return stats

    def save(self, path: str | Path) -> None:
        """Write the JSON form (atomically: a killed run leaves the old file or none)."""
        with atomic_path(path) as staging:
            staging.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")


def _stat(entry: Any, key: str, band: str, source: str) -> float:
    """The finite number ``entry[key]`` of a band's statistics, or a ValueError naming it."""
    value = entry.get(key) if isinstance(entry, Mapping) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(
            f"{source}: band {band} needs a finite number as {key}, got {value!r}"
            if isinstance(entry, Mapping)
            else f"{source}: band {band} needs {{'mean': number, 'std': number}}, got {entry!r}"
        )
    return float(value)


def load_stats(name_or_path: str | Path) -> BandStats:
    """Built-in statistics by name (see :data:`BUILTIN_STATS`) or the statistics in a file.

    A file may be a ``satmae stats`` JSON, a model bundle's ``config.json``, or any model file
    :func:`satmae.spec.load_spec` reads (bundle folder, ``.safetensors``, ``.ckpt``, ``.pth``):
    then its normalisation statistics.

    Raises:
        FileNotFoundError: if neither a built-in name nor an existing file.
        ValueError: if the file holds no statistics.
    """
    text = str(name_or_path)
    if text in BUILTIN_STATS:
        resource = resources.files("satmae.resources").joinpath(f"stats_{text}.json")
        return BandStats.from_dict(json.loads(resource.read_text(encoding="utf-8")), text)
    path = Path(name_or_path)
    if path.is_dir() or (path.is_file() and path.suffix in MODEL_SUFFIXES):
        from satmae.spec import load_spec  # the spec module builds on this one

        spec = load_spec(path)
        if spec.normalization is None:
            raise ValueError(
                f"{path} is a model without normalisation statistics; compute them with "
                "satmae stats DATA --out stats.json"
            )
        return spec.normalization.stats
    if not path.is_file():
        raise FileNotFoundError(
            f"statistics {text!r} are neither built in ({', '.join(BUILTIN_STATS)}) nor a file"
        )
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("format") == "satmae-bundle" or "normalization" in data:
        if not data.get("normalization"):
            raise ValueError(f"{path} is a model bundle config without normalization stats")
        data = data["normalization"]
    return BandStats.from_dict(data, str(path))


def normalize_image(
    image: Tensor, bands: Sequence[str], stats: BandStats, mode: NormMode
) -> Tensor:
    """Normalise ``image`` whose channel axis (third from last) holds ``bands``.

    Args:
        image: ``(..., C, H, W)`` reflectance as stored.
        bands: names of the C channels (any spelling).
        stats: statistics covering ``bands``.
        mode: ``"zscore"`` or ``"satmae"`` (see the module docstring).

    Returns:
        float32 ``(..., C, H, W)``.
    """
    if mode not in NORM_MODES:
        raise ValueError(f"normalisation mode must be one of {NORM_MODES}, got {mode!r}")
    image = torch.as_tensor(image).to(torch.float32)
    mean, std = stats.vectors(bands)
    if image.ndim < 3 or image.shape[-3] != len(mean):
        raise ValueError(
            f"expected an image (..., C, H, W) with C = {len(mean)} channels {list(bands)}, "
            f"got shape {tuple(image.shape)}"
        )
    shape = (len(mean), 1, 1)
    mean, std = mean.to(image.device).view(shape), std.to(image.device).view(shape)
    if mode == "zscore":
        return (image - mean) / std
    scaled = (image - (mean - 2 * std)) / (4 * std) * 255.0
    return torch.trunc(scaled.clamp(0.0, 255.0)) / 255.0


@dataclass(frozen=True)
class Normalization:
    """Statistics and the mapping a model was trained with.

    Attributes:
        stats: per-band statistics (at least the model's bands).
        mode: ``"zscore"`` or ``"satmae"``.
    """

    stats: BandStats
    mode: NormMode = "zscore"

    def __post_init__(self) -> None:
        if self.mode not in NORM_MODES:
            raise ValueError(f"normalisation mode must be one of {NORM_MODES}, got {self.mode!r}")

    def apply(self, image: Tensor, bands: Sequence[str]) -> Tensor:
        """``(..., C, H, W)`` reflectance of ``bands`` -> model inputs (:func:`normalize_image`)."""
        return normalize_image(image, bands, self.stats, self.mode)

    def for_bands(self, bands: Sequence[str]) -> Normalization:
        """The same normalisation restricted to ``bands`` (raises if any is not covered)."""
        return Normalization(self.stats.subset(bands), self.mode)

    def to_json(self) -> dict[str, Any]:
        """The form stored in bundles and checkpoints (a stats document plus ``mode``)."""
        return {**self.stats.to_dict(), "mode": self.mode}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], source: str = "normalization") -> Normalization:
        """Inverse of :meth:`to_json`; also reads version-1 bundles' ``{"mean", "std"}`` form.

        Raises:
            ValueError: naming ``source`` for malformed statistics or an unknown mode.
        """
        stats = BandStats.from_dict(data, source)
        mode = data.get("mode", "zscore")
        if mode not in NORM_MODES:
            raise ValueError(
                f"{source}: normalisation mode must be one of {NORM_MODES}, got {mode!r}"
            )
        return cls(stats, mode)

    @classmethod
    def of(
        cls,
        value: StatsLike,
        mode: NormMode = "zscore",
    ) -> Normalization:
        """Coerce statistics to a :class:`Normalization` (``mode`` applies unless given one).

        Args:
            value: a :class:`Normalization`; :class:`BandStats`; a stats document or
                ``{"mean": {band: v}, "std": {band: v}}`` mapping; or a built-in name or file
                for :func:`load_stats`.
            mode: ``"zscore"`` or ``"satmae"``.
        """
        if isinstance(value, Normalization):
            return value
        if isinstance(value, BandStats):
            return cls(value, mode)
        if isinstance(value, Mapping):
            return cls(BandStats.from_dict(value), value.get("mode", mode))
        return cls(load_stats(value), mode)


StatsLike = Normalization | BandStats | Mapping[str, Any] | str | Path
"""Anything :meth:`Normalization.of` accepts: statistics, a stats mapping, a name or a file."""
