"""Pretraining data: a chip store, or random windows of scene folders, split by location.

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
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from satmae.data.augment import SeriesAugment
from satmae.data.multiscale import MultiScaleTargets, TargetBands
from satmae.data.sample import collate_samples
from satmae.data.stats import BandStats, compute_stats
from satmae.data.store.chipstore import ChipStore, Verify, open_spec
from satmae.data.store.datasets import ChipDataset
from satmae.train.sampler import ResumableSampler, rank_and_world
from satmae.train.scenes import SceneWindows


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
    """Chips of a chip store, or random windows of scenes, for pretraining.

    Args:
        path: a chip store (folder or fsspec URL, written by ``satmae prep``) or anything
            ``satmae check`` reads: a folder of dated scenes, a folder of scene folders
            (e.g. OSCD city folders with per-band files), an index table, a SAFE product.
            Scenes are read as random ``size`` x ``size`` windows of ``frames`` dates
            (:class:`~satmae.train.scenes.SceneWindows`), new ones every epoch.
        batch_size: chips per batch and device.
        num_workers: DataLoader worker processes.
        val_fraction: fraction of locations held out for the validation loss.
        seed: seed of the split and of the shuffling.
        storage_options: fsspec options for a remote store.
        size: window side in pixels when ``path`` holds scenes.
        frames: dates per window when ``path`` holds scenes.
        windows_per_scene: windows drawn from each scene location per epoch.
        min_valid: smallest valid-pixel fraction of a scene window (redrawn below it).
        augment: random flips, 90° rotations and resized crops of training batches on the
            device, one draw per sample shared by all its frames and bands
            (:class:`~satmae.data.augment.SeriesAugment`), seeded by the seed, the step and the
            rank, so that a resumed run augments as an uninterrupted one.
        exclude: locations never read, neither for training nor for validation (e.g. the
            cities an evaluation holds out: ``[bordeaux, hongkong, rennes]`` for OSCD).
        scales: for a multi-scale model (``upsample_scales``), the same scales, e.g.
            ``[2, 4]``: samples are read at the largest scale (``size`` is then that many times
            the model input) and every batch, after augmentation, becomes the model input plus
            ``image_x2``, … (:class:`~satmae.data.multiscale.MultiScaleTargets`).
        scale_targets: ``"all"`` (SatMAE++: every band at every scale, resampled) or
            ``"native"`` (only bands whose native resolution resolves the scale's pixel).
        gsd: metres per pixel of the data as read (``scale_targets="native"``).
        scale_size: resize every batch to this side before making the scales (SatMAE++ crops
            fMoW-Sentinel at 384 = 4 x 96, upsampling its small images); ``None`` keeps the
            size as read.
        verify: when a chip store's chips are checked against their checksums (``"once"``:
            the first read of each chip in the run, whichever worker reads it; ``"always"``;
            ``"off"`` for stores checked otherwise); see :class:`ChipStore`.
    """

    def __init__(
        self,
        path: str,
        batch_size: int = 8,
        num_workers: int = 0,
        val_fraction: float = 0.1,
        seed: int = 0,
        storage_options: dict[str, Any] | None = None,
        size: int = 96,
        frames: int = 2,
        windows_per_scene: int = 64,
        min_valid: float = 0.5,
        augment: bool = True,
        exclude: list[str] | None = None,
        scales: list[int] | None = None,
        scale_targets: TargetBands = "all",
        gsd: float = 10.0,
        scale_size: int | None = None,
        verify: Verify = "once",
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
        self.size, self.frames = size, frames
        self.windows_per_scene, self.min_valid = windows_per_scene, min_valid
        self.augment = SeriesAugment() if augment else None
        self.exclude = sorted(exclude or [])
        self.multiscale = (
            MultiScaleTargets(scales, scale_targets, gsd, scale_size) if scales else None
        )
        self.verify: Verify = verify
        self.train_set: Dataset[Any] | None = None
        self.val_set: Dataset[Any] | None = None
        self.epoch = 0
        self.batches_done = 0
        self._resume: tuple[int, int] | None = None

    def is_chip_store(self) -> bool:
        """Whether ``path`` is a chip store (else it is read as scenes)."""
        try:
            open_spec(self.path, self.storage_options)
        except FileNotFoundError:
            return False
        return True

    def setup(self, stage: str | None = None) -> None:
        """Open the data and split it by location."""
        if self.train_set is not None:
            return
        if self.is_chip_store():
            store = ChipStore(self.path, self.storage_options, verify=self.verify)
            if len(store) == 0:
                raise ValueError(f"the chip store {self.path} holds no chips")
            locations = store.locations()
            self._check_excluded(locations)
            train, val = split_by_location(locations, self.val_fraction, self.seed)
            train = [i for i in train if locations[i] not in self.exclude]
            val = [i for i in val if locations[i] not in self.exclude]
            dataset = ChipDataset(store)
            self.train_set, self.val_set = Subset(dataset, train), Subset(dataset, val)
        else:
            scenes = SceneWindows(
                self.path,
                self.size,
                self.frames,
                self.windows_per_scene,
                min_valid=self.min_valid,
                seed=self.seed,
            )
            self._check_excluded(scenes.locations)
            names = [name for name in scenes.locations if name not in self.exclude]
            train, val = split_by_location(names, self.val_fraction, self.seed)
            self.train_set = scenes.subset([names[i] for i in train])
            self.val_set = scenes.subset([names[i] for i in val])
        count = len(self.train_set)  # type: ignore[arg-type]
        if count < self.batch_size:
            raise ValueError(
                f"{self.path} gives {count} training samples, fewer than "
                f"data.batch_size={self.batch_size}; lower the batch size"
            )

    def _check_excluded(self, locations: list[str]) -> None:
        """Refuse excluded names that are not locations of the data.

        A typo would otherwise exclude nothing and silently pretrain on held-out data.
        """
        if unknown := sorted(set(self.exclude) - set(locations)):
            known = sorted(set(locations))
            raise ValueError(
                f"data.exclude names {unknown}, which are not locations of {self.path}; "
                f"its locations are {known[:20]}"
            )

    def train_dataloader(self) -> DataLoader[Any]:
        """Seeded, rank-sharded, full batches; resumes mid-epoch after a checkpoint."""
        assert self.train_set is not None, "call setup() first"
        dataset = self.train_set
        sampler = ResumableSampler(
            len(dataset),  # type: ignore[arg-type]
            self.batch_size,
            self.seed,
            on_epoch=dataset.set_epoch if isinstance(dataset, SceneWindows) else None,
        )
        if self._resume is not None:
            sampler.resume(*self._resume)
        return DataLoader(
            self.train_set,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=collate_samples,
            # Workers are rebuilt every epoch, so scene windows see the new epoch.
            persistent_workers=False,
        )

    def statistics(self, bands: tuple[str, ...], max_samples: int = 256) -> BandStats:
        """Per-band statistics of the first ``max_samples`` training samples (``satmae stats``).

        The samples are read in a fixed order, so every rank and every resumed run gets the
        same numbers.
        """
        assert self.train_set is not None, "call setup() first"
        count = min(max_samples, len(self.train_set))  # type: ignore[arg-type]
        step = max(len(self.train_set) // count, 1)  # type: ignore[arg-type]
        samples = (self.train_set[index * step] for index in range(count))
        provenance = f"computed by satmae pretrain from {count} samples of {self.path}"
        return compute_stats(samples, bands, provenance=provenance, total=count)

    def peek(self) -> dict[str, Any]:
        """The first training sample as a one-sample batch (to check it against the model)."""
        assert self.train_set is not None, "call setup() first"
        return self.scale_batch(collate_samples([self.train_set[0]]))

    def scale_batch(self, batch: dict[str, Any]) -> dict[str, Any]:
        """A batch as read -> the model input and its finer targets (``data.scales``).

        Unchanged without ``scales`` or when already scaled: Lightning moves a batch with the
        transfer hooks more than once (e.g. the figures' fixed batch, taken from a training
        batch, goes through them again), and halving twice would shrink the input.
        """
        if self.multiscale is None or f"image_x{self.multiscale.factor}" in batch:
            return batch
        return self.multiscale(batch)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Augment training batches on the device, reproducibly; then make the scales."""
        trainer = self.trainer
        if self.augment is not None and trainer is not None and trainer.training:
            rank, _ = rank_and_world()
            device = batch["image"].device
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                torch.manual_seed((self.seed * 1_000_003 + trainer.global_step) * 1_009 + rank)
                batch = self.augment(batch)
        return self.scale_batch(batch)

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
