"""OSCD cities: both on-disk layouts, splits, skipped cities, fallback split, windows."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from satmae.data.readers.layouts import OSCD_IMAGES
from satmae.data.sample import collate_samples
from satmae.eval.change import data as change_data
from satmae.eval.change.data import (
    HELD_OUT_CITIES,
    OSCD_BANDS,
    iter_windows,
    open_oscd,
    oscd_checksum,
    read_change_mask,
)
from tests.eval.fake_oscd import planted_box, write_fake_oscd

TEN_METRE = [OSCD_BANDS.index(band) for band in ("B02", "B03", "B04", "B08")]


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("oscd")
    return {
        layout: write_fake_oscd(
            base / layout, layout=layout, test_cities=("paris",), test_labels=True
        )
        for layout in ("rect", "native")
    }


def test_torchgeo_reads_the_rect_fake(roots: dict[str, Path]) -> None:
    from torchgeo.datasets import OSCD

    dataset = OSCD(str(roots["rect"]), split="train")
    assert len(dataset) == 3
    item = dataset[0]
    assert item["image"].shape == (2, 13, 64, 64)
    assert set(torch.unique(item["mask"]).tolist()) == {0, 1}


def test_both_layouts_read_to_the_same_bands_by_name(
    roots: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    native = open_oscd(roots["native"], progress=False)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the rect layout must be read through torchgeo's OSCD")

    monkeypatch.setattr(change_data, "read_oscd_city", refuse)
    rect = open_oscd(roots["rect"], progress=False)
    assert rect.train_cities == native.train_cities == ["aguas", "bercy", "nantes"]
    assert rect.test_cities == native.test_cities == ["paris"]
    for a, b in zip(rect.train + rect.test, native.train + native.test, strict=True):
        assert a["bands"] == b["bands"] == OSCD_BANDS
        assert a["image"].shape == b["image"].shape == (2, 13, 64, 64)
        assert a["image"].dtype == torch.float32
        # 10 m bands are not resampled: identical in both layouts
        assert torch.equal(a["image"][:, TEN_METRE], b["image"][:, TEN_METRE])
        assert torch.equal(a["mask"], b["mask"])
        assert a["mask"].dtype == torch.int64
        assert torch.equal(a["times"], b["times"])
        assert a["transform"] == b["transform"]
    collate_samples(rect.train)  # the contract holds
    index = ["aguas", "bercy", "nantes", "paris"].index("bercy")
    row, col, height, width = planted_box(index, 64)
    assert int(rect.train[1]["mask"].sum()) == height * width
    assert rect.train[1]["mask"][0, row, col] == 1


def test_listed_cities_that_are_absent_or_unlabelled_are_skipped(
    tmp_path: Path,
) -> None:
    root = write_fake_oscd(tmp_path, size=32, test_cities=("paris",), test_labels=True)
    images = root / OSCD_IMAGES
    (images / "train.txt").write_text("aguas,bercy,nantes,ghost", encoding="utf-8")
    (images / "test.txt").write_text("paris,lost", encoding="utf-8")
    with pytest.warns(UserWarning, match="2 listed cities skipped"):
        split = open_oscd(root, progress=False)
    assert split.train_cities == ["aguas", "bercy", "nantes"]
    assert split.test_cities == ["paris"]
    assert len(split.skipped) == 2
    assert any("ghost" in line and "absent" in line for line in split.skipped)
    assert split.note == ""


def test_explicit_cities_override_the_lists(tmp_path: Path) -> None:
    root = write_fake_oscd(tmp_path, size=32)
    split = open_oscd(root, train_cities=["aguas"], test_cities=["paris"], progress=False)
    assert (split.train_cities, split.test_cities) == (["aguas"], ["paris"])
    with pytest.raises(ValueError, match="both the training and the test"):
        open_oscd(root, train_cities=["aguas"], test_cities=["aguas"], progress=False)


def test_unlabelled_test_cities_fall_back_to_held_out_cities(tmp_path: Path) -> None:
    cities = ("bercy", *HELD_OUT_CITIES, "norcia")
    root = write_fake_oscd(tmp_path, cities=cities, size=32, test_cities=("norcia",))
    with pytest.warns(UserWarning, match="norcia"):
        split = open_oscd(root, progress=False)
    assert split.test_cities == list(HELD_OUT_CITIES)
    assert split.train_cities == ["bercy"]
    assert "HELD_OUT_CITIES" in split.note
    assert any("norcia" in line and "no change mask" in line for line in split.skipped)


def test_missing_root_names_the_expected_layout(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="imgs_1") as error:
        open_oscd(tmp_path / "nowhere", progress=False)
    assert "cm.png" in str(error.value) and "download" in str(error.value)


def test_tif_change_mask_uses_the_1_2_coding(tmp_path: Path) -> None:
    root = write_fake_oscd(tmp_path, size=32)
    folder = root / "Onera Satellite Change Detection dataset - Train Labels" / "aguas" / "cm"
    from_tif = read_change_mask(folder / "aguas-cm.tif")
    assert torch.equal(from_tif, read_change_mask(folder / "cm.png"))
    assert 0 < int(from_tif.sum()) < from_tif.numel()


def test_checksum_depends_on_masks_not_order(roots: dict[str, Path]) -> None:
    split = open_oscd(roots["native"], progress=False)
    first = oscd_checksum(split.train)
    assert len(first) == 16
    assert oscd_checksum(list(reversed(split.train))) == first
    flipped = dict(split.train[0])
    flipped["mask"] = 1 - split.train[0]["mask"]
    assert oscd_checksum([flipped, *split.train[1:]]) != first  # type: ignore[list-item]


def test_windows_cover_the_scene_and_crop_the_mask(roots: dict[str, Path]) -> None:
    scene = open_oscd(roots["native"], progress=False).train[0]
    windows = list(iter_windows(scene, 24, 20))
    assert len(windows) == 9  # starts 0, 20, 40 on both axes (the last one at the edge)
    assert all(
        w["image"].shape == (2, 13, 24, 24) and w["mask"].shape == (1, 24, 24) for w in windows
    )
    assert torch.equal(windows[-1]["mask"], scene["mask"][..., 40:, 40:])
    assert windows[1]["transform"][2] == scene["transform"][2] + 20 * 10.0
    scene["valid"][:, :24, :24] = False  # a window without valid pixels is left out
    assert len(list(iter_windows(scene, 24, 24))) == 8
    collate_samples(windows)
