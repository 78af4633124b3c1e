"""Chip store: exact round trip, atomic parts, resumable appends and clear errors."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from satmae.data.store.chipstore import (
    ChipStore,
    list_parts,
    part_exists,
    remove_temporaries,
)
from satmae.data.store.chipwriter import ChipStoreWriter
from satmae.data.validity import ValidityPolicy

BANDS = ("B02", "B03", "B04", "B08")
SHAPE = dict(bands=BANDS, frames=2, height=8, width=6)


def make_chip(seed: int, bands: tuple[str, ...] = BANDS) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "image": torch.from_numpy(rng.integers(0, 65536, (2, len(bands), 8, 6)).astype(np.float32)),
        "bands": bands,
        "times": torch.tensor([1_500_000_000 + seed, 1_600_000_000 + seed]),
        "valid": torch.from_numpy(rng.random((2, 8, 6)) > 0.3),
        "crs": "EPSG:32633",
        "bounds": (500_000.0 + seed, 4_000_000.0, 500_060.0 + seed, 4_000_080.0),
        "transform": (10.0, 0.0, 500_000.0 + seed, 0.0, -10.0, 4_000_080.0),
        "location": f"loc-{seed}",
    }


def write_part(root, part: str, seeds, **kwargs) -> None:
    with ChipStoreWriter(root, part, **SHAPE, chips_per_batch=3, **kwargs) as writer:
        for seed in seeds:
            writer.add(make_chip(seed))


@pytest.mark.parametrize("compression", ["lz4", "zstd"])
def test_round_trip_is_exact(tmp_path: Path, compression: str) -> None:
    write_part(tmp_path, "a", range(7), compression=compression)
    write_part(tmp_path, "b", range(7, 9))
    store = ChipStore(tmp_path)
    assert len(store) == 9
    assert [p.name for p in store.parts] == ["a", "b"]
    for index in range(9):
        expected, got = make_chip(index), store.read(index)
        assert got["image"].dtype == torch.float32
        assert torch.equal(got["image"], expected["image"])
        assert torch.equal(got["times"], expected["times"])
        assert torch.equal(got["valid"], expected["valid"])
        assert got["bands"] == BANDS
        for key in ("crs", "bounds", "transform", "location"):
            assert got[key] == expected[key], key


def test_bands_are_matched_by_name(tmp_path: Path) -> None:
    chip = make_chip(0)
    swapped = dict(chip, image=chip["image"][:, [3, 2, 1, 0]], bands=("nir", "red", "B3", "B2"))
    with ChipStoreWriter(tmp_path, "p", **SHAPE) as writer:
        writer.add(swapped)
    store = ChipStore(tmp_path)
    assert torch.equal(store.read(0)["image"], chip["image"])
    subset = store.read(0, bands=["B08", "B02"])
    assert subset["bands"] == ("B08", "B02")
    assert torch.equal(subset["image"], chip["image"][:, [3, 0]])
    with pytest.raises(ValueError, match="B11"):
        store.read(0, bands=["B11"])


def test_fsspec_url_round_trip() -> None:
    root = "memory://satmae-test/store"
    write_part(root, "remote", range(4))
    store = ChipStore(root)
    assert len(store) == 4
    assert torch.equal(store.read(3)["image"], make_chip(3)["image"])


def test_missing_footprint_is_omitted_not_invented(tmp_path: Path) -> None:
    chip = {k: v for k, v in make_chip(1).items() if k not in ("crs", "bounds", "transform")}
    with ChipStoreWriter(tmp_path, "p", **SHAPE) as writer:
        writer.add(chip)
    got = ChipStore(tmp_path).read(0)
    assert "crs" not in got and "bounds" not in got and "transform" not in got


def test_failed_writer_leaves_no_part(tmp_path: Path) -> None:
    write_part(tmp_path, "done", range(2))
    with pytest.raises(RuntimeError), ChipStoreWriter(tmp_path, "failed", **SHAPE) as writer:
        writer.add(make_chip(0))
        raise RuntimeError("scene reader crashed")
    assert [p.name for p in list_parts(tmp_path)] == ["done"]
    assert not list((tmp_path / "parts").glob(".*.tmp"))


def test_killed_writer_does_not_corrupt_the_store_and_resumes(tmp_path: Path) -> None:
    write_part(tmp_path, "done", range(2))
    script = textwrap.dedent(
        f"""
        import os
        import numpy as np
        from satmae.data.store.chipwriter import ChipStoreWriter
        writer = ChipStoreWriter(
            {str(tmp_path)!r}, "killed", bands={BANDS!r}, frames=2, height=8, width=6,
            chips_per_batch=3,
        )
        for seed in range(5):
            writer.add({{"image": np.full((2, 4, 8, 6), seed, np.uint16), "bands": {BANDS!r},
                        "times": np.array([1, 2])}})
        os._exit(9)  # killed mid-part, before close()
        """
    )
    result = subprocess.run([sys.executable, "-c", script], check=False)
    assert result.returncode == 9
    assert len(list((tmp_path / "parts").glob(".killed.*.tmp"))) == 1
    store = ChipStore(tmp_path)
    assert len(store) == 2 and not part_exists(tmp_path, "killed")
    assert remove_temporaries(tmp_path) == 1
    write_part(tmp_path, "killed", range(5))  # the rerun writes the part in full
    assert len(ChipStore(tmp_path)) == 7


def test_existing_part_is_not_rewritten(tmp_path: Path) -> None:
    write_part(tmp_path, "p", range(1))
    with pytest.raises(FileExistsError, match="already written"):
        ChipStoreWriter(tmp_path, "p", **SHAPE)


def test_store_pickles_without_open_files(tmp_path: Path) -> None:
    write_part(tmp_path, "p", range(4))
    store = ChipStore(tmp_path)
    store.read(0)
    clone = pickle.loads(pickle.dumps(store))
    assert torch.equal(clone.read(2)["image"], store.read(2)["image"])


def test_policy_counts_skipped_chips(tmp_path: Path) -> None:
    bad = dict(make_chip(0), valid=torch.zeros(2, 8, 6, dtype=torch.bool))
    policy = ValidityPolicy(max_invalid_fraction=0.5, on_exceed="drop")
    with ChipStoreWriter(tmp_path, "p", **SHAPE, policy=policy) as writer:
        assert writer.add(bad) is False
        assert writer.add(make_chip(1)) is True
    assert (writer.written, writer.skipped) == (1, 1)
    assert len(ChipStore(tmp_path)) == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"valid": torch.zeros(2, 8, 6, dtype=torch.bool)}, "no valid pixel"),
        ({"image": torch.zeros(2, 4, 8, 8)}, r"expected \(T, C, H, W\) = \(2, 4, 8, 6\)"),
        ({"image": torch.full((2, 4, 8, 6), -0.2)}, "do not fit uint16"),
        ({"image": torch.full((2, 4, 8, 6), 0.25)}, "not whole numbers"),
        ({"bands": ("B02", "B03", "B04", "B11")}, r"B08"),
        ({"bands": ("B02", "B03", "B04")}, "4 channels but bands names 3"),
        ({"times": None}, "has no times"),
        ({"times": torch.tensor([1])}, "expected 2 times"),
        ({"valid": torch.ones(1, 8, 6, dtype=torch.bool)}, "expected valid of shape"),
    ],
)
def test_bad_chips_are_rejected_with_a_reason(tmp_path: Path, change: dict, message: str) -> None:
    chip = {k: v for k, v in {**make_chip(0), **change}.items() if v is not None}
    writer = ChipStoreWriter(tmp_path, "p", **SHAPE)
    with pytest.raises(ValueError, match=message):
        writer.add(chip)
    writer.abort()


def test_store_of_other_bands_is_refused(tmp_path: Path) -> None:
    write_part(tmp_path, "p", range(1))
    with pytest.raises(ValueError, match="holds chips of bands"):
        ChipStoreWriter(tmp_path, "q", bands=("B02", "B03"), frames=2, height=8, width=6)


def test_corrupt_and_missing_stores_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a chip store"):
        ChipStore(tmp_path / "nowhere")
    write_part(tmp_path, "p", range(4))
    part = next((tmp_path / "parts").glob("p.n4.arrow"))
    part.write_bytes(part.read_bytes()[:-100])
    with pytest.raises(ValueError, match=r"p\.n4\.arrow has \d+ bytes but the index says"):
        ChipStore(tmp_path)
    (tmp_path / "chipstore.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"chipstore\.json is corrupt"):
        ChipStore(tmp_path)


def test_bad_part_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="part name"):
        ChipStoreWriter(tmp_path, "a/b.c", **SHAPE)
