"""Which chips of a store have passed their checksum, one record for a process and its workers.

``ChipStore(verify="once")`` hashes each chip the first time it is read. The record of what was
hashed is one byte per chip in shared memory, so that every process started from the store's
owner adds to the same record: DataLoader workers (forked, spawned or started by a fork server,
and rebuilt every epoch when ``persistent_workers=False``) and ranks started by
``torch.multiprocessing``.
A chip a worker verified in the first epoch is not hashed again in a later epoch by any worker.

A copy made by plain :mod:`pickle` (as opposed to one handed to a worker process, which carries
the shared memory's handle) starts empty: it may be opened against other copies of the files.
A byte per chip rather than a bit: each process writes only the bytes of chips it verified, so
no write can undo another's (bits of one byte set by two workers at once could be lost).
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

__all__ = ["VerifiedChips"]


def _shared_zeros(size: int) -> torch.Tensor:
    """``(size,)`` uint8 zeros in shared memory, or in private memory where none is available."""
    flags = torch.zeros(size, dtype=torch.uint8)
    try:
        flags.share_memory_()  # type: ignore[no-untyped-call]
    except RuntimeError as error:
        warnings.warn(
            f"no shared memory for the chip-store verification record ({error}); each "
            "DataLoader worker verifies the chips it reads itself, in every epoch",
            RuntimeWarning,
            stacklevel=3,
        )
    return flags


class VerifiedChips:
    """A set of chip indices in ``[0, count)``, one byte each, shared with worker processes.

    Args:
        count: chips in the store.
    """

    def __init__(self, count: int) -> None:
        self._attach(_shared_zeros(count))

    def _attach(self, flags: torch.Tensor) -> None:
        self._flags = flags
        # indexing a memoryview gives Python ints: cheaper per chip than numpy scalars
        self._bytes = memoryview(flags.numpy().data)

    def __contains__(self, index: int) -> bool:
        return self._bytes[index] != 0

    def add(self, index: int) -> None:
        """Record chip ``index`` as verified."""
        self._bytes[index] = 1

    def mask(self) -> torch.Tensor:
        """``(count,)`` bool: which chips are recorded as verified."""
        return self._flags.bool()

    def __getstate__(self) -> dict[str, Any]:
        return {"flags": self._flags}

    def __setstate__(self, state: dict[str, Any]) -> None:
        flags: torch.Tensor = state["flags"]
        if not flags.is_shared():  # type: ignore[no-untyped-call]  # a copy by value, not a worker's handle: start afresh
            flags = _shared_zeros(flags.numel())
        self._attach(flags)
