"""Per-band normalisation statistics keyed by band name, and the transform that uses them.

:class:`StatsAccumulator` streams samples and keeps, per band, an exact mean and standard
deviation (float64 running moments merged with Chan's formula) and percentiles that are exact
while the data is small (all valid values are kept up to ``exact_limit`` per band) and come from
a fixed 65 536-bin histogram afterwards, so memory stays bounded for any amount of data. For
integer reflectance in [0, 65535] (the usual uint16 ×10000 storage) the histogram has unit bins,
so even the streamed percentiles are exact.

Built-in statistics (``load_stats``): ``"s2_l1c"`` and ``"s2_l2a"`` (computed from the real
samples in ``../shared/data/real``; see the provenance field in each JSON) and
``"satmae_official"`` (the fMoW-Sentinel numbers hard-coded in the official SatMAE code).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor
from tqdm.auto import tqdm

from satmae.bands import canonical_band, canonical_bands
from satmae.io import atomic_path

DEFAULT_PERCENTILES: tuple[float, ...] = (0.5, 1, 2, 5, 25, 50, 75, 95, 98, 99, 99.5)
"""Percentiles reported by default (torchgeo's BigEarthNet uses 2 and 98)."""

BUILTIN_STATS: tuple[str, ...] = ("s2_l1c", "s2_l2a", "satmae_official")
"""Names accepted by :func:`load_stats`."""

FORMAT = "satmae-stats"
_BINS = 65536


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
    """

    mean: dict[str, float]
    std: dict[str, float]
    percentiles: dict[str, dict[str, float]] = field(default_factory=dict)
    count: dict[str, int] = field(default_factory=dict)
    minimum: dict[str, float] = field(default_factory=dict)
    maximum: dict[str, float] = field(default_factory=dict)
    exact: bool = True
    provenance: str = ""

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
            for key, table in (
                ("count", self.count),
                ("min", self.minimum),
                ("max", self.maximum),
                ("percentiles", self.percentiles),
            ):
                if band in table:
                    entry[key] = table[band]
            bands[band] = entry
        return {
            "format": FORMAT,
            "version": 1,
            "provenance": self.provenance,
            "exact_percentiles": self.exact,
            "bands": bands,
        }

    def normalization(self) -> dict[str, dict[str, float]]:
        """The ``{"mean": {band: v}, "std": {band: v}}`` form stored in model bundles."""
        return {"mean": dict(self.mean), "std": dict(self.std)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "statistics") -> BandStats:
        """Read the JSON form, or a bundle's ``{"mean": {...}, "std": {...}}`` normalisation.

        Raises:
            ValueError: if the layout is not recognised, a band name is unknown, or a std <= 0.
        """
        if "bands" in data:
            entries: Mapping[str, Any] = data["bands"]
        elif "mean" in data and "std" in data:
            entries = {b: {"mean": data["mean"][b], "std": data["std"][b]} for b in data["mean"]}
        else:
            raise ValueError(
                f"{source} is neither a satmae stats file ({{'bands': {{...}}}}) nor a "
                f"normalisation dict ({{'mean': {{...}}, 'std': {{...}}}}); keys: {sorted(data)}"
            )
        stats = cls(mean={}, std={}, provenance=str(data.get("provenance", "")))
        stats.exact = bool(data.get("exact_percentiles", True))
        for name, entry in entries.items():
            band = canonical_band(name)
            stats.mean[band] = float(entry["mean"])
            stats.std[band] = float(entry["std"])
            if not stats.std[band] > 0:
                raise ValueError(f"{source}: band {band} has std {stats.std[band]}; it must be > 0")
            for key, table in (
                ("count", stats.count),
                ("min", stats.minimum),
                ("max", stats.maximum),
                ("percentiles", stats.percentiles),
            ):
                if key in entry:
                    table[band] = entry[key]
        return stats

    def save(self, path: str | Path) -> None:
        """Write the JSON form (atomically: a killed run leaves the old file or none)."""
        with atomic_path(path) as staging:
            staging.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")


def load_stats(name_or_path: str | Path) -> BandStats:
    """Built-in statistics by name (``"s2_l1c"``, ``"s2_l2a"``, ``"satmae_official"``) or a file.

    A file may be a ``satmae stats`` JSON or a model bundle's ``config.json`` (its
    ``normalization``).

    Raises:
        FileNotFoundError: if neither a built-in name nor an existing file.
        ValueError: if the file holds no statistics.
    """
    text = str(name_or_path)
    if text in BUILTIN_STATS:
        resource = resources.files("satmae.resources").joinpath(f"stats_{text}.json")
        return BandStats.from_dict(json.loads(resource.read_text(encoding="utf-8")), text)
    path = Path(name_or_path)
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


class _Band:
    """Running statistics of one band."""

    def __init__(self, exact_limit: int) -> None:
        self.count = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.minimum = math.inf
        self.maximum = -math.inf
        self.exact_limit = exact_limit
        self.buffer: list[NDArray[np.float64]] = []
        self.buffered = 0
        self.histogram: NDArray[np.int64] | None = None
        self.edges: tuple[float, float] = (0.0, float(_BINS))
        self.integer = True

    def update(self, values: NDArray[np.float64]) -> None:
        if values.size == 0:
            return
        n, mean = values.size, float(values.mean())
        m2 = float(((values - mean) ** 2).sum())
        delta = mean - self.mean
        total = self.count + n
        self.mean += delta * n / total
        self.m2 += m2 + delta**2 * self.count * n / total
        self.count = total
        self.minimum = min(self.minimum, float(values.min()))
        self.maximum = max(self.maximum, float(values.max()))
        self.integer = self.integer and bool(np.all(values == np.round(values)))
        if self.histogram is None:
            self.buffer.append(values)
            self.buffered += n
            if self.buffered > self.exact_limit:
                self._start_histogram()
        else:
            self._add(values)

    def _start_histogram(self) -> None:
        if self.integer and self.minimum >= 0 and self.maximum < _BINS:
            self.edges = (0.0, float(_BINS))  # unit bins: exact for uint16 data
        else:
            span = max(self.maximum - self.minimum, 1e-12)
            self.edges = (self.minimum - span, self.maximum + span)
        self.histogram = np.zeros(_BINS, dtype=np.int64)
        for chunk in self.buffer:
            self._add(chunk)
        self.buffer, self.buffered = [], 0

    def _add(self, values: NDArray[np.float64]) -> None:
        assert self.histogram is not None
        low, high = self.edges
        index = np.floor((values - low) / (high - low) * _BINS).astype(np.int64)
        self.histogram += np.bincount(np.clip(index, 0, _BINS - 1), minlength=_BINS)

    @property
    def exact(self) -> bool:
        return self.histogram is None or (self.integer and self.edges == (0.0, float(_BINS)))

    def percentiles(self, qs: Sequence[float]) -> dict[str, float]:
        if self.count == 0:
            return {}
        if self.histogram is None:
            values = np.concatenate(self.buffer)
            found = np.percentile(values, qs)
            return {_key(q): float(v) for q, v in zip(qs, found, strict=True)}
        cumulative = np.cumsum(self.histogram)
        low, high = self.edges
        width = (high - low) / _BINS
        result = {}
        for q in qs:
            rank = q / 100 * (self.count - 1)
            # value at 0-based rank: the first bin whose cumulative count exceeds the rank
            bin_index = int(np.searchsorted(cumulative, math.floor(rank), side="right"))
            value = low + bin_index * width if self.integer else low + (bin_index + 0.5) * width
            if self.integer and rank != math.floor(rank):
                upper = int(np.searchsorted(cumulative, math.ceil(rank), side="right"))
                value += (rank - math.floor(rank)) * (upper - bin_index) * width
            result[_key(q)] = float(min(max(value, self.minimum), self.maximum))
        return result


def _key(q: float) -> str:
    return f"{q:g}"


class StatsAccumulator:
    """Stream samples and accumulate per-band statistics in bounded memory.

    Args:
        bands: bands to track (any spelling); ``None`` takes them from the first sample.
        exact_limit: valid values per band kept for exact percentiles before switching to a
            histogram (memory ~ 8 bytes x this x bands).
        percentiles: percentiles to report, in [0, 100].
    """

    def __init__(
        self,
        bands: Sequence[str] | None = None,
        *,
        exact_limit: int = 2_000_000,
        percentiles: Sequence[float] = DEFAULT_PERCENTILES,
    ) -> None:
        self.bands: tuple[str, ...] | None = canonical_bands(bands) if bands else None
        self.exact_limit = exact_limit
        self.percentiles = tuple(percentiles)
        self._stats: dict[str, _Band] = {}
        self.samples = 0

    def update(self, sample: Mapping[str, Any]) -> None:
        """Add the valid pixels of a sample (``image (T, C, H, W)`` or a batch ``(B, T, C, H, W)``).

        Raises:
            ValueError: if the sample lacks a tracked band.
        """
        image = torch.as_tensor(sample["image"])
        names = canonical_bands(sample["bands"])
        if self.bands is None:
            self.bands = names
        if missing := [band for band in self.bands if band not in names]:
            raise ValueError(
                f"sample {sample.get('location', '')!r} lacks bands {missing}; it has "
                f"{list(names)}. Restrict the bands (--bands) to those every file holds"
            )
        image = image.reshape(-1, *image.shape[-3:])  # (N, C, H, W)
        valid = sample.get("valid")
        keep = (
            torch.as_tensor(valid).reshape(-1, *image.shape[-2:])
            if valid is not None
            else torch.ones(image.shape[0], *image.shape[-2:], dtype=torch.bool)
        )
        for band in self.bands:
            values = image[:, names.index(band)][keep].numpy().astype(np.float64)
            values = values[np.isfinite(values)]
            self._stats.setdefault(band, _Band(self.exact_limit)).update(values)
        self.samples += 1

    def result(self, provenance: str = "") -> BandStats:
        """The statistics so far.

        Raises:
            ValueError: if no valid pixel was seen.
        """
        if not self._stats or all(s.count == 0 for s in self._stats.values()):
            raise ValueError(
                f"no valid pixels in {self.samples} samples; check the nodata value and masks"
            )
        stats = BandStats(mean={}, std={}, provenance=provenance)
        for band, running in self._stats.items():
            stats.mean[band] = running.mean
            stats.std[band] = math.sqrt(running.m2 / running.count) if running.count else 0.0
            stats.count[band] = running.count
            stats.minimum[band] = running.minimum
            stats.maximum[band] = running.maximum
            stats.percentiles[band] = running.percentiles(self.percentiles)
            stats.exact = stats.exact and running.exact
        return stats


def compute_stats(
    samples: Iterable[Mapping[str, Any]],
    bands: Sequence[str] | None = None,
    *,
    exact_limit: int = 2_000_000,
    percentiles: Sequence[float] = DEFAULT_PERCENTILES,
    provenance: str = "",
    progress: bool = False,
    total: int | None = None,
) -> BandStats:
    """Per-band statistics of the valid pixels of a stream of samples.

    Args:
        samples: samples with ``image``, ``bands`` and optionally ``valid``.
        bands: bands to compute (default the first sample's).
        exact_limit: see :class:`StatsAccumulator`.
        percentiles: percentiles to report.
        provenance: text stored with the result.
        progress: show a tqdm progress bar.
        total: number of samples, for the progress bar.
    """
    accumulator = StatsAccumulator(bands, exact_limit=exact_limit, percentiles=percentiles)
    for sample in tqdm(samples, total=total, disable=not progress, desc="stats", unit="sample"):
        accumulator.update(sample)
    return accumulator.result(provenance)


class Normalize:
    """Normalise a sample's image by band name: ``(x - mean) / std`` per channel.

    Args:
        stats: statistics covering at least the sample's bands.
        mode: ``"zscore"`` (default) or ``"satmae"``, the official SatMAE mapping
            ``clip(0.5 + z/4, 0, 1)`` quantised to 1/255 as its uint8 round trip does.
    """

    def __init__(self, stats: BandStats, mode: Literal["zscore", "satmae"] = "zscore") -> None:
        if mode not in ("zscore", "satmae"):
            raise ValueError(f"mode must be 'zscore' or 'satmae', got {mode!r}")
        self.stats = stats
        self.mode = mode

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        """Return a copy of ``sample`` with ``image`` (``(..., C, H, W)``) normalised.

        Raises:
            ValueError: if the statistics lack any of the sample's bands.
        """
        image = torch.as_tensor(sample["image"]).to(torch.float32)
        mean, std = self.stats.vectors(sample["bands"])
        shape = (len(mean), 1, 1)
        if self.mode == "zscore":
            normalised = (image - mean.view(shape)) / std.view(shape)
        else:
            low = (mean - 2 * std).view(shape)
            scaled = (image - low) / (4 * std).view(shape) * 255.0
            normalised = torch.trunc(scaled.clamp(0.0, 255.0)) / 255.0
        return {**sample, "image": normalised}
