"""The Sentinel-2 processing-baseline offset: found in metadata, tags and names, then removed."""

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin

from satmae.bands import SENTINEL2_BANDS
from satmae.data import (
    GeoTiffReader,
    check_offset,
    list_sources,
    read_band_files,
    read_geotiff,
    read_series,
)
from satmae.data.readers.offset import baseline_from_name, metadata_offset

BANDS = ("B02", "B03", "B04", "B08", "B8A")
SIZE = 16


@pytest.fixture
def reflectance():
    """Reflectance x 10000 of a scene with dark water, a nodata corner and one dark outlier."""
    generator = np.random.default_rng(0)
    values = generator.integers(50, 4000, size=(len(BANDS), SIZE, SIZE)).astype(np.uint16)
    values[:, :4, :4] = 0  # nodata
    return values


def write_tif(path, data, *, tags=None, band_tags=None, scales=None, offsets=None, names=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {
        "driver": "GTiff",
        "width": data.shape[2],
        "height": data.shape[1],
        "count": data.shape[0],
        "dtype": "uint16",
        "crs": "EPSG:32633",
        "transform": from_origin(300000.0, 5000000.0, 10.0, 10.0),
        "nodata": 0,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        for index, name in enumerate(names or [], start=1):
            dst.set_band_description(index, name)
        if tags:
            dst.update_tags(**tags)
        for index, extra in (band_tags or {}).items():
            dst.update_tags(index, **extra)
        if scales:
            dst.scales, dst.offsets = scales, offsets
    return path


def metadata_xml(level, offset):
    """A minimal MTD_MSIL2A.xml / MTD_MSIL1C.xml, band ids mapped by the spectral list."""
    kind = "BOA" if level == "L2A" else "RADIO"
    spectral = "".join(
        f'<Spectral_Information bandId="{i}" physicalBand="{name.replace("B0", "B")}"/>'
        for i, name in enumerate(SENTINEL2_BANDS)
    )
    offsets = "".join(
        f'<{kind}_ADD_OFFSET band_id="{i}">{offset}</{kind}_ADD_OFFSET>'
        for i in range(len(SENTINEL2_BANDS))
    )
    wrapper = "BOA_ADD_OFFSET_VALUES_LIST" if kind == "BOA" else "Radiometric_Offset_List"
    offset_list = f"<{wrapper}>{offsets}</{wrapper}>" if offset else ""
    return (
        f'<?xml version="1.0"?><n1:Level-{level[1:]}_User_Product xmlns:n1="https://psd-14">'
        "<n1:General_Info><Product_Image_Characteristics>"
        f"<Spectral_Information_List>{spectral}</Spectral_Information_List>{offset_list}"
        f"</Product_Image_Characteristics></n1:General_Info></n1:Level-{level[1:]}_User_Product>"
    )


def write_safe(root, name, data, *, level="L2A", offset=0, metadata=True):
    """A fake .SAFE product with per-band GeoTIFFs in GRANULE/*/IMG_DATA."""
    safe = root / name
    img = safe / "GRANULE" / "L2A_T33UUP_A000001_20230105T101000" / "IMG_DATA"
    for channel, band in enumerate(BANDS):
        stored = data[channel].astype(np.int32)
        stored[stored > 0] += offset  # the product's DN: reflectance x 10000 + 1000
        write_tif(img / f"T33UUP_20230105T101329_{band}.tif", stored[None].astype(np.uint16))
    if metadata:
        (safe / f"MTD_MSI{level}.xml").write_text(metadata_xml(level, -offset))
    return safe


def shifted(data, offset=1000):
    stored = data.astype(np.int32)
    stored[stored > 0] += offset
    return stored.astype(np.uint16)


@pytest.mark.parametrize("level", ["L2A", "L1C"])
def test_both_baselines_read_to_the_same_reflectance(tmp_path, reflectance, level):
    old = write_safe(
        tmp_path, f"S2B_MSI{level}_20211205T101329_N0301_R022_T33UUP.SAFE", reflectance, level=level
    )
    new = write_safe(
        tmp_path,
        f"S2B_MSI{level}_20230105T101329_N0509_R022_T33UUP.SAFE",
        reflectance,
        level=level,
        offset=1000,
    )
    before, after = read_band_files(old, BANDS), read_band_files(new, BANDS)
    assert torch.equal(before["image"], after["image"])
    assert torch.equal(before["image"][0], torch.from_numpy(reflectance.astype(np.float32)))
    assert before["harmonized"] == ({},)
    record = after["harmonized"][0]
    assert record["offset"] == dict.fromkeys(BANDS, -1000.0)
    assert record["source"].endswith(f"MTD_MSI{level}.xml")
    assert not after["valid"][0, :4, :4].any() and after["image"][0, :, :4, :4].eq(0).all()


def test_metadata_maps_band_ids_through_the_spectral_list(tmp_path):
    path = tmp_path / "MTD_MSIL2A.xml"
    path.write_text(metadata_xml("L2A", -1000))
    offset = metadata_offset(path)
    assert offset.bands["B8A"] == -1000.0 and list(offset.bands)[8] == "B8A"
    assert set(offset.bands) == set(SENTINEL2_BANDS)


def test_pixels_darker_than_the_offset_stay_valid_and_positive(tmp_path, reflectance):
    data = shifted(reflectance)
    data[:, 8, 8] = 990  # DN below the offset: noise around zero reflectance
    path = write_tif(tmp_path / "S2B_MSIL2A_20230105_N0509_scene.tif", data, names=list(BANDS))
    sample = read_geotiff(path)
    assert sample["image"][0, :, 8, 8].eq(1).all() and sample["valid"][0, 8, 8]
    assert sample["image"][0, :, 0, 0].eq(0).all() and not sample["valid"][0, 0, 0]


@pytest.mark.parametrize(
    ("name", "write_options"),
    [
        ("scene.tif", {"tags": {"BOA_ADD_OFFSET": "-1000"}}),
        ("scene.tif", {"tags": {"RADIO_ADD_OFFSET": ",".join(["-1000"] * len(BANDS))}}),
        ("scene.tif", {"tags": {"PROCESSING_BASELINE": "05.09"}}),
        ("scene.tif", {"band_tags": {i: {"BOA_ADD_OFFSET": "-1000"} for i in range(1, 6)}}),
        ("scene.tif", {"scales": [0.0001] * len(BANDS), "offsets": [-0.1] * len(BANDS)}),
        ("S2A_MSIL2A_20230105T101329_N0400_T33UUP.tif", {}),
    ],
    ids=["boa-tag", "radio-tag-per-band", "baseline-tag", "band-tags", "scale-offset", "name"],
)
def test_offset_from_tags_and_names(tmp_path, reflectance, name, write_options):
    path = write_tif(tmp_path / name, shifted(reflectance), names=list(BANDS), **write_options)
    with GeoTiffReader(path) as reader:
        sample = reader.read()
    assert torch.equal(sample["image"][0], torch.from_numpy(reflectance.astype(np.float32)))
    assert sample["harmonized"][0]["offset"]["B02"] == pytest.approx(-1000.0)


@pytest.mark.parametrize(
    ("name", "tags"),
    [
        ("scene.tif", None),
        ("S2A_MSIL2A_20210105T101329_N0300_T33UUP.tif", None),
        ("scene.tif", {"PROCESSING_BASELINE": "03.01"}),
    ],
)
def test_no_offset_before_baseline_04(tmp_path, reflectance, name, tags):
    path = write_tif(tmp_path / name, reflectance, names=list(BANDS), tags=tags)
    sample = read_geotiff(path)
    assert torch.equal(sample["image"][0], torch.from_numpy(reflectance.astype(np.float32)))
    assert sample["harmonized"] == ({},)


def test_baseline_from_names():
    assert baseline_from_name("S2B_MSIL2A_20230105T101329_N0509_R022_T33UUP_2023.SAFE") == 5.09
    assert baseline_from_name("S2A_OPER_MSI_L1C_TL_SGS__20160929T154211_A006640_T32TPP_N02.04")
    assert baseline_from_name("S2A_MSIL2A_20170613T101031_87_48") is None


def test_series_across_the_baseline_change_records_each_frame(tmp_path, reflectance):
    folder = tmp_path / "series"
    write_tif(folder / "S2_20211201_N0301.tif", reflectance, names=list(BANDS))
    write_tif(folder / "S2_20220601_N0400.tif", shifted(reflectance), names=list(BANDS))
    sample = read_series(folder)
    assert torch.equal(sample["image"][0], sample["image"][1])
    assert sample["harmonized"][0] == {} and sample["harmonized"][1]["offset"]["B08"] == -1000


def test_check_warns_about_an_unapplied_offset(tmp_path, reflectance):
    stripped = write_tif(tmp_path / "exported.tif", shifted(reflectance), names=list(BANDS))
    [result] = check_offset(read_geotiff(stripped), "exported.tif")
    assert result.status == "warn" and "subtract 1000" in result.detail
    tagged = write_tif(
        tmp_path / "tagged.tif",
        shifted(reflectance),
        names=list(BANDS),
        tags={"BOA_ADD_OFFSET": "-1000"},
    )
    [result] = check_offset(read_geotiff(tagged))
    assert result.status == "ok" and "tagged.tif" in result.detail
    plain = write_tif(tmp_path / "plain.tif", reflectance, names=list(BANDS))
    assert check_offset(read_geotiff(plain))[0].status == "ok"


def test_satmae_check_reports_the_offset(tmp_path, reflectance):
    from satmae.data import check_sample

    path = write_tif(tmp_path / "exported.tif", shifted(reflectance), names=list(BANDS))
    [source] = list_sources(path)
    results = check_sample(dict(source.read()), source=source.name)
    assert [r.status for r in results if r.check == "S2 offset"] == ["warn"]


def test_real_products_show_no_offset(real_data: Path):
    for source in list_sources(real_data / "bigearthnet" / "BigEarthNet-S2-Example")[:2]:
        assert check_offset(source.read())[0].status == "ok"
