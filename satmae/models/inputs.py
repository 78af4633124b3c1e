"""The seam from data to model: a sample or batch as read -> the inputs a model takes.

A reader returns raw reflectance with band names (``image``, ``times``, ``bands``, ``valid``;
DESIGN §3). :func:`prepare_inputs` reorders the bands by name into the model's order, drops
bands the model does not use, normalises with the model's own statistics and checks the rest,
so a model is never fed data normalised differently from its training data.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from satmae.models.config import EncoderConfig
from satmae.models.tokenizer import select_bands
from satmae.normalization import Normalization

NO_STATISTICS = (
    "this model has no normalisation statistics, so it cannot take raw reflectance; compute "
    "them for your data (satmae stats DATA --out stats.json) and attach them with "
    "model.set_normalization('stats.json'), or pass an already normalised tensor instead of a "
    "sample dict"
)


@dataclass
class ModelInputs:
    """What a model's forward pass takes, prepared from a sample or batch.

    Attributes:
        image: ``(B, T, C', H, W)`` float32 normalised, bands in model order.
        times: ``(B, T)`` int64 seconds since 1970-01-01 UTC, or ``None``.
        bands: the C' bands of ``image`` (the model bands present in the input); ``None``
            means the model's input order (``config.input_order``).
        valid: ``(B, T, H, W)`` bool valid pixels, or ``None``.
        frame_mask: ``(B, T)`` bool real frames, or ``None``.
        checked: whether :func:`check_model_inputs` has passed them (set by it).
    """

    image: Tensor
    times: Tensor | None = None
    bands: Sequence[str] | None = None
    valid: Tensor | None = None
    frame_mask: Tensor | None = None
    checked: bool = False

    def to(self, device: torch.device | str) -> ModelInputs:
        """The same inputs on ``device``."""

        def move(value: Tensor | None) -> Tensor | None:
            return None if value is None else value.to(device)

        return ModelInputs(
            self.image.to(device),
            move(self.times),
            self.bands,
            move(self.valid),
            move(self.frame_mask),
            self.checked,
        )


TENSOR_NAMES: dict[str, str] = {
    "image": "x",
    "times": "times",
    "valid": "valid",
    "frame_mask": "frame_mask",
}
"""How messages name each input given as an argument of ``forward`` / ``embed``."""

BATCH_NAMES: dict[str, str] = {key: f"batch[{key!r}]" for key in TENSOR_NAMES}
"""How messages name each input given as a key of a sample or batch dict."""

EARLIEST_TIME = -2_208_988_800
"""1900-01-01 00:00 UTC in seconds since 1970-01-01 UTC: the earliest accepted time."""

LATEST_TIME = 4_102_444_800
"""2100-01-01 00:00 UTC: the latest accepted time (sensor archives fit well inside)."""


def check_model_inputs(
    config: EncoderConfig,
    inputs: ModelInputs,
    device: torch.device | None = None,
    dtype: torch.dtype | None = None,
    names: Mapping[str, str] = TENSOR_NAMES,
    geometry: bool = True,
) -> ModelInputs:
    """The one check of model inputs, run once by every entry point before any layer.

    The content (types, shapes, values, devices) is checked once: inputs it passed carry
    ``checked`` and are not scanned again. The sizes the model's geometry needs (frames up to
    ``max_frames``, pixels divisible by the patch) are checked whenever ``geometry`` is set:
    ``prepare`` leaves them to the forward, since a whole scene is prepared before it is cut
    into windows.

    Cheap by design: shapes and dtypes are metadata; finiteness is one sum over the image
    (an element-wise pass only when that sum is not finite) and times cost a min and a max.

    Args:
        config: the model's encoder configuration.
        inputs: the inputs (``image (B, T, C, H, W)``, ``times (B, T)``, ``valid (B, T, H, W)``,
            ``frame_mask (B, T)``).
        device: the model's device; inputs elsewhere are refused. ``None`` skips this check.
        dtype: the model's weight dtype; a floating image is cast to it.
        names: how messages name each input (argument names or batch keys).
        geometry: check frames and patch divisibility (metadata only, always cheap).

    Returns:
        the inputs with the image in ``dtype``, times int64, masks bool, ``checked`` set.

    Raises:
        ValueError: naming the input, what was expected and what was given.
    """
    image = inputs.image
    name = names["image"]
    if not inputs.checked:
        inputs = _check_content(inputs, device, dtype, names)
    if geometry:
        frames, height, width = image.shape[1], image.shape[3], image.shape[4]
        if frames > config.max_frames:
            raise ValueError(
                f"the model takes at most max_frames={config.max_frames} frames, got {frames} "
                f"in {name}"
            )
        patch = config.patch_size
        if height % patch or width % patch:
            raise ValueError(
                f"image {height}x{width} is not divisible by patch_size={patch}; crop or pad {name}"
            )
    return inputs


def _check_content(
    inputs: ModelInputs,
    device: torch.device | None,
    dtype: torch.dtype | None,
    names: Mapping[str, str],
) -> ModelInputs:
    """Everything of :func:`check_model_inputs` but the sizes the model's geometry needs."""
    image = inputs.image
    name = names["image"]
    if not isinstance(image, Tensor):
        raise ValueError(
            f"expected {name} as a torch tensor of shape (B, T, C, H, W), got "
            f"{type(image).__name__}; convert arrays with torch.from_numpy, or give a sample "
            "dict of raw reflectance"
        )
    if not image.is_floating_point():
        raise ValueError(
            f"expected {name} as normalised floating-point values, got dtype {image.dtype}; raw "
            "reflectance goes in as a sample dict (the model normalises it), or cast with "
            "x.float() after normalising"
        )
    if image.ndim != 5:
        raise ValueError(
            f"expected {name} of shape (B, T, C, H, W), got {image.ndim} dimensions "
            f"{tuple(image.shape)}"
        )
    if 0 in image.shape:
        raise ValueError(
            f"{name} of shape {tuple(image.shape)} is empty; give at least one sample, frame, "
            "band and pixel"
        )
    batch, frames, _, height, width = image.shape
    if device is not None:
        _same_device(name, image, device)
    if not math.isfinite(float(image.sum(dtype=torch.float32))):  # one reduction, one sync
        bad = int((~torch.isfinite(image)).sum())
        if bad:
            raise ValueError(
                f"{name} holds {bad} NaN or inf values; mark such pixels invalid (valid=False) "
                "and fill them (e.g. with 0) before the model"
            )
    times = _check_times(inputs.times, batch, frames, names["times"], device)
    frame_mask = _check_mask(inputs.frame_mask, (batch, frames), names["frame_mask"], device)
    valid = _check_mask(inputs.valid, (batch, frames, height, width), names["valid"], device)
    return ModelInputs(
        image if dtype is None else image.to(dtype),
        times,
        inputs.bands,
        valid,
        frame_mask,
        checked=True,
    )


def _same_device(name: str, value: Tensor, device: torch.device) -> None:
    if value.device != device:
        raise ValueError(
            f"{name} is on {value.device} but the model is on {device}; move it with "
            f".to({str(device)!r}) or the model with model.to({str(value.device)!r})"
        )


def _check_mask(
    mask: Any, shape: tuple[int, ...], name: str, device: torch.device | None
) -> Tensor | None:
    """A bool mask of ``shape`` (0/1 numbers are accepted), or a ValueError naming it."""
    if mask is None:
        return None
    tensor = torch.as_tensor(_tensor(mask))
    if tuple(tensor.shape) != shape:
        raise ValueError(f"expected {name} of shape {shape}, got {tuple(tensor.shape)}")
    if device is not None:
        _same_device(name, tensor, device)
    if tensor.dtype != torch.bool:
        if tensor.is_complex() or not bool(((tensor == 0) | (tensor == 1)).all()):
            raise ValueError(
                f"{name} must be bool (or 0/1 numbers), got other {tensor.dtype} values"
            )
        tensor = tensor.bool()
    return tensor


def _check_times(
    times: Any, batch: int, frames: int, name: str, device: torch.device | None
) -> Tensor | None:
    """``(B, T)`` whole seconds since 1970-01-01 UTC between 1900 and 2100, as int64.

    Raises:
        ValueError: for another shape or dtype, non-finite or fractional values, or values
            outside 1900-2100 (milliseconds are named as the likely mistake).
    """
    if times is None:
        return None
    given = torch.as_tensor(_tensor(times))
    if tuple(given.shape) != (batch, frames):
        raise ValueError(f"expected {name} of shape ({batch}, {frames}), got {tuple(given.shape)}")
    if device is not None:
        _same_device(name, given, device)
    if given.dtype == torch.bool or given.is_complex():
        raise ValueError(
            f"{name} must be int64 seconds since 1970-01-01 UTC, got dtype {given.dtype}"
        )
    if given.is_floating_point():
        if not bool(torch.isfinite(given).all()):
            raise ValueError(f"{name} hold NaN or inf; give int64 seconds since 1970-01-01 UTC")
        if not torch.equal(given, given.round()):
            raise ValueError(f"{name} must be whole seconds since 1970-01-01 UTC, got fractions")
        if bool((given.abs() > 2.0**62).any()):
            raise ValueError(
                f"{name} from {float(given.min()):.0f} to {float(given.max()):.0f} are outside "
                "1900-2100 as seconds since 1970-01-01 UTC"
            )
    if given.dtype != torch.int64:
        given = given.to(torch.int64)
    low, high = (value.item() for value in torch.aminmax(given))
    if high > LATEST_TIME or low < EARLIEST_TIME:
        hint = "; these look like milliseconds: divide by 1000" if high > 1000 * 946_684_800 else ""
        raise ValueError(
            f"{name} from {low} to {high} are outside 1900-2100 as seconds since 1970-01-01 "
            f"UTC{hint}"
        )
    return given


def block_indices(indices: Sequence[int], depth: int, name: str = "blocks") -> list[int]:
    """Block indices in ``[0, depth)``; negative ones count from the end, as in Python.

    Raises:
        ValueError: naming ``name``, the indices outside ``[-depth, depth)`` and the depth.
    """
    if bad := [
        index
        for index in indices
        if isinstance(index, bool)
        or not isinstance(index, int | np.integer)
        or not -depth <= index < depth
    ]:
        raise ValueError(
            f"{name} {bad} are outside the model's {depth} blocks; give integers from "
            f"{-depth} to {depth - 1} (negative ones count from the end)"
        )
    return [int(index) % depth for index in indices]


def _tensor(value: Any) -> Tensor:
    return torch.from_numpy(np.asarray(value)) if isinstance(value, np.ndarray) else value


def prepare_inputs(
    config: EncoderConfig,
    normalization: Normalization | None,
    batch: Mapping[str, Any],
    device: torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> ModelInputs:
    """Turn raw reflectance as read into checked model inputs.

    Args:
        config: the model's encoder configuration (bands, groups, time fields, frames).
        normalization: the model's statistics and mode.
        device: move the inputs to this device (the model's).
        dtype: cast the image to this dtype (the model's weights).
        batch: a sample (``image (T, C, H, W)``, ``times (T,)``, ``valid (T, H, W)``) or a
            collated batch (``image (B, T, C, H, W)``, ``times (B, T)``, ``valid (B, T, H, W)``,
            ``frame_mask (B, T)``), with ``bands`` naming the C channels.

    Returns:
        the prepared inputs, passed by :func:`check_model_inputs` (messages name batch keys).

    Raises:
        ValueError: for a missing key, a wrong shape, bands that do not cover a model group,
            missing times for a temporal model, a model without statistics, or anything
            :func:`check_model_inputs` refuses (NaN or inf in the image, bad times, …).
    """
    if not isinstance(batch, Mapping):
        raise ValueError(
            f"expected a sample or batch dict with 'image' and 'bands', got {type(batch).__name__}"
        )
    if missing := [key for key in ("image", "bands") if key not in batch]:
        raise ValueError(
            f"the sample lacks {missing}; a sample is a dict with image (T, C, H, W), bands, "
            f"times and valid (DESIGN §3), got keys {sorted(batch)}"
        )
    image = torch.as_tensor(_tensor(batch["image"]))
    if image.ndim not in (4, 5):
        raise ValueError(
            f"expected image of shape (T, C, H, W) for a sample or (B, T, C, H, W) for a batch, "
            f"got {tuple(image.shape)}"
        )
    single = image.ndim == 4
    image = image[None] if single else image

    def batched(key: str, ndim: int) -> Tensor | None:
        value = batch.get(key)
        if value is None:
            return None
        tensor = torch.as_tensor(_tensor(value))
        tensor = tensor[None] if single and tensor.ndim == ndim - 1 else tensor
        if tensor.ndim != ndim or tuple(tensor.shape[:2]) != tuple(image.shape[:2]):
            raise ValueError(
                f"{key} of shape {tuple(torch.as_tensor(_tensor(value)).shape)} does not fit "
                f"image {tuple(image.shape)}: expected {ndim - single} dimensions starting "
                "with (B, T) (or (T,) for a sample)"
            )
        return tensor

    times = batched("times", 2)
    valid = batched("valid", 4)
    frame_mask = batched("frame_mask", 2)
    if valid is not None and tuple(valid.shape[2:]) != tuple(image.shape[3:]):
        raise ValueError(
            f"valid of shape {tuple(valid.shape)} does not match image {tuple(image.shape)}"
        )
    if config.temporal and times is None:
        raise ValueError(
            f"this model encodes acquisition time {config.time_fields} but the sample has no "
            "'times'; give times (T,) as int64 seconds since 1970-01-01 UTC"
        )
    if normalization is None:
        raise ValueError(NO_STATISTICS)
    bands = batch["bands"]
    names = (bands,) if isinstance(bands, str) else tuple(bands)
    selection = select_bands(config, names, image.shape[2])
    image = image[:, :, selection.flat_channels]  # (B, T, C', H, W) in model band order
    inputs = ModelInputs(
        image=normalization.apply(image, selection.bands),
        times=times,
        bands=selection.bands,
        valid=valid,
        frame_mask=frame_mask,
    )
    if device is not None:
        inputs = inputs.to(device)
    return check_model_inputs(config, inputs, device, dtype, BATCH_NAMES, geometry=False)
