"""A seeded, rank-sharded sampler that can resume in the middle of an epoch.

Each epoch draws one permutation of the training chips from ``(seed, epoch)``; global batch
``b`` is the block ``perm[b·R·B : (b+1)·R·B]`` and rank ``r`` reads its ``r``-th sub-block of
``B`` chips. So every rank reads disjoint chips, and ``R`` ranks with batch ``B`` see exactly
the chips one process with batch ``R·B`` would, in the same order. After a resume the first
``k`` batches of the interrupted epoch are skipped, so the run continues where it stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
import torch.distributed as dist
from torch.utils.data import Sampler


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the world size (0 and 1 outside distributed runs)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class ResumableSampler(Sampler[int]):
    """Chip indices for one rank, batch-block sharded, resumable mid-epoch.

    Args:
        size: number of chips.
        batch_size: chips per batch and rank.
        seed: base seed (the same on every rank).
        rank: this rank (default from ``torch.distributed``).
        world_size: number of ranks (default from ``torch.distributed``).
        on_epoch: called with the epoch by :meth:`set_epoch` (e.g. the dataset's own
            ``set_epoch``, for datasets that draw new windows every epoch).
    """

    def __init__(
        self,
        size: int,
        batch_size: int,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        on_epoch: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__()
        self.on_epoch = on_epoch
        found_rank, found_world = rank_and_world()
        self.rank = found_rank if rank is None else rank
        self.world_size = found_world if world_size is None else world_size
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.epoch = 0
        self.resume_epoch = -1
        self.resume_batches = 0
        if self.batches_per_epoch == 0:
            raise ValueError(
                f"{size} chips do not fill one global batch of {batch_size} x "
                f"{self.world_size} rank(s); lower data.batch_size or add data"
            )

    @property
    def batches_per_epoch(self) -> int:
        """Full global batches in one epoch (the remainder is dropped)."""
        return self.size // (self.batch_size * self.world_size)

    def set_epoch(self, epoch: int) -> None:
        """Use the permutation of ``epoch`` (Lightning calls this at every epoch start)."""
        self.epoch = epoch
        if self.on_epoch is not None:
            self.on_epoch(epoch)

    def resume(self, epoch: int, batches: int) -> None:
        """Skip the first ``batches`` batches when ``epoch`` is iterated next."""
        self.resume_epoch, self.resume_batches = epoch, batches

    def __len__(self) -> int:
        return self.batches_per_epoch * self.batch_size

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.size, generator=generator).tolist()
        skip = self.resume_batches if self.epoch == self.resume_epoch else 0
        block = self.batch_size * self.world_size
        for batch in range(skip, self.batches_per_epoch):
            start = batch * block + self.rank * self.batch_size
            yield from order[start : start + self.batch_size]
