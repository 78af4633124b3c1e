"""Chip store checks: the index, the strict spec, the codec allow-list, blob sizes, checksums."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numcodecs
import numpy as np
import pyarrow as pa
import pytest
import torch
from torch.utils.data import DataLoader, Subset

from satmae.data.sample import collate_samples
from satmae.data.store.chipspec import (
    CODECS,
    ChipSpec,
    chip_checksum,
    codec_from_config,
    row_metadata,
)
from satmae.data.store.chipstore import ChipStore, chip_schema, part_exists
from satmae.data.store.chipwriter import ChipStoreWriter
from satmae.data.store.datasets import ChipDataset
from satmae.train.data import PretrainData
from tests.data.test_chipstore import BANDS, SHAPE, make_chip, write_part


@pytest.fixture
def store(tmp_path: Path) -> Path:
    write_part(tmp_path, "a", range(4))
    write_part(tmp_path, "b", range(4, 6))
    return tmp_path


def edit_spec(root: Path, **changes: object) -> None:
    doc = json.loads((root / "chipstore.json").read_text())
    doc.update(changes)
    (root / "chipstore.json").write_text(json.dumps(doc))


def test_index_records_every_part(store: Path) -> None:
    entries = sorted(p.name for p in (store / "index").iterdir())
    assert entries == ["a.json", "b.json"]
    entry = json.loads((store / "index" / "a.json").read_text())
    assert entry == {
        "part": "a",
        "file": "a.n4.arrow",
        "chips": 4,
        "bytes": (store / "parts" / "a.n4.arrow").stat().st_size,
    }
    assert len(ChipStore(store)) == 6


def test_missing_part_is_refused(store: Path) -> None:
    (store / "parts" / "b.n2.arrow").unlink()
    with pytest.raises(FileNotFoundError, match=rf"{store}: part 'b' .* no file parts/b\.n2"):
        ChipStore(store)


def test_renamed_part_is_refused(store: Path) -> None:
    (store / "parts" / "b.n2.arrow").rename(store / "parts" / "c.n2.arrow")
    with pytest.raises(FileNotFoundError, match=r"part 'b' .* deleted or renamed"):
        ChipStore(store)
    (store / "index" / "b.json").unlink()
    with pytest.raises(ValueError, match=r"\['c\.n2\.arrow'\] without an index entry"):
        ChipStore(store)


def test_extra_file_in_parts_is_refused(store: Path) -> None:
    (store / "parts" / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match=rf"{store}: parts/ holds \['notes\.txt'\]"):
        ChipStore(store)


def test_part_without_index_entry_is_rewritten_by_its_writer(store: Path) -> None:
    """A writer killed between the rename and the index entry: the rerun writes it again."""
    (store / "index" / "b.json").unlink()
    assert not part_exists(store, "b")
    with pytest.raises(ValueError, match=r"b\.n2\.arrow"):
        ChipStore(store)
    write_part(store, "b", range(4, 6))
    assert torch.equal(ChipStore(store).read(5)["image"], make_chip(5)["image"])


def test_corrupt_index_entry_is_named(store: Path) -> None:
    (store / "index" / "a.json").write_text(json.dumps({"part": "a", "file": "x", "chips": 4}))
    with pytest.raises(ValueError, match=r"index entry .*a\.json must hold exactly"):
        ChipStore(store)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"bands": ["B03", "B02", "B04", "B08"]}, "part 'a' was written with spec"),
        ({"frames": 3}, "part 'a' was written with spec"),
        ({"height": 4}, "part 'a' was written with spec"),
        ({"dtype": "float32"}, "dtype must be 'uint16'"),
        ({"frames": "2"}, "frames must be a whole number"),
        ({"frames": True}, "frames must be a whole number"),
        ({"chips_per_batch": 0}, "chips_per_batch must be a whole number"),
        ({"bands": ["B02", "B99", "B04", "B08"]}, "B99"),
        ({"extra": 1}, r"unknown fields \['extra'\]"),
        ({"checksum": "md5"}, "checksum must be one of"),
        ({"version": 3}, "version 3"),
        ({"codec": {"id": "pickle"}}, "codec .* is not allowed"),
        ({"codec": {"id": "blosc", "cname": "lz4", "typesize": 8}}, r"\['typesize'\]"),
        ({"codec": {"id": "blosc", "cname": "snappy"}}, "cname must be one of"),
        ({"codec": {"id": "blosc", "cname": "lz4", "clevel": 99}}, "clevel"),
    ],
)
def test_edited_metadata_is_refused(store: Path, changes: dict, message: str) -> None:
    edit_spec(store, **changes)
    with pytest.raises(ValueError, match=message):
        ChipStore(store).read(0)


def test_missing_field_is_named(store: Path) -> None:
    doc = json.loads((store / "chipstore.json").read_text())
    del doc["width"]
    (store / "chipstore.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=r"lacks the fields \['width'\]"):
        ChipStore(store)


@pytest.mark.parametrize("compression", sorted(CODECS))
def test_codec_allow_list_accepts_the_written_codecs(compression: str) -> None:
    codec = codec_from_config(CODECS[compression], "chipstore.json")
    assert codec.get_config() == {**CODECS[compression], "blocksize": 0}


def rewrite_part(root: Path, name: str, change_row) -> None:
    """Rewrite a part's rows through ``change_row`` (with a fresh checksum) and its index entry."""
    spec = ChipStore(root).spec
    path = next((root / "parts").glob(f"{name}.n*.arrow"))
    rows = pa.ipc.open_file(pa.memory_map(str(path))).read_all().to_pylist()
    rows = [change_row(index, row) for index, row in enumerate(rows)]
    for row in rows:
        metadata = row_metadata(
            np.array(row["times"]), np.array(row["bounds"]), np.array(row["transform"]),
            row["crs"], row["location"],
        )  # fmt: skip
        row["checksum"] = chip_checksum("xxh3_64", row["image"], row["valid"], metadata)
    schema = chip_schema(spec)
    with pa.ipc.new_file(str(path), schema) as sink:
        table = pa.Table.from_pylist(rows, schema=schema)
        sink.write_table(table, max_chunksize=spec.chips_per_batch)
    entry = json.loads((root / "index" / f"{name}.json").read_text())
    entry["bytes"] = path.stat().st_size
    (root / "index" / f"{name}.json").write_text(json.dumps(entry))


def test_blob_that_disagrees_with_the_spec_is_refused(store: Path) -> None:
    codec = numcodecs.Blosc("lz4", 5, 1)

    def smaller(index: int, row: dict) -> dict:
        if index == 1:  # a chip of another size, e.g. from a store of 6 x 6 chips
            row["image"] = codec.encode(np.zeros((2, 4, 6, 6), np.uint16))
        if index == 2:  # the right number of bytes, but bytes where uint16 was written
            row["image"] = codec.encode(np.zeros(2 * 4 * 8 * 6 * 2, np.uint8))
        return row

    rewrite_part(store, "a", smaller)
    chips = ChipStore(store)
    assert torch.equal(chips.read(0)["image"], make_chip(0)["image"])
    with pytest.raises(ValueError, match=r"chip 1 of part 'a' holds a image of 576 bytes"):
        chips.read(1)
    with pytest.raises(ValueError, match=r"chip 2 of part 'a' .* of 1-byte items"):
        chips.read(2)


def flip_byte_in_blob(root: Path, part: str, row: int) -> None:
    """Flip one byte in the middle of a chip's stored image blob."""
    chips = ChipStore(root, verify="off")
    chip = chips.read_arrays(row)
    blob = numcodecs.Blosc("lz4", 5, 1).encode(chip["image"])
    path = next((root / "parts").glob(f"{part}.n*.arrow"))
    data = bytearray(path.read_bytes())
    where = data.find(blob[32:96])
    assert where > 0
    data[where + 10] ^= 0x40
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("verify", ["once", "always"])
def test_flipped_byte_is_caught_by_the_checksum(store: Path, verify: str) -> None:
    flip_byte_in_blob(store, "a", 2)
    chips = ChipStore(store, verify=verify)  # type: ignore[arg-type]
    assert torch.equal(chips.read(1)["image"], make_chip(1)["image"])
    with pytest.raises(ValueError, match=r"part 'a' .* chip 2 \(store index 2\) has xxh3_64"):
        chips.read(2)
    with pytest.raises(ValueError, match="xxh3_64"):
        chips.read_batch([0, 1, 2])


def test_verify_off_reads_without_checksums(store: Path) -> None:
    flip_byte_in_blob(store, "a", 2)
    chips = ChipStore(store, verify="off")
    assert torch.equal(chips.read(3)["image"], make_chip(3)["image"])
    chips.read(2)  # the flipped pixel goes unnoticed: that is what "off" means
    with pytest.raises(ValueError, match="verify must be"):
        ChipStore(store, verify="sometimes")  # type: ignore[arg-type]


def test_once_verifies_each_chip_once_per_run(store: Path) -> None:
    chips = ChipStore(store)
    chips.read_batch([0, 1, 2])
    assert chips._verified.mask().tolist() == [True, True, True, False, False, False]
    clone = pickle.loads(pickle.dumps(chips))
    assert not clone._verified.mask().any()  # a copy by value may be opened on other files


def test_workers_share_what_they_verified_across_epochs(store: Path) -> None:
    """Workers rebuilt every epoch (persistent_workers=False) hash each chip once in the run."""
    once, always = ChipStore(store), ChipStore(store, verify="always")
    loaders = {
        mode: DataLoader(
            ChipDataset(chips),
            batch_size=2,
            num_workers=2,
            collate_fn=collate_samples,
            multiprocessing_context="fork",
        )
        for mode, chips in (("once", once), ("always", always))
    }
    assert sum(len(batch["location"]) for batch in loaders["once"]) == 6
    assert once._verified.mask().all()  # recorded by the workers, seen by this process
    flip_byte_in_blob(store, "a", 2)  # corrupted after the first epoch verified it
    assert sum(len(batch["location"]) for batch in loaders["once"]) == 6  # not hashed again
    with pytest.raises(ValueError, match=r"chip 2 \(store index 2\) has xxh3_64"):
        list(loaders["always"])


def test_spawned_workers_record_in_the_parent(store: Path) -> None:
    chips = ChipStore(store)
    loader = DataLoader(
        ChipDataset(chips), batch_size=3, num_workers=1, multiprocessing_context="spawn",
        collate_fn=collate_samples,
    )  # fmt: skip
    assert sum(len(batch["location"]) for batch in loader) == 6
    assert chips._verified.mask().all()  # the pickled store carried the shared memory's handle


def test_verification_record_without_shared_memory(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("unable to open shared memory object")

    monkeypatch.setattr(torch.Tensor, "share_memory_", refuse)
    with pytest.warns(RuntimeWarning, match="no shared memory .* verifies the chips it reads"):
        chips = ChipStore(store)
    chips.read_batch([4, 5])
    assert chips._verified.mask().tolist() == [False] * 4 + [True, True]


def test_pretrain_data_passes_its_verify_mode(store: Path) -> None:
    data = PretrainData(str(store), batch_size=2, val_fraction=0.0, verify="off")
    data.setup()
    assert isinstance(data.train_set, Subset)
    dataset = data.train_set.dataset
    assert isinstance(dataset, ChipDataset)
    assert dataset.store.verify == "off"
    assert PretrainData(str(store)).verify == "once"


def write_version1_store(root: Path) -> None:
    """A store as version 1 wrote it: no index, no checksums."""
    spec = ChipSpec(BANDS, 2, 8, 6, {"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1})
    v1 = ChipSpec(**{**spec.__dict__, "checksum": None, "version": 1})
    (root / "parts").mkdir(parents=True)
    (root / "chipstore.json").write_text(json.dumps(v1.to_json()))
    codec = codec_from_config(v1.codec, "v1")
    rows = []
    for seed in range(3):
        chip = make_chip(seed)
        rows.append(
            {
                "image": codec.encode(chip["image"].numpy().astype(np.uint16)),
                "valid": codec.encode(np.packbits(chip["valid"].numpy().reshape(-1))),
                "times": chip["times"].tolist(),
                "crs": chip["crs"],
                "bounds": list(chip["bounds"]),
                "transform": list(chip["transform"]),
                "location": chip["location"],
            }
        )
    schema = chip_schema(v1)
    with pa.ipc.new_file(str(root / "parts" / "old.n3.arrow"), schema) as sink:
        sink.write_table(pa.Table.from_pylist(rows, schema=schema))


def test_version1_store_reads_unverified_with_one_warning(tmp_path: Path) -> None:
    write_version1_store(tmp_path)
    with pytest.warns(UserWarning, match="no index and no checksums"):
        chips = ChipStore(tmp_path)
    assert chips.verify == "off" and len(chips) == 3
    assert torch.equal(chips.read(2)["image"], make_chip(2)["image"])
    assert part_exists(tmp_path, "old")
    with pytest.raises(ValueError, match=r"version-1 chip store; .* write to a new store"):
        ChipStoreWriter(tmp_path, "new", **SHAPE)
