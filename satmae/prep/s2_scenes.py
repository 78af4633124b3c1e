"""Sentinel-2 scene folders (SAFE or COGs) or index tables -> the locations of a chip store."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from satmae.data.readers.frames import Frame, frames_from_folder, group_by_location, read_index


def gather(sources: Sequence[str | Path]) -> dict[str, list[Frame]]:
    """Group the dated scenes of every source by location.

    Args:
        sources: folders of dated scenes (SAFE products, per-band folders or multi-band
            GeoTIFF/COGs with the date in their names), one location each and named after the
            folder; or index CSV/Parquet files of ``path, datetime, location`` rows.

    Returns:
        Location id -> its frames.
    """
    groups: dict[str, list[Frame]] = {}
    for source in map(Path, sources):
        frames = frames_from_folder(source) if source.is_dir() else read_index(source)
        for location, series in group_by_location(frames).items():
            groups.setdefault(location or source.stem, []).extend(series)
    return groups
