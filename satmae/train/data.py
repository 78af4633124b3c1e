"""Pretraining data: a chip store split by location into training and validation chips.

Validation holds out whole locations (never chips of a training location), chosen by a seeded
permutation so that every rank and every resumed run sees the same split. Training chips come in
the order of :class:`~satmae.train.sampler.ResumableSampler`: disjoint per rank, and resumed
where an interrupted epoch stopped (the data module's state, saved in every checkpoint, counts
the batches of the current epoch).
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import numpy as np
from torch.utils.data import DataLoader, Subset

from satmae.data.sample import collate_samples
from satmae.data.store.chipstore import ChipStore
from satmae.data.store.datasets import ChipDataset
from satmae.train.sampler import ResumableSampler


def split_by_location(
    locations: list[str], val_fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    """Chip indices of (training, validation), holding out whole locations.

    At least one location is held out when ``val_fraction > 0`` and there are two or more.

    Raises:
        ValueError: for a fraction outside [0, 1).
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    unique = sorted(set(locations))
    order = np.random.default_rng(seed).permutation(len(unique))
    count = math.ceil(val_fraction * len(unique)) if val_fraction > 0 else 0
    count = min(count, len(unique) - 1)
    held_out = {unique[i] for i in order[:count]}
    train = [i for i, location in enumerate(locations) if location not in held_out]
    val = [i for i, location in enumerate(locations) if location in held_out]
    return train, val


class PretrainData(L.LightningDataModule):
    """Chips of a chip store for pretraining.

    Args:
        path: folder or fsspec URL of a chip store (written by ``satmae prep`` or
            ``data_prep/``).
        batch_size: chips per batch and device.
        num_workers: DataLoader worker processes.
        val_fraction: fraction of locations held out for the validation loss.
        seed: seed of the split and of the shuffling.
        storage_options: fsspec options for a remote store.
    """

    def __init__(
        self,
        path: str,
        batch_size: int = 8,
        num_workers: int = 0,
        val_fraction: float = 0.1,
        seed: int = 0,
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"data.batch_size must be at least 1, got {batch_size}")
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"data.val_fraction must be in [0, 1), got {val_fraction}")
        self.path = path
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.val_fraction = val_fraction
        self.seed = seed
        self.storage_options = storage_options
        self.train_set: Subset[Any] | None = None
        self.val_set: Subset[Any] | None = None
        self.epoch = 0
        self.batches_done = 0
        self._resume: tuple[int, int] | None = None

    def open_store(self) -> ChipStore:
        """The chip store (raises FileNotFoundError with the path when it is not one)."""
        return ChipStore(self.path, self.storage_options)

    def setup(self, stage: str | None = None) -> None:
        """Open the store and split it by location."""
        if self.train_set is not None:
            return
        store = self.open_store()
        if len(store) == 0:
            raise ValueError(f"the chip store {self.path} holds no chips")
        train, val = split_by_location(store.locations(), self.val_fraction, self.seed)
        if len(train) < self.batch_size:
            raise ValueError(
                f"the chip store {self.path} has {len(train)} training chips, fewer than "
                f"data.batch_size={self.batch_size}; lower the batch size"
            )
        dataset = ChipDataset(store)
        self.train_set, self.val_set = Subset(dataset, train), Subset(dataset, val)

    def train_dataloader(self) -> DataLoader[Any]:
        """Seeded, rank-sharded, full batches; resumes mid-epoch after a checkpoint."""
        assert self.train_set is not None, "call setup() first"
        sampler = ResumableSampler(len(self.train_set), self.batch_size, self.seed)
        if self._resume is not None:
            sampler.resume(*self._resume)
        return DataLoader(
            self.train_set,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=collate_samples,
            persistent_workers=self.num_workers > 0,
        )

    def count_batch(self, epoch: int) -> None:
        """Record that a training batch of ``epoch`` is about to be used."""
        if epoch != self.epoch:
            self.epoch, self.batches_done = epoch, 0
        self.batches_done += 1

    def state_dict(self) -> dict[str, Any]:
        """Where training stands in the data: the epoch and the batches used in it."""
        return {"epoch": self.epoch, "batches_done": self.batches_done}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Resume after the batches a checkpoint had used."""
        self.epoch = int(state_dict["epoch"])
        self.batches_done = int(state_dict["batches_done"])
        self._resume = (self.epoch, self.batches_done)

    def val_dataloader(self) -> DataLoader[Any]:
        """The held-out locations in store order (empty when nothing is held out)."""
        assert self.val_set is not None, "call setup() first"
        return DataLoader(
            self.val_set,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            collate_fn=collate_samples,
        )
