"""SSL4EO-S12 (Sentinel-2 L1C ``s2c`` or L2A ``s2a``) -> the locations of a chip store."""

from __future__ import annotations

from pathlib import Path

from satmae.data.readers.frames import Frame, frames_from_folder


def gather(
    root: str | Path, split: str = "s2c", limit: int | None = None
) -> dict[str, list[Frame]]:
    """The four seasons of every location, in the layout torchgeo's ``SSL4EOS12`` reads.

    Args:
        root: the dataset root, holding ``<split>/<location>/<season>/B1.tif ... B12.tif``
            with season folders named ``<YYYYMMDDTHHMMSS>_<YYYYMMDDTHHMMSS>_<tile>``.
        split: ``"s2c"`` (L1C) or ``"s2a"`` (L2A).
        limit: keep only the first ``limit`` locations (sorted by name).

    Returns:
        Location folder name -> its seasons as frames with their acquisition times.

    Raises:
        FileNotFoundError: if ``root/split`` is missing.
        ValueError: if it holds no location folders.
    """
    folder = Path(root) / split
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{folder} does not exist; expected ROOT/{split}/<location>/<season>/"
        )
    locations = sorted(p for p in folder.iterdir() if p.is_dir())[:limit]
    if not locations:
        raise ValueError(f"{folder} holds no location folders")
    return {p.name: frames_from_folder(p) for p in locations}
