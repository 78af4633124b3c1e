"""Readers of multi-band GeoTIFFs, per-band folders and the real OSCD/BigEarthNet layouts."""

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin
from rasterio.windows import Window

from satmae.bands import L1C_BANDS, L2A_BANDS
from satmae.data.readers.band_files import band_of_file, find_band_files, read_band_files
from satmae.data.readers.geotiff import band_names, read_geotiff
from satmae.data.readers.layouts import (
    bigearthnet_patches,
    oscd_cities,
    read_bigearthnet_patch,
    read_oscd_city,
    read_oscd_dates,
)
from satmae.data.sample import from_epoch_seconds, validate_sample

CRS = "EPSG:32631"


def write_raster(
    path,
    data,
    names=None,
    *,
    res=10.0,
    origin=(500000.0, 4000000.0),
    tags=None,
    nodata=None,
    crs=CRS,
    driver="GTiff",
):
    data = np.asarray(data)
    if data.ndim == 2:
        data = data[None]
    profile = {
        "driver": driver,
        "width": data.shape[2],
        "height": data.shape[1],
        "count": data.shape[0],
        "dtype": data.dtype.name,
        "crs": crs,
        "transform": from_origin(*origin, res, res),
    }
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        for index, name in enumerate(names or [], start=1):
            dst.set_band_description(index, name)
        if tags:
            dst.update_tags(**tags)
    return Path(path)


@pytest.fixture
def pixels():
    rng = np.random.default_rng(0)
    return rng.integers(1, 10000, size=(4, 32, 32), dtype=np.uint16)


# --- multi-band GeoTIFF ---------------------------------------------------------------------


def test_reads_bands_by_name_in_requested_order(tmp_path, pixels):
    path = write_raster(
        tmp_path / "s2.tif",
        pixels,
        ["B02", "B03", "B04", "B08"],
        tags={"datetime": "2021-06-15T10:30:00Z"},
    )
    sample = read_geotiff(path, ["nir", "B2"])
    validate_sample(dict(sample))
    assert sample["bands"] == ("B08", "B02")
    assert torch.equal(sample["image"][0, 0], torch.from_numpy(pixels[3].astype(np.float32)))
    assert torch.equal(sample["image"][0, 1], torch.from_numpy(pixels[0].astype(np.float32)))
    assert from_epoch_seconds(int(sample["times"][0])).isoformat() == "2021-06-15T10:30:00+00:00"
    assert sample["image"].dtype == torch.float32 and sample["valid"].all()


def test_reads_only_the_window(tmp_path, pixels):
    path = write_raster(tmp_path / "s2.tif", pixels, ["B02", "B03", "B04", "B08"])
    sample = read_geotiff(path, window=Window(4, 8, 16, 8))
    assert sample["image"].shape == (1, 4, 8, 16)
    assert torch.equal(
        sample["image"][0, 2], torch.from_numpy(pixels[2, 8:16, 4:20].astype(np.float32))
    )
    assert sample["bounds"] == (500040.0, 4000000.0 - 160, 500200.0, 4000000.0 - 80)
    assert "times" not in sample


def test_bounds_select_the_same_pixels_as_a_window(tmp_path, pixels):
    path = write_raster(tmp_path / "s2.tif", pixels, ["B02", "B03", "B04", "B08"])
    by_bounds = read_geotiff(path, bounds=(500040.0, 3999840.0, 500200.0, 3999920.0))
    assert torch.equal(by_bounds["image"], read_geotiff(path, window=Window(4, 8, 16, 8))["image"])


def test_window_past_the_edge_is_padded_and_invalid(tmp_path, pixels):
    path = write_raster(tmp_path / "s2.tif", pixels, ["B02", "B03", "B04", "B08"])
    sample = read_geotiff(path, window=Window(24, 0, 16, 4))
    assert sample["image"].shape == (1, 4, 4, 16)
    assert sample["valid"][0, :, :8].all() and not sample["valid"][0, :, 8:].any()


def test_declared_order_and_band_tags(tmp_path, pixels):
    bare = write_raster(tmp_path / "bare.tif", pixels)
    assert band_names(bare, ["B04", "B03", "B02", "B08"]) == ("B04", "B03", "B02", "B08")
    tagged = write_raster(tmp_path / "tagged.tif", pixels, tags={"band_names": "B2,B3,B4,B8A"})
    assert band_names(tagged) == ("B02", "B03", "B04", "B8A")


def test_band_order_is_never_guessed(tmp_path, pixels):
    path = write_raster(tmp_path / "bare.tif", pixels)
    with pytest.raises(
        ValueError, match=r"bare.tif: cannot tell which Sentinel-2 band.*band_order="
    ):
        read_geotiff(path)


def test_fewer_bands_than_declared(tmp_path, pixels):
    path = write_raster(tmp_path / "bare.tif", pixels)
    with pytest.raises(ValueError, match=r"bare.tif has 4 bands but band_order declares 13"):
        read_geotiff(path, band_order=L1C_BANDS)


def test_duplicate_band_names_in_file(tmp_path, pixels):
    path = write_raster(tmp_path / "dup.tif", pixels, ["B02", "B03", "B8A", "nir08"])
    with pytest.raises(ValueError, match=r"dup.tif: band B8A appears twice \(bands 3 and 4\)"):
        read_geotiff(path)


def test_declared_order_contradicting_descriptions(tmp_path, pixels):
    path = write_raster(tmp_path / "s2.tif", pixels, ["B02", "B03", "B04", "B08"])
    with pytest.raises(ValueError, match=r"names its bands .* but band_order declares"):
        read_geotiff(path, band_order=["B08", "B03", "B04", "B02"])


def test_missing_band_is_listed(tmp_path, pixels):
    path = write_raster(tmp_path / "s2.tif", pixels, ["B02", "B03", "B04", "B08"])
    with pytest.raises(ValueError, match=r"lacks bands \['B11', 'B12'\]; it has"):
        read_geotiff(path, ["B02", "B11", "B12"])


def test_corrupt_and_truncated_files(tmp_path, pixels):
    garbage = tmp_path / "garbage.tif"
    garbage.write_bytes(b"this is not a tiff")
    with pytest.raises(ValueError, match=r"cannot open .*garbage.tif as a raster.*corrupt"):
        read_geotiff(garbage, band_order=["B02"])
    full = write_raster(
        tmp_path / "full.tif", np.tile(pixels, (1, 8, 8)), ["B02", "B03", "B04", "B08"]
    )
    truncated = tmp_path / "truncated.tif"
    truncated.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"truncated.tif.*(truncated|corrupt)"):
        read_geotiff(truncated)
    with pytest.raises(FileNotFoundError, match=r"does not exist"):
        read_geotiff(tmp_path / "nope.tif")


def test_unparseable_date_tag(tmp_path, pixels):
    path = write_raster(
        tmp_path / "s2.tif", pixels, ["B02", "B03", "B04", "B08"], tags={"datetime": "last tuesday"}
    )
    with pytest.raises(ValueError, match=r"s2.tif: cannot parse the datetime tag 'last tuesday'"):
        read_geotiff(path)


def test_nodata_and_scl_make_the_valid_mask(tmp_path, pixels):
    data = np.concatenate([pixels[:2], np.full((1, 32, 32), 4, np.uint16)])
    data[:2, 0, :] = 0  # nodata row
    data[2, 1, :] = 9  # high-probability cloud row
    path = write_raster(tmp_path / "l2a.tif", data, ["B02", "B03", "SCL"])
    sample = read_geotiff(path)
    assert sample["bands"] == ("B02", "B03")
    assert not sample["valid"][0, 0].any() and not sample["valid"][0, 1].any()
    assert sample["valid"][0, 2:].all()


# --- per-band files -------------------------------------------------------------------------


def write_band_folder(
    folder,
    names=("B02", "B04", "B8A", "B11", "B09"),
    *,
    size=60,
    suffix=".tif",
    template="T31UDQ_20210615T103021_{band}",
):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    written = {}
    for name in names:
        res = {"B02": 10, "B03": 10, "B04": 10, "B08": 10, "B09": 60, "B01": 60}.get(name, 20)
        side = size * 10 // res
        data = rng.integers(100, 5000, size=(side, side), dtype=np.uint16)
        driver = "JP2OpenJPEG" if suffix == ".jp2" else "GTiff"
        written[name] = write_raster(
            folder / (template.format(band=name) + suffix), data, res=res, driver=driver
        )
    return written


def test_band_file_names():
    assert band_of_file("T31UDQ_20170829T105019_B8A.tif") == ("B8A", None)
    assert band_of_file("T31UDQ_20200101T105019_B02_10m.jp2") == ("B02", 10)
    assert band_of_file("T31UDQ_20200101T105019_SCL_20m.jp2") == ("SCL", 20)
    assert band_of_file("T31UDQ_20200101T105019_TCI_10m.jp2") is None


def test_per_band_folder_resampled_to_10m(tmp_path):
    files = write_band_folder(tmp_path / "scene")
    sample = read_band_files(tmp_path / "scene", ["B8A", "B02", "B09"])
    assert sample["image"].shape == (1, 3, 60, 60)
    assert sample["bands"] == ("B8A", "B02", "B09")
    with rasterio.open(files["B02"]) as src:
        assert np.array_equal(sample["image"][0, 1].numpy(), src.read(1).astype(np.float32))
    coarse = read_band_files(tmp_path / "scene", resolution=20)
    assert coarse["image"].shape == (1, 5, 30, 30)
    with rasterio.open(files["B8A"]) as src:  # a 20 m band on a 20 m grid is read as stored
        assert np.array_equal(coarse["image"][0, 2].numpy(), src.read(1).astype(np.float32))


def test_per_band_window_matches_full_read(tmp_path):
    write_band_folder(tmp_path / "scene")
    full = read_band_files(tmp_path / "scene")
    part = read_band_files(tmp_path / "scene", window=Window(10, 20, 24, 16))
    assert torch.allclose(part["image"], full["image"][:, :, 20:36, 10:34])


def test_safe_l2a_layout_with_jp2_and_scl(tmp_path):
    granule = tmp_path / "S2A_MSIL2A_20210615T103021_N0300_R108_T31UDQ_20210615T120000.SAFE"
    img = granule / "GRANULE" / "L2A_T31UDQ_A031234_20210615T103021" / "IMG_DATA"
    write_band_folder(
        img / "R10m", ("B02",), suffix=".jp2", template="T31UDQ_20210615T103021_{band}_10m"
    )
    write_band_folder(
        img / "R20m", ("B02", "B8A"), suffix=".jp2", template="T31UDQ_20210615T103021_{band}_20m"
    )
    scl = np.full((30, 30), 4, np.uint8)
    scl[:5] = 8
    write_raster(
        img / "R20m" / "T31UDQ_20210615T103021_SCL_20m.jp2", scl, res=20, driver="JP2OpenJPEG"
    )
    files = find_band_files(granule)
    assert files["B02"].parent.name == "R10m" and set(files) == {"B02", "B8A", "SCL"}
    sample = read_band_files(granule)
    assert sample["image"].shape == (1, 2, 60, 60)
    assert from_epoch_seconds(int(sample["times"][0])).isoformat() == "2021-06-15T10:30:21+00:00"
    assert not sample["valid"][0, :10].any() and sample["valid"][0, 10:].all()


def test_empty_band_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no Sentinel-2 band files in .*empty"):
        read_band_files(tmp_path / "empty")


def test_band_folder_missing_bands_and_duplicates(tmp_path):
    write_band_folder(tmp_path / "scene", ("B02", "B04"))
    with pytest.raises(ValueError, match=r"lacks bands \['B10'\]; it has \['B02', 'B04'\]"):
        read_band_files(tmp_path / "scene", ["B02", "B10"])
    write_raster(tmp_path / "scene" / "other_B02.tif", np.ones((60, 60), np.uint16))
    with pytest.raises(ValueError, match=r"band B02 has two files"):
        find_band_files(tmp_path / "scene")


def test_truncated_band_file(tmp_path):
    files = write_band_folder(tmp_path / "scene", ("B02", "B03"), size=256)
    data = files["B03"].read_bytes()
    files["B03"].write_bytes(data[: len(data) // 3])
    with pytest.raises(ValueError, match=r"B03.tif.*(truncated|corrupt)"):
        read_band_files(tmp_path / "scene")


# --- real data ------------------------------------------------------------------------------


@pytest.mark.real_data
def test_oscd_cities_read_as_13_band_10m_series(real_data):
    root = real_data / "oscd"
    cities = oscd_cities(root)
    assert {"bercy", "paris", "norcia"} <= set(cities)
    sample = read_oscd_city(root, "bercy")
    validate_sample(dict(sample))
    assert sample["image"].shape == (2, 13, 395, 360)
    assert sample["bands"] == L1C_BANDS
    dates = [from_epoch_seconds(int(t)).date().isoformat() for t in sample["times"]]
    assert dates == ["2016-11-30", "2017-08-29"]
    assert int(sample["mask"].sum()) == 1046  # change pixels, as in the data README
    folder = root / "Onera Satellite Change Detection dataset - Images" / "bercy"
    b02 = next((folder / "imgs_1").glob("*_B02.tif"))
    with rasterio.open(b02) as src:  # B02 pixels equal the source file exactly
        assert np.array_equal(sample["image"][0, 1].numpy(), src.read(1).astype(np.float32))
    b10 = next((folder / "imgs_2").glob("*_B10.tif"))
    with rasterio.open(b10) as src:  # 60 m cirrus resampled: same mean within 2 %
        assert float(sample["image"][1, 10].mean()) == pytest.approx(
            float(src.read(1).mean()), rel=0.02
        )


@pytest.mark.real_data
def test_oscd_window_and_band_subset(real_data):
    root = real_data / "oscd"
    full = read_oscd_city(root, "norcia", ["B04", "B03", "B02"])
    part = read_oscd_city(root, "norcia", ["B04", "B03", "B02"], window=Window(100, 50, 96, 96))
    assert "mask" not in full  # norcia is a test city without labels here
    assert torch.equal(part["image"], full["image"][:, :, 50:146, 100:196])


@pytest.mark.real_data
def test_bigearthnet_patches_with_labels(real_data):
    patches = bigearthnet_patches(real_data / "bigearthnet" / "BigEarthNet-S2-Example")
    assert len(patches) == 6
    sample = read_bigearthnet_patch(patches[0])
    validate_sample(dict(sample))
    assert sample["image"].shape == (1, 12, 120, 120) and sample["bands"] == L2A_BANDS
    assert sample["label_names"] == (
        "Non-irrigated arable land",
        "Land principally occupied by agriculture, with significant areas of natural vegetation",
    )
    assert sample["label"].shape == (43,) and int(sample["label"].sum()) == 2
    assert from_epoch_seconds(int(sample["times"][0])).isoformat() == "2017-06-13T10:10:31+00:00"
    with rasterio.open(patches[0] / f"{patches[0].name}_B02.tif") as src:
        assert np.array_equal(sample["image"][0, 1].numpy(), src.read(1).astype(np.float32))
        assert sample["crs"] == src.crs.to_wkt()


def test_oscd_unparseable_dates(tmp_path):
    (tmp_path / "dates.txt").write_text("date_1: 20161130\ndate_2: 2017-13-45\n")
    with pytest.raises(ValueError, match=r"dates.txt: cannot parse date_2 '2017-13-45'"):
        read_oscd_dates(tmp_path / "dates.txt")


def test_open_readers_match_one_shot_reads(tmp_path, pixels):
    from satmae.data.readers.band_files import BandFilesReader
    from satmae.data.readers.geotiff import GeoTiffReader

    path = write_raster(tmp_path / "s2.tif", pixels, ["B02", "B03", "B04", "B08"])
    with GeoTiffReader(path, ["B08", "B02"]) as reader:
        for window in (Window(0, 0, 8, 8), Window(20, 10, 16, 16)):
            assert torch.equal(
                reader.read(window)["image"],
                read_geotiff(path, ["B08", "B02"], window=window)["image"],
            )
    write_band_folder(tmp_path / "scene")
    with BandFilesReader(tmp_path / "scene") as reader:
        window = Window(50, 40, 20, 30)  # runs past the 60x60 grid: padded and invalid
        chip = reader.read(window)
        assert torch.allclose(
            chip["image"], read_band_files(tmp_path / "scene", window=window)["image"]
        )
        assert chip["valid"][0, :20, :10].all() and not chip["valid"][0, :, 10:].any()
