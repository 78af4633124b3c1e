"""Multi-date series of one place, from a folder or an index table, aligned to one grid.

A series is a list of :class:`Frame` (a file or a per-band folder, its acquisition time, and
optionally a location and a label). Frames come from

- a **folder** whose entries (multi-band rasters or per-band product folders) carry a date in
  their names (``S2_20210615.tif``, ``2021-06-15/``, ``..._20210615T103021_...``);
- an **index table** (CSV or Parquet) with columns ``path``, ``datetime`` and optionally
  ``location`` and ``label`` (aliases: ``image_path``/``file``, ``timestamp``/``date``,
  ``location_id``, ``category``); fMoW-Sentinel's ``train.csv`` is read as is.

:func:`read_series` stacks the frames in time order on the grid of the first frame (or a given
grid), reprojecting frames in another CRS through a WarpedVRT.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from satmae.bands import DATASET_BAND_ORDERS
from satmae.data.grid import (
    BoundsLike,
    Grid,
    PathLike,
    dataset_grid,
    open_raster,
    resolve_window,
    same_crs,
)
from satmae.data.readers.band_files import default_grid
from satmae.data.readers.geotiff import file_time, is_class_layer
from satmae.data.readers.protocol import (
    INDEX_SUFFIXES,
    RASTER_SUFFIXES,
    Reader,
    ReadOptions,
    Source,
)
from satmae.data.sample import Sample, to_epoch_seconds

_DATE_IN_NAME = re.compile(r"(?<!\d)(\d{4})-?(\d{2})-?(\d{2})(?:T(\d{2})(\d{2})(\d{2}))?(?!\d)")

COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "path": ("path", "image_path", "file", "filename"),
    "datetime": ("datetime", "timestamp", "date", "time", "acquisition_date"),
    "location": ("location", "location_id", "site", "tile"),
    "label": ("label", "category", "class"),
}
"""Accepted index-table column names for each field, first match wins."""

FMOW_SENTINEL_COLUMNS: frozenset[str] = frozenset({"category", "location_id", "image_id"})
"""Columns that identify an fMoW-Sentinel CSV (its files are 13-band, fMoW band order)."""


@dataclass(frozen=True)
class Frame:
    """One date of a series.

    Attributes:
        path: a multi-band raster file or a per-band product folder.
        time: acquisition time in seconds since 1970-01-01 UTC.
        location: location id (frames of one series share it).
        label: a class name or index, if the source has one.
        band_order: declared band order of ``path`` when the file does not name its bands.
    """

    path: Path
    time: int
    location: str | None = None
    label: str | int | None = None
    band_order: tuple[str, ...] | None = None


def date_from_name(name: str) -> int:
    """Acquisition time from a file or folder name containing ``YYYYMMDD[THHMMSS]``.

    Raises:
        ValueError: if the name holds no parseable date.
    """
    for match in _DATE_IN_NAME.finditer(name):
        year, month, day, hour, minute, second = match.groups()
        text = f"{year}-{month}-{day}" + (f"T{hour}:{minute}:{second}" if hour else "")
        try:
            return to_epoch_seconds(text)
        except ValueError:
            continue
    raise ValueError(
        f"cannot parse a date from {name!r}: put the acquisition date in the name "
        "(e.g. S2_20210615.tif or 2021-06-15/), or list the files in an index CSV with a "
        "datetime column"
    )


def _entry_time(entry: Path) -> int:
    """A raster's acquisition-time tag (it holds the time of day), else the date in its name."""
    if entry.is_file():
        with open_raster(entry) as dataset:
            tagged = file_time(dataset, entry)
        if tagged is not None:
            return tagged
    return date_from_name(entry.name)


def frames_from_folder(folder: PathLike) -> list[Frame]:
    """Frames of a folder of dated rasters or dated per-band product folders, in time order.

    A raster's time comes from its acquisition-time tag where it has one, else from the date
    in its name. Single-band class layers beside the imagery (SCL, land cover, change masks)
    are not frames; a ``<stem>_SCL.tif`` beside a raster feeds that frame's valid mask.

    Raises:
        FileNotFoundError: if the folder does not exist or holds no raster or product folder.
        ValueError: if an entry's name holds no parseable date, or two entries share a time.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"series folder {folder} does not exist")
    entries = [
        entry
        for entry in sorted(folder.iterdir())
        if (
            entry.is_file()
            and entry.suffix.lower() in RASTER_SUFFIXES
            and not is_class_layer(entry)
        )
        or entry.is_dir()
    ]
    if not entries:
        raise FileNotFoundError(
            f"series folder {folder} is empty: expected dated rasters (S2_20210615.tif) or "
            "dated per-band folders"
        )
    frames = [Frame(entry, _entry_time(entry), location=folder.name) for entry in entries]
    times = [frame.time for frame in frames]
    if len(set(times)) != len(times):
        duplicated = sorted({f.path.name for f in frames if times.count(f.time) > 1})
        raise ValueError(f"{folder}: entries {duplicated} have the same acquisition time")
    return sorted(frames, key=lambda frame: frame.time)


def _column(table: Any, field: str, path: Path, required: bool) -> str | None:
    for name in COLUMN_ALIASES[field]:
        if name in table.columns:
            return name
    if required:
        raise ValueError(
            f"index {path} has no {field} column (any of {list(COLUMN_ALIASES[field])}); "
            f"its columns are {list(table.columns)}"
        )
    return None


def read_index(path: PathLike) -> list[Frame]:
    """Frames listed in a CSV or Parquet index; relative paths are relative to the index.

    An fMoW-Sentinel CSV (``category, location_id, image_id, timestamp, polygon``) without an
    ``image_path`` column gets the dataset's layout
    ``<split>/<category>/<category>_<location_id>/<category>_<location_id>_<image_id>.tif``
    and the fMoW-Sentinel band order.

    Raises:
        FileNotFoundError: if the index does not exist or lists no rows.
        ValueError: if a required column is missing or a date cannot be parsed (row named).
    """
    import pandas as pd  # pandas is heavy; only index tables need it

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"index {path} does not exist")
    if path.suffix.lower() in (".parquet", ".pq"):
        table = pd.read_parquet(path)
    else:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    if table.empty:
        raise FileNotFoundError(f"index {path} lists no files")
    fmow = set(table.columns) >= FMOW_SENTINEL_COLUMNS
    path_column = _column(table, "path", path, required=not fmow)
    time_column = _column(table, "datetime", path, required=True)
    location_column = _column(table, "location", path, required=False)
    label_column = _column(table, "label", path, required=False)
    split = path.stem.removesuffix("_gt")
    frames = []
    for row_number, row in enumerate(table.to_dict("records"), start=2):
        if path_column is not None:
            file = Path(str(row[path_column]))
        else:
            stem = f"{row['category']}_{row['location_id']}"
            file = Path(split, str(row["category"]), stem, f"{stem}_{row['image_id']}.tif")
        try:
            time = to_epoch_seconds(str(row[time_column]))
        except ValueError:
            raise ValueError(
                f"{path}, line {row_number} ({file}): cannot parse {time_column} "
                f"{row[time_column]!r}; write ISO 8601 such as 2021-06-15T10:30:00Z"
            ) from None
        frames.append(
            Frame(
                file if file.is_absolute() else path.parent / file,
                time,
                location=str(row[location_column]) if location_column else None,
                label=row[label_column] if label_column else None,
                band_order=DATASET_BAND_ORDERS["fmow_sentinel"] if fmow else None,
            )
        )
    return frames


def group_by_location(frames: Sequence[Frame]) -> dict[str, list[Frame]]:
    """Frames grouped by location (None becomes ``""``), each group in time order."""
    groups: dict[str, list[Frame]] = {}
    for frame in frames:
        groups.setdefault(frame.location or "", []).append(frame)
    return {key: sorted(group, key=lambda f: f.time) for key, group in groups.items()}


def frame_grid(frame: Frame) -> Grid:
    """Grid of a frame: the raster's own, or the finest band's for a per-band folder."""
    if frame.path.is_dir():
        return default_grid(frame.path)
    with open_raster(frame.path) as dataset:
        return dataset_grid(dataset)


def _check_overlap(frame: Frame, target: Grid) -> None:
    grid = frame_grid(frame)
    if grid.crs is None or target.crs is None:
        if not same_crs(grid.crs, target.crs) or grid.aligned_offset(target) is None:
            raise ValueError(
                f"{frame.path} cannot be aligned with the series grid: one of them has no CRS "
                "and their pixel grids differ; georeference the files or give them one grid"
            )
        return
    left, bottom, right, top = (
        grid.bounds
        if same_crs(grid.crs, target.crs)
        else transform_bounds(grid.crs, target.crs, *grid.bounds)
    )
    t_left, t_bottom, t_right, t_top = target.bounds
    if left >= t_right or right <= t_left or bottom >= t_top or top <= t_bottom:
        raise ValueError(
            f"{frame.path} (bounds {grid.bounds} in {grid.crs}) does not overlap the series "
            f"grid (bounds {target.bounds} in {target.crs}); frames of one series must cover "
            "the same place — check the file list or the location column"
        )


def _as_frames(source: Sequence[Frame] | PathLike) -> list[Frame]:
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.is_file() and path.suffix.lower() in INDEX_SUFFIXES:
            return read_index(path)
        return frames_from_folder(path)
    return list(source)


def _one_location(
    source: Sequence[Frame] | PathLike, location: str | None
) -> tuple[list[Frame], str]:
    """The frames of one place, in time order, and its location id."""
    frames = _as_frames(source)
    if location is not None:
        frames = [frame for frame in frames if frame.location == location]
    if not frames:
        raise FileNotFoundError(f"no frames to read from {source} (location={location!r})")
    locations = sorted({frame.location or "" for frame in frames})
    if len(locations) > 1:
        raise ValueError(
            f"{source} holds {len(locations)} locations ({locations[:5]}...); a series is one "
            "place — pass location=... or split the index with group_by_location()"
        )
    frames = sorted(frames, key=lambda frame: frame.time)
    return frames, locations[0] or frames[0].path.parent.name


class SeriesReader:
    """A multi-date series of one place kept open on one grid, for many windowed reads.

    Every frame is opened once (and checked to overlap the grid); frames on another grid or CRS
    are seen through a WarpedVRT, and each :meth:`read` decodes only its window in every frame.
    Use as a context manager or call :meth:`close`; open one reader per DataLoader worker.

    Args:
        source: frames, a folder of dated rasters/product folders, or an index CSV/Parquet.
        bands: bands to return, in this order; ``None`` returns the first frame's bands.
        band_order: declared band order of multi-band files that do not name their bands.
        grid: target grid; default the first frame's (finest band's) grid.
        location: keep only frames of this location (required if the index holds several).

    Raises:
        FileNotFoundError: for an empty folder/index or missing files.
        ValueError: for unparseable dates, several locations, missing bands, frames that do not
            overlap or cannot be aligned, corrupt files.
    """

    def __init__(
        self,
        source: Sequence[Frame] | PathLike,
        bands: Sequence[str] | None = None,
        *,
        band_order: Sequence[str] | None = None,
        grid: Grid | None = None,
        location: str | None = None,
    ) -> None:
        self.frames, self.location = _one_location(source, location)
        self.grid = grid or frame_grid(self.frames[0])
        # the registry lists this module's index entry, so it is imported here, not at the top
        from satmae.data.readers.registry import open_frame

        self._readers: list[Reader] = []
        try:
            for frame in self.frames:
                _check_overlap(frame, self.grid)
                order = band_order if band_order is not None else frame.band_order
                options = ReadOptions(
                    tuple(bands) if bands is not None else None,
                    tuple(order) if order is not None else None,
                    self.grid,
                    frame.time,
                )
                reader = open_frame(frame.path, options)
                self._readers.append(reader)
                bands = reader.bands
        except BaseException:
            self.close()
            raise
        self.bands: tuple[str, ...] = tuple(bands or ())
        self.times = torch.tensor([frame.time for frame in self.frames], dtype=torch.int64)

    def read(self, window: Window | None = None, bounds: BoundsLike | None = None) -> Sample:
        """Read a window (or bounds) of the grid in every frame.

        Returns:
            ``image (T, C, H, W)`` in time order, ``times (T,)``, ``valid (T, H, W)``, geo
            keys, ``location``; ``label``/``label_names`` from the first frame's label.
        """
        target = resolve_window(self.grid, window, bounds)
        samples = [reader.read(window, bounds) for reader in self._readers]
        series: Sample = {
            "image": torch.cat([sample["image"] for sample in samples]),
            "times": self.times.clone(),
            "bands": self.bands,
            "valid": torch.cat([sample["valid"] for sample in samples]),
            "location": self.location,
            "harmonized": tuple(
                frame for sample in samples for frame in sample.get("harmonized", ({},))
            ),
        }
        target.attach(series)
        label = self.frames[0].label
        if isinstance(label, str) and label:
            series["label_names"] = (label,)
        elif isinstance(label, numbers.Integral):
            series["label"] = torch.tensor(int(label), dtype=torch.int64)
        return series

    def close(self) -> None:
        """Close every frame."""
        for reader in self._readers:
            reader.close()
        self._readers = []

    def __enter__(self) -> SeriesReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def read_series(
    source: Sequence[Frame] | PathLike,
    bands: Sequence[str] | None = None,
    *,
    band_order: Sequence[str] | None = None,
    grid: Grid | None = None,
    window: Window | None = None,
    bounds: BoundsLike | None = None,
    location: str | None = None,
) -> Sample:
    """Read a multi-date series of one place onto one grid.

    For many windows of one series keep a :class:`SeriesReader` open instead.

    Args:
        source: frames, a folder of dated rasters/product folders, or an index CSV/Parquet.
        bands: bands to return, in this order; ``None`` returns the first frame's bands.
        band_order: declared band order of multi-band files that do not name their bands.
        grid: target grid; default the first frame's (finest band's) grid.
        window: pixel window of the target grid.
        bounds: (left, bottom, right, top) in the target CRS, instead of ``window``.
        location: keep only frames of this location (required if the index holds several).

    Returns:
        ``image (T, C, H, W)`` in time order, ``times (T,)``, ``valid (T, H, W)``, geo keys,
        ``location``; ``label``/``label_names`` from the first frame's label when present.

    Raises:
        FileNotFoundError: for an empty folder/index or missing files.
        ValueError: for unparseable dates, several locations, missing bands, frames that do not
            overlap or cannot be aligned, corrupt files.
    """
    frames, _ = _one_location(source, location)
    # open the frames on the requested window only, so warps cover just that area
    target = resolve_window(grid or frame_grid(frames[0]), window, bounds)
    with SeriesReader(frames, bands, band_order=band_order, grid=target) as reader:
        return reader.read()


def detect_index(path: Path) -> bool:
    """Registry test: an index table (CSV or Parquet)."""
    return path.is_file() and path.suffix.lower() in INDEX_SUFFIXES


def index_sources(path: Path, options: ReadOptions) -> list[Source]:
    """Registry entry: an index table holds one series per location."""
    bands, band_order, grid = options.bands, options.band_order, options.grid
    return [
        Source(
            location or path.stem,
            partial(read_series, frames, bands, band_order=band_order, grid=grid),
            frames[0].path,
            partial(SeriesReader, frames, bands, band_order=band_order, grid=grid),
        )
        for location, frames in group_by_location(read_index(path)).items()
    ]
