"""Per-band normalisation statistics keyed by band name, and the transform that uses them.

:class:`StatsAccumulator` streams samples and keeps, per band, an exact mean and standard
deviation (float64 running moments merged with Chan's formula) and percentiles that are exact
while the data is small (all valid values are kept up to ``exact_limit`` per band) and come from
a fixed 65 536-bin histogram afterwards, so memory stays bounded for any amount of data. For
integer reflectance in [0, 65535] (the usual uint16 ×10000 storage) the histogram has unit bins,
so even the streamed percentiles are exact.

The statistics type (:class:`~satmae.normalization.BandStats`), the built-in statistics
(:func:`~satmae.normalization.load_stats`: ``"s2_l1c"`` and ``"s2_l2a"`` computed from the real
samples in ``../shared/data/real``, ``"satmae_official"`` and ``"fmow_rgb"`` from the official
SatMAE code) and the normalisation itself live in :mod:`satmae.normalization`; they are
re-exported here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from tqdm.auto import tqdm

from satmae.bands import canonical_bands
from satmae.data.validity import valid_mask
from satmae.normalization import (
    BUILTIN_STATS,
    BandStats,
    Normalization,
    NormMode,
    load_stats,
)

__all__ = [
    "BUILTIN_STATS",
    "DEFAULT_PERCENTILES",
    "BandStats",
    "Normalize",
    "StatsAccumulator",
    "compute_stats",
    "load_stats",
]

DEFAULT_PERCENTILES: tuple[float, ...] = (0.5, 1, 2, 5, 25, 50, 75, 95, 98, 99, 99.5)
"""Percentiles reported by default (torchgeo's BigEarthNet uses 2 and 98)."""

_BINS = 65536


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
        # the readers' validity rule: the sample's own mask, and never a non-finite pixel (a
        # sample built by hand may carry NaN or inf without a mask saying so)
        keep = valid_mask(image, nodata=None)  # (N, H, W)
        valid = sample.get("valid")
        if valid is not None:
            keep &= torch.as_tensor(valid, dtype=torch.bool).reshape(-1, *image.shape[-2:])
        for band in self.bands:
            values = image[:, names.index(band)][keep].numpy().astype(np.float64)
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
    """Normalise a sample's image by band name (see :mod:`satmae.normalization`).

    Args:
        stats: statistics covering at least the sample's bands.
        mode: ``"zscore"`` (default) or ``"satmae"``, the official SatMAE mapping
            ``clip(0.5 + z/4, 0, 1)`` quantised to 1/255 as its uint8 round trip does.
    """

    def __init__(self, stats: BandStats, mode: NormMode = "zscore") -> None:
        self.normalization = Normalization(stats, mode)

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        """Return a copy of ``sample`` with ``image`` (``(..., C, H, W)``) normalised.

        Raises:
            ValueError: if the statistics lack any of the sample's bands.
        """
        return {**sample, "image": self.normalization.apply(sample["image"], sample["bands"])}
