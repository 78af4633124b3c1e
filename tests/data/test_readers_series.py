"""Series from folders and index tables, xarray cubes and torchgeo samples."""

import numpy as np
import pandas as pd
import pytest
import rasterio
import torch
import xarray as xr
from rasterio.transform import from_origin
from rasterio.windows import Window

from satmae.data.readers.cube import read_cube, sample_to_dataarray
from satmae.data.readers.frames import Frame, date_from_name, read_index
from satmae.data.readers.series import SeriesReader, read_series
from satmae.data.readers.torchgeo_adapter import from_torchgeo
from satmae.data.sample import from_epoch_seconds, to_epoch_seconds, validate_sample

BANDS = ["B02", "B03", "B04", "B08"]


def write(path, data, names=BANDS, *, crs="EPSG:32631", origin=(500000.0, 4000000.0), res=10.0):
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=data.shape[2],
        height=data.shape[1],
        count=data.shape[0],
        dtype=data.dtype.name,
        crs=crs,
        transform=from_origin(*origin, res, res),
    ) as dst:
        dst.write(data)
        for index, name in enumerate(names or [], start=1):
            dst.set_band_description(index, name)
    return path


def frames(seed, count=3, size=32):
    rng = np.random.default_rng(seed)
    return [rng.integers(1, 10000, (4, size, size), dtype=np.uint16) for _ in range(count)]


def test_folder_of_dated_rasters_in_time_order(tmp_path):
    data = frames(0)
    for name, array in zip(
        ["S2_20210801.tif", "S2_2021-06-15.tif", "S2_20210701T103021.tif"], data, strict=True
    ):
        write(tmp_path / name, array)
    sample = read_series(tmp_path, ["B08", "B02"], window=Window(0, 0, 16, 16))
    validate_sample(dict(sample))
    assert sample["image"].shape == (3, 2, 16, 16)
    days = [from_epoch_seconds(int(t)).isoformat() for t in sample["times"]]
    assert days == [
        "2021-06-15T00:00:00+00:00",
        "2021-07-01T10:30:21+00:00",
        "2021-08-01T00:00:00+00:00",
    ]
    assert torch.equal(
        sample["image"][0, 0], torch.from_numpy(data[1][3, :16, :16].astype(np.float32))
    )


def test_index_csv_with_labels_and_locations(tmp_path):
    data = frames(1, 2)
    write(tmp_path / "a.tif", data[0])
    write(tmp_path / "b.tif", data[1])
    pd.DataFrame(
        {
            "path": ["b.tif", "a.tif"],
            "datetime": ["2020-02-01", "2020-01-01"],
            "location": ["x", "x"],
            "label": ["farm", "farm"],
        }
    ).to_csv(tmp_path / "i.csv", index=False)
    sample = read_series(tmp_path / "i.csv")
    assert sample["location"] == "x" and sample["label_names"] == ("farm",)
    assert torch.equal(sample["image"][0, 0], torch.from_numpy(data[0][0].astype(np.float32)))
    pd.DataFrame({"path": ["a.tif", "b.tif"], "datetime": ["2020-01-01", "2020-01-02"]}).to_parquet(
        tmp_path / "i.parquet"
    )
    assert read_series(tmp_path / "i.parquet")["image"].shape == (2, 4, 32, 32)


def test_index_with_two_locations_needs_a_choice(tmp_path):
    write(tmp_path / "a.tif", frames(2, 1)[0])
    pd.DataFrame(
        {
            "path": ["a.tif", "a.tif"],
            "datetime": ["2020-01-01", "2020-01-02"],
            "location": ["x", "y"],
        }
    ).to_csv(tmp_path / "i.csv", index=False)
    with pytest.raises(ValueError, match=r"holds 2 locations"):
        read_series(tmp_path / "i.csv")
    assert read_series(tmp_path / "i.csv", location="y")["image"].shape[0] == 1


def test_fmow_sentinel_csv_layout(tmp_path):
    from satmae.bands import DATASET_BAND_ORDERS

    folder = tmp_path / "train" / "airport" / "airport_7"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(3)
    write(
        folder / "airport_7_0.tif", rng.integers(1, 9000, (13, 16, 16), dtype=np.uint16), names=None
    )
    pd.DataFrame(
        {
            "category": ["airport"],
            "location_id": [7],
            "image_id": [0],
            "timestamp": ["2017-03-04T10:20:30Z"],
            "polygon": ["POLYGON ((0 0))"],
        }
    ).to_csv(tmp_path / "train.csv", index=False)
    (frame,) = read_index(tmp_path / "train.csv")
    assert (
        frame.path == folder / "airport_7_0.tif"
        and frame.band_order == DATASET_BAND_ORDERS["fmow_sentinel"]
    )
    sample = read_series([frame], ["B8A", "B02"])
    assert sample["bands"] == ("B8A", "B02") and sample["label_names"] == ("airport",)


def test_unparseable_dates(tmp_path):
    with pytest.raises(ValueError, match=r"cannot parse a date from 'scene_final.tif'"):
        date_from_name("scene_final.tif")
    write(tmp_path / "scene_final.tif", frames(4, 1)[0])
    with pytest.raises(ValueError, match=r"cannot parse a date from 'scene_final.tif'"):
        read_series(tmp_path)
    pd.DataFrame({"path": ["scene_final.tif"], "datetime": ["yesterday"]}).to_csv(
        tmp_path / "i.csv", index=False
    )
    with pytest.raises(
        ValueError, match=r"i.csv, line 2 \(.*scene_final.tif\): cannot parse datetime 'yesterday'"
    ):
        read_index(tmp_path / "i.csv")
    with pytest.raises(ValueError, match=r"cannot parse date 'June'"):
        to_epoch_seconds("June")


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"series folder .*empty is empty"):
        read_series(tmp_path / "empty")


def test_frames_in_another_crs_are_reprojected(tmp_path):
    data = frames(5, 1, size=64)[0]
    first = write(tmp_path / "utm31.tif", data)
    with rasterio.open(first) as src:
        from rasterio.warp import calculate_default_transform, reproject

        transform, width, height = calculate_default_transform(
            src.crs, "EPSG:32630", 64, 64, *src.bounds
        )
        out = np.zeros((4, height, width), np.uint16)
        reproject(
            data,
            out,
            src_transform=src.transform,
            src_crs=src.crs,
            dst_transform=transform,
            dst_crs="EPSG:32630",
        )
    with rasterio.open(
        tmp_path / "utm30.tif",
        "w",
        driver="GTiff",
        width=width,
        height=height,
        count=4,
        dtype="uint16",
        crs="EPSG:32630",
        transform=transform,
    ) as dst:
        dst.write(out)
        for i, name in enumerate(BANDS, start=1):
            dst.set_band_description(i, name)
    frames_ = [Frame(first, 0), Frame(tmp_path / "utm30.tif", 86400)]
    series = read_series(frames_, window=Window(16, 16, 32, 32))
    # kept open, the warp covers the whole grid; the window matches up to float rounding
    with SeriesReader(frames_) as reader:
        assert torch.allclose(
            reader.read(Window(16, 16, 32, 32))["image"], series["image"], atol=1.0
        )
    assert series["image"].shape == (2, 4, 32, 32)
    original, warped = series["image"][0], series["image"][1]
    assert (
        float((warped - original).abs().mean() / original.mean()) < 0.5
    )  # same place, resampled twice


def test_grids_that_cannot_be_aligned(tmp_path):
    data = frames(6, 2)
    write(tmp_path / "here.tif", data[0])
    write(tmp_path / "far.tif", data[1], origin=(900000.0, 1000000.0))
    with pytest.raises(ValueError, match=r"far.tif .* does not overlap the series grid"):
        read_series([Frame(tmp_path / "here.tif", 0), Frame(tmp_path / "far.tif", 1)])
    with rasterio.open(
        tmp_path / "nocrs.tif", "w", driver="GTiff", width=16, height=16, count=4, dtype="uint16"
    ) as dst:
        dst.write(data[1][:, :16, :16])
        for i, name in enumerate(BANDS, start=1):
            dst.set_band_description(i, name)
    with pytest.raises(ValueError, match=r"nocrs.tif cannot be aligned with the series grid"):
        read_series([Frame(tmp_path / "here.tif", 0), Frame(tmp_path / "nocrs.tif", 1)])


def make_cube():
    rng = np.random.default_rng(7)
    values = rng.integers(1, 9000, (2, 3, 20, 24)).astype(np.float32)
    cube = xr.DataArray(
        values,
        dims=("time", "band", "y", "x"),
        coords={
            "time": np.array(["2020-01-01", "2020-02-01"], dtype="datetime64[ns]"),
            "band": ["blue", "green", "B8a"],
            "y": 4000000.0 - 10 * (np.arange(20) + 0.5),
            "x": 500000.0 + 10 * (np.arange(24) + 0.5),
        },
    ).rio.write_crs("EPSG:32631")
    return cube, values


def test_cube_dataarray_zarr_and_netcdf(tmp_path):
    cube, values = make_cube()
    sample = read_cube(cube, ["B8A", "B02"], window=Window(4, 2, 8, 6))
    validate_sample(dict(sample))
    assert sample["bands"] == ("B8A", "B02") and sample["image"].shape == (2, 2, 6, 8)
    assert torch.equal(sample["image"][:, 0], torch.from_numpy(values[:, 2, 2:8, 4:12]))
    assert sample["times"].tolist() == [
        to_epoch_seconds("2020-01-01"),
        to_epoch_seconds("2020-02-01"),
    ]
    assert sample["transform"][2] == 500040.0
    cube.to_dataset(name="image").to_zarr(tmp_path / "c.zarr")
    assert torch.equal(read_cube(tmp_path / "c.zarr")["image"], torch.from_numpy(values))
    per_band = cube.to_dataset(dim="band")  # one variable per band
    per_band.to_zarr(tmp_path / "per_band.zarr")
    assert read_cube(tmp_path / "per_band.zarr", ["B03"])["image"].shape == (2, 1, 20, 24)
    back = sample_to_dataarray(read_cube(cube))
    assert list(back.band.values) == ["B02", "B03", "B8A"] and back.rio.crs.to_epsg() == 32631


def test_cube_netcdf(tmp_path):
    cube, values = make_cube()
    cube.to_dataset(name="image").to_netcdf(tmp_path / "c.nc", engine="h5netcdf")
    assert torch.equal(read_cube(tmp_path / "c.nc")["image"], torch.from_numpy(values))


def test_cube_without_band_names_needs_a_declared_order():
    cube, _ = make_cube()
    unnamed = cube.assign_coords(band=[1, 2, 3])
    with pytest.raises(ValueError, match=r"never guessed"):
        read_cube(unnamed)
    assert read_cube(unnamed, band_order=["B02", "B03", "B04"])["bands"] == ("B02", "B03", "B04")


def test_torchgeo_08_sample_with_slices():
    image = torch.arange(2 * 4 * 4, dtype=torch.float32).reshape(2, 4, 4) + 1
    query = (
        slice(500000.0, 500040.0),
        slice(3999960.0, 4000000.0),
        slice(pd.Timestamp("2021-06-15"), pd.Timestamp("2021-06-16")),
    )
    sample = from_torchgeo(
        {"image": image, "crs": rasterio.crs.CRS.from_epsg(32631), "bounds": query}, ["B04", "B8A"]
    )
    validate_sample(dict(sample))
    assert sample["image"].shape == (1, 2, 4, 4) and sample["bands"] == ("B04", "B8A")
    assert sample["transform"] == (10.0, 0.0, 500000.0, 0.0, -10.0, 4000000.0)
    assert int(sample["times"][0]) == to_epoch_seconds("2021-06-15")


def test_torchgeo_010_sample_and_ssl4eo_seasons():
    image = torch.ones(4 * 3, 8, 8)  # SSL4EOS12(seasons=4): seasons stacked on channels
    sample = from_torchgeo(
        {
            "image": image,
            "transform": torch.tensor([10.0, 0, 500000, 0, -10, 4000000]),
            "bounds": torch.tensor([500000.0, 500080, 3999920, 4000000]),
        },
        ["B02", "B03", "B04"],
        frames=4,
        crs="EPSG:32631",
        times=["2021-03-01", "2021-06-01", "2021-09-01", "2021-12-01"],
    )
    assert sample["image"].shape == (4, 3, 8, 8) and sample["times"].shape == (4,)
    assert sample["bounds"] == (500000.0, 3999920.0, 500080.0, 4000000.0)
    with pytest.raises(ValueError, match=r"has 12 channels but bands"):
        from_torchgeo({"image": image}, ["B02", "B03"])


def test_real_torchgeo_raster_dataset_sample(tmp_path):
    from torchgeo.datasets import RasterDataset
    from torchgeo.samplers import RandomGeoSampler

    data = frames(8, 1, size=64)[0][:3]
    write(tmp_path / "S2_20210615.tif", data, names=None)

    class Stack(RasterDataset):
        filename_glob = "S2_*.tif"
        filename_regex = r"^S2_(?P<date>\d{8})\.tif$"
        date_format = "%Y%m%d"
        all_bands = ("B02", "B03", "B04")

    dataset = Stack(str(tmp_path))
    query = next(iter(RandomGeoSampler(dataset, size=16, length=1)))
    sample = from_torchgeo(dataset[query], dataset.all_bands)
    col = round((sample["transform"][2] - 500000.0) / 10)
    row = round((4000000.0 - sample["transform"][5]) / 10)
    assert torch.equal(
        sample["image"][0],
        torch.from_numpy(data[:, row : row + 16, col : col + 16].astype(np.float32)),
    )
    assert int(sample["times"][0]) == to_epoch_seconds("2021-06-15")


def test_sources_tiles_and_center(tmp_path):
    from satmae.data.readers.sources import iter_tiles, list_sources, read_center

    data = frames(9, 1, size=40)[0]
    write(tmp_path / "S2_20210615.tif", data)
    (source,) = list_sources(tmp_path)
    tiles = list(iter_tiles(source, tile=16))
    assert [tuple(t["image"].shape[-2:]) for t in tiles[:3]] == [(16, 16), (16, 16), (16, 8)]
    assert sum(t["image"][0, 0].numel() for t in tiles) == 40 * 40
    center = read_center(source, 10)
    assert torch.equal(
        center["image"][0], torch.from_numpy(data[:, 15:25, 15:25].astype(np.float32))
    )
    with pytest.raises(ValueError, match=r"tile must be a positive"):
        next(iter_tiles(source, tile=0))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"nothing to read in"):
        list_sources(tmp_path / "empty")


def test_sample_contract_validation_and_collate():
    from satmae.data.sample import collate_samples

    good = {
        "image": torch.zeros(2, 3, 4, 4),
        "times": torch.tensor([0, 1]),
        "bands": ("B02", "B03", "B04"),
        "valid": torch.ones(2, 4, 4, dtype=torch.bool),
    }
    validate_sample(good)
    batch = collate_samples([good, good])
    assert batch["image"].shape == (2, 2, 3, 4, 4) and batch["bands"] == ("B02", "B03", "B04")
    with pytest.raises(
        ValueError, match=r"expected image of shape \(T, C, H, W\), got \(3, 4, 4\)"
    ):
        validate_sample(dict(good, image=torch.zeros(3, 4, 4)))
    with pytest.raises(ValueError, match=r"image has 3 channels but bands names 2"):
        validate_sample(dict(good, bands=("B02", "B03")))
    with pytest.raises(ValueError, match=r"no 'times' but the model needs"):
        validate_sample({k: v for k, v in good.items() if k != "times"})
    with pytest.raises(ValueError, match=r"sample 1 of the batch names bands \(.B04.*but sample 0"):
        collate_samples([good, dict(good, bands=("B04", "B03", "B02"))])
    assert to_epoch_seconds("20161130") == to_epoch_seconds("2016-11-30T00:00:00Z") == 1480464000


def test_cube_onto_a_grid(tmp_path):
    from affine import Affine

    from satmae.data import Grid

    cube, values = make_cube()
    own = read_cube(cube)
    full = Grid(cube.rio.crs, Affine(*own["transform"]), 24, 20)
    aligned = read_cube(cube, ["B02"], grid=full, window=Window(4, 2, 8, 6))
    assert torch.equal(aligned["image"][:, 0], torch.from_numpy(values[:, 0, 2:8, 4:12]))
    coarse = Grid(full.crs, full.transform * Affine.scale(2), 12, 10)
    warped = read_cube(cube, ["B02"], grid=coarse)
    assert warped["image"].shape == (2, 1, 10, 12)
    assert warped["transform"] == tuple(coarse.transform)[:6]
