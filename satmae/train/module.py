"""The pretraining LightningModule: a SatMAE fed batches as read, with schedules and guards.

The model applies its own band order and normalisation (``mae(batch)``), so the module only
chooses the mask ratio of the step, logs the named losses and optimises. Every checkpoint
carries the model spec under ``satmae_config``, so ``satmae.load_encoder("last.ckpt")`` and
``satmae export`` read it like a bundle.
"""

from __future__ import annotations

import math
from dataclasses import asdict, replace
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor

from satmae.models import MaskedAutoencoder, ModelInputs, create_model, load_mae
from satmae.models.tokenizer import select_bands
from satmae.normalization import Normalization
from satmae.spec import METADATA_KEY
from satmae.train.data import PretrainData
from satmae.train.optim import OptimizerConfig, build_optimizer
from satmae.train.sampler import rank_and_world
from satmae.train.schedules import MaskRatioSchedule, lr_scheduler


class NonFiniteLoss(RuntimeError):
    """A training loss that is NaN or infinite."""


class PretrainModule(L.LightningModule):
    """Masked-autoencoder pretraining of a registered or loaded SatMAE.

    Args:
        model: a registry name (``satmae.models.MODEL_CONFIGS``).
        overrides: config fields replacing the registry's (e.g. ``{"max_frames": 4}``).
        normalization: statistics the model applies to raw reflectance: a built-in name
            (``s2_l2a``, ``s2_l1c``), a stats file from ``satmae stats``, or a model file.
        init_from: continue from a bundle, Lightning checkpoint or official SatMAE ``.pth``
            (with its decoder) instead of building ``model``; its normalisation is kept unless
            ``normalization`` is given explicitly. ``overrides`` then replace fields of the
            loaded config that change no weight shape (e.g. ``multiscale_loss``,
            ``head_bands``, ``mask_ratio``).
        optimizer: AdamW, learning rate and warmup/cosine settings.
        mask_ratio: the mask-ratio schedule over optimisation steps.
        skip_nonfinite: skip a batch whose loss is not finite (counted in ``train/skipped``)
            instead of stopping the run.
        seed: seed of the per-step masks (``seed_everything`` does not reach them, so that a
            resumed run draws the same masks as an uninterrupted one).
        compile: compile the model with ``torch.compile`` (in place, so checkpoint keys do not
            change); worth it on GPUs for long runs.
        stats_samples: samples read to compute the statistics when ``normalization`` is
            ``null`` (as ``satmae stats`` does); they are stored in every checkpoint.
    """

    def __init__(
        self,
        model: str = "satmae_tiny",
        overrides: dict[str, Any] | None = None,
        normalization: str | None = "s2_l2a",
        init_from: str | None = None,
        optimizer: OptimizerConfig | None = None,
        mask_ratio: MaskRatioSchedule | None = None,
        skip_nonfinite: bool = False,
        seed: int = 0,
        compile: bool = False,
        stats_samples: int = 256,
    ) -> None:
        super().__init__()
        # Frozen dataclasses cannot pass through Lightning's hyperparameter logging: store dicts.
        self.save_hyperparameters(ignore=["optimizer", "mask_ratio"])
        self.model: MaskedAutoencoder = (
            _continue_from(init_from, overrides or {})
            if init_from
            else create_model(model, normalization=normalization, **(overrides or {}))
        )
        if init_from and normalization not in (None, "s2_l2a"):
            self.model.set_normalization(normalization)
        self.optimizer_config = optimizer or OptimizerConfig()
        self.mask_ratio = mask_ratio or MaskRatioSchedule(start=self.model.config.mask_ratio)
        self.hparams["optimizer"] = asdict(self.optimizer_config)
        self.hparams["mask_ratio"] = asdict(self.mask_ratio)
        self.skip_nonfinite = skip_nonfinite
        self.seed = seed
        self.skipped = 0
        self.empty_batches = 0
        self.stats_samples = stats_samples
        if compile:
            self.model.compile()

    # Steps --------------------------------------------------------------------------------

    def on_fit_start(self) -> None:
        """Check one sample against the model before the first step (bands, times, sizes)."""
        datamodule = getattr(self._trainer, "datamodule", None)
        if not isinstance(datamodule, PretrainData):
            return
        if self.model.normalization is None:
            stats = datamodule.statistics(self.model.config.bands, self.stats_samples)
            self.model.set_normalization(stats)
        model_scales = tuple(self.model.config.upsample_scales)
        data_scales = () if datamodule.multiscale is None else datamodule.multiscale.scales
        if model_scales != data_scales:
            raise ValueError(
                f"the model reconstructs scales {list(model_scales)} (upsample_scales) but the "
                f"data makes {list(data_scales)} (data.scales): set data.scales to "
                f"{list(model_scales) or 'null'}"
            )
        sample = datamodule.peek()
        try:
            inputs = self.model.prepare(sample)
            self.model.encoder.tokenize(inputs)
        except ValueError as error:
            raise ValueError(
                f"the data at {datamodule.path} does not fit the model: {error}"
            ) from None

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        """Count the batch in the data module's state, so a checkpoint knows where data stands."""
        datamodule = getattr(self._trainer, "datamodule", None)
        if isinstance(datamodule, PretrainData):
            datamodule.count_batch(self.current_epoch)

    def step_noise(self, inputs: ModelInputs) -> Tensor:
        """Masking noise of this step, a function of the seed and step only.

        Noise is drawn for the global batch of all ranks and sliced to this rank's rows, so a
        resumed run draws the same masks, and R ranks with batch B draw those of one process
        with batch R·B.
        """
        rank, world = rank_and_world()
        batch, frames = inputs.image.shape[:2]
        groups = len(select_bands(self.model.config, inputs.bands, inputs.image.shape[2]).groups)
        size = (int(inputs.image.shape[-2]), int(inputs.image.shape[-1]))
        height, width = self.model.config.patch_grid(size)
        shape = self.model.masking.noise_shape(batch, frames, groups, height * width)
        generator = torch.Generator(device=inputs.image.device)
        generator.manual_seed(self.seed * 1_000_003 + self.global_step)
        noise = torch.rand(
            (batch * world, *shape[1:]), generator=generator, device=inputs.image.device
        )
        return noise[rank * batch : (rank + 1) * batch]

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor | None:
        """One masked-autoencoder loss on a batch as read."""
        ratio = self.mask_ratio(self.global_step)
        inputs = self.model.prepare(batch)
        out = self.model(
            inputs.image,
            inputs.times,
            inputs.bands,
            inputs.valid,
            inputs.frame_mask,
            mask_ratio=ratio,
            noise=self.step_noise(inputs),
            scale_targets=self.model.prepare_scales(batch),
        )
        if not bool(out.weight.sum() > 0):
            # Every hidden token is mostly invalid (cloud, nodata, padding): the loss would be
            # a silent 0. Skip the batch and count it, so the run says how much data it lost.
            self.empty_batches += 1
            if self.empty_batches == 1:
                rank_zero_warn(
                    f"batch {batch_idx} at step {self.global_step} has no valid hidden token "
                    "(all cloud, nodata or padding); such batches are skipped and counted in "
                    "train/empty_batches. Many of them mean the data needs satmae check or a "
                    "lower min_valid_fraction"
                )
            self.log("train/empty_batches", float(self.empty_batches))
            return None
        if not bool(torch.isfinite(out.loss)):
            where = self._nonfinite_parts(out.group_losses, out.frame_losses, out.groups)
            if not self.skip_nonfinite:
                raise NonFiniteLoss(
                    f"the training loss is {out.loss.item()} at step {self.global_step} "
                    f"(batch {batch_idx}): {where}; the last checkpoint is kept. Lower the "
                    "learning rate, check the data (satmae check), or set "
                    "model.skip_nonfinite=true to skip such batches"
                )
            self.skipped += 1
            self.log("train/skipped", float(self.skipped))
            return None
        size = out.mask.shape[0]
        # The mean over ranks: R ranks with batch B log what one process with batch R·B would.
        self.log("train/loss", out.loss, prog_bar=True, batch_size=size, sync_dist=True)
        self.log("train/mask_ratio", ratio, batch_size=size)
        if self._trainer is not None and self.trainer.optimizers:
            self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], batch_size=size)
        for group, value in zip(out.groups, out.group_losses, strict=True):
            self.log(f"train/loss_group{group}", value, batch_size=size)
        for frame, value in enumerate(out.frame_losses):
            self.log(f"train/loss_frame{frame}", value, batch_size=size)
        if out.scale_losses:
            self.log("train/loss_mse", out.mse_loss, batch_size=size)
            for scale, value in out.scale_losses.items():
                self.log(f"train/loss_x{scale}", value, batch_size=size)
        loss: Tensor = out.loss
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Reconstruction loss on held-out locations, with a fixed mask per batch."""
        generator = torch.Generator(device=self.device).manual_seed(batch_idx)
        out = self.model(batch, mask_ratio=self.mask_ratio(self.global_step), generator=generator)
        self.log("val/loss", out.loss, prog_bar=True, batch_size=out.mask.shape[0])

    @staticmethod
    def _nonfinite_parts(groups: Tensor, frames: Tensor, indices: tuple[int, ...]) -> str:
        bad_groups = [
            g for g, v in zip(indices, groups.tolist(), strict=True) if not math.isfinite(v)
        ]
        bad_frames = [t for t, v in enumerate(frames.tolist()) if not math.isfinite(v)]
        return f"non-finite in band groups {bad_groups} and frames {bad_frames}"

    # Optimisation -------------------------------------------------------------------------

    def effective_batch(self) -> int:
        """Samples per optimisation step over all devices and accumulated batches."""
        trainer = self.trainer
        datamodule = getattr(trainer, "datamodule", None)
        per_device = int(getattr(datamodule, "batch_size", 1))
        return per_device * trainer.world_size * trainer.accumulate_grad_batches

    def configure_optimizers(self) -> Any:
        """AdamW on decay / no-decay groups, per-step warmup then cosine."""
        config = self.optimizer_config
        optimizer = build_optimizer(self.model, config, self.effective_batch())
        total = int(self.trainer.estimated_stepping_batches)
        scheduler = lr_scheduler(optimizer, config.warmup_steps, max(total, 1), config.min_lr_ratio)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    def configure_gradient_clipping(
        self,
        optimizer: torch.optim.Optimizer,
        gradient_clip_val: int | float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        """Clip by norm to ``optimizer.clip_grad`` when set (or the Trainer's value)."""
        value = self.optimizer_config.clip_grad or gradient_clip_val
        if value:
            self.clip_gradients(optimizer, value, gradient_clip_algorithm or "norm")

    # Checkpoints --------------------------------------------------------------------------

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store the model spec so the checkpoint reads like a bundle."""
        checkpoint[METADATA_KEY] = self.model.spec.to_json()
        checkpoint["satmae_skipped_batches"] = self.skipped
        checkpoint["satmae_empty_batches"] = self.empty_batches

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restore the skipped-batch count and the statistics the run computed or was given."""
        self.skipped = int(checkpoint.get("satmae_skipped_batches", 0))
        self.empty_batches = int(checkpoint.get("satmae_empty_batches", 0))
        stored = checkpoint.get(METADATA_KEY, {}).get("normalization")
        if stored:
            self.model.set_normalization(Normalization.from_json(stored))


def _continue_from(path: str, overrides: dict[str, Any]) -> MaskedAutoencoder:
    """A saved MAE with ``overrides`` applied to its config, weights kept.

    Raises:
        ValueError: if an override changes the shape of a weight (another architecture).
    """
    loaded = load_mae(path)
    if not overrides:
        return loaded
    model = MaskedAutoencoder(replace(loaded.config, **overrides))
    try:
        model.load_state_dict(loaded.state_dict())
    except RuntimeError as error:
        raise ValueError(
            f"model.overrides {overrides} change the architecture of {path}; with "
            f"model.init_from only fields that keep every weight's shape can change ({error})"
        ) from None
    model.encoder.normalization = loaded.encoder.normalization
    model.encoder.provenance.update(loaded.provenance)
    return model
