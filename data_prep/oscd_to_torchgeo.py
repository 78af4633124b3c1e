"""OSCD native-resolution folders -> torchgeo's ``imgs_*_rect`` layout.

The OSCD release on disk often lacks the ``imgs_1_rect``/``imgs_2_rect`` folders that
torchgeo's ``OSCD`` dataset reads: it has ``imgs_1``/``imgs_2`` with each band at its native
10/20/60 m resolution. This recipe resamples every band onto the city's 10 m grid (bilinear,
rounded back to uint16) and writes ``<city>/imgs_{1,2}_rect/B01.tif ... B8A.tif``, copying
``dates.txt``, the city GeoJSON, ``train.txt``/``test.txt`` and the label folders. Each city is
written to a temporary folder and renamed into place, so a rerun skips finished cities.

    python data_prep/oscd_to_torchgeo.py ../shared/data/real/oscd --out data/oscd --workers 4
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import rasterio
from common import add_scale_out_arguments, recipe_parser

from satmae.bands import L1C_BANDS
from satmae.data.grid import dataset_grid, open_raster
from satmae.data.parallel import run_tasks
from satmae.data.readers.band_files import find_band_files, read_band_files
from satmae.data.readers.layouts import OSCD_IMAGES, oscd_cities

LABELS = (
    "Onera Satellite Change Detection dataset - Train Labels",
    "Onera Satellite Change Detection dataset - Test Labels",
)


@dataclass(frozen=True)
class CityTask:
    images: Path  # the source "... - Images" folder
    out_images: Path
    city: str


def images_folder(root: Path) -> Path:
    return root if root.name == OSCD_IMAGES else root / OSCD_IMAGES


def write_city(task: CityTask) -> str:
    """Write one city; returns "written", "exists" or an error message."""
    final = task.out_images / task.city
    if final.exists():
        return "exists"
    source = task.images / task.city
    temporary = Path(tempfile.mkdtemp(prefix=f".{task.city}.", dir=task.out_images))
    try:
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
        os.replace(temporary, final)
    except (ValueError, FileNotFoundError) as error:
        shutil.rmtree(temporary, ignore_errors=True)
        return f"{task.city}: {error}"
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return "written"


def main(argv: list[str] | None = None) -> None:
    parser = recipe_parser(__doc__)
    parser.add_argument("root", type=Path, help="OSCD root (holding the '... - Images' folder)")
    parser.add_argument("--out", type=Path, required=True, help="torchgeo OSCD root to write")
    parser.add_argument("--cities", nargs="+", default=None, help="only these cities")
    add_scale_out_arguments(parser)
    args = parser.parse_args(argv)

    images = images_folder(args.root)
    cities = args.cities or oscd_cities(args.root)
    out_images = args.out / OSCD_IMAGES
    out_images.mkdir(parents=True, exist_ok=True)
    for stale in out_images.glob(".*"):  # cities of a killed run
        shutil.rmtree(stale, ignore_errors=True)
    for listing in ("train.txt", "test.txt", "README.txt"):
        if (images / listing).exists():
            shutil.copy2(images / listing, out_images / listing)
    tasks = [CityTask(images, out_images, city) for city in cities]
    results = run_tasks(
        write_city, tasks, scheduler=args.scheduler, workers=args.workers, description="cities"
    )
    for labels in LABELS:
        for city in cities:
            if (args.root / labels / city).is_dir() and not (args.out / labels / city).exists():
                shutil.copytree(args.root / labels / city, args.out / labels / city)
    failed = [r for r in results if r not in ("written", "exists")]
    print(
        f"cities: {len(results)} ({results.count('exists')} already written), failed: {len(failed)}"
    )
    for message in failed:
        print(f"  FAILED {message}")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
