"""Bad inputs the readers must refuse clearly or read correctly: nothing silently wrong."""

import argparse
import os
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.enums import ColorInterp
from rasterio.windows import Window

from satmae.cli import main
from satmae.cli.arguments import non_negative_int, positive_int
from satmae.data.checks import check_content, check_resolution
from satmae.data.grid import MAX_WINDOW_PIXELS
from satmae.data.readers.band_files import read_band_files
from satmae.data.readers.cube import read_cube
from satmae.data.readers.geotiff import read_geotiff
from satmae.data.readers.sources import iter_tiles, list_sources
from satmae.data.readers.torchgeo_adapter import from_torchgeo
from satmae.data.stats import StatsAccumulator
from satmae.data.validity import PLAUSIBLE_RANGE, apply_validity, implausible_values
from tests.data.test_readers import write_raster

BANDS4 = ["B02", "B03", "B04", "B08"]


def reflectance(shape=(4, 16, 16), seed=0):
    return np.random.default_rng(seed).integers(200, 3000, size=shape).astype(np.float32)


# 1. one validity rule -------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_pixels_are_invalid_and_zero_in_every_reader(tmp_path, bad):
    data = reflectance()
    data[1, 2, 3] = bad  # one band of one pixel
    data[:, 5, 5] = bad  # every band
    path = write_raster(tmp_path / "s2.tif", data, BANDS4)
    sample = read_geotiff(path)
    cube = read_cube(_cube(data))
    adapted = from_torchgeo({"image": torch.from_numpy(data.copy())}, BANDS4)
    for name, result in (("geotiff", sample), ("cube", cube), ("torchgeo", adapted)):
        assert torch.isfinite(result["image"]).all(), name
        assert not result["valid"][0, 2, 3] and not result["valid"][0, 5, 5], name
        assert int(result["valid"].sum()) == 16 * 16 - 2, name
        assert (result["image"][0, :, 2, 3] == 0).all(), name


def _cube(data):
    import xarray as xr

    return xr.DataArray(data[None], dims=("time", "band", "y", "x"), coords={"band": BANDS4})


def test_all_nan_file_has_no_valid_pixel_and_check_fails(tmp_path, capsys):
    path = write_raster(tmp_path / "nan.tif", np.full((4, 16, 16), np.nan, np.float32), BANDS4)
    sample = read_geotiff(path)
    assert not sample["valid"].any() and (sample["image"] == 0).all()
    assert main(["check", str(path), "--json"]) == 1
    assert "no valid pixel" in capsys.readouterr().out


def test_declared_nodata_pixels_are_zero_filled(tmp_path):
    data = reflectance()
    data[:, 0, :] = -9999
    sample = read_geotiff(write_raster(tmp_path / "nd.tif", data, BANDS4, nodata=-9999))
    assert not sample["valid"][0, 0].any() and (sample["image"][0, :, 0] == 0).all()
    assert sample["valid"][0, 1:].all()


def test_stats_never_see_nonfinite_values():
    image = torch.full((1, 2, 4, 4), 100.0)
    image[0, 0, 0, 0] = torch.inf
    accumulator = StatsAccumulator()
    accumulator.update({"image": image, "bands": ("B02", "B03")})
    stats = accumulator.result()
    assert stats.mean["B02"] == 100 and stats.count["B02"] == 15


def test_apply_validity_zero_fills_unmeasured_pixels_and_keeps_clouds():
    image = torch.full((1, 2, 2, 2), 7.0)
    image[0, 0, 0, 0] = float("nan")  # one band not finite: the whole pixel is unmeasured
    scl = np.array([[[4, 9], [1, 4]]])  # clear, cloud, defective, clear
    valid = apply_validity(image, nodata=0, scl=scl)
    assert valid.tolist() == [[[False, False], [False, True]]]
    assert image[0, :, 0, 0].eq(0).all() and image[0, :, 1, 0].eq(0).all()
    assert image[0, :, 0, 1].eq(7).all() and image[0, :, 1, 1].eq(7).all()  # cloud kept


# 2. band files that do not fit ----------------------------------------------------------------


def product(folder, shifts=None, counts=None, crs="EPSG:32631"):
    folder.mkdir(exist_ok=True)
    for index, band in enumerate(BANDS4):
        origin = (500000.0 + (shifts or {}).get(band, 0.0), 4000000.0)
        count = (counts or {}).get(band, 1)
        write_raster(
            folder / f"T31_{band}.tif", reflectance((count, 16, 16), index), origin=origin, crs=crs
        )
    return folder


def test_band_file_with_several_bands_is_refused(tmp_path):
    folder = product(tmp_path / "p", counts={"B03": 3})
    with pytest.raises(ValueError, match=r"T31_B03.tif should hold band B03 alone but has 3"):
        read_band_files(folder)


def test_band_file_with_several_bands_is_read_by_its_description(tmp_path):
    folder = product(tmp_path / "p")
    data = reflectance((3, 16, 16), 9)
    write_raster(folder / "T31_B03.tif", data, ["B02", "B03", "B04"])
    sample = read_band_files(folder)
    assert torch.equal(sample["image"][0, 1], torch.from_numpy(data[1]))


def test_band_file_off_the_others_is_refused(tmp_path):
    folder = product(tmp_path / "p", shifts={"B04": 50_000.0})
    with pytest.raises(ValueError, match=r"T31_B04.tif \(bounds .*does not overlap the grid of"):
        read_band_files(folder)


@pytest.mark.parametrize("band", ["B02", "B08"])  # the first file, or another one
def test_band_file_covering_part_of_the_others_is_refused(tmp_path, band):
    folder = product(tmp_path / "p", shifts={band: 80.0})
    with pytest.raises(ValueError, match=r"band file .*T31_B0[38].tif covers bounds"):
        read_band_files(folder)


def test_band_files_of_one_tile_at_other_resolutions_are_accepted(tmp_path):
    folder = product(tmp_path / "p")
    coarse = reflectance((1, 3, 3))  # 60 m: 180 m, the 160 m extent rounded up to whole pixels
    write_raster(folder / "T31_B01.tif", coarse, res=60.0)
    assert read_band_files(folder)["image"].shape == (1, 5, 16, 16)


def test_band_file_without_georeferencing_is_refused(tmp_path):
    folder = product(tmp_path / "p")
    with rasterio.open(
        folder / "T31_B03.tif", "w", driver="GTiff", width=16, height=16, count=1, dtype="uint16"
    ) as dst:
        dst.write(np.ones((1, 16, 16), np.uint16))
    with pytest.raises(ValueError, match=r"T31_B03.tif has no CRS and no geotransform"):
        read_band_files(folder)


# 3. content check -----------------------------------------------------------------------------


def corrupt(tmp_path):
    data = reflectance().astype(np.uint16)
    data[2, 4:8, 4:8] = 61234  # bytes overwritten inside a tile: decodes without an error
    return write_raster(tmp_path / "corrupt.tif", data, BANDS4)


def test_content_check_names_file_band_window_and_count(tmp_path, capsys):
    path = corrupt(tmp_path)
    (found,) = implausible_values(read_geotiff(path)["image"], BANDS4)
    assert (found.band, found.count, found.maximum) == ("B04", 16, 61234)
    (result,) = check_content(dict(read_geotiff(path)), "corrupt.tif", Window(0, 0, 16, 16))
    assert result.status == "error" and "B04: 16 value(s) outside [-1000, 32767]" in result.detail
    assert "window col 0, row 0, 16x16" in result.detail
    assert main(["check", str(path), "--json"]) == 1
    out = capsys.readouterr().out
    assert "plausible values" in out and "band means" not in out
    (source,) = list_sources(path)
    with pytest.raises(ValueError, match=r"corrupt.tif \(window col 0, row 0, 16x16\): B04: 16"):
        list(iter_tiles(source))
    out_file = tmp_path / "stats.json"
    assert main(["stats", str(path), "--out", str(out_file), "--quiet"]) != 0
    assert "B04: 16 value(s) outside" in capsys.readouterr().err
    assert not out_file.exists()


def test_plausible_data_passes_the_content_check():
    image = torch.tensor([[[[PLAUSIBLE_RANGE[0]]], [[PLAUSIBLE_RANGE[1]]]]])
    assert implausible_values(image, ("B02", "B03")) == []


# 4. the demo passes its own check -------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_demo_at_minimum_size_passes_check(tmp_path, seed):
    out = tmp_path / "demo"
    assert main(["demo-data", "--out", str(out), "--seed", str(seed), "--size", "64"]) == 0
    assert main(["check", str(out), "--json"]) == 0


def test_resolution_check_only_warns_on_small_samples():
    rng = np.random.default_rng(0)

    def texture(block, side=64):
        return np.kron(rng.normal(size=(side // block, side // block)), np.ones((block, block)))

    bands = ("B02", "B03", "B04", "B08", "B05", "B06", "B11", "B12")
    # B08 (10 m) as smooth as a coarse band: flagged, but 64x64 is too small to be sure
    image = np.stack([texture(1), texture(1), texture(1), texture(4)] + [texture(2)] * 4)
    sample = {"image": torch.from_numpy(image[None]).float(), "bands": bands}
    (result,) = check_resolution(sample)
    assert result.status == "warn" and "below 128x128" in result.detail
    assert "B08 (a 10 m band) looks like a 20 m band" in result.detail


# 5. units -------------------------------------------------------------------------------------


def test_resolution_in_a_geographic_crs_is_refused(tmp_path):
    folder = tmp_path / "geo"
    folder.mkdir()
    for band in BANDS4:
        write_raster(
            folder / f"T_{band}.tif",
            reflectance((1, 16, 16)),
            res=0.0001,
            origin=(5.0, 45.0),
            crs="EPSG:4326",
        )
    assert read_band_files(folder)["image"].shape == (1, 4, 16, 16)
    with pytest.raises(ValueError, match=r"resolution=20 is in CRS units.*EPSG:4326.*geographic"):
        read_band_files(folder, resolution=20)


# 6. windows, files that are not files, CLI numbers --------------------------------------------


def test_huge_window_is_refused_before_allocating(tmp_path):
    path = write_raster(tmp_path / "s2.tif", reflectance(), BANDS4)
    side = 200_000
    assert side * side > MAX_WINDOW_PIXELS
    with pytest.raises(ValueError, match=r"window of 200000x200000 pixels \(149 GiB per band"):
        read_geotiff(path, window=Window(0, 0, side, side))


@pytest.mark.parametrize("kind", ["folder", "fifo", "device"])
def test_paths_that_are_not_regular_files_are_refused(tmp_path, kind):
    if kind == "folder":
        path = tmp_path / "dir.tif"
        path.mkdir()
        expected = "a folder"
    elif kind == "fifo":
        path = tmp_path / "pipe.tif"
        os.mkfifo(path)
        expected = "a FIFO"
    else:
        path, expected = Path("/dev/zero"), "a character device"
    with pytest.raises(ValueError, match=rf"{path} is not a regular file but {expected}"):
        read_geotiff(path)
    if kind != "folder":  # a folder is a valid input to the commands (a folder of rasters)
        with pytest.raises(ValueError, match=rf"{path} is not a regular file but {expected}"):
            list_sources(path)


def test_argparse_types_refuse_bad_numbers():
    assert positive_int("3") == 3 and non_negative_int("0") == 0
    for parse, text in ((positive_int, "0"), (non_negative_int, "-1"), (positive_int, "x")):
        with pytest.raises(argparse.ArgumentTypeError):
            parse(text)
    for command in (
        ["check", "anything", "--max-samples", "-1"],
        ["check", "anything", "--size", "0"],
        ["stats", "anything", "--out", "x.json", "--tile", "0"],
    ):
        with pytest.raises(SystemExit):
            main(command)


def test_max_samples_zero_checks_every_sample(tmp_path, capsys):
    for index in range(3):
        write_raster(tmp_path / f"s{index}.tif", reflectance(seed=index), BANDS4)
    main(["check", str(tmp_path), "--max-samples", "0", "--width", "200"])
    assert "in 3 sample(s)" in capsys.readouterr().out
    main(["check", str(tmp_path), "--max-samples", "1", "--width", "200"])
    assert "2 more samples not checked" in capsys.readouterr().out


# 7. alpha and odd bands -----------------------------------------------------------------------


def test_alpha_band_is_never_a_spectral_band(tmp_path):
    path = tmp_path / "rgba.tif"
    data = np.random.default_rng(0).integers(0, 255, size=(4, 16, 16)).astype(np.uint8)
    write_raster(path, data)
    with rasterio.open(path, "r+") as dst:
        dst.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha]
    with pytest.raises(ValueError, match=r"rgba.tif: band 4 is an alpha"):
        read_geotiff(path, band_order=["B04", "B03", "B02", "B08"])
    write_raster(path, data, ["B04", "B03", "B02"])  # rasterio's default: band 4 is alpha
    with pytest.raises(
        ValueError, match=r"band\(s\) \[4\] are alpha .*gdal_edit.py -colorinterp_4"
    ):
        read_geotiff(path)
    assert read_geotiff(path, ["B04", "B03", "B02"], band_order=["B04", "B03", "B02", "B08"])[
        "image"
    ].shape == (1, 3, 16, 16)


def test_complex_bands_are_refused(tmp_path):
    path = write_raster(tmp_path / "c.tif", np.ones((4, 8, 8), np.complex64), BANDS4)
    with pytest.raises(ValueError, match=r"c.tif: band 1 holds complex values"):
        read_geotiff(path)
