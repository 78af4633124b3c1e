"""Reconstruction figures of ``satmae pretrain``, and what its callbacks share.

:class:`ReconstructionFigures` draws inputs, hidden patches and reconstructions of a fixed batch
every N steps into the run folder (and TensorBoard when that is the logger). It works with any
LightningModule whose ``model`` is a :class:`~satmae.models.MaskedAutoencoder`, such as
:class:`~satmae.train.module.PretrainModule`; :mod:`satmae.train.throughput` holds the other
callback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities.types import STEP_OUTPUT
from matplotlib.image import imsave
from torch import Tensor

from satmae.io import atomic_path
from satmae.models import MaskedAutoencoder
from satmae.train.figures import Reconstruction, figure_pixels, reconstruction_figure

FIGURE_SEED = 0
"""Seed of the mask drawn for every reconstruction figure (the same patches each time)."""


def masked_autoencoder(pl_module: L.LightningModule) -> MaskedAutoencoder:
    """The :class:`MaskedAutoencoder` that ``pl_module`` trains (its ``model`` attribute).

    Raises:
        TypeError: if ``pl_module.model`` is not a masked autoencoder.
    """
    model = getattr(pl_module, "model", None)
    if not isinstance(model, MaskedAutoencoder):
        raise TypeError(
            f"satmae callbacks need a LightningModule whose .model is a satmae "
            f"MaskedAutoencoder (such as satmae.train.PretrainModule); "
            f"{type(pl_module).__name__}.model is {type(model).__name__}"
        )
    return model


def current_mask_ratio(pl_module: L.LightningModule, step: int) -> float:
    """The mask ratio the module trains with at ``step`` (its schedule, else the config's)."""
    schedule = getattr(pl_module, "mask_ratio", None)
    if callable(schedule):
        return float(schedule(step))
    return float(masked_autoencoder(pl_module).config.mask_ratio)


# Throughput --------------------------------------------------------------------------------


def _first_samples(batch: Any, count: int) -> dict[str, Any]:
    """The first ``count`` samples of a collated batch, on the host."""
    size = int(batch["image"].shape[0])
    taken: dict[str, Any] = {}
    for key, value in batch.items():
        if isinstance(value, Tensor) and value.ndim and value.shape[0] == size:
            taken[key] = value[:count].detach().cpu().clone()
        elif isinstance(value, list) and len(value) == size:
            taken[key] = value[:count]
        else:
            taken[key] = value  # shared by the batch, e.g. bands
    return taken


def _first_validation_batch(trainer: L.Trainer, count: int) -> dict[str, Any] | None:
    """The first ``count`` samples of the datamodule's validation data, or ``None``."""
    datamodule = getattr(trainer, "datamodule", None)
    if datamodule is None or trainer.limit_val_batches == 0:
        return None
    try:
        loader = datamodule.val_dataloader()
    except NotImplementedError:  # LightningDataModule's default: no validation data
        return None
    for batch in loader:
        return _first_samples(batch, count)
    return None


class ReconstructionFigures(L.Callback):
    """Draw reconstructions of a fixed batch every N optimisation steps and at the end of fit.

    The batch is the first ``samples`` samples of the first validation batch (of the current
    training batch when there is no validation data), with the same seeded mask every time.
    Each call writes ``<run folder>/<dirname>/step{step:08d}.png`` atomically, the run folder
    being ``trainer.log_dir`` (``default_root_dir`` without a logger), and adds the image to
    TensorBoard when a logger is a ``TensorBoardLogger``. See
    :func:`satmae.train.figures.reconstruction_figure` for the layout. Drawn on rank 0 only, in
    eval mode without gradients; the module's train mode is restored.

    Args:
        every_n_steps: optimisation steps between figures.
        samples: samples drawn (one row per sample and frame).
        dirname: folder of the PNGs inside the run folder.
    """

    def __init__(
        self, every_n_steps: int = 100, samples: int = 2, dirname: str = "figures"
    ) -> None:
        super().__init__()
        if every_n_steps < 1:
            raise ValueError(f"figures.every_n_steps must be at least 1, got {every_n_steps}")
        if samples < 1:
            raise ValueError(f"figures.samples must be at least 1, got {samples}")
        self.every_n_steps = every_n_steps
        self.samples = samples
        self.dirname = dirname
        self.directory: Path | None = None
        self.written: list[Path] = []
        self._batch: dict[str, Any] | None = None
        self._last_step = -1

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Find the run folder (on every rank: ``trainer.log_dir`` is a collective)."""
        if stage == "fit":
            masked_autoencoder(pl_module)
            self.directory = Path(trainer.log_dir or trainer.default_root_dir) / self.dirname

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Fix the batch: the first validation samples when there are any."""
        if trainer.is_global_zero and self._batch is None:
            self._batch = _first_validation_batch(trainer, self.samples)

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: STEP_OUTPUT,
        batch: Any,
        batch_idx: int,
    ) -> None:
        """Draw every ``every_n_steps`` optimisation steps."""
        if not trainer.is_global_zero:
            return
        if self._batch is None:
            self._batch = _first_samples(batch, self.samples)
        step = trainer.global_step
        if step % self.every_n_steps == 0 and step != self._last_step:
            self.draw(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Draw the final state unless this step was just drawn."""
        drawn = trainer.global_step == self._last_step
        if trainer.is_global_zero and self._batch is not None and not drawn:
            self.draw(trainer, pl_module)

    def draw(self, trainer: L.Trainer, pl_module: L.LightningModule) -> Path:
        """Reconstruct the fixed batch, write the PNG and log it; return the PNG's path."""
        if self._batch is None or self.directory is None:
            raise RuntimeError("ReconstructionFigures draws during fit, after the first batch")
        step = trainer.global_step
        data = self._reconstruct(trainer, pl_module)
        figure = reconstruction_figure(data, title=f"step {step}")
        pixels = figure_pixels(figure)
        path = self.directory / f"step{step:08d}.png"
        with atomic_path(path) as staging:
            imsave(staging, pixels, format="png")
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image(
                    f"{self.dirname}/reconstruction", pixels, global_step=step, dataformats="HWC"
                )
        self._last_step = step
        self.written.append(path)
        return path

    def _reconstruct(self, trainer: L.Trainer, pl_module: L.LightningModule) -> Reconstruction:
        assert self._batch is not None
        model = masked_autoencoder(pl_module)
        device = pl_module.device
        batch = trainer.precision_plugin.convert_input(self._batch)
        batch = trainer.strategy.batch_to_device(batch, device)
        ratio = current_mask_ratio(pl_module, trainer.global_step)
        was_training = pl_module.training
        pl_module.eval()
        try:
            with torch.no_grad(), trainer.precision_plugin.val_step_context():
                inputs = model.prepare(batch)
                out = model(
                    batch,
                    mask_ratio=ratio,
                    generator=torch.Generator(device).manual_seed(FIGURE_SEED),
                )
                rebuilt = model.reconstruct_scales(
                    batch,
                    mask=out.mask,
                    generator=torch.Generator(device).manual_seed(FIGURE_SEED),
                    keep_visible=True,
                )
        finally:
            pl_module.train(was_training)
        order = tuple(inputs.bands or model.config.input_order)
        channels = [order.index(band) for band in out.bands]
        return Reconstruction.from_tensors(
            inputs.image[:, :, channels],
            rebuilt.pop(1),
            out.mask,
            out.bands,
            [model.config.band_groups[group] for group in out.groups],
            frame_mask=inputs.frame_mask,
            times=inputs.times,
            scales=rebuilt,
        )
