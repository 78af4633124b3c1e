"""A small fake OSCD root in torchgeo's rect layout or the native per-band layout.

Each city has two dates of 13 uint16 bands with random texture, the same scene on both dates
up to small noise, and one planted rectangle whose reflectance jumps on date 2: the change
mask (0/255 in ``cm.png``) marks exactly that rectangle.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rasterio
from PIL import Image
from rasterio.transform import from_origin

from satmae.bands import L1C_BANDS
from satmae.data.readers.layouts import OSCD_IMAGES

RESOLUTION: dict[str, int] = {
    **{band: 10 for band in ("B02", "B03", "B04", "B08")},
    **{band: 20 for band in ("B05", "B06", "B07", "B8A", "B11", "B12")},
    **{band: 60 for band in ("B01", "B09", "B10")},
}
DATES = ("20160115", "20170820")


def _write_tif(path: Path, array: np.ndarray, x0: float, y0: float, pixel: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {
        "driver": "GTiff",
        "height": array.shape[0],
        "width": array.shape[1],
        "count": 1,
        "dtype": array.dtype.name,
        "crs": "EPSG:32631",
        "transform": from_origin(x0, y0, pixel, pixel),
    }
    with rasterio.open(path, "w", **profile) as dataset:
        dataset.write(array, 1)


def planted_box(index: int, size: int) -> tuple[int, int, int, int]:
    """(row, col, height, width) of the changed rectangle of the index-th city."""
    side = size // 4 + 2 * (index % 3)
    row = (size // 8 + 5 * index) % (size - side)
    col = (size // 2 + 3 * index) % (size - side)
    return row, col, side, side


def write_fake_oscd(
    root: Path,
    cities: Sequence[str] = ("aguas", "bercy", "nantes", "paris"),
    size: int = 64,
    layout: str = "native",
    *,
    test_cities: Sequence[str] = (),
    test_labels: bool = False,
    seed: int = 0,
) -> Path:
    """Write a fake OSCD root; returns ``root``.

    Args:
        root: folder to write (created).
        cities: all cities; those not in ``test_cities`` go to ``train.txt``.
        size: side of the 10 m grid in pixels.
        layout: ``"rect"`` (torchgeo: ``imgs_{1,2}_rect/Bxx.tif`` at 10 m) or ``"native"``
            (``imgs_{1,2}/<prefix>_Bxx.tif`` at 10/20/60 m, plus ``<city>-cm.tif``).
        test_cities: cities listed in ``test.txt``.
        test_labels: write Test Labels for the test cities.
        seed: random seed of the pixels.
    """
    if layout not in ("rect", "native"):
        raise ValueError(f"layout must be 'rect' or 'native', got {layout!r}")
    images = root / OSCD_IMAGES
    images.mkdir(parents=True, exist_ok=True)
    train = [city for city in cities if city not in test_cities]
    (images / "train.txt").write_text(",".join(train), encoding="utf-8")
    (images / "test.txt").write_text(",".join(test_cities), encoding="utf-8")
    rng = np.random.default_rng(seed)
    for index, city in enumerate(cities):
        folder = images / city
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "dates.txt").write_text(
            f"date_1: {DATES[0]}\ndate_2: {DATES[1]}\n", encoding="utf-8"
        )
        row, col, height, width = planted_box(index, size)
        change = np.zeros((size, size), dtype=np.uint8)
        change[row : row + height, col : col + width] = 1
        x0, y0 = 400000.0 + 10000.0 * index, 5400000.0
        for band_index, band in enumerate(L1C_BANDS):
            factor = RESOLUTION[band] // 10
            side = math.ceil(size / factor)
            level = 800.0 + 150.0 * band_index
            first = level + rng.normal(0.0, 120.0, (side, side))
            second = first + rng.normal(0.0, 15.0, (side, side))
            jump = change.astype(np.float64)  # the change on the 10 m grid
            coarse = jump[::factor, ::factor][:side, :side] if factor > 1 else jump
            second = second + coarse * (1500.0 + 100.0 * (band_index % 4))
            for date, array in ((1, first), (2, second)):
                pixels = np.clip(array, 1, 20000).astype(np.uint16)
                if layout == "rect":  # resampled to 10 m: nearest neighbour
                    full = np.repeat(np.repeat(pixels, factor, 0), factor, 1)[:size, :size]
                    _write_tif(folder / f"imgs_{date}_rect" / f"{band}.tif", full, x0, y0, 10.0)
                else:
                    prefix = (
                        "S2A_OPER_MSI_L1C_TL_SGS__20160116T120000_T31UDQ"
                        if date == 1
                        else (f"T31UDQ_{DATES[1]}T105031")
                    )
                    path = folder / f"imgs_{date}" / f"{prefix}_{band}.tif"
                    _write_tif(path, pixels, x0, y0, float(RESOLUTION[band]))
        if city in train or test_labels:
            split = "Train" if city in train else "Test"
            labels = root / f"Onera Satellite Change Detection dataset - {split} Labels" / city
            (labels / "cm").mkdir(parents=True, exist_ok=True)
            Image.fromarray(change * 255).save(labels / "cm" / "cm.png")
            if layout == "native":
                Image.fromarray(change + 1).save(labels / "cm" / f"{city}-cm.tif")
    return root
