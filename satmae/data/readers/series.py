"""Multi-date series of one place, from a folder or an index table, aligned to one grid.

A series is a list of :class:`~satmae.data.readers.frames.Frame` from a dated folder or an
index table (:mod:`satmae.data.readers.frames`); each frame is opened through the reader
registry. :func:`read_series` stacks the frames in time order on the grid of the first frame
(or a given grid), reprojecting frames in another CRS through a WarpedVRT.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import torch
from rasterio.windows import Window

from satmae.data.grid import (
    BoundsLike,
    Grid,
    PathLike,
    dataset_grid,
    open_raster,
    require_overlap,
    resolve_window,
)
from satmae.data.readers.band_files import default_grid
from satmae.data.readers.frames import (
    Frame,
    frames_from_folder,
    group_by_location,
    read_index,
)
from satmae.data.readers.protocol import (
    INDEX_SUFFIXES,
    Reader,
    ReadOptions,
    Source,
)
from satmae.data.sample import Sample


def frame_grid(frame: Frame) -> Grid:
    """Grid of a frame: the raster's own, or the finest band's for a per-band folder."""
    if frame.path.is_dir():
        return default_grid(frame.path)
    with open_raster(frame.path) as dataset:
        return dataset_grid(dataset)


def _check_overlap(frame: Frame, target: Grid) -> None:
    require_overlap(frame.path, frame_grid(frame), target, "series grid")


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
