"""Change maps of one test city: both dates, a false-colour view, and predicted vs reference.

Composites use :func:`satmae.viz.composite` (bands by name, 2-98 % stretch). The overlay draws
true positives, false positives and false negatives of the change class in distinct colours
over a dimmed date-2 true-colour image.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from torch import Tensor

from satmae.bands import FALSE_COLOUR_BANDS, RGB_BANDS
from satmae.data.sample import Sample
from satmae.io import atomic_path
from satmae.viz import composite

OVERLAY_COLOURS: dict[str, tuple[float, float, float]] = {
    "true positive": (0.10, 0.80, 0.20),  # green
    "false positive": (0.95, 0.15, 0.15),  # red
    "false negative": (0.15, 0.55, 1.00),  # blue
}
"""Display colour of each outcome of the change class."""


def change_overlay(
    sample: Sample,
    predicted: Tensor,
    path: str | os.PathLike[str],
    title: str = "",
) -> Path:
    """Write a PNG of one city: date 1, date 2, false colour date 2, predicted vs reference.

    Args:
        sample: a two-date scene ``image (2, C, H, W)`` with ``bands`` naming B02, B03, B04
            and B08, ``valid (2, H, W)`` and ``mask (1, H, W)`` (1 = change).
        predicted: ``(H, W)`` bool, True = change predicted.
        path: the PNG to write (folders are created).
        title: figure title, e.g. the city and the method.

    Returns:
        the path written.

    Raises:
        ValueError: if the sample lacks a mask, two dates, or the prediction's shape differs.
    """
    image = sample["image"]
    if image.ndim != 4 or image.shape[0] != 2:
        raise ValueError(f"a change overlay needs two dates (2, C, H, W), got {tuple(image.shape)}")
    if "mask" not in sample:
        raise ValueError("a change overlay needs the reference change mask (sample['mask'])")
    if tuple(predicted.shape) != tuple(image.shape[-2:]):
        raise ValueError(
            f"predicted map {tuple(predicted.shape)} does not match the image's "
            f"{tuple(image.shape[-2:])} (H, W)"
        )
    bands = tuple(sample["bands"])
    valid = sample["valid"].bool().numpy()
    pixels = image.float().numpy()
    first = composite(pixels[0], bands, RGB_BANDS, valid=valid[0])
    second = composite(pixels[1], bands, RGB_BANDS, valid=valid[1])
    false_colour = composite(pixels[1], bands, FALSE_COLOUR_BANDS, valid=valid[1])
    pred = predicted.bool().numpy()
    ref = sample["mask"][0].bool().numpy()
    overlay = 0.35 * second.mean(axis=2, keepdims=True).repeat(3, axis=2)  # dimmed grey date 2
    for outcome, where in (
        ("true positive", pred & ref),
        ("false positive", pred & ~ref),
        ("false negative", ~pred & ref),
    ):
        overlay[where] = OVERLAY_COLOURS[outcome]
    panels = (
        ("date 1, true colour", first),
        ("date 2, true colour", second),
        ("date 2, false colour (B08, B04, B03)", false_colour),
        ("predicted vs reference change", np.clip(overlay, 0.0, 1.0)),
    )
    figure = Figure(figsize=(16, 4.6), layout="constrained")
    for axis, (name, picture) in zip(figure.subplots(1, 4), panels, strict=True):
        axis.imshow(picture, interpolation="nearest")
        axis.set_title(name, fontsize=10)
        axis.set_axis_off()
    handles = [Patch(color=colour, label=name) for name, colour in OVERLAY_COLOURS.items()]
    figure.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=9)
    if title:
        figure.suptitle(title)
    path = Path(path)
    with atomic_path(path) as staging:  # the output rule of satmae.io, like every figure
        figure.savefig(staging, dpi=100, format=path.suffix.lstrip(".") or "png")
    return path
