"""Run data-preparation tasks in this process, on a local dask cluster, or on a remote one.

Every task is independent (one scene, location or city each) and writes its own output, so a
failed or killed task costs only its own work: rerunning skips what is already written.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from tqdm.auto import tqdm

Item = TypeVar("Item")
Result = TypeVar("Result")


def run_tasks(
    function: Callable[[Item], Result],
    items: Sequence[Item],
    *,
    scheduler: str | None = None,
    workers: int = 1,
    description: str = "tasks",
    progress: bool = True,
) -> list[Result]:
    """Apply ``function`` to every item, with a progress bar; results come in completion order.

    Args:
        function: a picklable (module-level) function of one item.
        items: the work.
        scheduler: address of a running dask scheduler (``tcp://host:8786``) to spread the
            tasks over many machines; None runs locally.
        workers: local processes when no scheduler is given; 1 runs in this process without
            dask (easiest to debug).
        description: progress-bar label.
        progress: show the progress bar.

    Returns:
        One result per item.
    """
    bar = tqdm(total=len(items), desc=description, unit="task", disable=not progress)
    if scheduler is None and workers <= 1:
        results = []
        for item in items:
            results.append(function(item))
            bar.update()
        bar.close()
        return results

    distributed: Any = importlib.import_module("dask.distributed")  # untyped; loaded on demand
    cluster: Any = None
    if scheduler is None:
        cluster = distributed.LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
        client = distributed.Client(cluster)
    else:
        client = distributed.Client(scheduler)
    try:
        futures = client.map(function, list(items), pure=False)
        results = []
        for future in distributed.as_completed(futures):
            results.append(future.result())
            bar.update()
        return results
    finally:
        bar.close()
        client.close()
        if cluster is not None:
            cluster.close()
