"""Atomic file writes: an output is either the old one or the complete new one.

A run that is killed while writing leaves at most a hidden temporary beside the target, never a
truncated file under the target's name. Only a regular file is ever replaced: a symlink, a
folder, a FIFO or a device at the target is refused, so an output path typed wrong cannot
destroy something else. Outputs get the permissions the user's umask allows (temporary files
are created private).
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

    Raises:
        FileExistsError: if ``target`` exists and is not a regular file.
    """
    destination = Path(target)
    _refuse_non_regular(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(
        prefix=f".{destination.name}.", suffix=".tmp", dir=destination.parent
    )
    os.close(handle)
    staging = Path(name)
    try:
        yield staging
        _refuse_non_regular(destination)
        os.chmod(staging, 0o666 & ~_umask())
        os.replace(staging, destination)
    finally:
        staging.unlink(missing_ok=True)


def _refuse_non_regular(path: Path) -> None:
    """Raise unless ``path`` is absent or a regular file (not a link to one)."""
    if path.is_symlink() or (path.exists() and not path.is_file()):
        kind = "a symbolic link" if path.is_symlink() else "not a regular file"
        raise FileExistsError(
            f"{path} exists and is {kind}; satmae replaces only regular files it could have "
            "written: choose another output path"
        )


def _umask() -> int:
    """The process's file-creation mask (read by setting it and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
