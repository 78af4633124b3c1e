"""data_prep recipes: smoke tests on generated scenes and on the real OSCD samples."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine

from satmae.bands import L1C_BANDS, resolution
from satmae.cli import main
from satmae.data.parallel import run_tasks
from satmae.data.readers.frames import frames_from_folder
from satmae.data.readers.layouts import OSCD_IMAGES
from satmae.data.store.chipping import ChipPlan, LocationTask, chip_location, part_name
from satmae.data.store.chipstore import ChipStore
from satmae.prep.chips import cut_locations

RECIPES = Path(__file__).resolve().parents[1] / "data_prep"
BANDS = ("B02", "B03", "B04", "B05", "B08", "B11")


COMMANDS = {
    "s2_scenes_to_chips.py": "s2-scenes",
    "fmow_sentinel.py": "fmow-sentinel",
    "ssl4eo_s12.py": "ssl4eo-s12",
    "oscd_to_torchgeo.py": "oscd-torchgeo",
}


def run_recipe(name: str, *args: object) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(RECIPES / name), *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)


def run_command(name: str, *args: object) -> subprocess.CompletedProcess[str]:
    """The script's ``satmae prep`` command, run in this process."""
    argv = ["prep", COMMANDS[name], *map(str, args)]
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        status = main(argv)
    return subprocess.CompletedProcess(argv, status, out.getvalue(), err.getvalue())


@pytest.fixture(params=["script", "satmae prep"])
def run(request: pytest.FixtureRequest) -> Callable[..., subprocess.CompletedProcess[str]]:
    """A recipe as its ``data_prep/`` script or as ``satmae prep`` in this process."""
    return run_recipe if request.param == "script" else run_command


def write_product(folder: Path, seed: int, size: int, bands=BANDS, cloud: float = 0.0) -> None:
    """A per-band product folder: 10 m bands size x size, 20 m and 60 m bands coarser."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for band in bands:
        scale = resolution(band) // 10
        pixels = rng.integers(500, 5000, (size // scale, size // scale)).astype(np.uint16)
        if cloud:  # nodata (0) over the left part of the scene
            pixels[:, : int(pixels.shape[1] * cloud)] = 0
        transform = Affine(10 * scale, 0, 600_000, 0, -10 * scale, 5_000_000)
        with rasterio.open(
            folder / f"T31UDQ_{folder.name}_{band}.tif",
            "w",
            driver="GTiff",
            dtype="uint16",
            count=1,
            width=pixels.shape[1],
            height=pixels.shape[0],
            crs="EPSG:32631",
            transform=transform,
            nodata=0,
        ) as dst:
            dst.write(pixels, 1)


@pytest.fixture(scope="module")
def series_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One location, four dates across a year; the July date is half nodata."""
    root = tmp_path_factory.mktemp("scenes") / "T31UDQ"
    for seed, day in enumerate(("20210115", "20210415", "20210715", "20211015")):
        write_product(root / f"S2_{day}", seed, 48, cloud=0.5 if day == "20210715" else 0.0)
    return root


def test_scenes_to_chips_with_date_policy_and_resume(series_folder: Path, tmp_path: Path) -> None:
    store_root = tmp_path / "store"
    args = [
        "--out",
        store_root,
        "--bands",
        *BANDS,
        "--size",
        16,
        "--frames",
        3,
        "--dates",
        "clearest",
        "--min-valid",
        0.9,
    ]
    result = run_recipe("s2_scenes_to_chips.py", series_folder, *args)
    assert result.returncode == 0, result.stderr
    assert "chips written: 9" in result.stdout
    store = ChipStore(store_root)
    assert len(store) == 9 and store.bands == BANDS
    sample = store.read(0)
    assert sample["image"].shape == (3, len(BANDS), 16, 16)
    days = [datetime.fromtimestamp(int(t), UTC).strftime("%m%d") for t in sample["times"]]
    assert days == ["0115", "0415", "1015"]  # the half-nodata July date is never the clearest
    assert sample["valid"].all() and sample["crs"]
    with rasterio.open(next((series_folder / "S2_20210115").glob("*_B02.tif"))) as src:
        b02 = src.read(1, window=((0, 16), (0, 16)))
    assert np.array_equal(sample["image"][0, 0].numpy(), b02)  # 10 m pixels unchanged
    again = run_recipe("s2_scenes_to_chips.py", series_folder, *args)
    assert again.returncode == 0 and "(1 already written)" in again.stdout
    assert len(ChipStore(store_root)) == 9


@pytest.mark.parametrize(
    ("policy", "frames", "written", "skipped", "months"),
    [
        # July is nodata in the left two thirds of the scene: 6 of 9 windows lack a clear July
        ("all", 4, 3, 6, [1, 4, 7, 10]),
        ("season", 4, 3, 6, [1, 4, 7, 10]),
        ("season", 3, 3, 6, [4, 7, 10]),  # without July, no three consecutive seasons
        ("clearest", 2, 9, 0, [1, 4]),
    ],
)
def test_date_policies_count_what_they_skip(
    series_folder: Path, tmp_path: Path, policy, frames, written, skipped, months
) -> None:
    plan = ChipPlan(bands=BANDS, size=16, frames=frames, date_policy=policy, min_valid=0.9)
    task = LocationTask("T31UDQ", tuple(frames_from_folder(series_folder)), str(tmp_path), plan)
    report = chip_location(task)
    assert (report.written, report.skipped_dates, report.error) == (written, skipped, None)
    times = ChipStore(tmp_path).read(0)["times"].tolist()
    assert [datetime.fromtimestamp(t, UTC).month for t in times] == months


@pytest.mark.parametrize(
    ("policy", "frames", "asked", "has"),
    [
        ("all", 5, "5 frames", "4 dates (2021-01-15, 2021-04-15, 2021-07-15, 2021-10-15)"),
        ("clearest", 6, "6 frames", "4 dates"),
        ("season", 5, "5 consecutive seasons", "DJF 2021, MAM 2021, JJA 2021, SON 2021"),
    ],
)
def test_plans_the_dates_cannot_give_are_refused_before_writing(
    series_folder: Path, tmp_path: Path, policy: str, frames: int, asked: str, has: str
) -> None:
    plan = ChipPlan(bands=BANDS, size=16, frames=frames, date_policy=policy)  # type: ignore[arg-type]
    series = tuple(frames_from_folder(series_folder))
    report = chip_location(LocationTask("T31UDQ", series, str(tmp_path / "lib"), plan))
    assert report.error is not None and report.written == 0
    assert "'T31UDQ'" in report.error and asked in report.error and has in report.error
    assert not (tmp_path / "lib").exists()  # no empty part committed
    with pytest.raises(ValueError, match=f"cannot give {asked}"):
        cut_locations({"T31UDQ": series}, str(tmp_path / "cut"), plan)
    assert not (tmp_path / "cut").exists()
    result = run_recipe(
        "s2_scenes_to_chips.py", series_folder, "--out", tmp_path / "cli", "--bands", *BANDS,
        "--frames", frames, "--dates", policy,
    )  # fmt: skip
    assert result.returncode == 2
    assert f"location 'T31UDQ' cannot give {asked}" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "cli").exists()


def test_recipe_without_locations_is_refused(tmp_path: Path) -> None:
    plan = ChipPlan(bands=BANDS, size=16)
    with pytest.raises(ValueError, match="no locations"):
        cut_locations({}, str(tmp_path / "store"), plan)


def test_low_valid_chips_are_dropped_and_counted(series_folder: Path, tmp_path: Path) -> None:
    frames = tuple(f for f in frames_from_folder(series_folder) if "0715" in f.path.name)
    plan = ChipPlan(bands=BANDS, size=16, frames=1, min_valid=0.9)
    report = chip_location(LocationTask("july", frames, str(tmp_path), plan))
    # the left half is nodata: of 3 columns of windows, one is clear, one half and one empty
    assert (report.written, report.skipped_dates) == (3, 6)


def test_failed_location_is_reported_and_nothing_written(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_recipe("s2_scenes_to_chips.py", empty, "--out", tmp_path / "store")
    assert result.returncode != 0
    assert "empty" in result.stderr


def test_part_names_are_safe_and_distinct() -> None:
    assert part_name("T31UDQ") == "T31UDQ"
    assert part_name("a/b") != part_name("a_b") and "/" not in part_name("a/b")


@pytest.mark.slow
def test_dask_local_cluster(series_folder: Path, tmp_path: Path) -> None:
    second = tmp_path / "T32TPP"
    write_product(second / "S2_20210301", 7, 32)
    result = run_recipe(
        "s2_scenes_to_chips.py",
        series_folder,
        second,
        "--out",
        tmp_path / "s",
        "--bands",
        *BANDS,
        "--size",
        16,
        "--workers",
        2,
    )
    assert result.returncode == 0, result.stderr
    assert len(ChipStore(tmp_path / "s").parts) == 2


def test_ssl4eo_s12_seasons(tmp_path: Path, run) -> None:
    root = tmp_path / "ssl4eo"
    seasons = (
        "20200115T101021_20200115T101746_T32TQM",
        "20200415T101021_20200415T101746_T32TQM",
        "20200715T101021_20200715T101746_T32TQM",
        "20201015T101021_20201015T101746_T32TQM",
    )
    for location in ("0000000", "0000001"):
        for seed, season in enumerate(seasons):
            folder = root / "s2c" / location / season
            write_product(folder, seed, 24, bands=L1C_BANDS)
            for file in folder.iterdir():  # SSL4EO names bands B1.tif ... B8A.tif
                file.rename(folder / file.name.rsplit("_", 1)[1].replace("B0", "B"))
    result = run(
        "ssl4eo_s12.py", root, "--out", tmp_path / "store", "--size", 24, "--bands", *L1C_BANDS
    )
    assert result.returncode == 0, result.stderr
    store = ChipStore(tmp_path / "store")
    assert len(store) == 2 and store.read(1)["image"].shape == (4, 13, 24, 24)
    assert [p.name for p in store.parts] == ["0000000", "0000001"]


def test_fmow_sentinel_csv(tmp_path: Path, run) -> None:
    rows = []
    for location, category in ((0, "airport"), (0, "zoo"), (1, "zoo")):
        for image_id, day in enumerate(("2016-03-01", "2017-05-02")):
            stem = f"{category}_{location}"
            path = tmp_path / "train" / category / stem / f"{stem}_{image_id}.tif"
            path.parent.mkdir(parents=True, exist_ok=True)
            pixels = np.full((13, 20, 30), 1000 + image_id, np.uint16)
            with rasterio.open(
                path,
                "w",
                driver="GTiff",
                dtype="uint16",
                count=13,
                width=30,
                height=20,
                crs="EPSG:32631",
                transform=Affine(10, 0, 0, 0, -10, 0),
            ) as dst:
                dst.write(pixels)
            rows.append(
                {
                    "category": category,
                    "location_id": location,
                    "image_id": image_id,
                    "timestamp": f"{day}T10:00:00Z",
                    "polygon": "",
                }
            )
    with (tmp_path / "train.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    result = run(
        "fmow_sentinel.py",
        tmp_path / "train.csv",
        "--out",
        tmp_path / "store",
        "--size",
        24,
        "--bands",
        *L1C_BANDS,
        "--min-valid",
        0.5,
    )
    assert result.returncode == 0, result.stderr
    store = ChipStore(tmp_path / "store")
    assert [p.name for p in store.parts] == ["airport_0", "zoo_0", "zoo_1"]
    assert len(store) == 6  # every image its own chip
    chip = store.read(1)
    assert chip["image"].shape == (1, 13, 24, 24)
    # a 20 x 30 image centre-cropped to 24 columns and padded to 24 rows: padding is invalid
    assert (
        chip["valid"][0].sum() == 20 * 24 and chip["image"][0, 0][chip["valid"][0]].eq(1001).all()
    )


def test_oscd_to_torchgeo_on_generated_cities(tmp_path: Path, run) -> None:
    from satmae.prep.oscd_torchgeo import LABELS

    images = tmp_path / "oscd" / OSCD_IMAGES
    for seed, city in enumerate(("alpha", "beta")):
        for date in (1, 2):
            write_product(images / city / f"imgs_{date}", seed + date, 48, bands=L1C_BANDS)
        (images / city / "dates.txt").write_text("date_1: 20170101\ndate_2: 20170601\n")
        labels = tmp_path / "oscd" / LABELS[0] / city / "cm"
        labels.mkdir(parents=True)
        (labels / "cm.png").write_bytes(b"label")
    (images / "train.txt").write_text("alpha,beta")
    out = tmp_path / "torchgeo"
    result = run("oscd_to_torchgeo.py", tmp_path / "oscd", "--out", out, "--cities", "alpha")
    assert result.returncode == 0, result.stderr
    assert "cities: 1 (0 already written), failed: 0" in result.stdout
    rect = out / OSCD_IMAGES / "alpha" / "imgs_2_rect"
    assert sorted(p.stem for p in rect.glob("*.tif")) == sorted(L1C_BANDS)
    with rasterio.open(rect / "B01.tif") as src:  # 60 m resampled onto the 10 m grid
        assert (src.width, src.height, src.res) == (48, 48, (10.0, 10.0))
    with (
        rasterio.open(rect / "B02.tif") as dst,
        rasterio.open(next((images / "alpha" / "imgs_2").glob("*_B02.tif"))) as src,
    ):
        assert np.array_equal(dst.read(1), src.read(1))
    assert (out / OSCD_IMAGES / "alpha" / "dates.txt").exists()
    assert (out / OSCD_IMAGES / "train.txt").exists()
    assert (out / LABELS[0] / "alpha" / "cm" / "cm.png").exists()
    assert not (out / OSCD_IMAGES / "beta").exists()
    rerun = run("oscd_to_torchgeo.py", tmp_path / "oscd", "--out", out)
    assert rerun.returncode == 0 and "cities: 2 (1 already written), failed: 0" in rerun.stdout


@pytest.mark.real_data
def test_oscd_to_torchgeo_layout_loads_in_torchgeo(real_data: Path, tmp_path: Path) -> None:
    from torchgeo.datasets import OSCD

    source = real_data / "oscd"
    result = run_recipe("oscd_to_torchgeo.py", source, "--out", tmp_path, "--cities", "bercy")
    assert result.returncode == 0, result.stderr
    dataset = OSCD(str(tmp_path), split="train")
    sample = dataset[0]
    assert sample["image"].shape == (2, 13, 395, 360) and sample["mask"].shape == (1, 395, 360)
    b02 = next((source / OSCD_IMAGES / "bercy" / "imgs_1").glob("*_B02.tif"))
    with rasterio.open(b02) as src:
        assert np.array_equal(sample["image"][0, 1].numpy(), src.read(1).astype(np.float32))
    rerun = run_recipe("oscd_to_torchgeo.py", source, "--out", tmp_path, "--cities", "bercy")
    assert "1 already written" in rerun.stdout


@pytest.mark.real_data
def test_oscd_cities_to_chip_store(real_data: Path, tmp_path: Path) -> None:
    images = real_data / "oscd" / OSCD_IMAGES
    index = tmp_path / "index.csv"
    with index.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "datetime", "location"])
        for city in ("bercy", "norcia"):
            dates = (images / city / "dates.txt").read_text().split()
            writer.writerow([images / city / "imgs_1", dates[1], city])
            writer.writerow([images / city / "imgs_2", dates[3], city])
    result = run_recipe(
        "s2_scenes_to_chips.py",
        index,
        "--out",
        tmp_path / "store",
        "--size",
        96,
        "--frames",
        2,
        "--dates",
        "all",
        "--bands",
        *L1C_BANDS,
    )
    assert result.returncode == 0, result.stderr
    store = ChipStore(tmp_path / "store")
    assert [p.name for p in store.parts] == ["bercy", "norcia"]
    assert len(store) == 4 * 3 + 2 * 4  # 96 px grid over 360x395 (W x H) and 385x241
    sample = store.read(0)
    assert sample["bands"] == L1C_BANDS and sample["image"].shape == (2, 13, 96, 96)
    assert sample["times"].tolist() == [1480464000, 1503964800]  # 2016-11-30, 2017-08-29
    b02 = next((images / "bercy" / "imgs_1").glob("*_B02.tif"))
    with rasterio.open(b02) as src:
        expected = torch.from_numpy(src.read(1, window=((0, 96), (0, 96))).astype(np.float32))
    assert torch.equal(sample["image"][0, 1], expected)


def test_run_tasks_in_process_keeps_every_result() -> None:
    assert sorted(run_tasks(abs, [-3, 1, -2], progress=False)) == [1, 2, 3]
