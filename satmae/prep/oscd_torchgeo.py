"""OSCD native-resolution folders -> torchgeo's ``imgs_*_rect`` layout.

The OSCD release on disk often lacks the ``imgs_1_rect``/``imgs_2_rect`` folders that
torchgeo's ``OSCD`` dataset reads: it has ``imgs_1``/``imgs_2`` with each band at its native
10/20/60 m resolution. :func:`convert` resamples every band onto the city's 10 m grid (bilinear,
rounded back to uint16) and writes ``<city>/imgs_{1,2}_rect/B01.tif ... B8A.tif``, copying
``dates.txt``, the city GeoJSON, ``train.txt``/``test.txt`` and the label folders. Each city is
staged in a hidden folder and swapped in whole (:mod:`satmae.io`), so a rerun skips finished
cities and removes what a killed run left.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import rasterio

from satmae.bands import L1C_BANDS
from satmae.data.grid import dataset_grid, open_raster
from satmae.data.parallel import run_tasks
from satmae.data.readers.band_files import find_band_files, read_band_files
from satmae.data.readers.layouts import OSCD_IMAGES, oscd_cities
from satmae.io import OutputBusyError, atomic_folder, atomic_path

LABELS = (
    "Onera Satellite Change Detection dataset - Train Labels",
    "Onera Satellite Change Detection dataset - Test Labels",
)
"""The label folders beside the images folder, copied city by city."""


@dataclass(frozen=True)
class CityTask:
    """One city to resample.

    Attributes:
        images: the source ``... - Images`` folder.
        out_images: the ``... - Images`` folder to write.
        city: the city folder name.
    """

    images: Path
    out_images: Path
    city: str


def images_folder(root: Path) -> Path:
    """The ``... - Images`` folder of an OSCD root (or the folder itself)."""
    return root if root.name == OSCD_IMAGES else root / OSCD_IMAGES


def write_city(task: CityTask) -> str:
    """Write one city; returns ``"written"``, ``"exists"`` or an error message.

    The city is staged in a hidden folder and swapped in whole (:func:`satmae.io.atomic_folder`),
    under the city's lock: a killed run leaves no half city (its staging folder is removed by
    the next run) and two runs never write the same city.
    """
    final = task.out_images / task.city
    if final.exists():
        return "exists"
    source = task.images / task.city
    try:
        with atomic_folder(final) as temporary:
            with open_raster(find_band_files(source / "imgs_1")["B02"]) as dataset:
                grid = dataset_grid(dataset)
            for date in (1, 2):
                sample = read_band_files(source / f"imgs_{date}", L1C_BANDS, grid=grid)
                folder = temporary / f"imgs_{date}_rect"
                folder.mkdir()
                pixels = sample["image"][0].round().clamp(0, 65535).numpy().astype("uint16")
                for band, plane in zip(sample["bands"], pixels, strict=True):
                    with rasterio.open(
                        folder / f"{band}.tif",
                        "w",
                        driver="GTiff",
                        dtype="uint16",
                        count=1,
                        width=grid.width,
                        height=grid.height,
                        crs=grid.crs,
                        transform=grid.transform,
                    ) as dst:
                        dst.write(plane, 1)
            for extra in ("dates.txt", f"{task.city}.geojson"):
                if (source / extra).exists():
                    shutil.copy2(source / extra, temporary / extra)
    except OutputBusyError as error:
        return f"{task.city}: {error}"
    except FileExistsError:
        return "exists"  # written by another run meanwhile
    except (ValueError, FileNotFoundError) as error:
        return f"{task.city}: {error}"
    return "written"


def convert(
    root: str | Path,
    out: str | Path,
    cities: Sequence[str] | None = None,
    *,
    workers: int = 1,
    scheduler: str | None = None,
) -> list[str]:
    """Write torchgeo's OSCD layout under ``out``, one task per city.

    Args:
        root: the OSCD root (holding the ``... - Images`` folder) or that folder.
        out: the torchgeo OSCD root to write.
        cities: only these cities (default: every city of the root).
        workers: local processes (1: in this process, without dask).
        scheduler: address of a running dask scheduler for many machines.

    Returns:
        One :func:`write_city` result per city, in completion order.
    """
    root, out = Path(root), Path(out)
    images = images_folder(root)
    cities = list(cities or oscd_cities(root))
    out_images = out / OSCD_IMAGES
    out_images.mkdir(parents=True, exist_ok=True)
    for listing in ("train.txt", "test.txt", "README.txt"):
        if (images / listing).exists():
            with atomic_path(out_images / listing) as staging:
                shutil.copy2(images / listing, staging)
    tasks = [CityTask(images, out_images, city) for city in cities]
    results = run_tasks(
        write_city, tasks, scheduler=scheduler, workers=workers, description="cities"
    )
    for labels in LABELS:
        for city in cities:
            if (root / labels / city).is_dir() and not (out / labels / city).exists():
                with atomic_folder(out / labels / city) as staging:
                    shutil.copytree(root / labels / city, staging, dirs_exist_ok=True)
    return results
