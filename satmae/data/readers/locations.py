"""The places under a path, as series of dated frames, listed without reading pixels.

A location is a folder of dated scenes (one series), each such folder inside a folder of
folders, each OSCD city, each location of an index table, or any other sample the reader
registry lists (a raster, a SAFE product, a BigEarthNet patch). Pretraining on scene folders
(:class:`satmae.train.scenes.SceneWindows`) draws its windows from these.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from satmae.bands import canonical_bands
from satmae.data.grid import PathLike
from satmae.data.readers.frames import Frame, frames_from_folder, group_by_location, read_index
from satmae.data.readers.layouts import (
    _date_folder,
    _oscd_images,
    is_oscd_city,
    oscd_cities,
    read_oscd_dates,
)
from satmae.data.readers.protocol import ReadOptions, Source
from satmae.data.readers.registry import FOLDER_ITEMS, find_entry
from satmae.data.readers.series import frame_grid


@dataclass(frozen=True)
class SceneLocation:
    """One place: the dates of a series or one sample of the reader registry.

    Attributes:
        name: location id (folder, city or index location, or the sample's name).
        frames: the dated frames of a series, in time order; empty for a registry sample.
        source: the registry sample when there are no frames.
        shape: ``(H, W)`` of the location's grid when the headers tell it, else None.
    """

    name: str
    frames: tuple[Frame, ...] = ()
    source: Source | None = None
    shape: tuple[int, int] | None = None

    @property
    def dates(self) -> int | None:
        """Number of dates, None until read for samples read whole (cubes)."""
        if self.frames:
            return len(self.frames)
        return 1 if self.source is not None and self.source.open is not None else None


def find_locations(path: PathLike, bands: Sequence[str] | None = None) -> list[SceneLocation]:
    """The locations under ``path``, from names and headers only (no pixels are read).

    Raises:
        FileNotFoundError: if the path does not exist or holds no readable scene.
        ValueError: if two locations share a name.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    options = ReadOptions(canonical_bands(bands) if bands is not None else None)
    locations = _locations_in(path, options, nested=True)
    if not locations:
        raise FileNotFoundError(
            f"no readable scenes in {path}: expected a folder of dated scenes (S2_20210615.tif, "
            "dated SAFE or per-band folders), a folder of such folders, OSCD city folders, an "
            "index .csv/.parquet, a SAFE product or a raster"
        )
    names = [location.name for location in locations]
    if duplicated := sorted({name for name in names if names.count(name) > 1}):
        raise ValueError(
            f"{path} holds several locations named {duplicated}; give every scene folder or "
            "index location its own name"
        )
    return locations


def _locations_in(path: Path, options: ReadOptions, nested: bool) -> list[SceneLocation]:
    entry = find_entry(path)
    if entry is None:
        return []
    if entry.name in ("oscd", "oscd_city"):
        return _oscd_locations(path)
    if entry.name == "index":
        groups = group_by_location(read_index(path)).items()
        return [_series(name or path.stem, frames) for name, frames in groups]
    if entry.name == "folder":
        if (frames := _dated_frames(path)) is not None:
            return [_series(path.name, frames)]
        if nested:  # a folder of series folders (or city folders) beside single scenes
            found = [
                location
                for child in sorted(path.iterdir())
                if child.is_dir() and find_entry(child, FOLDER_ITEMS) is None
                for location in _locations_in(child, options, nested=False)
            ]
            return found + [_single(source) for source in entry.open(path, options)]
    return [_single(source) for source in entry.open(path, options)]


def _dated_frames(folder: Path) -> list[Frame] | None:
    """The frames of a folder whose scenes all carry dates, else None."""
    try:
        return frames_from_folder(folder)
    except (FileNotFoundError, ValueError):
        return None


def _series(name: str, frames: Sequence[Frame]) -> SceneLocation:
    grid = frame_grid(frames[0])
    ordered = tuple(sorted(frames, key=lambda frame: frame.time))
    return SceneLocation(name, ordered, shape=(grid.height, grid.width))


def _single(source: Source) -> SceneLocation:
    grid = source.grid() if source.open is not None else None
    shape = (grid.height, grid.width) if grid is not None else None
    return SceneLocation(source.name, source=source, shape=shape)


def _oscd_locations(path: Path) -> list[SceneLocation]:
    """Each OSCD city as a two-date series of its ``imgs_1``/``imgs_2`` per-band folders."""
    if is_oscd_city(path):
        images, cities = path.parent, [path.name]
    else:
        images, cities = _oscd_images(path), oscd_cities(path)
    locations = []
    for city in cities:
        times = read_oscd_dates(images / city / "dates.txt")
        frames = [
            Frame(_date_folder(images / city, date), time, location=city)
            for date, time in enumerate(times, start=1)
        ]
        locations.append(_series(city, frames))
    return locations
