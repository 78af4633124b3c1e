"""Checkpoints written atomically: a killed run leaves the previous file, never a partial one.

Writes go through :func:`satmae.io.atomic_path`: a run killed while writing leaves a hidden
temporary beside the checkpoint (``.NAME.XXXXXXXX.tmp``), which the next write of that
checkpoint removes, and two processes never write the same checkpoint at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.plugins.io import TorchCheckpointIO

from satmae.io import atomic_path


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's torch checkpoint I/O, writing through a temporary file and a rename."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None
    ) -> None:
        """Write ``checkpoint`` to ``path``: the old file or the whole new one, nothing between."""
        if storage_options is not None:
            raise TypeError(
                f"{type(self).__name__} takes no storage_options, got {storage_options!r}"
            )
        with atomic_path(Path(path)) as staging:
            torch.save(checkpoint, staging)
