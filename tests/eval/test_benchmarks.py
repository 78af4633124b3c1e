from pathlib import Path

import pytest
import rasterio
import torch

from satmae.bands import DATASET_BAND_ORDERS, L1C_BANDS
from satmae.data import collate_samples
from satmae.eval.benchmarks import benchmark_info, benchmark_names, open_split, split_checksum
from satmae.models import create_model
from tests.eval.fakes import (
    EUROSAT_FILE_BANDS,
    EUROSAT_IMAGES,
    write_fake_bigearthnet_v1,
    write_fake_eurosat_spatial,
)

CLASSES = ("Forest", "River", "SeaLake")


@pytest.fixture(scope="module")
def eurosat_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("eurosat")
    write_fake_eurosat_spatial(root, per_class=1, classes=CLASSES)
    return root


@pytest.fixture(scope="module")
def bigearthnet_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bigearthnet")
    write_fake_bigearthnet_v1(root, n=2)
    return root


@pytest.mark.parametrize("name", ["eurosat", "eurosat-spatial"])
def test_eurosat_items_follow_the_contract(eurosat_root: Path, name: str) -> None:
    split = open_split(name, eurosat_root, "val")
    assert len(split) == len(CLASSES)
    assert split.classes == CLASSES
    assert not split.multilabel
    assert split.bands == DATASET_BAND_ORDERS["eurosat"]
    assert split.bands[-1] == "B8A"
    sample = split[0]
    assert sample["image"].shape == (1, 13, 64, 64)
    assert sample["image"].dtype == torch.float32
    assert sample["valid"].shape == (1, 64, 64)
    assert sample["valid"].all()
    assert sample["label"].shape == ()
    assert sample["label"].dtype == torch.long
    assert "times" not in sample
    batch = collate_samples([split[0], split[1]])
    assert batch["image"].shape == (2, 1, 13, 64, 64)


def test_eurosat_channel_order_is_the_files_order(eurosat_root: Path) -> None:
    split = open_split("eurosat", eurosat_root, "train")
    sample = split[0]
    path = eurosat_root / EUROSAT_IMAGES / "Forest" / f"{sample['location']}.tif"
    with rasterio.open(path) as src:
        stored = torch.from_numpy(src.read().astype("float32"))
    b8a = sample["bands"].index("B8A")
    assert b8a == EUROSAT_FILE_BANDS.index("B8A") == 12
    torch.testing.assert_close(sample["image"][0, b8a], stored[12])


def test_spatial_split_differs_from_the_random_split(eurosat_root: Path) -> None:
    random = open_split("eurosat", eurosat_root, "train")
    spatial = open_split("eurosat-spatial", eurosat_root, "train")
    assert set(random.ids) != set(spatial.ids)
    assert split_checksum(random) != split_checksum(spatial)


def test_bigearthnet_items_are_multilabel(bigearthnet_root: Path) -> None:
    split = open_split("bigearthnet", bigearthnet_root, "test")
    assert len(split) == 2
    assert split.multilabel
    assert len(split.classes) == 19
    assert split.bands == (
        "B01",
        "B02",
        "B03",
        "B04",
        "B05",
        "B06",
        "B07",
        "B08",
        "B8A",
        "B09",
        "B11",
        "B12",
    )
    sample = split[1]
    assert sample["image"].shape == (1, 12, 120, 120)
    assert sample["label"].dtype == torch.float32
    assert sample["label"].shape == (19,)
    # Patch 1: "Non-irrigated arable land" -> Arable land (2), "Water bodies" -> Inland waters (17).
    assert sample["label"].nonzero().flatten().tolist() == [2, 17]
    assert sample["location"] == split.ids[1]


def test_date_gives_every_item_a_time(eurosat_root: Path) -> None:
    split = open_split("eurosat", eurosat_root, "test", date="2018-06-15")
    assert split[0]["times"].tolist() == [1529020800]
    assert split_checksum(split) != split_checksum(open_split("eurosat", eurosat_root, "test"))


def test_checksum_depends_on_ids_and_labels_only(eurosat_root: Path, tmp_path: Path) -> None:
    first = open_split("eurosat", eurosat_root, "train")
    again = open_split("eurosat", eurosat_root, "train")
    assert split_checksum(first) == split_checksum(again)
    assert len(split_checksum(first)) == 16
    assert split_checksum(first) != split_checksum(open_split("eurosat", eurosat_root, "test"))


def test_missing_root_lists_the_expected_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"eurosat-train\.txt.*sentinel_2/tif/<Class>"):
        open_split("eurosat", tmp_path / "absent", "train")


def test_missing_files_are_named(tmp_path: Path) -> None:
    write_fake_bigearthnet_v1(tmp_path, n=1)
    (tmp_path / "bigearthnet-val.csv").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing .*bigearthnet-val\.csv.*--download"):
        open_split("bigearthnet", tmp_path, "train")


def test_unknown_benchmark_lists_the_known_ones() -> None:
    known = ", ".join(benchmark_names())
    assert {"eurosat", "eurosat-spatial", "bigearthnet", "oscd"} <= set(benchmark_names())
    with pytest.raises(ValueError, match=f"unknown benchmark 'x'; known: {known}"):
        benchmark_info("x")
    assert benchmark_info("oscd").task == "change"


def test_bad_split_and_change_benchmark_are_rejected(eurosat_root: Path) -> None:
    with pytest.raises(ValueError, match="unknown split 'validation'"):
        open_split("eurosat", eurosat_root, "validation")
    with pytest.raises(ValueError, match=r"satmae\.eval\.change"):
        open_split("oscd", eurosat_root, "train")
    with pytest.raises(ValueError, match="cannot parse date"):
        open_split("eurosat", eurosat_root, "train", date="June")


def test_bands_are_mapped_by_name_not_position(eurosat_root: Path) -> None:
    """EuroSAT's B8A-last order gives the features of the same data in L1C order."""
    encoder = create_model("satmae_tiny").encoder.eval()
    split = open_split("eurosat", eurosat_root, "test", date="2018-06-15")
    batch = collate_samples([split[i] for i in range(len(split))])
    order = [split.bands.index(band) for band in L1C_BANDS]  # B8A after B08
    reordered = {**batch, "image": batch["image"][:, :, order], "bands": L1C_BANDS}
    assert reordered["bands"][8] == "B8A"
    as_stored = encoder.embed(batch)
    as_l1c = encoder.embed(reordered)
    by_position = encoder.embed({**batch, "bands": L1C_BANDS})
    assert isinstance(as_stored, torch.Tensor) and isinstance(by_position, torch.Tensor)
    torch.testing.assert_close(as_stored, as_l1c)
    # Reading the stored channels by position would give other features.
    assert not torch.allclose(as_stored, by_position)


def test_real_bigearthnet_patches_load(real_data: Path, tmp_path: Path) -> None:
    """The real BigEarthNet v1 sample patches, in torchgeo's layout, read through our wrapper."""
    patches = sorted((real_data / "bigearthnet" / "BigEarthNet-S2-Example").iterdir())
    (tmp_path / "BigEarthNet-v1.0").mkdir()
    for patch in patches:
        (tmp_path / "BigEarthNet-v1.0" / patch.name).symlink_to(patch, target_is_directory=True)
    rows = "\n".join(f"{patch.name},unused" for patch in patches)
    for name in ("train", "val", "test"):
        (tmp_path / f"bigearthnet-{name}.csv").write_text(rows + "\n")
    sample = open_split("bigearthnet", tmp_path, "train")[0]
    assert sample["image"].shape == (1, 12, 120, 120)
    with rasterio.open(patches[0] / f"{patches[0].name}_B8A.tif") as src:
        b8a_mean = float(src.read(1).mean())
    band = sample["bands"].index("B8A")
    # Bilinear resampling from 60x60 keeps the mean within a few percent.
    assert float(sample["image"][0, band].mean()) == pytest.approx(b8a_mean, rel=0.05)
    assert sample["label"].sum() >= 1
