"""Turn torchgeo samples (``RasterDataset``, ``Sentinel2``, ``SSL4EOS12``, ...) into our samples.

torchgeo images carry no band names, so the bands come from the dataset (``dataset.bands``) or
the caller. Geo keys differ between versions and both are accepted:

- 0.8.x ``GeoDataset``: ``crs`` (a rasterio CRS) and ``bounds`` (the query: a tuple of three
  slices ``x, y, t``; older releases a ``BoundingBox(minx, maxx, miny, maxy, mint, maxt)``);
- 0.10.x: ``bounds`` and ``transform`` as tensors and no ``crs`` (pass ``crs=dataset.crs``).

``SSL4EOS12`` concatenates its seasons along channels ``(S*C, H, W)``; give ``frames=S`` to
split them into ``(S, C, H, W)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
import torch
from affine import Affine
from rasterio.crs import CRS
from torch import Tensor

from satmae.bands import canonical_bands
from satmae.data.sample import Sample, to_epoch_seconds
from satmae.data.validity import DEFAULT_NODATA, apply_validity

_EARLIEST = to_epoch_seconds("1970-01-02")
_LATEST = to_epoch_seconds("2200-01-01")


def _seconds(value: Any) -> int | None:
    """Epoch seconds of a torchgeo time bound, None when it is open-ended or missing."""
    if value is None:
        return None
    if hasattr(value, "to_pydatetime"):  # pandas Timestamp
        value = value.to_pydatetime()
    if isinstance(value, datetime):
        try:
            seconds = to_epoch_seconds(value)
        except (OverflowError, ValueError, OSError):
            return None
    else:
        seconds = int(float(value))
    return seconds if _EARLIEST <= seconds <= _LATEST else None


def _geo_from_bounds(bounds: Any) -> tuple[tuple[float, float, float, float], int | None] | None:
    """((left, bottom, right, top), time) from 0.8 slices, a BoundingBox or a 6-vector."""
    if isinstance(bounds, tuple) and bounds and all(isinstance(s, slice) for s in bounds):
        x, y = bounds[0], bounds[1]
        time = _seconds(bounds[2].start) if len(bounds) > 2 else None
        return (float(x.start), float(y.start), float(x.stop), float(y.stop)), time
    if hasattr(bounds, "minx"):
        box = (float(bounds.minx), float(bounds.miny), float(bounds.maxx), float(bounds.maxy))
        return box, _seconds(getattr(bounds, "mint", None))
    values = np.asarray(bounds.cpu() if isinstance(bounds, Tensor) else bounds, dtype=np.float64)
    values = values.reshape(-1)
    if values.size >= 4:
        box = (float(values[0]), float(values[2]), float(values[1]), float(values[3]))
        return box, _seconds(values[4]) if values.size >= 6 else None
    return None


def from_torchgeo(
    sample: dict[str, Any],
    bands: Sequence[str],
    *,
    frames: int = 1,
    times: Sequence[datetime | str | int] | None = None,
    crs: CRS | str | None = None,
    nodata: float | None = DEFAULT_NODATA,
    location: str | None = None,
) -> Sample:
    """Convert a torchgeo sample into a sample of the DESIGN §3 contract.

    Args:
        sample: a torchgeo sample with ``image`` ``(C, H, W)``, ``(T, C, H, W)`` or
            ``(T*C, H, W)`` and, for geo datasets, ``crs``/``bounds``/``transform``.
        bands: names of the C channels in order (torchgeo: ``dataset.bands``), any spelling.
        frames: number of dates concatenated along channels (``SSL4EOS12(seasons=S)``: S).
        times: acquisition times, one per frame; default the sample's time bound if known.
        crs: CRS for 0.10 samples, which carry none (``dataset.crs``).
        nodata: value marking missing pixels (all bands) for the valid mask.
        location: location id stored in the sample.

    Returns:
        The converted sample; ``times`` only if known; ``mask``/``label`` passed through.

    Raises:
        ValueError: if the channel count does not match ``bands`` and ``frames``.
    """
    names = canonical_bands(bands)
    # a copy: the validity rule zero-fills invalid pixels in place, never in the caller's tensor
    image = torch.as_tensor(sample["image"]).to(torch.float32, copy=True)
    if image.ndim == 3:
        channels, height, width = image.shape
        if channels != frames * len(names):
            raise ValueError(
                f"torchgeo image has {channels} channels but bands={list(names)} x "
                f"frames={frames} gives {frames * len(names)}; pass the dataset's bands and, "
                "for SSL4EOS12, frames=seasons"
            )
        image = image.reshape(frames, len(names), height, width)  # (T, C, H, W)
    elif image.ndim != 4 or image.shape[1] != len(names):
        raise ValueError(
            f"expected a torchgeo image (C, H, W) or (T, C, H, W) with C={len(names)} "
            f"for bands {list(names)}, got {tuple(image.shape)}"
        )
    frame_count, _, height, width = image.shape
    valid = apply_validity(image, nodata=nodata)
    result: Sample = {"image": image, "bands": names, "valid": valid}
    time = None
    geo_crs = sample.get("crs", crs)
    if "transform" in sample:
        coefficients = np.asarray(torch.as_tensor(sample["transform"]).cpu(), dtype=np.float64)
        transform = Affine(*coefficients.reshape(-1)[:6])
        left, top = transform @ (0, 0)
        right, bottom = transform @ (width, height)
        result["transform"] = tuple(transform)[:6]
        result["bounds"] = (min(left, right), min(bottom, top), max(left, right), max(bottom, top))
        if "bounds" in sample and (parsed := _geo_from_bounds(sample["bounds"])) is not None:
            time = parsed[1]
    elif "bounds" in sample and (parsed := _geo_from_bounds(sample["bounds"])) is not None:
        (left, bottom, right, top), time = parsed
        transform = Affine((right - left) / width, 0, left, 0, -(top - bottom) / height, top)
        result["transform"] = tuple(transform)[:6]
        result["bounds"] = (left, bottom, right, top)
    if geo_crs is not None:
        result["crs"] = CRS.from_user_input(geo_crs).to_wkt()
    if times is not None:
        if len(times) != frame_count:
            raise ValueError(f"got {len(times)} times for {frame_count} frames; give one per frame")
        stamps = [t if isinstance(t, int) else to_epoch_seconds(t) for t in times]
        result["times"] = torch.tensor(stamps, dtype=torch.int64)
    elif time is not None and frame_count == 1:
        result["times"] = torch.tensor([time], dtype=torch.int64)
    for key in ("mask", "label"):
        if key in sample:
            result[key] = torch.as_tensor(sample[key])  # type: ignore[literal-required]
    if location is not None:
        result["location"] = location
    return result
