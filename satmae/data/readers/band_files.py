"""Sentinel-2 products stored one file per band, at 10, 20 and 60 m.

Two layouts are recognised:

- **SAFE** products: ``<name>.SAFE/GRANULE/<granule>/IMG_DATA/`` with ``*_B02.jp2`` (Level-1C)
  or ``IMG_DATA/R10m|R20m|R60m/*_B02_10m.jp2`` and ``*_SCL_20m.jp2`` (Level-2A; the finest copy
  of each band is used);
- **flat folders** with one file per band whose name ends in the band, such as OSCD's
  ``..._B8A.tif`` or BigEarthNet's ``<patch>_B02.tif`` (GeoTIFF or JPEG2000).

All bands are resampled onto one target grid, by default the grid of the finest requested band:
bilinear for reflectance, nearest for the SCL scene classes. Bands already on the target grid are
read as stored, without resampling.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Unpack

from affine import Affine
from rasterio.io import DatasetReader
from rasterio.windows import Window

from satmae.bands import SENTINEL2_BANDS, canonical_band, canonical_layer
from satmae.data.grid import (
    BoundsLike,
    Grid,
    PathLike,
    dataset_grid,
    open_raster,
    require_georeferenced,
    require_overlap,
    require_projected,
    same_crs,
)
from satmae.data.readers.geotiff import check_spectral_layout, stored_band_names
from satmae.data.readers.offset import Offset, file_offset, product_offset
from satmae.data.readers.one_date import Layer, OneDateOptions, OneDateReader, read_once
from satmae.data.readers.protocol import RASTER_SUFFIXES, ReadOptions, Source
from satmae.data.sample import Sample, to_epoch_seconds
from satmae.data.validity import DEFAULT_NODATA

_BAND_PATTERN = re.compile(r"(?:^|[_\-.])(B\d{1,2}A?|SCL)(?:_(\d+)m)?$", re.IGNORECASE)
_SAFE_TIME_PATTERN = re.compile(r"_(\d{8}T\d{6})_")


def band_of_file(path: PathLike) -> tuple[str, int | None] | None:
    """The band a file holds according to its name, with the resolution suffix if any.

    ``T31UDQ_20170829T105019_B8A.tif`` gives ``("B8A", None)``; ``..._B02_10m.jp2`` gives
    ``("B02", 10)``; ``..._SCL_20m.jp2`` gives ``("SCL", 20)``; other files give None.
    """
    match = _BAND_PATTERN.search(Path(path).name.rsplit(".", 1)[0])
    if not match:
        return None
    try:
        name = canonical_layer(match.group(1))
    except ValueError:
        return None
    return name, int(match.group(2)) if match.group(2) else None


def _candidate_files(folder: Path) -> list[Path]:
    granules = sorted(folder.glob("GRANULE/*/IMG_DATA"))
    if len(granules) > 1:
        raise ValueError(
            f"{folder} holds {len(granules)} granules ({[g.parent.name for g in granules]}); "
            "read one granule at a time: pass GRANULE/<granule> as the folder"
        )
    roots = granules or ([folder / "IMG_DATA"] if (folder / "IMG_DATA").is_dir() else [folder])
    root = roots[0]
    recursive = root.name == "IMG_DATA"
    files = root.rglob("*") if recursive else root.iterdir()
    return sorted(p for p in files if p.is_file() and p.suffix.lower() in RASTER_SUFFIXES)


def find_band_files(folder: PathLike) -> dict[str, Path]:
    """Map band names (and ``"SCL"``) to the files of a per-band product folder.

    Args:
        folder: a ``.SAFE`` product, one of its granules, an ``IMG_DATA`` folder, or a flat
            folder of ``*_Bxx.tif``/``.jp2`` files.

    Returns:
        Canonical name -> file, in catalog (wavelength) order, ``"SCL"`` last if present.

    Raises:
        FileNotFoundError: if the folder does not exist or holds no band files.
        ValueError: if one band has two files at the same resolution.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"band folder {folder} does not exist or is not a folder")
    chosen: dict[str, tuple[float, Path]] = {}
    for path in _candidate_files(folder):
        parsed = band_of_file(path)
        if parsed is None:
            continue
        name, metres = parsed
        rank = float(metres) if metres is not None else math.inf
        if name in chosen:
            previous_rank, previous = chosen[name]
            if previous_rank == rank:
                raise ValueError(
                    f"band {name} has two files in {folder}: {previous.name} and {path.name}; "
                    "keep one file per band (or per resolution)"
                )
            if previous_rank < rank:
                continue
        chosen[name] = (rank, path)
    if not chosen:
        raise FileNotFoundError(
            f"no Sentinel-2 band files in {folder}: expected files named like *_B02.tif or "
            "*_B02_10m.jp2 (flat folder), or a SAFE product with GRANULE/*/IMG_DATA"
        )
    order = [*SENTINEL2_BANDS, "SCL"]
    return {name: chosen[name][1] for name in order if name in chosen}


def safe_time(folder: PathLike) -> int | None:
    """Sensing time from a SAFE product or granule path name, or None for other folders."""
    for part in reversed(Path(folder).resolve().parts):
        if part.upper().endswith(".SAFE") and (match := _SAFE_TIME_PATTERN.search(part)):
            return to_epoch_seconds(match.group(1))
    return None


def _grid_at(reference: Grid, resolution: float | None, path: PathLike) -> Grid:
    """``reference`` rescaled to ``resolution`` CRS units per pixel (same extent).

    Raises:
        ValueError: if ``resolution`` is not positive, or the CRS of ``path`` (the file the
            reference grid comes from) is geographic or missing, so that CRS units are not
            metres.
    """
    if resolution is None:
        return reference
    if not resolution > 0:
        raise ValueError(f"resolution must be a positive pixel size in CRS units, got {resolution}")
    require_projected(reference, resolution, path)
    x_size, y_size = reference.resolution
    x_scale, y_scale = resolution / x_size, resolution / y_size
    return Grid(
        reference.crs,
        reference.transform @ Affine.scale(x_scale, y_scale),
        max(1, round(reference.width / x_scale)),
        max(1, round(reference.height / y_scale)),
    )


def _files_of(source: PathLike | Mapping[str, PathLike]) -> dict[str, Path]:
    if isinstance(source, Mapping):
        return {canonical_layer(name): Path(path) for name, path in source.items()}
    return find_band_files(source)


def default_grid(
    source: PathLike | Mapping[str, PathLike],
    bands: Sequence[str] | None = None,
    resolution: float | None = None,
) -> Grid:
    """The grid of the finest of ``bands`` (default all) in a product, at ``resolution``.

    Raises:
        FileNotFoundError: if the folder or a file does not exist.
        ValueError: if a requested band is missing.
    """
    files = _files_of(source)
    wanted = [b for b in files if b != "SCL"] if bands is None else list(map(canonical_band, bands))
    if missing := [band for band in wanted if band not in files]:
        raise ValueError(f"{source} lacks bands {missing}; it has {list(files)}")
    grids = []
    for band in wanted:
        with open_raster(files[band]) as dataset:
            require_georeferenced(dataset, files[band])
            grids.append((dataset_grid(dataset), files[band]))
    finest, path = min(grids, key=lambda pair: pair[0].resolution[0])
    return _grid_at(finest, resolution, path)


def band_index(dataset: DatasetReader, path: PathLike, band: str) -> int:
    """The 1-based index of ``band`` in a band file: its only band, or the band named so.

    A per-band file holds one band. A file with several is accepted only when its band
    descriptions (or tags) name ``band``, so that no band is ever taken by position.

    Raises:
        ValueError: if the file has several bands and none of them is named ``band``, or it
            has an alpha band, naming the file and what it holds.
    """
    check_spectral_layout(dataset, path, range(1, dataset.count + 1))
    if dataset.count == 1:
        return 1
    stored = stored_band_names(dataset)
    if band in stored:
        return stored.index(band) + 1
    raise ValueError(
        f"{path} should hold band {band} alone but has {dataset.count} bands (named {stored}); "
        f"a per-band file must have one band, or name its bands (descriptions) so that {band} "
        "can be found — export the band on its own (gdal_translate -b N) or name the bands"
    )


def require_same_extent(layers: Sequence[Layer]) -> None:
    """Refuse band files whose extent differs from the first's by more than one pixel.

    A band file smaller than, larger than or shifted from the others would leave a channel as
    padding (zeros) in pixels that the other bands mark valid.

    Raises:
        ValueError: naming the file, its bounds and the reference file's bounds.
    """
    reference = layers[0]
    reference_grid = dataset_grid(reference.dataset)
    for layer in layers[1:]:
        grid = dataset_grid(layer.dataset)
        require_overlap(layer.path, grid, reference_grid, f"grid of {reference.path.name}")
        if not same_crs(grid.crs, reference_grid.crs):
            continue  # another CRS: reprojected, the overlap check is what can be said
        tolerance = max(grid.resolution + reference_grid.resolution)
        # each edge within one (coarser) pixel of the reference's, in both directions: a file
        # larger than the reference leaves the reference's channel as padding, as a smaller one
        # leaves its own
        pairs = zip(grid.bounds, reference_grid.bounds, strict=True)
        gaps = [abs(ours - theirs) for ours, theirs in pairs]
        if max(gaps) > tolerance:
            raise ValueError(
                f"band file {layer.path} covers bounds {_rounded(grid.bounds)} but "
                f"{reference.path.name} covers {_rounded(reference_grid.bounds)} (CRS "
                f"{grid.crs}): the band files of one product must cover the same area; check "
                "that they come from the same tile and were not cropped differently"
            )


def _rounded(bounds: tuple[float, float, float, float]) -> tuple[float, ...]:
    return tuple(round(value, 3) for value in bounds)


class BandFilesReader(OneDateReader):
    """Per-band Sentinel-2 files kept open on one target grid, for many windowed reads.

    Every band file is opened once; bands off the target grid are seen through a WarpedVRT
    (bilinear, SCL nearest) and each :meth:`read` decodes only its window. Use as a context
    manager or call :meth:`close`; open one reader per DataLoader worker.

    Args:
        source: a product folder (see :func:`find_band_files`) or a mapping band -> file.
        bands: bands to return, in this order; ``None`` returns every band found.
        grid: target grid; default the full grid of the finest requested band.
        resolution: pixel size of the default grid in CRS units (e.g. 20 for a 20 m stack).
        **options: ``resampling``, ``time``, ``nodata``, ``scl``, ``location``
            (:class:`~satmae.data.readers.one_date.OneDateOptions`); the default time is the
            SAFE sensing time, the default SCL the product's SCL file.

    Raises:
        FileNotFoundError: if the folder or a mapped file does not exist.
        ValueError: if requested bands are missing (listed), a file is corrupt, or the files
            cannot be put on one grid.
    """

    def __init__(
        self,
        source: PathLike | Mapping[str, PathLike],
        bands: Sequence[str] | None = None,
        *,
        grid: Grid | None = None,
        resolution: float | None = None,
        **options: Unpack[OneDateOptions],
    ) -> None:
        super().__init__()
        files = _files_of(source)
        where = "the given files" if isinstance(source, Mapping) else str(source)
        available = [name for name in files if name != "SCL"]
        hint = "Request only bands the product holds (a Level-2A product has no B10)"
        self._request(bands, available, where, hint, options)
        nodata = options.get("nodata")
        self.nodata = DEFAULT_NODATA if nodata is None else nodata
        if self.time is None and not isinstance(source, Mapping):
            self.time = safe_time(source)
        location = options.get("location")
        if location is None:
            location = "" if isinstance(source, Mapping) else Path(source).name
        self.location = location
        try:
            layers = []
            for band in self.bands:
                dataset = self._open(files[band])
                require_georeferenced(dataset, files[band])
                index = band_index(dataset, files[band], band)
                fill = dataset.nodata if nodata is None and dataset.nodata is not None else None
                fill = self.nodata if fill is None else fill
                layers.append(Layer(dataset, (index,), fill, files[band]))
            if layers:
                require_same_extent(layers)
            self.offset = self._find_offset(files, layers)
            scl = options.get("scl", True)
            scl_file = files.get("SCL") if scl is True else scl or None
            scl_layer = self._open_scl(scl_file) if scl_file is not None else None
            if scl_layer is not None:
                require_georeferenced(scl_layer.dataset, scl_layer.path)
            if grid is None:
                finest = min(layers, key=lambda layer: layer.dataset.res[0])
                grid = _grid_at(dataset_grid(finest.dataset), resolution, finest.path)
            self._start(layers, scl_layer, grid, options)
        except BaseException:
            self.close()
            raise

    def _find_offset(self, files: Mapping[str, Path], layers: Sequence[Layer]) -> Offset | None:
        """The product's offset (metadata or name), else what each band file declares."""
        found = product_offset(files[self.bands[0]], self.bands) if self.bands else None
        if found is not None:
            return found
        per_file = [
            offset
            for band, layer in zip(self.bands, layers, strict=True)
            if (offset := file_offset(layer.dataset, layer.path, [band])) is not None
        ]
        if not per_file:
            return None
        merged = {band: value for offset in per_file for band, value in offset.bands.items()}
        return Offset(merged, "; ".join(dict.fromkeys(offset.source for offset in per_file)))


def read_band_files(
    source: PathLike | Mapping[str, PathLike],
    bands: Sequence[str] | None = None,
    *,
    grid: Grid | None = None,
    resolution: float | None = None,
    window: Window | None = None,
    bounds: BoundsLike | None = None,
    **options: Unpack[OneDateOptions],
) -> Sample:
    """Read per-band Sentinel-2 files onto one grid as a one-date sample.

    For many windows of one product keep a :class:`BandFilesReader` open instead.

    Args:
        source: a product folder (see :func:`find_band_files`) or a mapping band -> file.
        bands: bands to return, in this order; ``None`` returns every band found.
        grid: target grid; default the full grid of the finest requested band.
        resolution: pixel size of the default grid in CRS units (e.g. 20 for a 20 m stack).
        window: pixel window of the target grid (may extend past its edges).
        bounds: (left, bottom, right, top) in the target CRS, instead of ``window``.
        **options: as for :class:`BandFilesReader`.

    Returns:
        ``image (1, C, H, W)`` float32 (reflectance x 10000 without offset),
        ``valid (1, H, W)``, ``bands``, ``harmonized`` and geo keys.

    Raises:
        FileNotFoundError: if the folder or a mapped file does not exist.
        ValueError: if requested bands are missing (listed), a file is corrupt or truncated,
            or the files cannot be put on one grid.
    """
    reader = BandFilesReader(source, bands, resolution=resolution, **options)
    return read_once(reader, window, bounds, grid)


def is_band_folder(path: Path) -> bool:
    """Registry test: a folder holding files of at least two bands (a SAFE or flat product)."""
    if not path.is_dir():
        return False
    try:
        files = find_band_files(path)
    except (FileNotFoundError, ValueError):
        return False
    return len([name for name in files if name != "SCL"]) >= 2


def sources(path: Path, options: ReadOptions) -> list[Source]:
    """Registry entry: a per-band product folder is one sample."""
    bands, grid, time = options.bands, options.grid, options.time
    return [
        Source(
            path.name,
            partial(read_band_files, path, bands, grid=grid, time=time),
            find_band_files(path).get("B02"),
            partial(BandFilesReader, path, bands, grid=grid, time=time),
        )
    ]
