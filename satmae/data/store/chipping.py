"""Cut the series of one location into chips of a store: the shared step of the recipes.

A :class:`ChipPlan` says which bands, chip size, frames, windows and dates; a
:class:`LocationTask` names one location's frames and the store. :func:`chip_location` reads
each window of the series with :func:`satmae.data.readers.series.read_series`, picks the frames with
the date policy, and writes them as one part named after the location. Tasks are independent,
so :func:`satmae.data.parallel.run_tasks` can spread them over a dask cluster, and a rerun skips
locations whose part exists.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import torch
from rasterio.windows import Window

from satmae.data.readers.frames import Frame
from satmae.data.readers.series import frame_grid, read_series
from satmae.data.sample import Sample
from satmae.data.sampling import (
    DatePolicy,
    grid_windows,
    random_windows,
    season_of,
    select_dates,
    valid_fraction,
)
from satmae.data.store.chipstore import part_exists
from satmae.data.store.chipwriter import ChipStoreWriter
from satmae.data.validity import ValidityPolicy

Sampling = Literal["grid", "random", "center"]


@dataclass(frozen=True)
class ChipPlan:
    """How to cut chips.

    Attributes:
        bands: bands of the store, in order.
        size: chip side in pixels of the series grid (the finest band's).
        frames: frames T per chip.
        sampling: ``"grid"`` (regular, ``stride`` apart), ``"random"`` (``count`` windows) or
            ``"center"`` (one window in the middle, padded as invalid where the scene is
            smaller).
        stride: grid step (default ``size``).
        count: random windows per location.
        date_policy: how frames are picked (see :func:`satmae.data.sampling.select_dates`);
            ``"each"`` makes every frame its own single-frame chip (``frames`` must be 1), on
            that frame's own grid, as SatMAE treats fMoW-Sentinel.
        min_valid: minimum valid fraction of every chosen frame, in (0, 1].
        seed: seed of the random windows (mixed with the location name).
        compression: chip store codec.
    """

    bands: tuple[str, ...]
    size: int = 96
    frames: int = 1
    sampling: Sampling = "grid"
    stride: int | None = None
    count: int = 16
    date_policy: DatePolicy | Literal["each"] = "all"
    min_valid: float = 0.5
    seed: int = 0
    compression: Literal["lz4", "zstd"] = "lz4"

    def __post_init__(self) -> None:
        if not 0.0 < self.min_valid <= 1.0:
            raise ValueError(f"min_valid must lie in (0, 1], got {self.min_valid}")
        if self.date_policy == "each" and self.frames != 1:
            raise ValueError(
                f"date_policy 'each' makes single-frame chips; got frames={self.frames}"
            )
        if self.sampling not in ("grid", "random", "center"):
            raise ValueError(f"sampling must be grid, random or center, got {self.sampling!r}")

    def windows(self, height: int, width: int, location: str) -> list[Window]:
        """The windows of a ``height`` x ``width`` scene."""
        if self.sampling == "center":
            top, left = (height - self.size) // 2, (width - self.size) // 2
            return [Window(left, top, self.size, self.size)]
        if self.sampling == "random":
            rng = np.random.default_rng([self.seed, zlib.crc32(location.encode())])
            return random_windows(height, width, self.size, self.count, rng)
        return grid_windows(height, width, self.size, self.stride)


@dataclass(frozen=True)
class LocationTask:
    """One location's frames to cut into one part of the store at ``store``."""

    location: str
    frames: tuple[Frame, ...]
    store: str
    plan: ChipPlan
    storage_options: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class LocationReport:
    """What one task did.

    Attributes:
        location: the location id.
        part: the part name in the store.
        written: chips written.
        skipped_invalid: chips dropped for too few valid pixels.
        skipped_dates: windows where the date policy found too few clear frames.
        resumed: the part existed already and was skipped.
        error: the reason the location failed (nothing of it was written), or None.
    """

    location: str
    part: str
    written: int = 0
    skipped_invalid: int = 0
    skipped_dates: int = 0
    resumed: bool = False
    error: str | None = None


def part_name(location: str) -> str:
    """A part name for a location id: unsafe characters become ``_`` plus a short hash."""
    safe = re.sub(r"[^A-Za-z0-9_\-]", "_", location) or "location"
    if safe == location:
        return safe
    return f"{safe}-{zlib.crc32(location.encode()):08x}"


def pick_frames(sample: Sample, plan: ChipPlan) -> Sample | None:
    """The frames of a windowed series that the date policy keeps, or None if too few."""
    policy = "all" if plan.date_policy == "each" else plan.date_policy
    chosen = select_dates(
        sample["times"].numpy(),
        valid_fraction(sample["valid"].numpy()),
        policy,
        plan.frames,
        min_clear=plan.min_valid,
    )
    if chosen is None:
        return None
    index = torch.tensor(chosen)
    picked: dict[str, Any] = dict(sample)
    picked.update(
        image=sample["image"][index].round().clamp(0, 65535),
        times=sample["times"][index],
        valid=sample["valid"][index],
    )
    return picked  # type: ignore[return-value]


def _describe_dates(times: list[int]) -> str:
    days = sorted({datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%d") for t in times})
    shown = ", ".join(days[:6]) + (f", ... ({len(days)} dates)" if len(days) > 6 else "")
    return f"{len(times)} dates ({shown})" if times else "no dates"


def check_dates(location: str, frames: Sequence[Frame], plan: ChipPlan) -> None:
    """Refuse a location whose dates can never give the chips ``plan`` asks for.

    Window by window, :func:`pick_frames` also needs clear frames; this check looks only at the
    dates, before anything is read or written, so a plan that no window could satisfy (more
    frames than dates, seasons the dates do not cover) fails at once instead of writing an
    empty part.

    Args:
        location: the location id (the source, in errors).
        frames: its dated frames.
        plan: the chip plan.

    Raises:
        ValueError: naming the location, what the plan asks and what the dates give.
    """
    times = [int(frame.time) for frame in frames]
    if plan.date_policy == "each":
        if not times:
            raise ValueError(f"location {location!r} has no dates; --dates each needs at least 1")
        return
    if select_dates(times, [1.0] * len(times), plan.date_policy, plan.frames) is not None:
        return
    asked = (
        f"{plan.frames} consecutive seasons (--dates season --frames {plan.frames})"
        if plan.date_policy == "season"
        else f"{plan.frames} frames (--frames {plan.frames})"
    )
    if plan.date_policy == "season":
        seasons = sorted({season_of(t) for t in times})
        names = ("DJF", "MAM", "JJA", "SON")
        has = f"{_describe_dates(times)} in seasons " + ", ".join(
            f"{names[season]} {year}" for year, season in seasons
        )
    else:
        has = _describe_dates(times)
    raise ValueError(
        f"location {location!r} cannot give {asked}: it has {has}; lower --frames, choose "
        "another --dates policy, or leave this source out"
    )


def chip_location(task: LocationTask) -> LocationReport:
    """Cut one location into one part; errors are reported, not raised, so others go on."""
    plan, part = task.plan, part_name(task.location)
    report = LocationReport(task.location, part)
    if part_exists(task.store, part, task.storage_options):
        report.resumed = True
        return report
    try:
        check_dates(task.location, task.frames, plan)
    except ValueError as error:  # nothing is written for it
        report.error = str(error)
        return report
    policy = ValidityPolicy(max_invalid_fraction=1.0 - plan.min_valid, on_exceed="drop")
    # "each": every frame is a series of its own, cut on its own grid
    series_list = (
        [[frame] for frame in task.frames] if plan.date_policy == "each" else [list(task.frames)]
    )
    try:
        with ChipStoreWriter(
            task.store,
            part,
            bands=plan.bands,
            frames=plan.frames,
            height=plan.size,
            width=plan.size,
            policy=policy,
            compression=plan.compression,
            storage_options=task.storage_options,
        ) as writer:
            for frames in series_list:
                grid = frame_grid(frames[0])
                for window in plan.windows(grid.height, grid.width, task.location):
                    # frames are already one location's; read_series would filter by its id
                    series = read_series(frames, plan.bands, grid=grid, window=window)
                    picked = pick_frames(series, plan)
                    if picked is None:
                        report.skipped_dates += 1
                        continue
                    row, col = int(window.row_off), int(window.col_off)
                    picked["location"] = f"{task.location}@{frames[0].time}:{row},{col}"
                    writer.add(picked)
        report.written, report.skipped_invalid = writer.written, writer.skipped
    except (ValueError, FileNotFoundError) as error:
        report.error = str(error)
    return report


def summarize(reports: list[LocationReport]) -> str:
    """A one-paragraph summary of a recipe run, with every failed location and its reason."""
    lines = [
        f"locations: {len(reports)} ({sum(r.resumed for r in reports)} already written), "
        f"chips written: {sum(r.written for r in reports)}, "
        f"skipped for invalid pixels: {sum(r.skipped_invalid for r in reports)}, "
        f"windows without enough clear dates: {sum(r.skipped_dates for r in reports)}, "
        f"failed: {sum(r.error is not None for r in reports)}"
    ]
    lines += [f"  FAILED {r.location}: {r.error}" for r in reports if r.error]
    return "\n".join(lines)
