"""Datasets over the chip store: disjoint, complete sharding across ranks and workers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler

from satmae.data.sample import collate_samples
from satmae.data.store.chipwriter import ChipStoreWriter
from satmae.data.store.datasets import (
    ChipDataset,
    ChipStream,
    batch_loader,
    epoch_order,
    shard_indices,
)

BANDS = ("B02", "B03", "B04")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("store")
    for part, count in (("a", 11), ("b", 0), ("c", 14)):
        with ChipStoreWriter(
            root, part, bands=BANDS, frames=1, height=4, width=4, chips_per_batch=4
        ) as writer:
            for index in range(count):
                writer.add(
                    {
                        "image": np.full((1, 3, 4, 4), index, np.uint16),
                        "bands": BANDS,
                        "times": np.array([index]),
                        "location": f"{part}{index}",
                    }
                )
    return root


@pytest.mark.parametrize("num_chips", [0, 1, 25, 64, 101])
@pytest.mark.parametrize("world_size", [1, 2, 3])
@pytest.mark.parametrize("num_workers", [1, 2, 3])
@pytest.mark.parametrize("even", [True, False])
def test_shards_are_disjoint_and_cover_the_epoch(
    num_chips: int, world_size: int, num_workers: int, even: bool
) -> None:
    shards = {
        (rank, worker): shard_indices(
            num_chips,
            rank=rank,
            world_size=world_size,
            worker=worker,
            num_workers=num_workers,
            block_size=8,
            seed=3,
            epoch=2,
            even=even,
        )
        for rank in range(world_size)
        for worker in range(num_workers)
    }
    seen = np.concatenate(list(shards.values()))
    assert len(np.unique(seen)) == len(seen), "a chip is read by two processes"
    per_rank = [
        sum(len(shards[rank, worker]) for worker in range(num_workers))
        for rank in range(world_size)
    ]
    if even:
        assert set(per_rank) == {num_chips // world_size}
        assert num_chips - len(seen) < world_size
    else:
        assert sorted(seen.tolist()) == list(range(num_chips))
        assert max(per_rank) - min(per_rank) <= 1


def test_epoch_order_is_seeded_and_changes_per_epoch() -> None:
    first = epoch_order(100, block_size=10, seed=0, epoch=0)
    assert np.array_equal(first, epoch_order(100, block_size=10, seed=0, epoch=0))
    assert not np.array_equal(first, epoch_order(100, block_size=10, seed=0, epoch=1))
    assert sorted(first.tolist()) == list(range(100))
    # chips of one block stay together, so reads remain sequential
    assert all(len(set(first[i : i + 10] // 10)) == 1 for i in range(0, 100, 10))
    assert np.array_equal(epoch_order(5, block_size=2, seed=0, epoch=0, shuffle=False), range(5))


def test_shard_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="rank 2 is outside"):
        shard_indices(10, rank=2, world_size=2)
    with pytest.raises(ValueError, match="worker 1 is outside"):
        shard_indices(10, worker=1, num_workers=1)


def locations(loader: DataLoader) -> list[str]:
    return [name for batch in loader for name in batch["location"]]


def test_stream_with_workers_and_ranks_reads_every_chip_once(store: Path) -> None:
    seen: list[str] = []
    for rank in range(2):
        stream = ChipStream(store, rank=rank, world_size=2, seed=1, even=False)
        stream.set_epoch(4)
        loader = DataLoader(stream, batch_size=3, num_workers=2, collate_fn=collate_samples)
        seen += locations(loader)
    expected = [f"a{i}" for i in range(11)] + [f"c{i}" for i in range(14)]
    assert sorted(seen) == sorted(expected)


def test_stream_length_and_samples(store: Path) -> None:
    stream = ChipStream(store, bands=["B04", "B02"], rank=1, world_size=2)
    samples = list(stream)
    assert len(stream) == len(samples) == 12
    sample = samples[0]
    assert sample["bands"] == ("B04", "B02")
    assert sample["image"].shape == (1, 2, 4, 4) and sample["valid"].all()
    assert sample["times"].dtype == torch.int64


def test_stream_order_depends_on_epoch_only(store: Path) -> None:
    def order(epoch: int) -> list[str]:
        stream = ChipStream(store, seed=5)
        stream.set_epoch(epoch)
        return [sample["location"] for sample in stream]

    assert order(1) == order(1)
    assert order(1) != order(2)


def test_map_style_dataset_with_distributed_sampler(store: Path) -> None:
    dataset = ChipDataset(store, transform=lambda s: {**s, "image": s["image"] / 10})
    assert len(dataset) == 25
    assert dataset[12]["image"].max() == pytest.approx(0.1)
    seen: list[str] = []
    for rank in range(3):
        sampler = DistributedSampler(dataset, num_replicas=3, rank=rank, shuffle=True, seed=0)
        loader = DataLoader(dataset, batch_size=4, sampler=sampler, collate_fn=collate_samples)
        seen += locations(loader)
    assert set(seen) == {dataset[i]["location"] for i in range(25)}


def test_batched_stream_matches_samples(store: Path) -> None:
    stream = ChipStream(store, bands=["B04", "B02"], batch_size=4, seed=2, even=False)
    batches = list(batch_loader(stream, num_workers=2))
    assert len(stream) == 7
    assert sum(len(batch["location"]) for batch in batches) == 25
    first = batches[0]
    assert first["image"].shape == (4, 1, 2, 4, 4) and first["valid"].shape == (4, 1, 4, 4)
    assert first["bands"] == ("B04", "B02") and first["times"].shape == (4, 1)
    dataset = ChipDataset(store, bands=["B04", "B02"])
    by_location = {dataset[i]["location"]: dataset[i] for i in range(len(dataset))}
    for slot, location in enumerate(first["location"]):
        assert torch.equal(first["image"][slot], by_location[location]["image"])
    with pytest.raises(ValueError, match="batch_size must be positive"):
        ChipStream(store, batch_size=0)
    with pytest.raises(ValueError, match="needs ChipStream"):
        batch_loader(ChipStream(store))


def test_pickled_stream_keeps_its_rank_for_spawned_workers(store: Path, monkeypatch) -> None:
    import pickle

    import satmae.data.store.datasets as datasets

    stream = ChipStream(store, seed=1)
    monkeypatch.setattr(datasets, "distributed_context", lambda: (1, 3))
    clone = pickle.loads(pickle.dumps(stream))
    monkeypatch.undo()
    assert (clone.rank, clone.world_size) == (1, 3)
    expected = shard_indices(25, rank=1, world_size=3, block_size=4, seed=1)
    assert np.array_equal(clone.indices(), expected)
