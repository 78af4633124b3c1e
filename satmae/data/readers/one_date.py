"""The shared body of the one-date raster readers (multi-band files and per-band products).

A one-date reader is a set of open files, each contributing some channels (a multi-band file
all of them, a band file one), and optionally a scene classification (SCL) layer. The
subclass opens the files and names the bands; this base puts them on one grid, reads windows
as samples (valid mask from nodata and SCL, the Sentinel-2 offset removed), and closes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Self, TypedDict

import numpy as np
import torch
from rasterio.enums import Resampling
from rasterio.io import DatasetReader
from rasterio.windows import Window

from satmae.bands import canonical_band
from satmae.data.grid import BoundsLike, Grid, OnGrid, PathLike, open_raster, resolve_window
from satmae.data.readers.offset import Offset, remove_offset
from satmae.data.sample import Sample, one_date_sample, to_epoch_seconds
from satmae.data.validity import validity_masks, zero_fill


@dataclass(frozen=True)
class Layer:
    """Channels that come from one open file.

    Attributes:
        dataset: the open file.
        indexes: its 1-based band indexes, in channel order.
        fill: value for pixels outside the file (its nodata).
        path: the file, for messages.
        resampling: how it is resampled onto another grid (nearest for class layers).
    """

    dataset: DatasetReader
    indexes: tuple[int, ...]
    fill: float
    path: Path
    resampling: Resampling = Resampling.bilinear

    def on(self, grid: Grid, resampling: Resampling | None = None) -> OnGrid:
        """This file seen through ``grid``."""
        return OnGrid(
            self.dataset,
            grid,
            resampling=resampling or self.resampling,
            fill=self.fill,
            path=self.path,
        )


class OneDateOptions(TypedDict, total=False):
    """The keyword options that every one-date reader takes, under one name each.

    Attributes:
        resampling: how reflectance is resampled onto the reader's grid (default bilinear;
            SCL is always resampled nearest).
        time: acquisition time (datetime, ISO 8601 string or seconds since epoch); default
            what the source says (a file's ``datetime``-like tag, a SAFE product name), else
            the samples have no ``times``.
        nodata: value marking missing pixels; default each file's nodata, else 0 (the
            Sentinel-2 convention).
        scl: where the scene classification (SCL) that feeds the valid mask comes from:
            ``True`` (default) the source's own (an ``SCL`` band, a ``<stem>_SCL`` file beside
            a raster, a product's SCL file); a path names the SCL file; ``False`` ignores SCL.
        location: location id stored in samples (default the file stem or folder name).
    """

    resampling: Resampling
    time: datetime | str | int | None
    nodata: float | None
    scl: PathLike | bool
    location: str | None


def select_bands(
    requested: Sequence[str] | None, available: Sequence[str], where: str, hint: str
) -> tuple[str, ...]:
    """The canonical bands to return: ``requested`` (any spelling), default ``available``.

    Raises:
        ValueError: if a requested band is missing (``hint`` says what to do) or named twice.
    """
    wanted = list(available) if requested is None else [canonical_band(b) for b in requested]
    if missing := [band for band in wanted if band not in available]:
        raise ValueError(f"{where} lacks bands {missing}; it has {list(available)}. {hint}")
    if len(set(wanted)) != len(wanted):
        raise ValueError(f"requested bands {wanted} name a band twice; give each band once")
    return tuple(wanted)


def resolve_time(time: datetime | str | int | None) -> int | None:
    """A caller's acquisition time in seconds since epoch (None stays None)."""
    return to_epoch_seconds(time) if isinstance(time, (str, datetime)) else time


class OneDateReader:
    """Files of one date on one grid, read window by window as one-date samples.

    Subclasses open their files with :meth:`_open`, then call :meth:`_start`. Use as a context
    manager, or call :meth:`close`; open one reader per DataLoader worker.

    Attributes:
        bands: the channels returned, in order.
        grid: the grid windows refer to.
        nodata: the value marking missing pixels.
        time: acquisition time in seconds since epoch, or None.
        location: location id stored in samples.
        offset: the Sentinel-2 offset removed from the pixels, if one was found.
        resampling: how reflectance is resampled onto the grid.
    """

    bands: tuple[str, ...]
    grid: Grid
    nodata: float
    time: int | None
    location: str
    offset: Offset | None
    resampling: Resampling

    def __init__(self) -> None:
        self._contexts: list[AbstractContextManager[DatasetReader]] = []
        self._layers: list[Layer] = []
        self._scl: Layer | None = None
        self._views: list[OnGrid] = []

    def _request(
        self,
        bands: Sequence[str] | None,
        available: Sequence[str],
        where: str,
        hint: str,
        options: OneDateOptions,
    ) -> None:
        """Set :attr:`bands` (see :func:`select_bands`) and the caller's :attr:`time`."""
        self.bands = select_bands(bands, available, where, hint)
        self.time = resolve_time(options.get("time"))

    def _open(self, path: PathLike) -> DatasetReader:
        """Open a file that :meth:`close` will close."""
        context = open_raster(path)
        dataset = context.__enter__()
        self._contexts.append(context)
        return dataset

    def _open_scl(self, path: PathLike) -> Layer:
        """The SCL layer of a one-band file of scene classes."""
        dataset = self._open(path)
        if dataset.count != 1:
            raise ValueError(
                f"SCL file {path} has {dataset.count} bands; expected one band of SCL codes"
            )
        return Layer(dataset, (1,), 0.0, Path(path), Resampling.nearest)

    def _start(
        self, layers: Sequence[Layer], scl: Layer | None, grid: Grid, options: OneDateOptions
    ) -> None:
        """Put the layers (channels in order) and the SCL layer on ``grid``."""
        self._layers, self._scl, self.grid = list(layers), scl, grid
        self.resampling = options.get("resampling", Resampling.bilinear)
        self._views = self._views_on(grid, self.resampling)

    def _views_on(self, grid: Grid, resampling: Resampling) -> list[OnGrid]:
        views = []
        try:
            for layer in self._layers:
                views.append(layer.on(grid, resampling))
            if self._scl is not None:
                views.append(self._scl.on(grid))
        except BaseException:
            for view in views:
                view.close()
            raise
        return views

    def read(
        self,
        window: Window | None = None,
        bounds: BoundsLike | None = None,
        *,
        grid: Grid | None = None,
        resampling: Resampling = Resampling.bilinear,
    ) -> Sample:
        """Read a window of the reader's grid (or of another ``grid``) as a one-date sample.

        Args:
            window: pixel window (may extend past the edges; padding is invalid).
            bounds: (left, bottom, right, top) in the grid's CRS, instead of ``window``.
            grid: a one-off target grid to reproject/resample onto, instead of the reader's.
            resampling: how reflectance is resampled onto a one-off ``grid``.

        Returns:
            ``image (1, C, H, W)`` float32 (reflectance x 10000 without offset),
            ``valid (1, H, W)``, ``bands``, ``harmonized``, geo keys, ``location`` and
            ``times (1,)`` when a time is known.
        """
        if grid is not None:
            target = resolve_window(grid, window, bounds)
            views = self._views_on(target, resampling)
            pixel_window = None
        else:
            target = resolve_window(self.grid, window, bounds)
            views = self._views
            col, row = self.grid.aligned_offset(target) or (0, 0)
            pixel_window = Window(col, row, target.width, target.height)
        try:
            parts = [
                view.read(layer.indexes, pixel_window)
                for view, layer in zip(views, self._layers, strict=False)
            ]
            scl = views[-1].read(self._scl.indexes, pixel_window) if self._scl else None
        finally:
            if grid is not None:
                for view in views:
                    view.close()
        image = torch.from_numpy(np.ascontiguousarray(np.concatenate(parts)[None]))  # (1,C,H,W)
        # the one validity rule (satmae.data.validity): the masks from the values as stored, the
        # offset removed from the stored pixels, then the unmeasured pixels zero-filled
        valid, measured = validity_masks(image, nodata=self.nodata, scl=scl)
        if self.offset is not None:
            remove_offset(image, [self.offset.bands.get(b, 0.0) for b in self.bands], self.nodata)
        zero_fill(image, measured)
        sample = one_date_sample(image, self.bands, valid, location=self.location, time=self.time)
        sample["harmonized"] = (self.offset.record(self.bands) if self.offset else {},)
        return target.attach(sample)

    def close(self) -> None:
        """Close every file."""
        for view in self._views:
            view.close()
        for context in reversed(self._contexts):
            context.__exit__(None, None, None)
        self._views, self._contexts = [], []

    def __enter__(self) -> Self:
        """Use the reader in a ``with`` block; it is closed at the end."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the reader."""
        self.close()


def read_once(
    reader: OneDateReader,
    window: Window | None,
    bounds: BoundsLike | None,
    grid: Grid | None,
) -> Sample:
    """Read one window of a freshly opened reader, then close it.

    With ``grid``, the files are warped onto the requested window of it only, not onto the
    whole grid.
    """
    with reader:
        if grid is None:
            return reader.read(window, bounds)
        target = resolve_window(grid, window, bounds)
        return reader.read(grid=target, resampling=reader.resampling)
