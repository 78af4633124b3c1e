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

from collections.abc import Mapping, Sequence
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


def validate_sample(sample: Mapping[str, Any], *, temporal: bool = True) -> None:
    """Check that a dict honours the sample contract; raise a ValueError naming the problem.

    ``image`` must be a float ``(T, C, H, W)`` tensor and ``bands`` C canonical band names;
    ``times`` (int64 ``(T,)``) and ``valid`` (bool ``(T, H, W)``) are checked when present.

    Args:
        sample: the sample to check.
        temporal: whether ``times`` is required (models with a temporal encoding need it).

    Raises:
        ValueError: naming the key, what was expected, what was given and how to fix it.
    """
    if "image" not in sample:
        raise ValueError(f"sample has no 'image'; keys are {sorted(sample)}")
    image = _contract_tensor(sample, "image")
    if image.ndim != 4:
        raise ValueError(
            f"expected image of shape (T, C, H, W), got {tuple(image.shape)}; add the missing "
            "axes, e.g. image[None] for a single date"
        )
    frames, channels, height, width = image.shape
    bands = sample.get("bands")
    if bands is None:
        raise ValueError("sample has no 'bands'; every image must name its channels")
    if not isinstance(bands, tuple | list):
        raise ValueError(
            f"'bands' must be a tuple of band names, got {type(bands).__name__} {bands!r}; "
            'write e.g. ("B02", "B03", "B04")'
        )
    canonical = canonical_bands(bands)
    if canonical != tuple(bands):
        raise ValueError(
            f"'bands' must use canonical names: expected {canonical}, got {tuple(bands)}; "
            "translate them with satmae.bands.canonical_bands"
        )
    if len(bands) != channels:
        raise ValueError(
            f"image has {channels} channels but bands names {len(bands)}: {bands}; name each "
            "channel of image once, in order"
        )
    if sample.get("times") is None:
        if temporal:
            raise ValueError(
                "sample has no 'times' but the model needs acquisition times; add 'times' as "
                "int64 (T,) seconds since 1970-01-01 UTC (see to_epoch_seconds)"
            )
    elif tuple((times := _contract_tensor(sample, "times")).shape) != (frames,):
        raise ValueError(
            f"expected times of shape ({frames},), one per frame of image, got {tuple(times.shape)}"
        )
    if sample.get("valid") is not None:
        valid = _contract_tensor(sample, "valid")
        if tuple(valid.shape) != (frames, height, width):
            raise ValueError(
                f"expected valid of shape ({frames}, {height}, {width}) to match image, got "
                f"{tuple(valid.shape)}"
            )


_DTYPES: dict[str, tuple[str, tuple[torch.dtype, ...], str]] = {
    "image": (
        "float",
        (torch.float32, torch.float64, torch.float16, torch.bfloat16),
        "image.float()",
    ),
    "times": ("int64", (torch.int64,), "torch.as_tensor(times, dtype=torch.int64)"),
    "valid": ("bool", (torch.bool,), "valid != 0 or satmae.data.validity.valid_mask(image)"),
}
"""Per contract tensor key: the dtype in words, the dtypes accepted, how to convert a value."""


def _contract_tensor(sample: Mapping[str, Any], key: str) -> Tensor:
    """``sample[key]``, checked to be a tensor of the contract's dtype for ``key``."""
    value = sample[key]
    expected, accepted, fix = _DTYPES[key]
    if not isinstance(value, Tensor) or value.dtype not in accepted:
        given = value.dtype if isinstance(value, Tensor) else type(value).__name__
        raise ValueError(
            f"'{key}' must be a tensor of dtype {expected}, got {given}; convert it with {fix}"
        )
    return value


FRAME_AXIS_KEYS: tuple[str, ...] = ("image", "times", "valid")
"""Sample keys whose first axis is time T (padded when series of different lengths meet)."""

OPTIONAL_CONTRACT_KEYS: tuple[str, ...] = ("times", "valid")
"""Contract keys a batch has in every sample or in none."""


def collate_samples(samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Check the sample contract and stack samples into a batch.

    Tensors gain a leading B axis, other values become lists. Every sample must pass
    :func:`validate_sample` (``times`` optional); ``bands`` must agree across the batch (a mixed
    batch has no single channel order) and is kept as one tuple; images must have one size;
    ``times`` and ``valid`` are in every sample or in none; the first sample's other keys must
    be in every sample. Series of different lengths are padded at the end of the time axis to
    the longest one: padded frames are zero in ``image``, 0 in ``times`` and False in
    ``valid``, and the batch gains ``frame_mask (B, T)``, True for real frames, which the model
    uses to keep padding out of attention and loss.

    Raises:
        ValueError: naming the sample index and the key if a sample breaks the contract or
            disagrees with the first sample, or if other tensors have different shapes.
    """
    if not samples:
        raise ValueError("cannot collate an empty list of samples")
    for index, sample in enumerate(samples):
        try:
            validate_sample(sample, temporal=False)
        except ValueError as error:
            raise ValueError(f"sample {index} of the batch: {error}") from None
    _check_samples_agree(samples)
    first = samples[0]
    lengths = [int(sample["image"].shape[0]) for sample in samples]
    frames = max(lengths)
    padded = min(lengths) != frames
    batch: dict[str, Any] = {}
    for key in first:
        values = [sample[key] for sample in samples]
        if key == "bands":
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


def _check_samples_agree(samples: Sequence[Mapping[str, Any]]) -> None:
    """Raise a ValueError naming the first sample that does not batch with ``samples[0]``."""
    first = samples[0]
    bands = tuple(first["bands"])
    size = tuple(first["image"].shape[-2:])
    for index, sample in enumerate(samples[1:], start=1):
        if tuple(sample["bands"]) != bands:
            raise ValueError(
                f"sample {index} of the batch names bands {tuple(sample['bands'])} but sample 0 "
                f"names {bands}; select the same bands in the same order for every sample "
                "(e.g. read with bands=...)"
            )
        if tuple(sample["image"].shape[-2:]) != size:
            raise ValueError(
                f"sample {index} of the batch has an image of {tuple(sample['image'].shape[-2:])} "
                f"pixels (H, W) but sample 0 has {size}; read or crop every sample to one size"
            )
        for key in OPTIONAL_CONTRACT_KEYS:
            if (first.get(key) is None) != (sample.get(key) is None):
                has, lacks = (0, index) if first.get(key) is not None else (index, 0)
                raise ValueError(
                    f"sample {has} of the batch has {key!r} but sample {lacks} has none; give "
                    f"{key!r} to every sample of a batch or to none"
                )
        if missing := [key for key in first if key not in sample]:
            raise ValueError(
                f"sample {index} of the batch lacks {missing} that sample 0 has; give every "
                "sample the same keys or drop them before collating"
            )


def _pad_frames(value: Tensor, frames: int) -> Tensor:
    """Zero-pad the first (time) axis of ``value`` to ``frames`` entries."""
    missing = frames - value.shape[0]
    if missing == 0:
        return value
    padding = torch.zeros((missing, *value.shape[1:]), dtype=value.dtype)
    return torch.cat([value, padding])
