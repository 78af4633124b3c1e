"""Published datasets in their native per-band layouts: OSCD cities and BigEarthNet v1 patches.

- **OSCD** (Onera Satellite Change Detection): ``<root>/Onera Satellite Change Detection
  dataset - Images/<city>/imgs_{1,2}/*_Bxx.tif`` at native 10/20/60 m (or the resampled
  ``imgs_{1,2}_rect/Bxx.tif``), dates in ``<city>/dates.txt``, change maps in
  ``... - Train Labels/<city>/cm/cm.png``. A city becomes a two-date 13-band 10 m series.
- **BigEarthNet v1**: ``<patch>/<patch>_Bxx.tif`` (12 Level-2A bands) and
  ``<patch>_labels_metadata.json`` with CORINE labels and the acquisition date.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np
import torch
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window

from satmae.bands import L1C_BANDS, L2A_BANDS
from satmae.data.grid import BoundsLike, Grid, PathLike, dataset_grid, open_raster, resolve_window
from satmae.data.readers.band_files import find_band_files, read_band_files
from satmae.data.readers.protocol import ReadOptions, Source
from satmae.data.sample import Sample, to_epoch_seconds

OSCD_IMAGES = "Onera Satellite Change Detection dataset - Images"
OSCD_LABELS = ("Train Labels", "Test Labels")


def _oscd_images(root: PathLike) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"OSCD root {root} does not exist")
    return root / OSCD_IMAGES if (root / OSCD_IMAGES).is_dir() else root


def oscd_cities(root: PathLike) -> list[str]:
    """Names of the OSCD cities under ``root`` (the dataset root or its Images folder).

    Raises:
        FileNotFoundError: if no city folder (one with ``dates.txt``) is found.
    """
    images = _oscd_images(root)
    cities = sorted(p.parent.name for p in images.glob("*/dates.txt"))
    if not cities:
        raise FileNotFoundError(
            f"no OSCD cities under {images}: expected <city>/dates.txt and <city>/imgs_1/"
        )
    return cities


def read_oscd_dates(path: PathLike) -> tuple[int, int]:
    """The two acquisition dates of ``dates.txt`` (``date_1: YYYYMMDD``) in epoch seconds.

    Raises:
        ValueError: if the file lacks ``date_1``/``date_2`` or a date cannot be parsed.
    """
    entries: dict[str, str] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if ":" in line:
            key, value = line.split(":", 1)
            entries[key.strip()] = value.strip()
    dates = []
    for key in ("date_1", "date_2"):
        if key not in entries:
            raise ValueError(f"{path} has no '{key}: YYYYMMDD' line; found {sorted(entries)}")
        try:
            dates.append(to_epoch_seconds(entries[key]))
        except ValueError:
            raise ValueError(
                f"{path}: cannot parse {key} {entries[key]!r}; write it as YYYYMMDD"
            ) from None
    return dates[0], dates[1]


def _date_folder(city: Path, date: int) -> Path:
    for name in (f"imgs_{date}_rect", f"imgs_{date}"):
        if (city / name).is_dir():
            return city / name
    raise FileNotFoundError(f"OSCD city {city} has neither imgs_{date}_rect/ nor imgs_{date}/")


def _oscd_change_mask(images: Path, city: str, window: Window) -> torch.Tensor | None:
    for split in OSCD_LABELS:
        folder = images.parent / f"Onera Satellite Change Detection dataset - {split}" / city
        png = folder / "cm" / "cm.png"
        if png.is_file():
            with warnings.catch_warnings():  # the PNG has no georeference, by design
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                with open_raster(png) as dataset:
                    change = dataset.read(1, window=window, boundless=True, fill_value=0)
            return torch.from_numpy((change > 0).astype(np.int64))[None]  # (1, H, W)
    return None


def read_oscd_city(
    root: PathLike,
    city: str,
    bands: Sequence[str] = L1C_BANDS,
    *,
    grid: Grid | None = None,
    window: Window | None = None,
    bounds: BoundsLike | None = None,
) -> Sample:
    """Read an OSCD city as a two-date series on its 10 m grid, with its change mask.

    Args:
        root: the OSCD root (holding the Images and Labels folders) or the Images folder.
        city: city folder name, e.g. ``"bercy"``.
        bands: bands to return, in this order (default the 13 L1C bands in wavelength order).
        grid: target grid (default the city's 10 m grid); the change mask comes only on a
            grid aligned with the 10 m grid.
        window: pixel window of the grid.
        bounds: (left, bottom, right, top) in the grid's CRS, instead of ``window``.

    Returns:
        ``image (2, C, H, W)``, ``times (2,)`` from ``dates.txt``, ``valid (2, H, W)``,
        ``harmonized``, geo keys, ``location`` = city, and ``mask (1, H, W)`` int64
        (1 = change) where labels exist.

    Raises:
        FileNotFoundError: if the city or its image folders are missing.
        ValueError: if dates cannot be parsed or bands are missing.
    """
    images = _oscd_images(root)
    folder = images / city
    if not folder.is_dir():
        raise FileNotFoundError(
            f"OSCD city {city!r} not found in {images}; cities there: {oscd_cities(root)}"
        )
    times = read_oscd_dates(folder / "dates.txt")
    first = _date_folder(folder, 1)
    with open_raster(find_band_files(first)["B02"]) as dataset:
        full = dataset_grid(dataset)
    target = resolve_window(grid or full, window, bounds)
    frames = [
        read_band_files(_date_folder(folder, date), bands, grid=target, location=city)
        for date in (1, 2)
    ]
    sample: Sample = {
        "image": torch.cat([frame["image"] for frame in frames]),
        "times": torch.tensor(times, dtype=torch.int64),
        "bands": frames[0]["bands"],
        "valid": torch.cat([frame["valid"] for frame in frames]),
        "location": city,
        "harmonized": frames[0]["harmonized"] + frames[1]["harmonized"],
    }
    target.attach(sample)
    if (offset := full.aligned_offset(target)) is not None:
        col, row = offset
        window = Window(col, row, target.width, target.height)
        if (change := _oscd_change_mask(images, city, window)) is not None:
            sample["mask"] = change
    return sample


def bigearthnet_patches(root: PathLike) -> list[Path]:
    """Patch folders (those with a ``*_labels_metadata.json``) under a BigEarthNet v1 root.

    Raises:
        FileNotFoundError: if none is found.
    """
    root = Path(root)
    patches = sorted(p.parent for p in root.glob("*/*_labels_metadata.json"))
    if not patches and list(root.glob("*_labels_metadata.json")):
        patches = [root]
    if not patches:
        raise FileNotFoundError(
            f"no BigEarthNet patches under {root}: expected <patch>/<patch>_labels_metadata.json"
        )
    return patches


def bigearthnet_classes() -> tuple[str, ...]:
    """The 43 CORINE class names of BigEarthNet v1, in torchgeo's label order."""
    from torchgeo.datasets import BigEarthNet  # imported lazily: torchgeo is slow to import

    return tuple(BigEarthNet.class_sets[43])


def read_bigearthnet_patch(
    folder: PathLike,
    bands: Sequence[str] = L2A_BANDS,
    *,
    grid: Grid | None = None,
    classes: Sequence[str] | None = None,
) -> Sample:
    """Read a BigEarthNet v1 Sentinel-2 patch at 10 m (120 x 120) with its labels.

    Args:
        folder: the patch folder ``<patch>/`` holding ``<patch>_Bxx.tif`` files.
        bands: bands to return, in this order (default the 12 L2A bands).
        grid: target grid (default the patch's 10 m grid).
        classes: class list for the multi-hot ``label`` (default the 43 BigEarthNet classes).

    Returns:
        ``image (1, C, 120, 120)``, ``times (1,)``, ``valid``, geo keys, ``location`` (patch
        name), ``label_names`` and ``label`` (multi-hot float32 over ``classes``).

    Raises:
        FileNotFoundError: if the folder or its labels JSON is missing.
        ValueError: if the JSON is malformed, its date unparseable or a label unknown.
    """
    folder = Path(folder)
    metadata_path = folder / f"{folder.name}_labels_metadata.json"
    if not metadata_path.is_file():
        raise FileNotFoundError(f"BigEarthNet labels {metadata_path} not found")
    try:
        metadata = json.loads(metadata_path.read_text(encoding="utf-8"))
        names = tuple(metadata["labels"])
        acquired = metadata["acquisition_date"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ValueError(
            f"{metadata_path} is not a BigEarthNet labels file ({error}); it needs 'labels' "
            "and 'acquisition_date'"
        ) from None
    try:
        time = to_epoch_seconds(acquired)
    except ValueError:
        raise ValueError(f"{metadata_path}: cannot parse acquisition_date {acquired!r}") from None
    sample = read_band_files(folder, bands, grid=grid, time=time, location=folder.name)
    class_list = tuple(classes) if classes is not None else bigearthnet_classes()
    if unknown := [name for name in names if name not in class_list]:
        raise ValueError(f"{metadata_path}: labels {unknown} are not among the known classes")
    label = torch.zeros(len(class_list), dtype=torch.float32)
    label[[class_list.index(name) for name in names]] = 1.0
    sample["label"] = label
    sample["label_names"] = names
    return sample


def is_oscd_root(path: Path) -> bool:
    """Registry test: an OSCD root (with the Images folder) or its Images folder."""
    return path.is_dir() and ((path / OSCD_IMAGES).is_dir() or any(path.glob("*/dates.txt")))


def is_oscd_city(path: Path) -> bool:
    """Registry test: one OSCD city folder (``dates.txt`` and ``imgs_1[_rect]/``)."""
    dated = (path / "dates.txt").is_file()
    return dated and any((path / name).is_dir() for name in ("imgs_1", "imgs_1_rect"))


def oscd_sources(path: Path, options: ReadOptions) -> list[Source]:
    """Registry entry: each city of an OSCD root is one dated two-frame series."""
    bands = options.bands or L1C_BANDS
    return [
        Source(city, partial(read_oscd_city, path, city, bands, grid=options.grid))
        for city in oscd_cities(path)
    ]


def oscd_city_sources(path: Path, options: ReadOptions) -> list[Source]:
    """Registry entry: an OSCD city folder reads as the same series as from its root."""
    bands = options.bands or L1C_BANDS
    return [
        Source(path.name, partial(read_oscd_city, path.parent, path.name, bands, grid=options.grid))
    ]


def is_bigearthnet(path: Path) -> bool:
    """Registry test: a BigEarthNet v1 root or patch folder."""
    return path.is_dir() and any(
        any(path.glob(pattern))
        for pattern in ("*/*_labels_metadata.json", "*_labels_metadata.json")
    )


def bigearthnet_sources(path: Path, options: ReadOptions) -> list[Source]:
    """Registry entry: each BigEarthNet patch is one sample with its labels."""
    bands = options.bands or L2A_BANDS
    return [
        Source(patch.name, partial(read_bigearthnet_patch, patch, bands, grid=options.grid))
        for patch in bigearthnet_patches(path)
    ]
