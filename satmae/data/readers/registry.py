"""The ordered registry of readers: which reader reads a path, and what samples it finds there.

Each :class:`ReaderEntry` has a name, a ``detect`` test on a path and an ``open`` function that
returns the :class:`~satmae.data.readers.protocol.Source` samples under that path. The first
entry whose test passes reads the path, so specific layouts come before general ones:

1. ``index``: an index table (``.csv``/``.parquet``), one series per location;
2. ``cube``: a ``.zarr``/``.nc`` cube;
3. ``geotiff``: a raster file (single-band class layers such as SCL are not samples);
4. ``oscd``: an OSCD root, one dated two-frame series per city;
5. ``oscd_city``: one OSCD city folder, the same series as from the root;
6. ``bigearthnet``: a BigEarthNet v1 root or patch, one labelled sample per patch;
7. ``band_files``: a per-band product folder (SAFE or flat);
8. ``folder``: any other folder; each entry in it is read by the first entry marked
   ``in_folders`` (a raster file or a product folder) whose test passes.

:func:`list_sources`, :class:`~satmae.data.readers.series.SeriesReader` (for each frame),
``satmae check`` and ``satmae stats`` all go through this list, so a new kind of source is one
reader module plus one entry here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from satmae.data.grid import RASTER_HINT, PathLike, file_kind
from satmae.data.readers import band_files, cube, geotiff, layouts, series
from satmae.data.readers.protocol import Reader, ReadOptions, Source


@dataclass(frozen=True)
class ReaderEntry:
    """One kind of source the readers know.

    Attributes:
        name: short name for messages.
        detect: whether a path is of this kind (cheap: names and folder contents).
        open: the samples under such a path, read with the given options.
        in_folders: also read each matching entry of a plain folder, and frames of a series.
    """

    name: str
    detect: Callable[[Path], bool]
    open: Callable[[Path, ReadOptions], list[Source]]
    in_folders: bool = False


def _folder_sources(path: Path, options: ReadOptions) -> list[Source]:
    """Every entry of a folder that a reader marked ``in_folders`` recognises."""
    found: list[Source] = []
    for entry in sorted(path.iterdir()):
        if (reader := find_entry(entry, FOLDER_ITEMS)) is not None:
            found += reader.open(entry, options)
    return found


READERS: tuple[ReaderEntry, ...] = (
    ReaderEntry("index", series.detect_index, series.index_sources),
    ReaderEntry("cube", cube.detect, cube.sources),
    ReaderEntry("geotiff", geotiff.detect, geotiff.sources, in_folders=True),
    ReaderEntry("oscd", layouts.is_oscd_root, layouts.oscd_sources),
    ReaderEntry("oscd_city", layouts.is_oscd_city, layouts.oscd_city_sources),
    ReaderEntry("bigearthnet", layouts.is_bigearthnet, layouts.bigearthnet_sources),
    ReaderEntry("band_files", band_files.is_band_folder, band_files.sources, in_folders=True),
    ReaderEntry("folder", Path.is_dir, _folder_sources),
)
"""Every reader, most specific first."""

FOLDER_ITEMS: tuple[ReaderEntry, ...] = tuple(entry for entry in READERS if entry.in_folders)
"""The readers tried on each entry of a plain folder and on each frame of a series."""


def find_entry(path: Path, entries: Sequence[ReaderEntry] = READERS) -> ReaderEntry | None:
    """The first of ``entries`` whose test accepts ``path``, or None."""
    return next((entry for entry in entries if entry.detect(path)), None)


def open_sources(path: PathLike, options: ReadOptions) -> list[Source]:
    """The samples under ``path``, found by the first reader that recognises it.

    Raises:
        FileNotFoundError: if the path does not exist or holds nothing readable.
        ValueError: if the path is neither a regular file nor a folder (a pipe, a device).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if not path.is_file() and not path.is_dir():
        raise ValueError(f"{path} is not a regular file but {file_kind(path)}; {RASTER_HINT}")
    entry = find_entry(path)
    found = entry.open(path, options) if entry is not None else []
    if not found:
        raise FileNotFoundError(
            f"nothing to read in {path}: expected GeoTIFF/JPEG2000 files, per-band product "
            "folders, an OSCD or BigEarthNet root, a .zarr/.nc cube or an index .csv/.parquet"
        )
    return found


def open_frame(path: Path, options: ReadOptions) -> Reader:
    """A reader for one frame of a series: a raster file or a per-band product folder.

    Raises:
        FileNotFoundError: if the path does not exist.
        ValueError: if the path is of no kind a frame can be.
    """
    if not path.exists():
        raise FileNotFoundError(f"frame {path} does not exist")
    entry = find_entry(path, FOLDER_ITEMS)
    found = entry.open(path, options) if entry is not None else []
    if len(found) != 1 or found[0].open is None:
        kinds = ", ".join(entry.name for entry in FOLDER_ITEMS)
        raise ValueError(
            f"{path} cannot be a frame of a series: a frame is one date of one place, read by "
            f"one of the readers {kinds} (a multi-band raster or a per-band product folder)"
        )
    return found[0].open()
