"""Random windows of ``T`` dates cut from Sentinel-2 scenes while training, without a chip store.

:class:`SceneWindows` lists the places (locations) under a path once, from file names and
headers only, and reads item ``i`` on demand: a location, ``T`` of its dates and a
``size`` x ``size`` window, all drawn from ``(seed, epoch, i)`` alone, so a resumed run and every
DDP rank and DataLoader worker agree on what item ``i`` is. A location is

- a folder of dated scenes (``S2_20210615.tif``, dated SAFE or per-band folders): one series;
- each such folder inside a folder of folders, each OSCD city (per-band files at 10/20/60 m on
  the city's 10 m grid), each location of an index table;
- any other sample the reader registry lists (a raster, a SAFE product, a BigEarthNet patch):
  one location of the dates it holds.

Only the chosen dates and the window are decoded. Every date keeps its own reader open
(bands at 20 and 60 m seen through a warp onto the 10 m grid), a few locations at a time per
process. :func:`scene_stats` computes the normalisation statistics of such scenes, for a
pretraining config that names none.
"""

from __future__ import annotations

import copy
import math
import os
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import torch
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window
from torch.utils.data import Dataset

from satmae.bands import canonical_bands
from satmae.data.grid import Grid, PathLike
from satmae.data.readers.locations import SceneLocation, find_locations
from satmae.data.readers.protocol import Reader
from satmae.data.readers.series import SeriesReader, frame_grid
from satmae.data.sample import Sample
from satmae.data.sampling import random_windows
from satmae.data.stats import compute_stats
from satmae.normalization import BandStats

MAX_TRIES = 16
"""Windows drawn per item before the clearest one is taken despite ``min_valid``."""


class _OpenLocation:
    """Readers of one location kept open: one per date, all on the location's grid."""

    def __init__(self, location: SceneLocation, bands: tuple[str, ...] | None) -> None:
        self.name = location.name
        self.readers: list[Reader] = []
        self.whole: Sample | None = None
        try:
            if location.frames:
                grid = frame_grid(location.frames[0])
                for frame in location.frames:
                    self.readers.append(SeriesReader([frame], bands, grid=grid))
            elif location.source is not None and location.source.open is not None:
                self.readers.append(location.source.open())
            elif location.source is not None:  # no windowed reads: keep it in memory
                self.whole = location.source.read()
        except BaseException:
            self.close()
            raise
        if self.whole is not None:
            self.bands = tuple(self.whole["bands"])
            self.dates = int(self.whole["image"].shape[0])
            self.shape = (int(self.whole["image"].shape[-2]), int(self.whole["image"].shape[-1]))
        else:
            self.bands = self.readers[0].bands
            self.dates = len(self.readers)
            self.shape = (self.readers[0].grid.height, self.readers[0].grid.width)

    def read(self, window: Window, dates: Sequence[int]) -> Sample:
        """The window in the chosen dates: ``image (T, C, H, W)``, ``valid``, ``times``, geo."""
        if self.whole is not None:
            return self._crop(window, dates)
        parts = [self.readers[date].read(window) for date in dates]
        sample: Sample = {
            "image": torch.cat([part["image"] for part in parts]),
            "bands": self.bands,
            "valid": torch.cat([part["valid"] for part in parts]),
            "location": self.name,
        }
        if all(part.get("times") is not None for part in parts):
            sample["times"] = torch.cat([part["times"] for part in parts])
        first = parts[0]
        if "crs" in first and "transform" in first and "bounds" in first:
            sample["crs"], sample["transform"] = first["crs"], first["transform"]
            sample["bounds"] = first["bounds"]
        return sample

    def _crop(self, window: Window, dates: Sequence[int]) -> Sample:
        assert self.whole is not None
        whole, chosen = self.whole, list(dates)
        rows = slice(int(window.row_off), int(window.row_off + window.height))
        cols = slice(int(window.col_off), int(window.col_off + window.width))
        sample: Sample = {
            "image": whole["image"][chosen, :, rows, cols].clone(),
            "bands": self.bands,
            "valid": whole["valid"][chosen, rows, cols].clone(),
            "location": self.name,
        }
        if whole.get("times") is not None:
            sample["times"] = whole["times"][chosen].clone()
        if whole.get("transform") is not None:
            crs = CRS.from_wkt(whole["crs"]) if whole.get("crs") else None
            grid = Grid(crs, Affine(*whole["transform"]), self.shape[1], self.shape[0])
            grid.window(window).attach(sample)
        return sample

    def close(self) -> None:
        """Close every reader."""
        for reader in self.readers:
            reader.close()
        self.readers = []


class SceneWindows(Dataset[Sample]):
    """Random ``size`` x ``size`` windows of ``frames`` dates from Sentinel-2 scenes.

    Item ``i`` belongs to location ``i // windows_per_scene``; its dates (all of them when the
    location has ``frames``, else a seeded choice in time order) and its window come from a
    generator seeded with ``(seed, epoch, i)`` only. A window whose valid fraction (over its
    frames and pixels) is below ``min_valid`` is drawn again, with new dates, up to
    :data:`MAX_TRIES` times; then the clearest drawn window is used. Locations with fewer dates
    than ``frames`` give shorter series, which :func:`~satmae.data.sample.collate_samples` pads
    (``frame_mask``), unless ``pad=False``.

    Samples follow the data contract (DESIGN §3): ``image (T, C, H, W)`` float32 reflectance as
    read, ``times (T,)`` where the source dates its scenes, ``bands``, ``valid (T, H, W)``,
    ``location``, ``crs``, ``transform`` and ``bounds`` of the window. Each process opens its own
    readers (at most ``max_open`` locations at a time), so DataLoader workers and DDP ranks
    share nothing but the file list.

    Args:
        path: a folder of dated scenes, a folder of such folders or of OSCD city folders, an
            index table, a SAFE product, or anything else the reader registry lists.
        size: window side in pixels of the location's grid (the finest band's, e.g. 10 m).
        frames: dates ``T`` per window.
        windows_per_scene: items per location and epoch.
        bands: bands to read, in this order (default: the first location's bands).
        min_valid: smallest fraction of valid pixels of a window, in [0, 1].
        seed: seed of the draws.
        epoch: epoch of the draws (see :meth:`set_epoch`).
        pad: allow locations with fewer than ``frames`` dates (their series come shorter);
            with False they are an error.
        max_open: locations whose files each process keeps open; reopening is the slow part
            of a read (a shuffled epoch over more locations than this reopens on most items),
            so raise it as far as the open-file limit (``ulimit -n``) allows.

    Raises:
        FileNotFoundError: if the path holds no readable scene.
        ValueError: for non-positive sizes, a ``min_valid`` outside [0, 1], locations with too
            few dates, a window larger than a scene (named, with its size), or missing bands.
    """

    def __init__(
        self,
        path: PathLike,
        size: int,
        frames: int,
        windows_per_scene: int = 64,
        bands: Sequence[str] | None = None,
        min_valid: float = 0.5,
        seed: int = 0,
        epoch: int = 0,
        *,
        pad: bool = True,
        max_open: int = 16,
    ) -> None:
        for name, value in (
            ("size", size),
            ("frames", frames),
            ("windows_per_scene", windows_per_scene),
            ("max_open", max_open),
        ):
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if not 0.0 <= min_valid <= 1.0:
            raise ValueError(f"min_valid must lie in [0, 1], got {min_valid}")
        if seed < 0 or epoch < 0:
            raise ValueError(f"seed and epoch must be non-negative, got {seed} and {epoch}")
        self.path = str(path)
        self.size = size
        self.frames = frames
        self.windows_per_scene = windows_per_scene
        self.min_valid = min_valid
        self.seed = seed
        self.epoch = epoch
        self.max_open = max_open
        self._locations = find_locations(path, bands)
        self._check_dates(pad)
        self._check_sizes()
        self.bands: tuple[str, ...] | None = canonical_bands(bands) if bands is not None else None
        self._cache: OrderedDict[int, _OpenLocation] = OrderedDict()
        self._pid = os.getpid()
        first = self._open(0)  # fixes the bands and reports missing ones before training
        self.bands = first.bands
        self._release()

    def _check_dates(self, pad: bool) -> None:
        short = [
            f"{location.name} ({location.dates})"
            for location in self._locations
            if location.dates is not None and location.dates < self.frames
        ]
        known = [location.dates for location in self._locations if location.dates is not None]
        if short and (not pad or len(short) == len(known)):
            raise ValueError(
                f"frames={self.frames} but these locations have fewer dates: "
                f"{', '.join(short[:10])}{' ...' if len(short) > 10 else ''}; lower frames"
                + ("" if len(short) == len(known) else ", or pass pad=True to pad them")
            )

    def _check_sizes(self) -> None:
        small = [
            f"{location.name} ({location.shape[0]}x{location.shape[1]})"
            for location in self._locations
            if location.shape is not None and min(location.shape) < self.size
        ]
        if small:
            raise ValueError(
                f"a {self.size}x{self.size} window is larger than the scenes "
                f"{', '.join(small[:10])}{' ...' if len(small) > 10 else ''} (H x W pixels); "
                "lower size or leave these scenes out"
            )

    @property
    def locations(self) -> list[str]:
        """Location ids, in item order (item ``i`` is at ``locations[i // windows_per_scene]``)."""
        return [location.name for location in self._locations]

    def subset(self, locations: Iterable[str]) -> SceneWindows:
        """The same windows restricted to ``locations`` (e.g. to hold out whole locations).

        Raises:
            ValueError: if a location is not in this dataset.
        """
        wanted = set(locations)
        if unknown := sorted(wanted - set(self.locations)):
            raise ValueError(
                f"locations {unknown[:10]} are not in {self.path}; it holds {self.locations[:10]}"
            )
        subset = copy.copy(self)
        subset._locations = [loc for loc in self._locations if loc.name in wanted]
        subset._cache = OrderedDict()
        return subset

    def set_epoch(self, epoch: int) -> None:
        """Draw the windows of another epoch (call it at every epoch start)."""
        if epoch < 0:
            raise ValueError(f"epoch must be non-negative, got {epoch}")
        self.epoch = epoch

    def __len__(self) -> int:
        """Locations x windows per scene."""
        return len(self._locations) * self.windows_per_scene

    def __getitem__(self, index: int) -> Sample:
        """Window ``index`` of the current epoch."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} windows")
        opened = self._open(index // self.windows_per_scene)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        best: tuple[float, Sample] | None = None
        for _ in range(MAX_TRIES):
            count = opened.dates
            if count > self.frames:
                dates = sorted(rng.choice(count, size=self.frames, replace=False).tolist())
            else:
                dates = list(range(count))
            window = random_windows(*opened.shape, self.size, 1, rng)[0]
            sample = opened.read(window, dates)
            fraction = float(sample["valid"].float().mean())
            if best is None or fraction > best[0]:
                best = (fraction, sample)
            if fraction >= self.min_valid:
                break
        assert best is not None
        return best[1]

    def _open(self, position: int) -> _OpenLocation:
        """The open readers of location ``position``, opened on first use in this process."""
        if os.getpid() != self._pid:  # a forked worker must not share its parent's files
            self._cache, self._pid = OrderedDict(), os.getpid()
        if (opened := self._cache.get(position)) is not None:
            self._cache.move_to_end(position)
            return opened
        location = self._locations[position]
        opened = _OpenLocation(location, self.bands)
        if self.bands is not None and opened.bands != self.bands:
            opened.close()
            missing = [band for band in self.bands if band not in opened.bands]
            raise ValueError(
                f"location {location.name} has bands {list(opened.bands)}, not the dataset's "
                f"{list(self.bands)}"
                + (f" (missing {missing})" if missing else "")
                + "; pass bands= that every scene holds"
            )
        if min(opened.shape) < self.size:
            opened.close()
            raise ValueError(
                f"a {self.size}x{self.size} window is larger than the scene {location.name} "
                f"({opened.shape[0]}x{opened.shape[1]} pixels); lower size or leave it out"
            )
        self._cache[position] = opened
        while len(self._cache) > self.max_open:
            _, evicted = self._cache.popitem(last=False)
            evicted.close()
        return opened

    def _release(self) -> None:
        """Close every open reader."""
        for opened in self._cache.values():
            opened.close()
        self._cache = OrderedDict()

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without open files (spawned DataLoader workers open their own)."""
        state = self.__dict__.copy()
        state["_cache"] = OrderedDict()
        return state

    def __del__(self) -> None:
        """Close the files this process opened."""
        if getattr(self, "_pid", None) == os.getpid():
            self._release()


def scene_stats(
    path: PathLike,
    bands: Sequence[str] | None = None,
    *,
    max_samples: int = 256,
    size: int = 256,
    seed: int = 0,
    progress: bool = False,
) -> BandStats:
    """Per-band statistics of the valid pixels of scenes, from random single-date windows.

    The windows (``size`` x ``size``, smaller where a scene is smaller; ``max_samples`` spread
    evenly over the locations) go through the same accumulator as ``satmae stats``, so the
    numbers are a sample of what it reports on the whole scenes. Used when a pretraining config
    names no statistics.

    Args:
        path: anything :class:`SceneWindows` reads.
        bands: bands to compute (default: the first location's).
        max_samples: windows to read.
        size: window side in pixels.
        seed: seed of the windows.
        progress: show a progress bar.

    Raises:
        FileNotFoundError: if the path holds no readable scene.
        ValueError: for non-positive ``max_samples`` or ``size``, or if no pixel is valid.
    """
    if max_samples < 1 or size < 1:
        raise ValueError(f"max_samples and size must be positive, got {max_samples} and {size}")
    shapes = [location.shape for location in find_locations(path, bands)]
    smallest = min((min(shape) for shape in shapes if shape is not None), default=size)
    per_scene = math.ceil(max_samples / len(shapes))
    windows = SceneWindows(path, min(size, smallest), 1, per_scene, bands, min_valid=0.0, seed=seed)
    picks = np.linspace(0, len(windows) - 1, min(max_samples, len(windows))).round()
    samples: Iterator[Sample] = (windows[int(index)] for index in picks)
    today = datetime.now(UTC).date().isoformat()
    provenance = (
        f"computed by satmae.train.scenes.scene_stats on {len(picks)} windows of "
        f"{windows.size} px from {path} ({today}); valid pixels only"
    )
    return compute_stats(
        samples, windows.bands, provenance=provenance, progress=progress, total=len(picks)
    )
