"""Blocks of scenes across accelerators with Lightning's predict loop.

The unit of work is the same :class:`~satmae.embed.blocks.BlockTask` the dask path runs: the
launching process plans every place's blocks, ``Trainer.predict`` runs them on ``devices``
accelerators (each rank takes every ``world_size``-th block, so no block is encoded twice),
and the launching process assembles the finished blocks into the outputs. Several devices
are driven by Lightning's ``ddp_spawn`` strategy: the ranks are spawned from this process, so
planning and assembly happen once, and a block a rank finished is on disk (atomically) for
``resume`` whatever happens to the other ranks.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
from torch.utils.data import DataLoader

from satmae.embed.blocks import BlockTask, block_path, blocks_folder, embed_block
from satmae.models.encoder import SatMAEEncoder


class BlockPredictor(L.LightningModule):
    """Runs block tasks with an encoder that Lightning places on each rank's device.

    Args:
        encoder: the encoder every block is embedded with.
        blocks: all blocks of the run; rank ``r`` of ``w`` takes ``blocks[r::w]``.
    """

    def __init__(self, encoder: SatMAEEncoder, blocks: Sequence[BlockTask]) -> None:
        super().__init__()
        self.encoder = encoder.eval()
        self.blocks = list(blocks)

    def predict_dataloader(self) -> DataLoader[BlockTask]:
        """This rank's share of the blocks, one block per step."""
        rank, world = self.trainer.global_rank, self.trainer.world_size
        mine = self.blocks[rank::world]
        return DataLoader(mine, batch_size=None, collate_fn=_identity)  # type: ignore[arg-type]

    def transfer_batch_to_device(self, batch: Any, device: Any, dataloader_idx: int) -> Any:
        """A block task is a description, not tensors: the block moves its own windows."""
        return batch

    def predict_step(self, task: BlockTask, batch_idx: int) -> str:
        """Embed one block with this rank's encoder; returns the block file's path."""
        return str(embed_block(task, encoder=self.encoder))


def _identity(task: BlockTask) -> BlockTask:
    return task


def predict_blocks(
    encoder: SatMAEEncoder,
    blocks: Sequence[BlockTask],
    *,
    devices: int | str = 1,
    accelerator: str = "auto",
    progress: bool = True,
) -> list[Path]:
    """Embed ``blocks`` on ``devices`` accelerators with ``Trainer.predict``.

    Args:
        encoder: the encoder (moved to each rank's device by Lightning).
        blocks: the blocks to embed (from :func:`satmae.embed.blocks.plan_blocks`).
        devices: how many devices (or Lightning's ``"auto"`` / a list spelled as text).
        accelerator: ``"auto"``, ``"gpu"``, ``"cpu"``, ... as Lightning takes it.
        progress: Lightning's progress bar.

    Returns:
        the block files, on disk when this returns.

    Raises:
        ValueError: for fewer than one device.
    """
    if isinstance(devices, int) and devices < 1:
        raise ValueError(f"devices must be at least 1, got {devices}")
    if not blocks:
        return []
    several = devices == "auto" or not isinstance(devices, int) or devices > 1
    trainer = L.Trainer(
        accelerator=accelerator,
        devices=devices,
        strategy="ddp_spawn" if several else "auto",
        precision="32-true",  # each block applies its own inference precision
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=progress,
        enable_model_summary=False,
        use_distributed_sampler=False,
    )
    predictor = BlockPredictor(encoder, blocks)
    results: Any = trainer.predict(predictor, return_predictions=not several)
    if several:  # spawned ranks return nothing; their blocks are on disk
        return [block_path(blocks_folder(task.place.target), task.rows) for task in blocks]
    return [Path(path) for path in results or []]
