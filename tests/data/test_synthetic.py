"""The synthetic demo set: real files with the grid, bands, dates and spectra it promises."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS

from satmae.bands import L2A_BANDS
from satmae.data.synthetic import (
    LAND_COVER_CLASSES,
    NODATA,
    DemoConfig,
    DemoSet,
    generate_demo_arrays,
    write_demo_set,
)

WATER = 1
CLOUD_CODES = (8, 9, 10)
CLEAR_CODES = (4, 5, 6)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoSet:
    return write_demo_set(tmp_path_factory.mktemp("demo") / "set", DemoConfig(seed=3, size=128))


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def test_files_are_georeferenced_cogs_with_named_bands(demo: DemoSet) -> None:
    assert len(demo.images) == len(demo.scl) == 6
    for image, date in zip(demo.images, demo.dates, strict=True):
        assert date.strftime("%Y%m%d") in image.name
        with rasterio.open(image) as src:
            assert src.crs == CRS.from_epsg(32633)
            assert src.transform.a == 10.0 and src.transform.e == -10.0
            assert (src.transform.c, src.transform.f) == (500_000.0, 5_800_000.0)
            assert src.dtypes == ("uint16",) * 12
            assert src.descriptions == L2A_BANDS
            assert src.nodata == NODATA
            assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
            assert src.tags()["ACQUISITION_DATETIME"] == date.strftime("%Y-%m-%dT%H:%M:%SZ")
            assert src.tags(1)["BAND_NAME"] == "B01"


def test_dates_span_a_growing_season_in_order(demo: DemoSet) -> None:
    assert len(demo.dates) >= 4
    assert demo.dates == sorted(demo.dates)
    assert all(d.tzinfo == UTC for d in demo.dates)
    assert demo.dates[0].month <= 4 and demo.dates[-1].month >= 9
    meta = json.loads(demo.metadata.read_text())
    assert meta["dates"] == [d.strftime("%Y-%m-%dT%H:%M:%SZ") for d in demo.dates]
    assert meta["bands"] == list(L2A_BANDS)


def test_nodata_margin_is_zero_in_every_band_and_flagged_in_scl(demo: DemoSet) -> None:
    image = _read(demo.images[0])
    scl = _read(demo.scl[0])[0]
    nodata = (image == NODATA).all(axis=0)
    assert 0.01 < nodata.mean() < 0.2
    assert (scl[nodata] == 0).all()
    assert (image[:, ~nodata] > 0).all()
    assert nodata[:, 0].all()  # the wedge touches the left edge


def _reflectance(path: Path) -> np.ndarray:
    return _read(path).astype(np.float64) / 10_000


def _ndvi(image: np.ndarray) -> np.ndarray:
    red, nir = image[L2A_BANDS.index("B04")], image[L2A_BANDS.index("B08")]
    return (nir - red) / (nir + red + 1e-9)


def _summer_index(demo: DemoSet) -> int:
    return min(range(len(demo.dates)), key=lambda t: abs(demo.dates[t].month - 7))


def test_summer_vegetation_is_green_and_water_is_dark_in_nir(demo: DemoSet) -> None:
    t = _summer_index(demo)
    cover = _read(demo.land_cover[0 if t < len(demo.dates) // 2 else 1])[0]
    image, scl = _reflectance(demo.images[t]), _read(demo.scl[t])[0]
    clear = np.isin(scl, CLEAR_CODES)
    ndvi = _ndvi(image)
    for name in ("forest", "grassland"):
        class_id = next(k for k, v in LAND_COVER_CLASSES.items() if v == name)
        assert np.median(ndvi[(cover == class_id) & clear]) > 0.5, name
    water = (cover == WATER) & clear
    assert water.sum() > 50
    assert image[L2A_BANDS.index("B08")][water].mean() < 0.05
    for band in ("B11", "B12"):
        assert image[L2A_BANDS.index(band)][water].mean() < 0.05


def test_vegetation_has_red_edge_rise_and_urban_is_flat(demo: DemoSet) -> None:
    t = _summer_index(demo)
    cover = _read(demo.land_cover[0])[0]
    image, scl = _reflectance(demo.images[t]), _read(demo.scl[t])[0]
    clear = np.isin(scl, CLEAR_CODES)
    forest = (cover == 2) & clear & (_read(demo.land_cover[1])[0] == 2)
    spectrum = image[:, forest].mean(axis=1)
    b = L2A_BANDS.index
    assert spectrum[b("B04")] < spectrum[b("B05")] < spectrum[b("B06")] < spectrum[b("B07")]
    assert spectrum[b("B08")] > 4 * spectrum[b("B04")]
    urban = (cover == 5) & clear & (_read(demo.land_cover[1])[0] == 5)
    urban_spectrum = image[:, urban].mean(axis=1)
    assert urban_spectrum[b("B02")] > 0.07
    assert urban_spectrum.max() / urban_spectrum.min() < 2.5


def test_cropland_follows_phenology() -> None:
    arrays = generate_demo_arrays(DemoConfig(seed=1, size=96, num_dates=8, max_cloud_fraction=0))
    cover = arrays.land_cover[0]
    crop = (cover == 3) & (arrays.land_cover[1] == 3) & (arrays.scl[0] != 0)
    image = arrays.reflectance.astype(np.float64) / 10_000
    ndvi = np.array([np.median(_ndvi(frame)[crop]) for frame in image])
    assert ndvi.max() > 0.5  # green peak in summer
    assert ndvi[0] < ndvi.max() - 0.2 and ndvi[-1] < ndvi.max() - 0.2  # bare before and after


def test_clouds_are_flagged_and_brighter_in_visible_bands(demo: DemoSet) -> None:
    found = 0
    for image_path, scl_path in zip(demo.images[1:], demo.scl[1:], strict=True):
        scl = _read(scl_path)[0]
        thick = scl == 9
        if thick.sum() < 20:
            continue
        found += 1
        image = _reflectance(image_path)
        clear = np.isin(scl, CLEAR_CODES)
        for band in ("B02", "B03", "B04"):
            channel = image[L2A_BANDS.index(band)]
            assert channel[thick].mean() > 0.3 > 2 * channel[clear].mean()
        assert (scl == 3).sum() > 0  # shadows come with clouds
    assert found >= 1
    assert not np.isin(_read(demo.scl[0])[0], CLOUD_CODES).any()  # the first date is clear


def test_change_mask_marks_exactly_the_class_changes(demo: DemoSet) -> None:
    before, after = _read(demo.land_cover[0])[0], _read(demo.land_cover[1])[0]
    change = _read(demo.change)[0]
    assert set(np.unique(change)) == {0, 1}
    np.testing.assert_array_equal(change, (before != after).astype(np.uint8))
    assert 0.005 < change.mean() < 0.3
    assert set(np.unique(before)) <= set(LAND_COVER_CLASSES)


def test_coarse_bands_are_smoother_than_10m_bands() -> None:
    arrays = generate_demo_arrays(DemoConfig(seed=2, size=128, max_cloud_fraction=0))
    image = arrays.reflectance[0, :, :, 40:].astype(np.float64)

    def roughness(band: str) -> float:
        channel = image[L2A_BANDS.index(band)]
        return float(np.abs(np.diff(channel, axis=1)).mean() / channel.mean())

    assert roughness("B8A") < roughness("B08")
    assert roughness("B09") < roughness("B8A")


def test_same_seed_same_pixels_other_seed_other_pixels() -> None:
    config = DemoConfig(seed=5, size=64, num_dates=4)
    first, second = generate_demo_arrays(config), generate_demo_arrays(config)
    np.testing.assert_array_equal(first.reflectance, second.reflectance)
    np.testing.assert_array_equal(first.scl, second.scl)
    other = generate_demo_arrays(DemoConfig(seed=6, size=64, num_dates=4))
    assert not np.array_equal(first.reflectance, other.reflectance)


def test_default_set_is_a_few_megabytes(tmp_path: Path) -> None:
    demo = write_demo_set(tmp_path / "d")
    total = sum(p.stat().st_size for p in demo.root.iterdir())
    assert 1e6 < total < 10e6
    assert not [p for p in demo.root.iterdir() if p.name.startswith(".demo-")]


def test_refuses_non_empty_folder_without_overwrite(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="--overwrite"):
        write_demo_set(tmp_path, DemoConfig(size=64, num_dates=2))
    # Not a demo set: refused even with --overwrite, and nothing is touched.
    with pytest.raises(FileExistsError, match=r"notes\.txt.*not an output satmae wrote"):
        write_demo_set(tmp_path, DemoConfig(size=64, num_dates=2), overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_refuses_a_file_as_output(tmp_path: Path) -> None:
    target = tmp_path / "file.tif"
    target.write_bytes(b"x")
    with pytest.raises(NotADirectoryError, match="not a folder"):
        write_demo_set(target)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"size": 10}, "--size"),
        ({"num_dates": 1}, "--dates"),
        ({"seed": -1}, "--seed"),
        ({"season": (200, 100)}, "season"),
        ({"max_cloud_fraction": 2.0}, "max_cloud_fraction"),
    ],
)
def test_invalid_config_is_rejected(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DemoConfig(**kwargs)  # type: ignore[arg-type]


def test_dates_are_at_sentinel2_overpass_time() -> None:
    dates = DemoConfig(num_dates=4, year=2021).dates()
    assert dates[0] == datetime(2021, 4, 1, 10, 30, tzinfo=UTC)
    assert len(set(dates)) == 4
