"""Tiny fake benchmark datasets in torchgeo's exact on-disk layouts.

Images carry a class-dependent spectrum plus noise, so probes can learn something. The EuroSAT
files store B8A as the 13th band, as the real ones do.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

EUROSAT_CLASSES: tuple[str, ...] = (
    "AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial",
    "Pasture", "PermanentCrop", "Residential", "River", "SeaLake",
)  # fmt: skip
EUROSAT_FILE_BANDS: tuple[str, ...] = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B10", "B11", "B12", "B8A",
)  # fmt: skip
EUROSAT_IMAGES = "ds/images/remote_sensing/otherDatasets/sentinel_2/tif"

BIGEARTHNET_BANDS: dict[str, int] = {
    "B01": 20, "B02": 120, "B03": 120, "B04": 120, "B05": 60, "B06": 60, "B07": 60,
    "B08": 120, "B8A": 60, "B09": 20, "B11": 60, "B12": 60,
}  # fmt: skip
"""BigEarthNet v1 S2 band -> side in pixels (10 m: 120, 20 m: 60, 60 m: 20)."""

BIGEARTHNET_LABELS: tuple[str, ...] = (
    "Continuous urban fabric", "Non-irrigated arable land", "Coniferous forest",
    "Water bodies", "Pastures", "Broad-leaved forest",
)  # fmt: skip
"""43-class CORINE names that torchgeo maps into the 19 classes (to 0, 2, 9, 17, 4, 8)."""

_ALL_BANDS = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12",
)  # fmt: skip


def class_spectrum(index: int, band: str) -> float:
    """A plausible reflectance x 10000 for a class and band, distinct for each class."""
    position = _ALL_BANDS.index(band)
    return 800.0 + 350.0 * ((index * 7 + position * 3) % 11) + 120.0 * index


def _write_tif(path: Path, array: np.ndarray, pixel: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    count, height, width = array.shape
    with rasterio.open(
        path, "w", driver="GTiff", width=width, height=height, count=count, dtype="uint16",
        crs="EPSG:32633", transform=from_origin(500000.0, 5000000.0, pixel, pixel),
    ) as dst:  # fmt: skip
        dst.write(array)


def _eurosat_image(rng: np.random.Generator, index: int, size: int) -> np.ndarray:
    spectrum = np.array([class_spectrum(index, band) for band in EUROSAT_FILE_BANDS])
    noise = rng.normal(0.0, 150.0, (len(EUROSAT_FILE_BANDS), size, size))
    return np.clip(spectrum[:, None, None] + noise, 1, 10000).astype(np.uint16)


def write_fake_eurosat(
    root: str | Path,
    per_class: int = 2,
    size: int = 64,
    classes: tuple[str, ...] = EUROSAT_CLASSES,
    seed: int = 0,
) -> dict[str, list[str]]:
    """Write EuroSAT in torchgeo's layout: split files and 13-band uint16 GeoTIFFs.

    Each class gets ``per_class`` images in each of train, val and test. Returns the file
    names (``.jpg`` as in the split files) of each split.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    splits: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for class_index, name in enumerate(classes):
        for number in range(1, 3 * per_class + 1):
            image = _eurosat_image(rng, class_index, size)
            _write_tif(root / EUROSAT_IMAGES / name / f"{name}_{number}.tif", image, 10.0)
            split = ("train", "val", "test")[(number - 1) // per_class]
            splits[split].append(f"{name}_{number}.jpg")
    for split, names in splits.items():
        (root / f"eurosat-{split}.txt").write_text("\n".join(names) + "\n")
    return splits


def write_fake_eurosat_spatial(
    root: str | Path,
    per_class: int = 2,
    size: int = 64,
    classes: tuple[str, ...] = EUROSAT_CLASSES,
    seed: int = 0,
) -> dict[str, list[str]]:
    """Write the EuroSAT images plus ``eurosat-spatial-*.txt`` (a different split of them)."""
    splits = write_fake_eurosat(root, per_class, size, classes, seed)
    # Rotate the roles so the spatial split differs from the random one.
    spatial = {"train": splits["test"], "val": splits["train"], "test": splits["val"]}
    for split, names in spatial.items():
        (Path(root) / f"eurosat-spatial-{split}.txt").write_text("\n".join(names) + "\n")
    return spatial


def write_fake_bigearthnet_v1(root: str | Path, n: int = 4, seed: int = 0) -> dict[str, list[str]]:
    """Write BigEarthNet v1 (S2) in torchgeo's layout, ``n`` patches per split.

    Per-band GeoTIFFs at their native sizes (120/60/20 px), a labels JSON with 43-class CORINE
    names and the three split CSVs (S2 name, S1 name). Returns the S2 patch names per split.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    splits: dict[str, list[str]] = {}
    for split in ("train", "val", "test"):
        rows = []
        for number in range(n):
            patch = f"S2A_MSIL2A_20170613T101031_{split}_{number}"
            first = number % len(BIGEARTHNET_LABELS)
            labels = [BIGEARTHNET_LABELS[first]]
            if number % 2:
                labels.append(BIGEARTHNET_LABELS[(first + 2) % len(BIGEARTHNET_LABELS)])
            folder = root / "BigEarthNet-v1.0" / patch
            for band, side in BIGEARTHNET_BANDS.items():
                value = class_spectrum(first, band)
                noise = rng.normal(0.0, 100.0, (1, side, side))
                array = np.clip(value + noise, 1, 10000).astype(np.uint16)
                _write_tif(folder / f"{patch}_{band}.tif", array, 1200.0 / side)
            metadata = {"labels": labels, "acquisition_date": "2017-06-13 10:10:31"}
            (folder / f"{patch}_labels_metadata.json").write_text(json.dumps(metadata))
            rows.append(f"{patch},S1A_IW_GRDH_1SDV_20170613T165043_{split}_{number}")
            splits.setdefault(split, []).append(patch)
        (root / f"bigearthnet-{split}.csv").write_text("\n".join(rows) + "\n")
    return splits
