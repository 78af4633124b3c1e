"""Torch datasets over a chip store, sharded across DDP ranks and DataLoader workers.

- :class:`ChipDataset` is map-style: pair it with ``torch.utils.data.DistributedSampler``
  (Lightning does this for you) for DDP.
- :class:`ChipStream` is iterable: it splits one seeded permutation of the store into
  disjoint shards, one per ``(rank, worker)``, so every chip is read once per epoch by exactly
  one process, in mostly sequential order (whole record batches stay together).

Both return DESIGN §3 samples; ``transform`` runs per sample (e.g. normalisation), while
batch augmentations (:mod:`satmae.data.augment`) run on the collated batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info

from satmae.data.sample import Sample
from satmae.data.store.chipstore import ChipStore, PathLike

SampleTransform = Callable[[Sample], Sample]


def _open(store: ChipStore | PathLike, storage_options: Mapping[str, Any] | None) -> ChipStore:
    return store if isinstance(store, ChipStore) else ChipStore(store, storage_options)


class ChipDataset(Dataset[Sample]):
    """Map-style dataset: chip ``i`` of the store as a sample.

    Args:
        store: a :class:`ChipStore` or its path/URL.
        bands: bands to return, in this order (default: the store's).
        transform: applied to each sample.
        storage_options: fsspec options when ``store`` is a URL.
    """

    def __init__(
        self,
        store: ChipStore | PathLike,
        bands: Sequence[str] | None = None,
        transform: SampleTransform | None = None,
        storage_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.store = _open(store, storage_options)
        self.bands = tuple(bands) if bands is not None else None
        self.transform = transform

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, index: int) -> Sample:
        sample = self.store.read(int(index), self.bands)
        return self.transform(sample) if self.transform else sample


def distributed_context() -> tuple[int, int]:
    """``(rank, world_size)`` from ``torch.distributed`` when initialised, else ``(0, 1)``."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def epoch_order(
    num_chips: int, *, block_size: int, seed: int, epoch: int, shuffle: bool = True
) -> NDArray[np.int64]:
    """One epoch's visiting order of all chips, the same in every process.

    Blocks of ``block_size`` consecutive chips (a store's record batches) are permuted, then
    chips within each block, so reads stay local while batches mix scenes across the epoch.

    Returns:
        A permutation of ``range(num_chips)``.
    """
    order = np.arange(num_chips, dtype=np.int64)
    if not shuffle or num_chips == 0:
        return order
    rng = np.random.default_rng([seed, epoch])
    blocks = np.split(order, np.arange(block_size, num_chips, block_size))
    return np.concatenate([rng.permutation(blocks[i]) for i in rng.permutation(len(blocks))])


def shard_indices(
    num_chips: int,
    *,
    rank: int = 0,
    world_size: int = 1,
    worker: int = 0,
    num_workers: int = 1,
    block_size: int = 64,
    seed: int = 0,
    epoch: int = 0,
    shuffle: bool = True,
    even: bool = True,
) -> NDArray[np.int64]:
    """The chips one ``(rank, worker)`` reads in one epoch.

    The epoch order is cut into ``world_size`` contiguous ranges, one per rank; each rank's range
    is cut into ``num_workers`` contiguous ranges. Shards never overlap and together cover the
    epoch. With ``even=True`` each rank gets ``num_chips // world_size`` chips (dropping at most
    ``world_size - 1`` chips, different ones each epoch), because DDP hangs when ranks run
    different numbers of steps.

    Args:
        num_chips: chips in the store.
        rank: this process's rank.
        world_size: number of ranks.
        worker: DataLoader worker id.
        num_workers: workers per rank (1 without workers).
        block_size: chips kept together when shuffling.
        seed: base seed, shared by all ranks.
        epoch: epoch number, mixed into the seed.
        shuffle: permute blocks and chips within blocks.
        even: equal chip counts per rank.

    Raises:
        ValueError: if ``rank`` or ``worker`` is out of range.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside [0, {world_size}); check world_size")
    if not 0 <= worker < num_workers:
        raise ValueError(f"worker {worker} is outside [0, {num_workers})")
    order = epoch_order(num_chips, block_size=block_size, seed=seed, epoch=epoch, shuffle=shuffle)
    if even:
        per_rank = num_chips // world_size
        rank_part = order[rank * per_rank : (rank + 1) * per_rank]
    else:
        rank_part = np.array_split(order, world_size)[rank]
    return np.array_split(rank_part, num_workers)[worker]


class ChipStream(IterableDataset[Sample]):
    """Iterable dataset over a chip store, sharded across DDP ranks and DataLoader workers.

    Rank and world size come from ``torch.distributed`` (or are given), worker id from
    :func:`torch.utils.data.get_worker_info`. Call :meth:`set_epoch` before each epoch for a
    new, reproducible order (with ``persistent_workers=True`` the workers keep the epoch they
    were started with, so leave persistence off or rebuild the loader).

    Args:
        store: a :class:`ChipStore` or its path/URL.
        bands: bands to return, in this order (default: the store's).
        transform: applied to each sample.
        shuffle: shuffle blocks and chips within blocks each epoch.
        seed: base seed; all ranks must use the same.
        even: equal numbers of chips per rank (see :func:`shard_indices`).
        rank: override the rank from ``torch.distributed``.
        world_size: override the world size from ``torch.distributed``.
        batch_size: yield collated batches of this many chips (the last one of each shard may
            be smaller), decoded straight into shared memory; use with
            :func:`batch_loader`. ``transform`` then applies to batches.
        storage_options: fsspec options when ``store`` is a URL.
    """

    def __init__(
        self,
        store: ChipStore | PathLike,
        bands: Sequence[str] | None = None,
        transform: SampleTransform | None = None,
        *,
        batch_size: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        even: bool = True,
        rank: int | None = None,
        world_size: int | None = None,
        storage_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.store = _open(store, storage_options)
        self.bands = tuple(bands) if bands is not None else None
        self.transform = transform
        self.shuffle, self.seed, self.even = shuffle, seed, even
        self.rank, self.world_size = rank, world_size
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be positive or None, got {batch_size}")
        self.batch_size = batch_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order the next iteration follows."""
        self.epoch = epoch

    def __getstate__(self) -> dict[str, Any]:
        # Workers started with "spawn" lose torch.distributed's state: fix rank and world size
        # in the pickle while the parent still knows them.
        state = self.__dict__.copy()
        state["rank"], state["world_size"] = self._context()
        return state

    def _context(self) -> tuple[int, int]:
        rank, world_size = distributed_context()
        rank = rank if self.rank is None else self.rank
        world_size = world_size if self.world_size is None else self.world_size
        return rank, world_size

    def indices(self) -> NDArray[np.int64]:
        """Chips this process (rank and worker) reads in the current epoch."""
        rank, world_size = self._context()
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info else (0, 1)
        return shard_indices(
            len(self.store),
            rank=rank,
            world_size=world_size,
            worker=worker,
            num_workers=num_workers,
            block_size=self.store.spec.chips_per_batch,
            seed=self.seed,
            epoch=self.epoch,
            shuffle=self.shuffle,
            even=self.even,
        )

    def __len__(self) -> int:
        """Chips per rank per epoch; in batched mode, batches per rank without workers.

        With workers each shard ends in its own partial batch, so a rank may yield up to
        ``num_workers - 1`` more batches than this.
        """
        rank, world_size = self._context()
        if self.even:
            chips = len(self.store) // world_size
        else:
            chips = len(np.array_split(np.arange(len(self.store)), world_size)[rank])
        return chips if self.batch_size is None else -(-chips // self.batch_size)

    def __iter__(self) -> Iterator[Any]:
        indices = self.indices()
        if self.batch_size is None:
            for index in indices:
                sample = self.store.read(int(index), self.bands)
                yield self.transform(sample) if self.transform else sample
            return
        in_worker = get_worker_info() is not None
        for start in range(0, len(indices), self.batch_size):
            chunk = indices[start : start + self.batch_size].tolist()
            batch: Any = self.store.read_batch(chunk, self.bands, shared=in_worker)
            yield self.transform(batch) if self.transform else batch


def _keep(batch: Any) -> Any:
    return batch


def batch_loader(stream: ChipStream, **loader_options: Any) -> DataLoader[Any]:
    """A DataLoader that passes the batches of a batched :class:`ChipStream` through unchanged.

    Args:
        stream: a stream with ``batch_size`` set.
        loader_options: further DataLoader options (``num_workers``, ``pin_memory``, ...).

    Raises:
        ValueError: if the stream is not batched.
    """
    if stream.batch_size is None:
        raise ValueError(
            "batch_loader needs ChipStream(..., batch_size=N); got an unbatched stream"
        )
    return DataLoader(stream, batch_size=None, collate_fn=_keep, **loader_options)
