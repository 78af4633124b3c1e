"""Pretraining data: a chip store split by location into training and validation chips.

Validation holds out whole locations (never chips of a training location), chosen by a seeded
permutation so that every rank and every resumed run sees the same split. Lightning shards the
map-style datasets across DDP ranks with its distributed sampler.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from satmae.data.sample import collate_samples
from satmae.data.store.chipstore import ChipStore
from satmae.data.store.datasets import ChipDataset


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
        """Shuffled, seeded, full batches only."""
        assert self.train_set is not None, "call setup() first"
        return DataLoader(
            self.train_set,
            batch_size=self.batch_size,
            shuffle=True,
            drop_last=True,
            num_workers=self.num_workers,
            collate_fn=collate_samples,
            generator=torch.Generator().manual_seed(self.seed),
            persistent_workers=self.num_workers > 0,
        )

    def val_dataloader(self) -> DataLoader[Any]:
        """The held-out locations in store order (empty when nothing is held out)."""
        assert self.val_set is not None, "call setup() first"
        return DataLoader(
            self.val_set,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            collate_fn=collate_samples,
        )
