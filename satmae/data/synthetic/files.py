"""Writing the synthetic scene as files: COGs, SCL layers, labels, change mask, metadata."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import rasterio
from rasterio.transform import Affine, from_origin

from satmae.bands import SENTINEL2_BANDS
from satmae.data.synthetic.scene import (
    LAND_COVER_CLASSES,
    NODATA,
    REFLECTANCE_SCALE,
    SCL_CLASSES,
    DemoArrays,
    DemoConfig,
    generate_demo_arrays,
)
from satmae.io import atomic_folder, claim_output

CRS = "EPSG:32633"
"""UTM zone 33N (central Europe)."""

ORIGIN = (500_000.0, 5_800_000.0)
"""Upper-left corner (easting, northing) of the demo grid in metres."""

PIXEL_SIZE = 10.0
"""Ground sampling distance of the demo grid in metres."""


@dataclass
class DemoSet:
    """Paths of a demo set on disk (what :func:`write_demo_set` returns).

    Attributes:
        root: the folder.
        images: one 12-band COG per date, in date order.
        scl: one SCL GeoTIFF per date, in date order.
        land_cover: label rasters at the first and the last date.
        change: the change mask between the first and the last date.
        metadata: the JSON file describing the set.
        dates: acquisition datetimes (UTC).
    """

    root: Path
    images: list[Path]
    scl: list[Path]
    land_cover: list[Path]
    change: Path
    metadata: Path
    dates: list[datetime] = field(default_factory=list)

    @classmethod
    def at(cls, root: Path, dates: list[datetime]) -> DemoSet:
        """The file layout of a demo set with these dates under ``root`` (the one naming rule)."""
        first, last = _date_stamp(dates[0]), _date_stamp(dates[-1])
        return cls(
            root=root,
            images=[root / f"S2_L2A_{_date_stamp(d)}.tif" for d in dates],
            scl=[root / f"S2_L2A_{_date_stamp(d)}_SCL.tif" for d in dates],
            land_cover=[root / f"landcover_{first}.tif", root / f"landcover_{last}.tif"],
            change=root / f"change_{first}_{last}.tif",
            metadata=root / "demo.json",
            dates=list(dates),
        )

    def files(self) -> list[Path]:
        """Every file of the set."""
        return [*self.images, *self.scl, *self.land_cover, self.change, self.metadata]


def _date_stamp(date: datetime) -> str:
    return date.strftime("%Y%m%d")


def _iso(date: datetime) -> str:
    return date.strftime("%Y-%m-%dT%H:%M:%SZ")


MARKER = "demo.json"
"""The file that marks a folder as a demo set satmae wrote (its ``format`` is ``satmae-demo``)."""

OVERVIEW = "overview.png"
"""The overview figure ``satmae demo-data`` adds to the set."""


def write_demo_set(
    out: str | os.PathLike[str],
    config: DemoConfig | None = None,
    *,
    overwrite: bool = False,
    extras: Callable[[DemoSet], None] | None = None,
) -> DemoSet:
    """Generate the demo set and write it as the folder ``out``.

    Files (``<date>`` is ``YYYYMMDD``):

    - ``S2_L2A_<date>.tif``: 12-band uint16 COG, reflectance x 10000, nodata 0;
    - ``S2_L2A_<date>_SCL.tif``: uint8 scene classification;
    - ``landcover_<date>.tif`` at the first and the last date, ``change_<date>_<date>.tif``;
    - ``demo.json``: bands, dates, classes, grid and the config used (the marker of a demo set).

    The whole set is written into a hidden folder beside ``out`` and swapped in at the end (see
    :func:`satmae.io.atomic_folder`), so ``out`` always holds exactly one complete set: a killed
    run leaves the old set (or none), and a rerun with fewer dates leaves no frame of the old
    one. A rerun removes the staging folder a killed run left.

    Args:
        out: destination folder; created if missing.
        config: generation parameters; defaults to :class:`DemoConfig`.
        overwrite: replace an existing demo set at ``out``. A non-empty folder that is not a
            demo set (see :func:`is_demo_set`) is never replaced.
        extras: called with the staged set before it is swapped in, to add files (the CLI
            draws ``overview.png`` here).

    Returns:
        The paths written.

    Raises:
        FileExistsError: if ``out`` is a non-empty folder and ``overwrite`` is False, or is not
            a demo set; if another process is writing ``out`` (``OutputBusyError``).
        NotADirectoryError: if ``out`` exists and is not a folder.
    """
    config = config or DemoConfig()
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"--out {root} exists and is not a folder; choose a folder path")
    with claim_output(root, overwrite=overwrite, folder=True, is_ours=is_demo_set):
        arrays = generate_demo_arrays(config)
        transform = from_origin(*ORIGIN, PIXEL_SIZE, PIXEL_SIZE)
        with atomic_folder(root, overwrite=overwrite, is_ours=is_demo_set) as staging:
            staged = DemoSet.at(staging, arrays.dates)
            _write_files(staged, arrays, transform, config)
            if extras is not None:
                extras(staged)
    return DemoSet.at(root, arrays.dates)


def is_demo_set(folder: Path) -> bool:
    """Whether ``folder`` holds a demo set satmae wrote and nothing else.

    True when its ``demo.json`` says ``"format": "satmae-demo"`` and every entry is a file it
    lists, the overview figure, or a staging folder (``.demo-*``) an older satmae left.
    """
    try:
        metadata = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(metadata, dict) or metadata.get("format") != "satmae-demo":
        return False
    listed = {MARKER, OVERVIEW, str(metadata.get("change", ""))}
    for key in ("images", "scl", "land_cover"):
        names = metadata.get(key, [])
        listed.update(str(name) for name in names if isinstance(names, list))
    return all(
        entry.name in listed or (entry.name.startswith(".demo-") and entry.is_dir())
        for entry in folder.iterdir()
    )


def _write_files(
    layout: DemoSet, arrays: DemoArrays, transform: Affine, config: DemoConfig
) -> None:
    """Write every raster and the metadata at the paths of ``layout``."""
    size = config.size
    common: dict[str, Any] = {
        "width": size,
        "height": size,
        "crs": CRS,
        "transform": transform,
        "compress": "deflate",
    }
    for t, date in enumerate(arrays.dates):
        iso = _iso(date)
        profile = {
            **common,
            "driver": "COG",
            "count": len(arrays.bands),
            "dtype": "uint16",
            "nodata": NODATA,
            "predictor": 2,
            "blocksize": 256,
            "overview_resampling": "average",
        }
        with rasterio.open(layout.images[t], "w", **profile) as dst:
            dst.write(arrays.reflectance[t])
            dst.update_tags(
                ACQUISITION_DATETIME=iso,
                PROCESSING_LEVEL="L2A",
                SPACECRAFT="synthetic Sentinel-2",
                BOA_QUANTIFICATION_VALUE=str(REFLECTANCE_SCALE),
                BANDS=",".join(arrays.bands),
            )
            for index, band in enumerate(arrays.bands, start=1):
                dst.set_band_description(index, band)
                spec = SENTINEL2_BANDS[band]
                dst.update_tags(
                    index,
                    BAND_NAME=band,
                    WAVELENGTH_NM=str(spec.wavelength_nm),
                    NATIVE_RESOLUTION_M=str(spec.resolution_m),
                )
        with rasterio.open(
            layout.scl[t], "w", driver="GTiff", count=1, dtype="uint8", **common
        ) as dst:
            dst.write(arrays.scl[t], 1)
            dst.set_band_description(1, "SCL")
            dst.update_tags(ACQUISITION_DATETIME=iso)
            dst.update_tags(1, **{f"CLASS_{k}": v for k, v in SCL_CLASSES.items()})

    first, last = _date_stamp(arrays.dates[0]), _date_stamp(arrays.dates[-1])
    for layer, stamp, path in zip(arrays.land_cover, (first, last), layout.land_cover, strict=True):
        with rasterio.open(path, "w", driver="GTiff", count=1, dtype="uint8", **common) as dst:
            dst.write(layer, 1)
            dst.set_band_description(1, "land_cover")
            dst.update_tags(DATE=stamp, **{f"CLASS_{k}": v for k, v in LAND_COVER_CLASSES.items()})
    with rasterio.open(layout.change, "w", driver="GTiff", count=1, dtype="uint8", **common) as dst:
        dst.write(arrays.change, 1)
        dst.set_band_description(1, "change")
        dst.update_tags(DATE_1=first, DATE_2=last, CLASS_0="no_change", CLASS_1="change")

    metadata = {
        "format": "satmae-demo",
        "version": 1,
        "description": "synthetic Sentinel-2 L2A time series generated by satmae demo-data",
        "crs": CRS,
        "transform": list(transform)[:6],
        "size": [size, size],
        "bands": list(arrays.bands),
        "reflectance_scale": REFLECTANCE_SCALE,
        "nodata": NODATA,
        "dates": [_iso(d) for d in arrays.dates],
        "images": [path.name for path in layout.images],
        "scl": [path.name for path in layout.scl],
        "land_cover": [path.name for path in layout.land_cover],
        "change": layout.change.name,
        "land_cover_classes": {str(k): v for k, v in LAND_COVER_CLASSES.items()},
        "scl_classes": {str(k): v for k, v in SCL_CLASSES.items()},
        "config": asdict(config),
    }
    layout.metadata.write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
