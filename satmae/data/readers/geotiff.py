"""Multi-band GeoTIFF/COG files, one date per file, read by band name and by window.

The channel order of a file comes from its band descriptions (``gdal_edit.py -setbanddesc``,
``rasterio``'s ``set_band_description``), a per-band tag (``BAND_NAME``, ``name``, ``band``),
a file tag listing all names (``band_names=B02,B03,...``), or an order the caller declares.
It is never guessed: a file that names no bands and comes without a declared order is an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
from rasterio.enums import Resampling
from rasterio.io import DatasetReader
from rasterio.windows import Window

from satmae.bands import canonical_band, canonical_layer
from satmae.data.grid import (
    BoundsLike,
    Grid,
    OnGrid,
    PathLike,
    dataset_grid,
    open_raster,
    resolve_window,
)
from satmae.data.sample import Sample, one_date_sample, to_epoch_seconds
from satmae.data.validity import DEFAULT_NODATA, valid_mask

BAND_TAG_KEYS: tuple[str, ...] = ("BAND_NAME", "band_name", "name", "NAME", "band", "BAND")
"""Per-band tags that may hold a band's name."""

FILE_TAG_KEYS: tuple[str, ...] = ("band_names", "BAND_NAMES", "bands", "BANDS")
"""File-level tags that may list every band name, comma separated."""

TIME_TAG_KEYS: tuple[str, ...] = (
    "ACQUISITION_DATETIME",
    "acquisition_datetime",
    "datetime",
    "DATETIME",
    "acquisition_date",
    "ACQUISITION_DATE",
    "SENSING_TIME",
    "sensing_time",
    "date",
    "DATE",
)
"""File tags that may hold the acquisition time (``TIFFTAG_DATETIME`` is the write time)."""

DECLARE_HINT = (
    "pass band_order=[...] (e.g. satmae.bands.DATASET_BAND_ORDERS['fmow_sentinel']; on the "
    "command line --band-order B01 B02 ...) or write band descriptions into the file "
    "(rasterio: dst.set_band_description(i, 'B02'))"
)


def _name_from_text(text: str) -> str | None:
    """Canonical name in a description such as ``"B02"``, ``"B2 (blue)"`` or ``"SCL"``."""
    for candidate in (text, text.replace("(", " ").replace(":", " ").split()[0] if text else ""):
        try:
            return canonical_layer(candidate)
        except ValueError:
            continue
    return None


def stored_band_names(dataset: DatasetReader) -> list[str | None]:
    """Band names stored in the file (descriptions, then band tags), None where absent."""
    names: list[str | None] = []
    for index in range(1, dataset.count + 1):
        texts = [dataset.descriptions[index - 1] or ""]
        tags = dataset.tags(index)
        texts += [tags[key] for key in BAND_TAG_KEYS if key in tags]
        found = next((n for n in map(_name_from_text, texts) if n), None)
        names.append(found)
    if not any(names):
        file_tags = dataset.tags()
        for key in FILE_TAG_KEYS:
            if key in file_tags:
                listed = [part.strip() for part in file_tags[key].split(",") if part.strip()]
                return [_name_from_text(part) for part in listed]
    return names


def _check_unique(names: Sequence[str], path: PathLike) -> None:
    seen: dict[str, int] = {}
    for position, name in enumerate(names, start=1):
        if name in seen:
            raise ValueError(
                f"{path}: band {name} appears twice (bands {seen[name]} and {position}) in "
                f"{list(names)}; fix the band descriptions or the declared band_order"
            )
        seen[name] = position


def band_names_of(
    dataset: DatasetReader, path: PathLike, band_order: Sequence[str] | None = None
) -> tuple[str, ...]:
    """Canonical names of an open dataset's bands; see :func:`band_names`."""
    stored = stored_band_names(dataset)
    if band_order is not None:
        declared = [canonical_layer(name) for name in band_order]
        if len(declared) != dataset.count:
            raise ValueError(
                f"{path} has {dataset.count} bands but band_order declares {len(declared)}: "
                f"{declared}; declare exactly one name per band in file order"
            )
        _check_unique(declared, path)
        if all(stored) and list(stored) != declared:
            raise ValueError(
                f"{path} names its bands {stored} but band_order declares {declared}; "
                "drop band_order to use the file's names, or fix the file's descriptions"
            )
        return tuple(declared)
    if len(stored) != dataset.count and any(stored):
        raise ValueError(
            f"{path} has {dataset.count} bands but its band_names tag lists {len(stored)}: "
            f"{stored}; fix the tag or pass band_order"
        )
    if not all(stored):
        unnamed = [i for i, name in enumerate(stored, start=1) if name is None]
        raise ValueError(
            f"{path}: cannot tell which Sentinel-2 band is in band(s) {unnamed} "
            f"(descriptions {list(dataset.descriptions)}); the band order is never guessed — "
            + DECLARE_HINT
        )
    names = [name for name in stored if name is not None]
    _check_unique(names, path)
    return tuple(names)


def band_names(path: PathLike, band_order: Sequence[str] | None = None) -> tuple[str, ...]:
    """Canonical names of a file's bands, in file order.

    Args:
        path: a GeoTIFF/COG (or any raster GDAL reads).
        band_order: declared names, one per band, for files that do not name their bands.

    Returns:
        Canonical names (``"SCL"`` for a scene-classification band).

    Raises:
        ValueError: if names are missing and undeclared, duplicated, or do not match the count.
    """
    with open_raster(path) as dataset:
        return band_names_of(dataset, path, band_order)


def scl_companion(path: PathLike) -> Path | None:
    """The scene classification file beside a raster, ``<stem>_SCL.tif``, if there is one."""
    path = Path(path)
    for suffix in dict.fromkeys((path.suffix, ".tif", ".tiff")):
        candidate = path.with_name(f"{path.stem}_SCL{suffix}")
        if candidate.is_file():
            return candidate
    return None


def is_class_layer(path: PathLike) -> bool:
    """Whether a raster is a single-band layer named as non-spectral (SCL, land cover, change).

    Such files sit beside the imagery in many layouts (the demo set, label folders); in a
    folder of rasters they are not samples. Unnamed single-band files are not class layers, so
    that reading them fails with the usual request to declare their band.
    """
    with open_raster(path) as dataset:
        if dataset.count != 1 or not dataset.descriptions[0]:
            return False
        names = stored_band_names(dataset)
    return names[0] in (None, "SCL")


def file_time(dataset: DatasetReader, path: PathLike) -> int | None:
    """Acquisition time from the file's tags in seconds since epoch, or None if absent.

    Raises:
        ValueError: if a time tag is present but cannot be parsed.
    """
    tags = dataset.tags()
    for key in TIME_TAG_KEYS:
        if key in tags:
            text = tags[key].strip()
            if _looks_like_exif(text):
                text = text.replace(":", "-", 2)
            try:
                return to_epoch_seconds(text.replace(" ", "T", 1))
            except ValueError:
                raise ValueError(
                    f"{path}: cannot parse the {key} tag {tags[key]!r} as a date; "
                    "write it as ISO 8601 or pass time= explicitly"
                ) from None
    return None


def _looks_like_exif(text: str) -> bool:
    """EXIF-style ``YYYY:MM:DD HH:MM:SS``."""
    return len(text) >= 10 and text[4] == ":" and text[7] == ":"


class GeoTiffReader:
    """A multi-band raster kept open for many windowed reads (chips, sliding windows).

    Band names, nodata and the acquisition time are resolved once; each :meth:`read` decodes
    only its window. Use as a context manager, or call :meth:`close`. Not shareable across
    processes: open one reader per DataLoader worker.

    Args:
        path: the raster file.
        bands: bands to return, in this order, in any spelling; ``None`` returns every
            spectral band in file order.
        band_order: declared names of the file's bands (only for files without descriptions).
        time: acquisition time; default is the file's ``datetime``-like tag, else no ``times``.
        nodata: value marking missing pixels; default the file's nodata, else 0 (the
            Sentinel-2 convention).
        location: location id stored in samples (default the file stem).
        grid: the grid windows refer to (default the file's own); a file on another grid or
            CRS is seen through one WarpedVRT, opened here and reused by every read.
        resampling: how reflectance is resampled onto ``grid``.
        scl: where the scene classification (SCL) that feeds the valid mask comes from:
            ``True`` uses an ``SCL`` band of the file, else a ``<stem>_SCL`` file beside it
            (:func:`scl_companion`); a path names the SCL file; ``False`` ignores SCL.

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: for corrupt files or unnamed, duplicate or missing bands.
    """

    def __init__(
        self,
        path: PathLike,
        bands: Sequence[str] | None = None,
        *,
        band_order: Sequence[str] | None = None,
        time: datetime | str | int | None = None,
        nodata: float | None = None,
        location: str | None = None,
        grid: Grid | None = None,
        resampling: Resampling = Resampling.bilinear,
        scl: PathLike | bool = True,
    ) -> None:
        self.path = Path(path)
        self._scl_context: AbstractContextManager[DatasetReader] | None = None
        self._context = open_raster(path)
        self.dataset = self._context.__enter__()
        try:
            names = band_names_of(self.dataset, path, band_order)
            spectral = [name for name in names if name != "SCL"]
            wanted = spectral if bands is None else [canonical_band(b) for b in bands]
            if missing := [band for band in wanted if band not in names]:
                raise ValueError(
                    f"{path} lacks bands {missing}; it has {list(names)}. Request only bands "
                    "the file holds, or add them to the file"
                )
            _check_unique(wanted, "requested bands")
            fill = nodata if nodata is not None else self.dataset.nodata
            acquired = to_epoch_seconds(time) if isinstance(time, (str, datetime)) else time
            self.time = file_time(self.dataset, path) if acquired is None else acquired
        except BaseException:
            self.close()
            raise
        self.file_bands = names
        self.bands: tuple[str, ...] = tuple(wanted)
        self.nodata: float = DEFAULT_NODATA if fill is None else float(fill)
        self.location = location if location is not None else self.path.stem
        self.grid = grid or dataset_grid(self.dataset)
        self._indexes = [names.index(band) + 1 for band in wanted]
        self._views: list[OnGrid] = []
        try:
            self._scl_dataset, self._scl_index = self._open_scl(names, scl)
            self._views.append(
                OnGrid(self.dataset, self.grid, resampling=resampling, fill=self.nodata, path=path)
            )
            if self._scl_index is not None:
                self._views.append(self._scl_view(self.grid))
        except BaseException:
            self.close()
            raise

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
            ``image (1, C, H, W)`` float32, ``valid (1, H, W)``, ``bands``, geo keys,
            ``location`` and ``times (1,)`` when a time is known.
        """
        if grid is not None:
            target = resolve_window(grid, window, bounds)
            views = [
                OnGrid(
                    self.dataset, target, resampling=resampling, fill=self.nodata, path=self.path
                )
            ]
            if self._scl_index is not None:
                views.append(self._scl_view(target))
            pixel_window = None
        else:
            target = resolve_window(self.grid, window, bounds)
            views = self._views
            col, row = self.grid.aligned_offset(target) or (0, 0)
            pixel_window = Window(col, row, target.width, target.height)
        try:
            data = views[0].read(self._indexes, pixel_window)[None]  # (1, C, H, W)
            scl_index = self._scl_index
            scl = views[1].read([scl_index], pixel_window) if scl_index is not None else None
        finally:
            if grid is not None:
                for view in views:
                    view.close()
        image = torch.from_numpy(np.ascontiguousarray(data))
        valid = valid_mask(image, nodata=self.nodata, scl=scl)
        sample = one_date_sample(image, self.bands, valid, location=self.location, time=self.time)
        return target.attach(sample)

    def _open_scl(
        self, names: Sequence[str], scl: PathLike | bool
    ) -> tuple[DatasetReader | None, int | None]:
        """The dataset and band index holding SCL codes, if any."""
        if scl is False:
            return None, None
        if scl is True:
            if "SCL" in names:
                return self.dataset, names.index("SCL") + 1
            companion = scl_companion(self.path)
            if companion is None:
                return None, None
            scl = companion
        self._scl_context = open_raster(scl)
        dataset = self._scl_context.__enter__()
        if dataset.count != 1:
            raise ValueError(
                f"SCL file {scl} has {dataset.count} bands; expected one band of SCL codes"
            )
        return dataset, 1

    def _scl_view(self, grid: Grid) -> OnGrid:
        """SCL codes on ``grid``: nearest resampling, 0 (no data) outside the file."""
        assert self._scl_dataset is not None
        return OnGrid(self._scl_dataset, grid, resampling=Resampling.nearest, path=self.path)

    def close(self) -> None:
        """Close the file (and its SCL file)."""
        for view in getattr(self, "_views", []):
            view.close()
        self._views = []
        if self._scl_context is not None:
            self._scl_context.__exit__(None, None, None)
            self._scl_context = None
        self._context.__exit__(None, None, None)

    def __enter__(self) -> GeoTiffReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def read_geotiff(
    path: PathLike,
    bands: Sequence[str] | None = None,
    *,
    band_order: Sequence[str] | None = None,
    grid: Grid | None = None,
    window: Window | None = None,
    bounds: BoundsLike | None = None,
    time: datetime | str | int | None = None,
    nodata: float | None = None,
    location: str | None = None,
    resampling: Resampling = Resampling.bilinear,
) -> Sample:
    """Read one date of a multi-band GeoTIFF/COG into a sample, by band name and window.

    Only the requested window and bands are decoded. A band named ``SCL`` in the file feeds the
    valid mask (nearest, never interpolated) and is not returned as a channel. For many windows
    of one file, keep a :class:`GeoTiffReader` open instead.

    Args:
        path: the raster file.
        bands: bands to return, in this order, in any spelling; ``None`` returns every
            spectral band in file order.
        band_order: declared names of the file's bands (only for files without descriptions).
        grid: target grid to reproject/resample onto (default the file's own grid).
        window: pixel window of the grid (may extend past the edges; padding is invalid).
        bounds: (left, bottom, right, top) in the grid's CRS, instead of ``window``.
        time: acquisition time; default is the file's ``datetime``-like tag, else no ``times``.
        nodata: value marking missing pixels; default the file's nodata, else 0 (the
            Sentinel-2 convention).
        location: location id stored in the sample.
        resampling: how reflectance is resampled when the file is not on ``grid``.

    Returns:
        A sample with ``image (1, C, H, W)`` float32, ``valid (1, H, W)``, ``bands``, geo keys
        and ``times (1,)`` when a time is known.

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: for corrupt files, unnamed/duplicate/missing bands or bad windows.
    """
    with GeoTiffReader(
        path, bands, band_order=band_order, time=time, nodata=nodata, location=location
    ) as reader:
        if grid is None:
            return reader.read(window, bounds)
        # warp onto the requested window only, not onto the whole grid
        return reader.read(grid=resolve_window(grid, window, bounds), resampling=resampling)
