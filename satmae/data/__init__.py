"""Reading Sentinel-2 into the sample contract: readers, validity, statistics, checks, chip store.

Everything listed in ``__all__`` is importable from here (``from satmae.data import
read_series, collate_samples``); each name is imported from its module on first use (PEP 562),
so ``import satmae.data`` stays cheap and loads rasterio, xarray or torchgeo only when a reader
that needs them is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from satmae.lazy import lazy_attributes

_LAZY: dict[str, str] = {
    "Sample": "satmae.data.sample",
    "collate_samples": "satmae.data.sample",
    "validate_sample": "satmae.data.sample",
    "to_epoch_seconds": "satmae.data.sample",
    "from_epoch_seconds": "satmae.data.sample",
    "Grid": "satmae.data.grid",
    "Reader": "satmae.data.readers.protocol",
    "ReadOptions": "satmae.data.readers.protocol",
    "Source": "satmae.data.readers.protocol",
    "RASTER_SUFFIXES": "satmae.data.readers.protocol",
    "READERS": "satmae.data.readers.registry",
    "ReaderEntry": "satmae.data.readers.registry",
    "list_sources": "satmae.data.readers.sources",
    "iter_tiles": "satmae.data.readers.sources",
    "read_center": "satmae.data.readers.sources",
    "OneDateOptions": "satmae.data.readers.one_date",
    "GeoTiffReader": "satmae.data.readers.geotiff",
    "read_geotiff": "satmae.data.readers.geotiff",
    "band_names": "satmae.data.readers.geotiff",
    "BandFilesReader": "satmae.data.readers.band_files",
    "read_band_files": "satmae.data.readers.band_files",
    "find_band_files": "satmae.data.readers.band_files",
    "SeriesReader": "satmae.data.readers.series",
    "read_series": "satmae.data.readers.series",
    "Frame": "satmae.data.readers.frames",
    "read_index": "satmae.data.readers.frames",
    "frames_from_folder": "satmae.data.readers.frames",
    "group_by_location": "satmae.data.readers.frames",
    "read_cube": "satmae.data.readers.cube",
    "sample_to_dataarray": "satmae.data.readers.cube",
    "read_oscd_city": "satmae.data.readers.layouts",
    "oscd_cities": "satmae.data.readers.layouts",
    "read_bigearthnet_patch": "satmae.data.readers.layouts",
    "bigearthnet_patches": "satmae.data.readers.layouts",
    "from_torchgeo": "satmae.data.readers.torchgeo_adapter",
    "remove_offset": "satmae.data.readers.offset",
    "valid_mask": "satmae.data.validity",
    "ValidityPolicy": "satmae.data.validity",
    "BandStats": "satmae.data.stats",
    "load_stats": "satmae.data.stats",
    "Normalize": "satmae.data.stats",
    "CheckResult": "satmae.data.checks",
    "check_sample": "satmae.data.checks",
    "check_offset": "satmae.data.checks",
    "ChipStore": "satmae.data.store.chipstore",
    "ChipStoreWriter": "satmae.data.store.chipwriter",
    "ChipDataset": "satmae.data.store.datasets",
    "ChipStream": "satmae.data.store.datasets",
    "batch_loader": "satmae.data.store.datasets",
    "SeriesAugment": "satmae.data.augment",
    "write_demo_set": "satmae.data.synthetic",
}

if TYPE_CHECKING:
    from satmae.data.augment import SeriesAugment
    from satmae.data.checks import CheckResult, check_offset, check_sample
    from satmae.data.grid import Grid
    from satmae.data.readers.band_files import BandFilesReader, find_band_files, read_band_files
    from satmae.data.readers.cube import read_cube, sample_to_dataarray
    from satmae.data.readers.frames import (
        Frame,
        frames_from_folder,
        group_by_location,
        read_index,
    )
    from satmae.data.readers.geotiff import GeoTiffReader, band_names, read_geotiff
    from satmae.data.readers.layouts import (
        bigearthnet_patches,
        oscd_cities,
        read_bigearthnet_patch,
        read_oscd_city,
    )
    from satmae.data.readers.offset import remove_offset
    from satmae.data.readers.one_date import OneDateOptions
    from satmae.data.readers.protocol import RASTER_SUFFIXES, Reader, ReadOptions, Source
    from satmae.data.readers.registry import READERS, ReaderEntry
    from satmae.data.readers.series import SeriesReader, read_series
    from satmae.data.readers.sources import iter_tiles, list_sources, read_center
    from satmae.data.readers.torchgeo_adapter import from_torchgeo
    from satmae.data.sample import (
        Sample,
        collate_samples,
        from_epoch_seconds,
        to_epoch_seconds,
        validate_sample,
    )
    from satmae.data.stats import BandStats, Normalize, load_stats
    from satmae.data.store.chipstore import ChipStore
    from satmae.data.store.chipwriter import ChipStoreWriter
    from satmae.data.store.datasets import ChipDataset, ChipStream, batch_loader
    from satmae.data.synthetic import write_demo_set
    from satmae.data.validity import ValidityPolicy, valid_mask

__all__ = [
    "RASTER_SUFFIXES",
    "READERS",
    "BandFilesReader",
    "BandStats",
    "CheckResult",
    "ChipDataset",
    "ChipStore",
    "ChipStoreWriter",
    "ChipStream",
    "Frame",
    "GeoTiffReader",
    "Grid",
    "Normalize",
    "OneDateOptions",
    "ReadOptions",
    "Reader",
    "ReaderEntry",
    "Sample",
    "SeriesAugment",
    "SeriesReader",
    "Source",
    "ValidityPolicy",
    "band_names",
    "batch_loader",
    "bigearthnet_patches",
    "check_offset",
    "check_sample",
    "collate_samples",
    "find_band_files",
    "frames_from_folder",
    "from_epoch_seconds",
    "from_torchgeo",
    "group_by_location",
    "iter_tiles",
    "list_sources",
    "load_stats",
    "oscd_cities",
    "read_band_files",
    "read_bigearthnet_patch",
    "read_center",
    "read_cube",
    "read_geotiff",
    "read_index",
    "read_oscd_city",
    "read_series",
    "remove_offset",
    "sample_to_dataarray",
    "to_epoch_seconds",
    "valid_mask",
    "validate_sample",
    "write_demo_set",
]


__getattr__ = lazy_attributes(__name__, _LAZY, globals())
