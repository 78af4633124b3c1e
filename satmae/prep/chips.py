"""Cut gathered locations into a chip store: one part per location, here or on dask."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from satmae.data.parallel import run_tasks
from satmae.data.readers.frames import Frame
from satmae.data.store.chipping import (
    ChipPlan,
    LocationReport,
    LocationTask,
    check_dates,
    chip_location,
)
from satmae.data.store.chipstore import remove_temporaries

logger = logging.getLogger(__name__)


def cut_locations(
    groups: Mapping[str, Sequence[Frame]],
    out: str,
    plan: ChipPlan,
    *,
    workers: int = 1,
    scheduler: str | None = None,
) -> list[LocationReport]:
    """Cut every location into its own part of the store at ``out``, skipping written parts.

    Without a ``scheduler`` no other writer can be active, so the unfinished parts of a killed
    run are removed first (with a logged warning).

    Args:
        groups: location id -> its dated frames.
        out: chip store folder or fsspec URL.
        plan: how to cut chips.
        workers: local processes (1: in this process, without dask).
        scheduler: address of a running dask scheduler for many machines.

    Returns:
        One report per location, in completion order; failed locations carry their error.

    Raises:
        ValueError: before anything is written, if there are no locations or a location's
            dates cannot give the frames or seasons ``plan`` asks for
            (:func:`~satmae.data.store.chipping.check_dates`).
    """
    refused = []
    for location, frames in sorted(groups.items()):
        try:
            check_dates(location, frames, plan)
        except ValueError as error:
            refused.append(str(error))
    if refused:  # before anything is written
        more = f" (and {len(refused) - 1} more locations)" if len(refused) > 1 else ""
        raise ValueError(refused[0] + more)
    if not groups:
        raise ValueError(f"no locations to cut into {out}: the sources hold no dated scenes")
    if scheduler is None:
        removed = remove_temporaries(out)
        if removed:
            logger.warning("removed %d unfinished part(s) of an earlier run", removed)
    tasks = [
        LocationTask(location, tuple(frames), out, plan)
        for location, frames in sorted(groups.items())
    ]
    return run_tasks(
        chip_location, tasks, scheduler=scheduler, workers=workers, description="locations"
    )
