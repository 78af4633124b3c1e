"""Atomic file writes: an output is either the old one or the complete new one.

A run that is killed while writing leaves at most a hidden temporary beside the target, never a
truncated file under the target's name.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; move it onto ``target`` when the block succeeds.

    The temporary lives in the target's folder (same file system, so the final
    :func:`os.replace` is atomic) and is removed if the block raises.

    Args:
        target: the file to write.
    """
    destination = Path(target)
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(
        prefix=f".{destination.name}.", suffix=".tmp", dir=destination.parent
    )
    os.close(handle)
    staging = Path(name)
    try:
        yield staging
        os.replace(staging, destination)
    finally:
        staging.unlink(missing_ok=True)
