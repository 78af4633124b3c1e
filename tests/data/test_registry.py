"""The ordered reader registry: one entry per source kind, the same place read the same way."""

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin

from satmae.data import READERS, ReadOptions, SeriesReader, list_sources
from satmae.data.readers.layouts import OSCD_IMAGES
from satmae.data.readers.registry import find_entry, open_frame


def write_tif(path, bands=("B02", "B03", "B04")):
    path.parent.mkdir(parents=True, exist_ok=True)
    # each band's values depend on its name only, so a band reads the same from any layout
    data = np.stack([np.arange(1, 65).reshape(8, 8) + 100 * int(b[1:3]) for b in bands])
    data = data.astype(np.uint16)
    profile = {
        "driver": "GTiff",
        "width": 8,
        "height": 8,
        "count": len(bands),
        "dtype": "uint16",
        "crs": "EPSG:32631",
        "transform": from_origin(500000.0, 4000000.0, 10.0, 10.0),
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        for index, name in enumerate(bands, start=1):
            dst.set_band_description(index, name)
    return path


def test_entries_are_ordered_most_specific_first():
    names = [entry.name for entry in READERS]
    assert names == [
        "index",
        "cube",
        "geotiff",
        "oscd",
        "oscd_city",
        "bigearthnet",
        "band_files",
        "folder",
    ]
    assert [entry.name for entry in READERS if entry.in_folders] == ["geotiff", "band_files"]


def test_each_kind_is_found_by_its_entry(tmp_path):
    tif = write_tif(tmp_path / "scene.tif")
    product = tmp_path / "product"
    for band in ("B02", "B03"):
        write_tif(product / f"T31_{band}.tif", bands=(band,))
    (tmp_path / "index.csv").write_text("path,datetime\nscene.tif,2021-06-15\n")
    assert find_entry(tif).name == "geotiff"
    assert find_entry(product).name == "band_files"
    assert find_entry(tmp_path / "index.csv").name == "index"
    assert find_entry(tmp_path / "cube.zarr").name == "cube"
    assert find_entry(tmp_path).name == "folder"
    assert [source.name for source in list_sources(tmp_path)] == ["product", "scene.tif"]


def test_frames_open_through_the_registry(tmp_path):
    tif = write_tif(tmp_path / "S2_20210615.tif")
    with open_frame(tif, ReadOptions(bands=("B03",), time=7)) as reader:
        sample = reader.read()
    assert sample["bands"] == ("B03",) and sample["times"].tolist() == [7]
    (tmp_path / "notes").mkdir()
    with pytest.raises(ValueError, match="cannot be a frame"):
        open_frame(tmp_path / "notes", ReadOptions())


def test_series_reader_reads_frames_of_every_kind(tmp_path):
    write_tif(tmp_path / "series" / "S2_20210615.tif")
    for band in ("B02", "B03", "B04"):
        write_tif(tmp_path / "series" / "S2_20210715" / f"T31_{band}.tif", bands=(band,))
    with SeriesReader(tmp_path / "series") as reader:
        sample = reader.read()
    assert sample["image"].shape == (2, 3, 8, 8)
    assert torch.equal(sample["image"][0], sample["image"][1])
    assert sample["harmonized"] == ({}, {})


def test_oscd_city_folder_reads_as_the_dated_series_of_its_root(real_data):
    root = real_data / "oscd"
    [from_root] = [source for source in list_sources(root) if source.name == "bercy"]
    [from_city] = list_sources(root / OSCD_IMAGES / "bercy")
    assert from_city.name == "bercy"
    expected, sample = from_root.read(), from_city.read()
    assert sample["image"].shape[0] == 2 and sample["times"].tolist() == expected["times"].tolist()
    assert torch.equal(sample["image"], expected["image"])
    assert torch.equal(sample["mask"], expected["mask"])
