"""Pictures of multispectral time series: band composites and a demo-set overview.

Composites pick bands by name and stretch each channel between low and high percentiles of its
valid pixels, so the same call works for any band order and reflectance scale. Figures are
drawn with matplotlib's object API (no global state), so they are safe in scripts and tests.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rasterio
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from numpy.typing import NDArray

from satmae.bands import FALSE_COLOUR_BANDS, RGB_BANDS, band_indices

LAND_COVER_COLOURS: dict[int, str] = {
    1: "#2b6cb0",  # water
    2: "#276749",  # forest
    3: "#d69e2e",  # cropland
    4: "#9ae6b4",  # grassland
    5: "#e53e3e",  # urban
    6: "#a0522d",  # bare soil
}
"""Display colour of each demo land-cover class id."""

CLEAR_SCL_CODES = (4, 5, 6)
"""SCL vegetation, not-vegetated and water: the pixels a display stretch should fit."""


def composite(
    image: NDArray[np.floating] | NDArray[np.integer],
    bands: Sequence[str],
    show: Sequence[str] = RGB_BANDS,
    *,
    valid: NDArray[np.bool_] | None = None,
    percentiles: tuple[float, float] = (2.0, 98.0),
) -> NDArray[np.float32]:
    """A three-band composite scaled to [0, 1] for display.

    Args:
        image: ``(C, H, W)`` pixels of one date.
        bands: names of the C channels of ``image``.
        show: the three bands to put in red, green and blue (default true colour).
        valid: ``(H, W)`` pixels to fit the stretch to, e.g. clear pixels (default: all
            non-zero pixels).
        percentiles: low and high percentile of each channel mapped to 0 and 1.

    Returns:
        ``(H, W, 3)`` float32 in [0, 1]; nodata (all three bands 0) is black.

    Raises:
        ValueError: if ``image`` is not 3-D, ``show`` does not name three bands, or a band is
            missing.
    """
    if image.ndim != 3:
        raise ValueError(f"expected image of shape (C, H, W), got {tuple(image.shape)}")
    if len(show) != 3:
        raise ValueError(f"a composite needs three bands (red, green, blue), got {list(show)}")
    channels = np.asarray(image, dtype=np.float32)[band_indices(bands, show)]  # (3, H, W)
    mask = (channels != 0).any(axis=0) if valid is None else np.asarray(valid, dtype=bool)
    out = np.zeros(channels.shape, dtype=np.float32)
    for index, channel in enumerate(channels):
        values = channel[mask]
        if values.size == 0:
            continue
        low, high = np.percentile(values, percentiles)
        out[index] = np.clip((channel - low) / max(float(high - low), 1e-6), 0.0, 1.0)
    out[:, (channels == 0).all(axis=0)] = 0.0  # nodata is black
    result: NDArray[np.float32] = out.transpose(1, 2, 0)
    return result


def demo_overview(root: str | os.PathLike[str]) -> Figure:
    """Figure of a demo set: true and false colour per date, land cover and change.

    Args:
        root: a folder written by :func:`satmae.data.synthetic.write_demo_set`.

    Raises:
        FileNotFoundError: if the folder holds no ``demo.json``.
    """
    folder = Path(root)
    meta_path = folder / "demo.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{folder} holds no demo.json; write one with satmae demo-data")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    dates = [text[:10] for text in meta["dates"]]
    columns = max(len(dates), 4)
    figure = Figure(figsize=(2.2 * columns, 2.2 * 3 + 0.4), layout="constrained")
    axes = figure.subplots(3, columns, squeeze=False)
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    for column, (name, scl_name, date) in enumerate(
        zip(meta["images"], meta["scl"], dates, strict=True)
    ):
        with rasterio.open(folder / name) as src:
            pixels = src.read()
            bands = src.descriptions
        with rasterio.open(folder / scl_name) as src:
            valid = np.isin(src.read(1), CLEAR_SCL_CODES)  # stretch on clear pixels only
        axes[0, column].imshow(composite(pixels, bands, RGB_BANDS, valid=valid))
        axes[0, column].set_title(date, fontsize=9)
        axes[1, column].imshow(composite(pixels, bands, FALSE_COLOUR_BANDS, valid=valid))
    for axis in (*axes[0, len(dates) :], *axes[1, len(dates) :], *axes[2, 4:]):
        axis.set_axis_off()
    axes[0, 0].set_ylabel("true colour")
    axes[1, 0].set_ylabel("false colour (B08 B04 B03)")
    classes = {int(key): value for key, value in meta["land_cover_classes"].items()}
    colours = ListedColormap(["#000000", *(LAND_COVER_COLOURS[k] for k in sorted(classes))])
    for column, (name, date) in enumerate(
        zip(meta["land_cover"], (dates[0], dates[-1]), strict=True)
    ):
        with rasterio.open(folder / name) as src:
            axes[2, column].imshow(src.read(1), cmap=colours, vmin=0, vmax=len(classes))
        axes[2, column].set_title(f"land cover {date}", fontsize=9)
    with rasterio.open(folder / meta["change"]) as src:
        axes[2, 2].imshow(src.read(1), cmap="gray", vmin=0, vmax=1)
    axes[2, 2].set_title("change", fontsize=9)
    legend = axes[2, 3]
    legend.set_axis_off()
    legend.legend(
        handles=[Patch(color=LAND_COVER_COLOURS[k], label=v) for k, v in sorted(classes.items())],
        loc="center",
        fontsize=8,
        frameon=False,
    )
    figure.suptitle(f"satmae demo set: {len(dates)} dates, {len(meta['bands'])} bands")
    return figure
