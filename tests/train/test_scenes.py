"""SceneWindows: seeded windows of T dates read from scene folders, OSCD cities, index tables."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from affine import Affine
from rasterio.windows import Window
from torch.utils.data import DataLoader

from satmae.data.readers.layouts import read_bigearthnet_patch, read_oscd_city
from satmae.data.readers.series import read_series
from satmae.data.sample import collate_samples, to_epoch_seconds, validate_sample
from satmae.data.stats import StatsAccumulator
from satmae.data.synthetic import DemoConfig, write_demo_set
from satmae.train.scenes import SceneWindows, scene_stats

L2A_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
L1C_BANDS = (*L2A_BANDS[:10], "B10", *L2A_BANDS[10:])


@pytest.fixture(scope="module")
def tiles(tmp_path_factory) -> Path:
    """A folder of two series folders: tile_a (96 px, 6 dates) and tile_b (80 px, 3 dates)."""
    root = tmp_path_factory.mktemp("tiles")
    write_demo_set(root / "tile_a", DemoConfig(size=96))
    write_demo_set(root / "tile_b", DemoConfig(seed=1, size=80, num_dates=3))
    return root


def window_of(sample: dict, transform: tuple[float, ...]) -> Window:
    """The pixel window of ``sample`` in a grid with ``transform``."""
    col, row = ~Affine(*transform) * sample["transform"][2:6:3]
    height, width = sample["image"].shape[-2:]
    return Window(round(col), round(row), width, height)


def test_items_follow_the_contract_and_the_files(tiles: Path) -> None:
    windows = SceneWindows(tiles / "tile_a", size=32, frames=3, windows_per_scene=4)
    assert windows.locations == ["tile_a"] and len(windows) == 4
    assert windows.bands == L2A_BANDS
    series = read_series(tiles / "tile_a")  # the user's call: the whole series as read
    for index in range(len(windows)):
        sample = windows[index]
        validate_sample(sample)
        assert sample["image"].shape == (3, len(L2A_BANDS), 32, 32)
        assert sample["image"].dtype == torch.float32 and sample["valid"].dtype == torch.bool
        assert sample["bands"] == L2A_BANDS and sample["location"] == "tile_a"
        times = sample["times"].tolist()
        assert times == sorted(times) and set(times) <= set(series["times"].tolist())
        dates = [series["times"].tolist().index(time) for time in times]
        window = window_of(sample, series["transform"])
        rows = slice(window.row_off, window.row_off + 32)
        cols = slice(window.col_off, window.col_off + 32)
        assert torch.equal(sample["image"], series["image"][dates][:, :, rows, cols])
        assert torch.equal(sample["valid"], series["valid"][dates][:, rows, cols])


def test_bands_are_read_in_the_requested_order(tiles: Path) -> None:
    rgb = SceneWindows(
        tiles / "tile_a", size=16, frames=1, windows_per_scene=1, bands=["b4", "B3", "B02"]
    )
    full = SceneWindows(tiles / "tile_a", size=16, frames=1, windows_per_scene=1)
    assert rgb.bands == ("B04", "B03", "B02")
    assert torch.equal(rgb[0]["image"], full[0]["image"][:, [3, 2, 1]])


def test_items_are_a_function_of_seed_epoch_and_index(tiles: Path) -> None:
    first = SceneWindows(tiles, size=32, frames=2, windows_per_scene=6, seed=3, epoch=1)
    again = SceneWindows(tiles, size=32, frames=2, windows_per_scene=6, seed=3, epoch=1)
    for index in reversed(range(len(first))):  # another order, another process state
        a, b = first[index], again[index]
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["times"], b["times"])
        assert a["transform"] == b["transform"]
    restored = pickle.loads(pickle.dumps(first))
    assert torch.equal(restored[5]["image"], first[5]["image"])
    first.set_epoch(2)
    moved = [first[i]["transform"] != again[i]["transform"] for i in range(len(first))]
    assert sum(moved) >= len(first) - 2
    other_seed = SceneWindows(tiles, size=32, frames=2, windows_per_scene=6, seed=4, epoch=1)
    assert any(other_seed[i]["transform"] != again[i]["transform"] for i in range(len(again)))


def test_workers_read_what_the_main_process_reads(tiles: Path) -> None:
    windows = SceneWindows(tiles, size=32, frames=2, windows_per_scene=4)
    windows[0]  # files open in the parent must not leak into the forked workers
    loader = DataLoader(windows, batch_size=4, num_workers=2, collate_fn=collate_samples)
    batches = list(loader)
    expected = collate_samples([windows[i] for i in range(len(windows))])
    assert torch.equal(torch.cat([batch["image"] for batch in batches]), expected["image"])


def test_min_valid_is_respected(tiles: Path) -> None:
    strict = SceneWindows(tiles, size=48, frames=2, windows_per_scene=12, min_valid=0.95)
    loose = SceneWindows(tiles, size=48, frames=2, windows_per_scene=12, min_valid=0.0)
    strict_valid = [strict[i]["valid"].float().mean().item() for i in range(len(strict))]
    loose_valid = [loose[i]["valid"].float().mean().item() for i in range(len(loose))]
    assert min(strict_valid) >= 0.95
    assert min(loose_valid) < 0.95  # the demo's clouds and nodata wedge do reach some windows


def test_short_series_are_padded_by_collate(tiles: Path) -> None:
    windows = SceneWindows(tiles, size=32, frames=4, windows_per_scene=2)
    assert windows.locations == ["tile_a", "tile_b"]
    assert [windows[i]["image"].shape[0] for i in range(len(windows))] == [4, 4, 3, 3]
    batch = collate_samples([windows[i] for i in range(len(windows))])
    assert batch["image"].shape == (4, 4, len(L2A_BANDS), 32, 32)
    assert batch["frame_mask"].tolist() == [[True] * 4] * 2 + [[True] * 3 + [False]] * 2


def test_subset_holds_whole_locations(tiles: Path) -> None:
    windows = SceneWindows(tiles, size=32, frames=2, windows_per_scene=3)
    held_out = windows.subset(["tile_b"])
    assert held_out.locations == ["tile_b"] and len(held_out) == 3
    assert {held_out[i]["location"] for i in range(len(held_out))} == {"tile_b"}
    assert windows.locations == ["tile_a", "tile_b"] and len(windows) == 6
    assert len(windows.subset([])) == 0
    with pytest.raises(ValueError, match=r"locations \['nowhere'\] are not in"):
        windows.subset(["nowhere"])


def test_index_table_and_single_raster(tiles: Path, tmp_path: Path) -> None:
    rows = ["path,datetime,location"]
    for tile in ("tile_a", "tile_b"):
        for image in sorted((tiles / tile).glob("S2_L2A_????????.tif")):
            date = image.stem.rsplit("_", 1)[1]
            rows.append(f"{image},{date[:4]}-{date[4:6]}-{date[6:]},{tile}")
    index = tmp_path / "index.csv"
    index.write_text("\n".join(rows) + "\n")
    from_index = SceneWindows(index, size=32, frames=3, windows_per_scene=1)
    from_folders = SceneWindows(tiles, size=32, frames=3, windows_per_scene=1)
    assert from_index.locations == ["tile_a", "tile_b"]
    assert torch.equal(from_index[1]["image"], from_folders[1]["image"])
    image = sorted((tiles / "tile_a").glob("S2_L2A_????????.tif"))[0]
    single = SceneWindows(image, size=32, frames=1, windows_per_scene=2)
    assert single.locations == [image.name] and single[1]["image"].shape[0] == 1


def test_errors_name_what_to_change(tiles: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        SceneWindows(tmp_path / "missing", size=32, frames=1)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no readable scenes"):
        SceneWindows(tmp_path / "empty", size=32, frames=1)
    with pytest.raises(ValueError, match=r"88x88 window is larger than the scenes tile_b \(80x80"):
        SceneWindows(tiles, size=88, frames=1)
    with pytest.raises(ValueError, match=r"lacks bands \['B10'\]"):
        SceneWindows(tiles, size=32, frames=1, bands=["B04", "B10"])
    with pytest.raises(ValueError, match=r"tile_b \(3\).*pass pad=True"):
        SceneWindows(tiles, size=32, frames=4, pad=False)
    with pytest.raises(ValueError, match=r"frames=7 .*tile_a \(6\), tile_b \(3\); lower frames$"):
        SceneWindows(tiles, size=32, frames=7)
    with pytest.raises(ValueError, match="min_valid must lie in"):
        SceneWindows(tiles, size=32, frames=1, min_valid=1.5)
    with pytest.raises(ValueError, match="size must be at least 1"):
        SceneWindows(tiles, size=0, frames=1)
    with pytest.raises(IndexError, match="out of range"):
        SceneWindows(tiles, size=32, frames=1, windows_per_scene=1)[2]


def test_scene_stats_match_the_whole_scenes(tiles: Path) -> None:
    # windows as large as the scene are whole frames: a sample of the dates, not of the pixels
    stats = scene_stats(tiles / "tile_a", ["B04", "B08"], max_samples=60, size=96)
    whole = StatsAccumulator(["B04", "B08"])
    whole.update(read_series(tiles / "tile_a", ["B04", "B08"]))
    reference = whole.result()
    assert stats.bands == ("B04", "B08") and "60 windows of 96 px" in stats.provenance
    for band in stats.bands:
        assert stats.mean[band] == pytest.approx(reference.mean[band], rel=0.05)
        assert stats.std[band] == pytest.approx(reference.std[band], rel=0.05)
    assert scene_stats(tiles, max_samples=2, size=500).bands == L2A_BANDS  # clamped to 80 px


def test_oscd_city_folders_give_dated_13_band_pairs(real_data: Path) -> None:
    oscd = real_data / "oscd"
    windows = SceneWindows(oscd, size=64, frames=2, windows_per_scene=2)
    assert len(windows.locations) == 11 and "bercy" in windows.locations
    assert windows.bands == L1C_BANDS
    samples = [windows[i] for i in (0, 3, 6, 9)]
    for sample in samples:
        assert sample["image"].shape == (2, 13, 64, 64)
        assert sample["image"].std() > 0
        assert sample["times"][0] < sample["times"][1]
    batch = collate_samples(samples)
    assert batch["image"].shape == (4, 2, 13, 64, 64) and batch["times"].shape == (4, 2)
    assert "frame_mask" not in batch
    # the same pixels as the OSCD reader gives for that window of the city
    sample = windows[2]
    city = read_oscd_city(oscd, sample["location"])
    assert sample["times"].tolist() == city["times"].tolist()
    window = window_of(sample, city["transform"])
    expected = read_oscd_city(oscd, sample["location"], window=window)
    assert torch.equal(sample["image"], expected["image"])
    bercy = SceneWindows(
        oscd / "Onera Satellite Change Detection dataset - Images" / "bercy", 64, 2
    )
    assert bercy.locations == ["bercy"] and bercy[0]["times"][0] == to_epoch_seconds("2016-11-30")


def test_bigearthnet_patches_are_read_whole_and_cropped(real_data: Path) -> None:
    root = real_data / "bigearthnet"  # holds BigEarthNet-S2-Example/<patch>/
    windows = SceneWindows(root, size=48, frames=1, windows_per_scene=1)
    assert len(windows.locations) == 6 and windows.bands == L2A_BANDS
    sample = windows[0]
    patch = read_bigearthnet_patch(root / "BigEarthNet-S2-Example" / windows.locations[0])
    window = window_of(sample, patch["transform"])
    rows = slice(window.row_off, window.row_off + 48)
    cols = slice(window.col_off, window.col_off + 48)
    assert torch.equal(sample["image"], patch["image"][:, :, rows, cols])
    assert sample["image"].shape == (1, 12, 48, 48) and np.isclose(sample["transform"][0], 10)
