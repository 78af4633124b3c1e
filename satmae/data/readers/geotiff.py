"""Multi-band GeoTIFF/COG files, one date per file, read by band name and by window.

The channel order of a file comes from its band descriptions (``gdal_edit.py -setbanddesc``,
``rasterio``'s ``set_band_description``), a per-band tag (``BAND_NAME``, ``name``, ``band``),
a file tag listing all names (``band_names=B02,B03,...``), or an order the caller declares.
It is never guessed: a file that names no bands and comes without a declared order is an error.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import Unpack

from rasterio.enums import ColorInterp, Resampling
from rasterio.io import DatasetReader
from rasterio.windows import Window

from satmae.bands import canonical_layer
from satmae.data.grid import BoundsLike, Grid, PathLike, dataset_grid, open_raster
from satmae.data.readers.offset import file_offset
from satmae.data.readers.one_date import Layer, OneDateOptions, OneDateReader, read_once
from satmae.data.readers.protocol import RASTER_SUFFIXES, ReadOptions, Source
from satmae.data.sample import Sample, to_epoch_seconds
from satmae.data.validity import DEFAULT_NODATA

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


ALPHA_HINT = (
    "request only the spectral bands (bands=[...]) or export the file without it "
    "(gdal_translate -b 1 -b 2 ...). If it does hold reflectance (GDAL and rasterio mark the "
    "4th band of a 4-band uint8 file as alpha by default), unmark it: gdal_edit.py "
    "-colorinterp_4 undefined, or rasterio: dst.colorinterp = [ColorInterp.gray] * dst.count"
)


def check_spectral_layout(dataset: DatasetReader, path: PathLike, indexes: Iterable[int]) -> None:
    """Refuse bands that cannot be reflectance: alpha (transparency) bands and complex values.

    An RGBA-like file declares its 4th band as alpha; taking it as a spectral band would feed a
    mask of 0/255 to the model as reflectance.

    Args:
        dataset: the open file.
        path: the file, for messages.
        indexes: 1-based indexes of the bands that will be used as channels.

    Raises:
        ValueError: naming the file and the band.
    """
    for index in indexes:
        if dataset.colorinterp[index - 1] == ColorInterp.alpha:
            raise ValueError(
                f"{path}: band {index} is an alpha (transparency) band, not a spectral band; "
                f"{ALPHA_HINT}"
            )
        dtype = dataset.dtypes[index - 1]
        if str(dtype).startswith("complex"):
            raise ValueError(
                f"{path}: band {index} holds complex values ({dtype}), which are not "
                "reflectance; convert the file to a real data type (uint16, float32)"
            )


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
        if alpha := [i for i in unnamed if dataset.colorinterp[i - 1] == ColorInterp.alpha]:
            raise ValueError(
                f"{path}: band(s) {alpha} are alpha (transparency) bands, not spectral bands, "
                f"and the file names no band for them; {ALPHA_HINT}"
            )
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


class GeoTiffReader(OneDateReader):
    """A multi-band raster kept open for many windowed reads (chips, sliding windows).

    Band names, nodata, the acquisition time and the Sentinel-2 offset are resolved once; each
    :meth:`read` decodes only its window. Use as a context manager, or call :meth:`close`. Not
    shareable across processes: open one reader per DataLoader worker.

    Args:
        path: the raster file.
        bands: bands to return, in this order, in any spelling; ``None`` returns every
            spectral band in file order.
        band_order: declared names of the file's bands (only for files without descriptions).
        grid: the grid windows refer to (default the file's own); a file on another grid or
            CRS is seen through one WarpedVRT, opened here and reused by every read.
        **options: ``resampling``, ``time``, ``nodata``, ``scl``, ``location``
            (:class:`~satmae.data.readers.one_date.OneDateOptions`); the default SCL is an
            ``SCL`` band of the file, else a ``<stem>_SCL`` file beside it
            (:func:`scl_companion`).

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
        grid: Grid | None = None,
        **options: Unpack[OneDateOptions],
    ) -> None:
        super().__init__()
        self.path = Path(path)
        try:
            dataset = self._open(path)
            names = band_names_of(dataset, path, band_order)
            spectral = [name for name in names if name != "SCL"]
            hint = "Request only bands the file holds, or add them"
            self._request(bands, spectral, str(path), hint, options)
            fill = options.get("nodata")
            fill = dataset.nodata if fill is None else fill
            self.nodata = DEFAULT_NODATA if fill is None else float(fill)
            if self.time is None:
                self.time = file_time(dataset, path)
            location = options.get("location")
            self.location = self.path.stem if location is None else location
            self.offset = file_offset(dataset, self.path, names)
            indexes = tuple(names.index(band) + 1 for band in self.bands)
            check_spectral_layout(dataset, path, indexes)
            layer = Layer(dataset, indexes, self.nodata, self.path)
            scl = self._scl_layer(dataset, names, options.get("scl", True))
            self._start([layer], scl, grid or dataset_grid(dataset), options)
        except BaseException:
            self.close()
            raise
        self.file_bands = names

    def _scl_layer(
        self, dataset: DatasetReader, names: Sequence[str], scl: PathLike | bool
    ) -> Layer | None:
        """The layer holding SCL codes, if any."""
        if scl is False:
            return None
        if scl is True:
            if "SCL" in names:
                index = (names.index("SCL") + 1,)
                return Layer(dataset, index, 0.0, self.path, Resampling.nearest)
            companion = scl_companion(self.path)
            if companion is None:
                return None
            scl = companion
        return self._open_scl(scl)


def read_geotiff(
    path: PathLike,
    bands: Sequence[str] | None = None,
    *,
    band_order: Sequence[str] | None = None,
    grid: Grid | None = None,
    window: Window | None = None,
    bounds: BoundsLike | None = None,
    **options: Unpack[OneDateOptions],
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
        **options: as for :class:`GeoTiffReader`.

    Returns:
        A sample with ``image (1, C, H, W)`` float32 (reflectance x 10000 without offset),
        ``valid (1, H, W)``, ``bands``, ``harmonized``, geo keys and ``times (1,)`` when a
        time is known.

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: for corrupt files, unnamed/duplicate/missing bands or bad windows.
    """
    reader = GeoTiffReader(path, bands, band_order=band_order, **options)
    return read_once(reader, window, bounds, grid)


def detect(path: Path) -> bool:
    """Registry test: a raster file."""
    return path.is_file() and path.suffix.lower() in RASTER_SUFFIXES


def sources(path: Path, options: ReadOptions) -> list[Source]:
    """Registry entry: a multi-band raster is one sample; class layers (SCL, labels) are none."""
    if is_class_layer(path):
        return []
    bands, band_order, grid, time = options.bands, options.band_order, options.grid, options.time
    return [
        Source(
            path.name,
            partial(read_geotiff, path, bands, band_order=band_order, grid=grid, time=time),
            path,
            partial(GeoTiffReader, path, bands, band_order=band_order, grid=grid, time=time),
        )
    ]
