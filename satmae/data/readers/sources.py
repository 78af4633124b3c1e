"""Find the samples in a path the user points a command at (``satmae stats``/``satmae check``).

The path is read by the first reader of the registry (:mod:`satmae.data.readers.registry`) that
recognises it. Rasters, product folders and index series can also be read tile by tile
(:func:`iter_tiles`), so a whole Sentinel-2 scene never has to fit in memory.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from rasterio.windows import Window

from satmae.data.grid import PathLike
from satmae.data.readers.protocol import ReadOptions, Source
from satmae.data.readers.registry import open_sources
from satmae.data.sample import Sample


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


def iter_tiles(source: Source, tile: int = 2048) -> Iterator[Sample]:
    """The samples of a source in tiles of at most ``tile`` x ``tile`` pixels.

    Sources without windowed reads (OSCD cities, BigEarthNet patches, cubes) come whole.

    Raises:
        ValueError: if ``tile`` is not positive.
    """
    if tile <= 0:
        raise ValueError(f"tile must be a positive number of pixels, got {tile}")
    if source.open is None:
        yield source.read()
        return
    reader = source.open()
    try:
        height, width = reader.grid.height, reader.grid.width
        for row in range(0, height, tile):
            for col in range(0, width, tile):
                yield reader.read(Window(col, row, min(tile, width - col), min(tile, height - row)))
    finally:
        reader.close()


def read_center(source: Source, size: int = 1024) -> Sample:
    """The central ``size`` x ``size`` window of a source (all of it when smaller or unwindowed).

    Raises:
        ValueError: if ``size`` is not positive.
    """
    if size <= 0:
        raise ValueError(f"size must be a positive number of pixels, got {size}")
    if source.open is None:
        return source.read()
    reader = source.open()
    try:
        height, width = reader.grid.height, reader.grid.width
        rows, cols = min(size, height), min(size, width)
        return reader.read(Window((width - cols) // 2, (height - rows) // 2, cols, rows))
    finally:
        reader.close()
