"""The frames of a series: one date of one place each, from a dated folder or an index table.

A :class:`Frame` is a file or a per-band folder, its acquisition time, and optionally a location
and a label. Frames come from

- a **folder** whose entries (multi-band rasters or per-band product folders) carry a date in
  their names (``S2_20210615.tif``, ``2021-06-15/``, ``..._20210615T103021_...``):
  :func:`frames_from_folder`;
- an **index table** (CSV or Parquet) with columns ``path``, ``datetime`` and optionally
  ``location`` and ``label`` (aliases: ``image_path``/``file``, ``timestamp``/``date``,
  ``location_id``, ``category``); fMoW-Sentinel's ``train.csv`` is read as is: :func:`read_index`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from satmae.bands import DATASET_BAND_ORDERS
from satmae.data.grid import PathLike, open_raster
from satmae.data.readers.geotiff import file_time, is_class_layer
from satmae.data.readers.protocol import RASTER_SUFFIXES
from satmae.data.sample import to_epoch_seconds

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
