"""fMoW-Sentinel CSVs -> the locations of a chip store."""

from __future__ import annotations

from pathlib import Path

from satmae.data.readers.frames import Frame, read_index


def gather(csv: str | Path, limit: int | None = None) -> dict[str, list[Frame]]:
    """Group the images of an fMoW-Sentinel CSV by location.

    Args:
        csv: ``train.csv``/``val.csv`` (``category, location_id, image_id, timestamp``); files
            are found in the dataset's layout beside the CSV, or through an ``image_path``
            column.
        limit: keep only the first ``limit`` locations (sorted by id).

    Returns:
        ``<category>_<location_id>`` -> its frames: fMoW location ids repeat across categories.
    """
    csv = Path(csv)
    groups: dict[str, list[Frame]] = {}
    for frame in read_index(csv):
        key = f"{frame.label}_{frame.location}" if frame.label is not None else frame.location
        groups.setdefault(key or csv.stem, []).append(frame)
    return dict(sorted(groups.items())[:limit])
