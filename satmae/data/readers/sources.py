"""Find the samples in a path the user points a command at (``satmae stats``/``satmae check``).

The path is read by the first reader of the registry (:mod:`satmae.data.readers.registry`) that
recognises it. Rasters, product folders and index series can also be read tile by tile
(:func:`iter_tiles`), so a whole Sentinel-2 scene never has to fit in memory; each tile passes
the content check (:func:`require_plausible`) before it reaches statistics.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from rasterio.windows import Window

from satmae.data.grid import Grid, PathLike
from satmae.data.readers.protocol import ReadOptions, Source
from satmae.data.readers.registry import open_sources
from satmae.data.sample import Sample
from satmae.data.validity import IMPLAUSIBLE_HINT, describe_window, implausible_values


def list_sources(
    path: PathLike,
    bands: Sequence[str] | None = None,
    *,
    band_order: Sequence[str] | None = None,
) -> list[Source]:
    """The samples under ``path``, each read on demand.

    Args:
        path: a file or folder (see :mod:`satmae.data.readers.registry` for the kinds).
        bands: bands to read (default: every band the source has).
        band_order: declared band order for multi-band files that do not name their bands.

    Raises:
        FileNotFoundError: if the path does not exist or holds nothing readable.
    """
    options = ReadOptions(
        tuple(bands) if bands is not None else None,
        tuple(band_order) if band_order is not None else None,
    )
    return open_sources(path, options)


def require_plausible(sample: Sample, source: str, window: Window | None = None) -> None:
    """Refuse a sample whose valid values leave the plausible Sentinel-2 range.

    Args:
        sample: a sample as read (validity rule applied).
        source: the file or sample name.
        window: the window read, if any, for the message.

    Raises:
        ValueError: naming the source, the window, each failing band and its count.
    """
    if found := implausible_values(sample["image"], sample["bands"]):
        raise ValueError(
            f"{source}{describe_window(window)}: {'; '.join(item.describe() for item in found)}"
            f" — {IMPLAUSIBLE_HINT}"
        )


def iter_windows(source: Source, tile: int = 2048) -> Iterator[tuple[Window | None, Sample]]:
    """The tiles of a source with the window each covers (``None`` for a source read whole).

    Raises:
        ValueError: if ``tile`` is not positive.
    """
    if tile <= 0:
        raise ValueError(f"tile must be a positive number of pixels, got {tile}")
    if source.open is None:
        yield None, source.read()
        return
    reader = source.open()
    try:
        height, width = reader.grid.height, reader.grid.width
        for row in range(0, height, tile):
            for col in range(0, width, tile):
                window = Window(col, row, min(tile, width - col), min(tile, height - row))
                yield window, reader.read(window)
    finally:
        reader.close()


def iter_tiles(source: Source, tile: int = 2048, *, content_check: bool = True) -> Iterator[Sample]:
    """The samples of a source in tiles of at most ``tile`` x ``tile`` pixels.

    Sources without windowed reads (OSCD cities, BigEarthNet patches, cubes) come whole.

    Args:
        source: the source to read.
        tile: tile side in pixels.
        content_check: refuse tiles with implausible values (:func:`require_plausible`), so that
            a corrupt file cannot reach statistics.

    Raises:
        ValueError: if ``tile`` is not positive, or (with ``content_check``) a tile holds
            values outside :data:`~satmae.data.validity.PLAUSIBLE_RANGE`.
    """
    for window, sample in iter_windows(source, tile):
        if content_check:
            require_plausible(sample, source.name, window)
        yield sample


def center_window(grid: Grid, size: int) -> Window:
    """The central ``size`` x ``size`` window of ``grid`` (all of it when smaller).

    Raises:
        ValueError: if ``size`` is not positive.
    """
    if size <= 0:
        raise ValueError(f"size must be a positive number of pixels, got {size}")
    rows, cols = min(size, grid.height), min(size, grid.width)
    return Window((grid.width - cols) // 2, (grid.height - rows) // 2, cols, rows)


def read_center_window(source: Source, size: int = 1024) -> tuple[Window | None, Sample]:
    """:func:`read_center` with the window read (``None`` for a source read whole)."""
    if size <= 0:
        raise ValueError(f"size must be a positive number of pixels, got {size}")
    if source.open is None:
        return None, source.read()
    reader = source.open()
    try:
        window = center_window(reader.grid, size)
        return window, reader.read(window)
    finally:
        reader.close()


def read_center(source: Source, size: int = 1024) -> Sample:
    """The central ``size`` x ``size`` window of a source (all of it when smaller or unwindowed).

    Raises:
        ValueError: if ``size`` is not positive.
    """
    return read_center_window(source, size)[1]
