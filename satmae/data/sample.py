"""The sample contract shared by readers, datasets, models and tasks (DESIGN §3).

A sample is a plain dict, torchgeo-style, so torchgeo datasets and ours compose:

- ``image``: float32 ``(T, C, H, W)``, reflectance x 10000 without offset (as stored by
  Sentinel-2 products before processing baseline 04.00; readers remove the later offset).
- ``times``: int64 ``(T,)`` seconds since 1970-01-01 UTC (absent only for undated images, which
  models without a temporal encoding accept).
- ``bands``: tuple of C canonical band names, in the order of ``image``'s C axis.
- ``valid``: bool ``(T, H, W)``; False for nodata, cloud, shadow and padding.
- optional geo keys: ``crs`` (WKT or EPSG string), ``transform`` (6 affine coefficients of the
  pixel grid), ``bounds`` (left, bottom, right, top), ``location`` (an id).
- ``harmonized`` (set by the raster readers): one dict per frame saying which Sentinel-2
  offset was removed and where it was declared (``{"offset": {"B02": -1000.0, ...},
  "source": ".../MTD_MSIL2A.xml"}``), ``{}`` where none was found; see
  :mod:`satmae.data.readers.offset`.

Batches stack to ``(B, T, C, H, W)``; :func:`collate_samples` does that for a DataLoader.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NotRequired, TypedDict

import numpy as np
import torch
from torch import Tensor

from satmae.bands import canonical_bands


class Sample(TypedDict):
    """One multispectral time series of one place (see the module docstring)."""

    image: Tensor  # (T, C, H, W) float32
    times: NotRequired[Tensor]  # (T,) int64 seconds since epoch; absent for undated images
    bands: tuple[str, ...]
    valid: Tensor  # (T, H, W) bool
    crs: NotRequired[str]
    transform: NotRequired[tuple[float, ...]]
    bounds: NotRequired[tuple[float, float, float, float]]
    location: NotRequired[str]
    label: NotRequired[Tensor]  # class index () or multi-hot (K,)
    label_names: NotRequired[tuple[str, ...]]  # the label as class names, when known
    mask: NotRequired[Tensor]  # (1, H, W) per-pixel target, e.g. OSCD change
    harmonized: NotRequired[tuple[dict[str, Any], ...]]  # per frame: the offset removed, or {}


def to_epoch_seconds(moment: datetime | np.datetime64 | str) -> int:
    """Convert a date or datetime to int64 seconds since 1970-01-01 UTC.

    Naive datetimes and date-only strings are taken as UTC (date-only means 00:00).

    Raises:
        ValueError: if a string cannot be parsed as an ISO 8601 date or datetime.
    """
    if isinstance(moment, np.datetime64):
        return int(moment.astype("datetime64[s]").astype(np.int64))
    if isinstance(moment, str):
        text = moment.strip().replace("Z", "+00:00")
        try:
            if len(text) == 8 and text.isdigit():  # YYYYMMDD, as in OSCD and S2 product names
                moment = datetime.strptime(text, "%Y%m%d")
            else:
                moment = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(
                f"cannot parse date {moment!r}; write it as ISO 8601 (2021-06-15 or "
                "2021-06-15T10:30:00Z) or YYYYMMDD"
            ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def from_epoch_seconds(seconds: int) -> datetime:
    """Inverse of :func:`to_epoch_seconds`: an aware UTC datetime."""
    return datetime.fromtimestamp(int(seconds), tz=UTC)


def one_date_sample(
    image: Tensor,
    bands: tuple[str, ...],
    valid: Tensor,
    *,
    location: str | None = None,
    time: int | None = None,
) -> Sample:
    """Assemble a one-date sample: ``image (1, C, H, W)``, ``valid (1, H, W)``, optional time.

    ``times (1,)`` is set only when ``time`` (seconds since epoch) is known; geo keys are the
    caller's to add (e.g. :meth:`satmae.data.grid.Grid.attach`).
    """
    sample: Sample = {"image": image, "bands": bands, "valid": valid}
    if location is not None:
        sample["location"] = location
    if time is not None:
        sample["times"] = torch.tensor([time], dtype=torch.int64)
    return sample


def validate_sample(sample: dict[str, Any], *, temporal: bool = True) -> None:
    """Check that a dict honours the sample contract; raise a ValueError naming the problem.

    Args:
        sample: the sample to check.
        temporal: whether ``times`` is required (models with a temporal encoding need it).
    """
    if "image" not in sample:
        raise ValueError(f"sample has no 'image'; keys are {sorted(sample)}")
    image = sample["image"]
    if not isinstance(image, Tensor) or image.ndim != 4:
        shape = tuple(image.shape) if hasattr(image, "shape") else type(image).__name__
        raise ValueError(f"expected image of shape (T, C, H, W), got {shape}")
    frames, channels, height, width = image.shape
    bands = sample.get("bands")
    if bands is None:
        raise ValueError("sample has no 'bands'; every image must name its channels")
    canonical_bands(bands)
    if len(bands) != channels:
        raise ValueError(f"image has {channels} channels but bands names {len(bands)}: {bands}")
    times = sample.get("times")
    if times is None:
        if temporal:
            raise ValueError("sample has no 'times' but the model needs acquisition times")
    elif tuple(times.shape) != (frames,):
        raise ValueError(f"expected times of shape ({frames},), got {tuple(times.shape)}")
    valid = sample.get("valid")
    if valid is not None and tuple(valid.shape) != (frames, height, width):
        raise ValueError(
            f"expected valid of shape ({frames}, {height}, {width}), got {tuple(valid.shape)}"
        )


FRAME_AXIS_KEYS: tuple[str, ...] = ("image", "times", "valid")
"""Sample keys whose first axis is time T (padded when series of different lengths meet)."""


def collate_samples(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack samples into a batch: tensors gain a leading B axis, other values become lists.

    ``bands`` must agree across the batch (a mixed batch has no single channel order); it is
    kept as one tuple. Series of different lengths are padded at the end of the time axis to
    the longest one: padded frames are zero in ``image``, 0 in ``times`` and False in
    ``valid``, and the batch gains ``frame_mask (B, T)``, True for real frames, which the model
    uses to keep padding out of attention and loss.

    Raises:
        ValueError: if samples name different bands or tensors other than the time axis of
            ``image``/``times``/``valid`` have different shapes.
    """
    if not samples:
        raise ValueError("cannot collate an empty list of samples")
    first = samples[0]
    lengths = [int(sample["image"].shape[0]) for sample in samples] if "image" in first else []
    frames = max(lengths, default=0)
    padded = bool(lengths) and min(lengths) != frames
    batch: dict[str, Any] = {}
    for key in first:
        values = [sample[key] for sample in samples]
        if key == "bands":
            if any(tuple(v) != tuple(values[0]) for v in values):
                raise ValueError(
                    f"samples in one batch name different bands: {set(map(tuple, values))}"
                )
            batch[key] = tuple(values[0])
        elif isinstance(values[0], Tensor):
            if padded and key in FRAME_AXIS_KEYS:
                values = [_pad_frames(value, frames) for value in values]
            shapes = {tuple(v.shape) for v in values}
            if len(shapes) > 1:
                raise ValueError(f"cannot stack {key!r} of different shapes {sorted(shapes)}")
            batch[key] = torch.stack(values)
        else:
            batch[key] = values
    if padded:
        batch["frame_mask"] = torch.arange(frames) < torch.tensor(lengths)[:, None]  # (B, T)
    return batch


def _pad_frames(value: Tensor, frames: int) -> Tensor:
    """Zero-pad the first (time) axis of ``value`` to ``frames`` entries."""
    missing = frames - value.shape[0]
    if missing == 0:
        return value
    padding = torch.zeros((missing, *value.shape[1:]), dtype=value.dtype)
    return torch.cat([value, padding])
