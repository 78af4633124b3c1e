"""Reconstruction figures of a masked autoencoder: inputs, hidden patches, reconstructions.

One row per sample and frame. The columns are true- and false-colour composites of the input
with hidden patches greyed, the same composites of the reconstruction (visible patches pasted
from the input), and one panel per band group with the target beside the prediction of the
group's first band, hidden patches outlined. Input and reconstruction share one colour stretch,
so a colour difference is a reconstruction error, not a display artefact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from numpy.typing import NDArray
from torch import Tensor

from satmae.bands import FALSE_COLOUR_BANDS, RGB_BANDS
from satmae.viz import composite

COMPOSITES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("true colour", RGB_BANDS),
    ("false colour", FALSE_COLOUR_BANDS),
)
"""Composites drawn when the model has their bands: (title, red/green/blue bands)."""

HIDDEN_GREY = 0.5
"""Grey that hidden input pixels are blended towards."""

HIDDEN_BLEND = 0.7
"""Weight of the grey in a hidden input pixel (0 keeps the pixel, 1 paints it grey)."""

CELL_INCHES = 1.5
"""Height (and width of a composite) of one panel."""


@dataclass
class Reconstruction:
    """What a reconstruction figure shows, as NumPy arrays on the host.

    Attributes:
        inputs: ``(B, T, C', H, W)`` normalised inputs in model band order.
        reconstruction: ``(B, T, C', H, W)`` reconstructions, visible patches pasted.
        hidden: ``(B, T, G', H, W)`` bool pixels of tokens hidden from the encoder.
        bands: the C' band names.
        groups: the bands of each of the G' present groups.
        frame_mask: ``(B, T)`` bool real frames.
        times: ``(B, T)`` seconds since 1970-01-01 UTC, or ``None``.
        scales: scale -> ``(B, T, C', s·H, s·W)`` up-sampled predictions of a multi-scale
            model (SatMAE++), drawn one column per scale.
    """

    inputs: NDArray[np.float32]
    reconstruction: NDArray[np.float32]
    hidden: NDArray[np.bool_]
    bands: tuple[str, ...]
    groups: tuple[tuple[str, ...], ...]
    frame_mask: NDArray[np.bool_]
    times: NDArray[np.int64] | None = None
    scales: dict[int, NDArray[np.float32]] = field(default_factory=dict)

    @classmethod
    def from_tensors(
        cls,
        inputs: Tensor,
        reconstruction: Tensor,
        mask: Tensor,
        bands: Sequence[str],
        groups: Sequence[Sequence[str]],
        frame_mask: Tensor | None = None,
        times: Tensor | None = None,
        scales: dict[int, Tensor] | None = None,
    ) -> Reconstruction:
        """Collect a model's tensors (any device or dtype) for drawing.

        Args:
            inputs: ``(B, T, C', H, W)`` normalised inputs.
            reconstruction: ``(B, T, C', H, W)`` as from ``MaskedAutoencoder.reconstruct``.
            mask: ``(B, T, G', L)`` bool, True = hidden, ``L = (H/p)·(W/p)`` row-major.
            bands: the C' band names.
            groups: the bands of each of the G' groups.
            frame_mask: ``(B, T)`` bool real frames (default: all).
            times: ``(B, T)`` seconds since epoch, or ``None``.
            scales: scale -> ``(B, T, C', s·H, s·W)`` up-sampled predictions (multi-scale).
        """
        batch, frames, _, height, width = inputs.shape
        patches = mask.shape[-1]
        patch_size = round((height * width / patches) ** 0.5)
        rows, cols = height // patch_size, width // patch_size
        if rows * cols != patches:
            raise ValueError(
                f"mask of shape {tuple(mask.shape)} does not tile images of {height}x{width}"
            )
        grid = mask.reshape(*mask.shape[:3], rows, cols)  # (B, T, G', h, w)
        hidden = grid.repeat_interleave(patch_size, -2).repeat_interleave(patch_size, -1)
        real = (
            np.ones((batch, frames), dtype=bool)
            if frame_mask is None
            else frame_mask.detach().cpu().numpy().astype(bool)
        )
        return cls(
            inputs=inputs.detach().float().cpu().numpy(),
            reconstruction=reconstruction.detach().float().cpu().numpy(),
            hidden=hidden.detach().cpu().numpy().astype(bool),
            bands=tuple(bands),
            groups=tuple(tuple(group) for group in groups),
            frame_mask=real,
            times=None if times is None else times.detach().cpu().numpy().astype(np.int64),
            scales={
                scale: image.detach().float().cpu().numpy()
                for scale, image in (scales or {}).items()
            },
        )


def reconstruction_figure(data: Reconstruction, title: str = "") -> Figure:
    """Draw inputs, hidden patches, reconstructions and per-group targets vs predictions.

    Args:
        data: the arrays to draw.
        title: figure title (e.g. the training step).

    Returns:
        a matplotlib figure (object API; no global state).
    """
    shown = [(name, bands) for name, bands in COMPOSITES if set(bands) <= set(data.bands)]
    rows = [(b, t) for b, t in zip(*np.nonzero(data.frame_mask), strict=True)]
    scales = sorted(data.scales)
    columns = 2 * len(shown) + len(data.groups) + len(scales)
    ratios = [1.0] * (2 * len(shown)) + [2.0] * len(data.groups)  # groups: target | prediction
    ratios += [1.0] * len(scales)
    figure = Figure(
        figsize=(CELL_INCHES * sum(ratios), CELL_INCHES * len(rows) + 0.5), layout="constrained"
    )
    axes = figure.subplots(len(rows), columns, squeeze=False, gridspec_kw={"width_ratios": ratios})
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    for row, (sample, frame) in enumerate(rows):
        _draw_row(axes[row], data, int(sample), int(frame), shown)
        axes[row, 0].set_ylabel(_row_label(data, int(sample), int(frame)), fontsize=8)
    titles = [f"input\n{name}" for name, _ in shown]
    titles += [f"reconstruction\n{name}" for name, _ in shown]
    titles += [
        f"{group[0]}: target | prediction\n(group {' '.join(group)})" for group in data.groups
    ]
    scale_view = shown[0][0] if shown else data.bands[0]
    titles += [f"prediction {scale}x\n{scale_view}" for scale in scales]
    for axis, text in zip(axes[0], titles, strict=True):
        axis.set_title(text, fontsize=8)
    if title:
        figure.suptitle(title, fontsize=10)
    return figure


def _draw_row(
    axes: Sequence[Axes],
    data: Reconstruction,
    sample: int,
    frame: int,
    shown: Sequence[tuple[str, tuple[str, ...]]],
) -> None:
    inputs = data.inputs[sample, frame]  # (C', H, W)
    recon = data.reconstruction[sample, frame]
    hidden = data.hidden[sample, frame]  # (G', H, W)
    width = inputs.shape[-1]
    group_of_band = {band: g for g, group in enumerate(data.groups) for band in group}
    for column, (_, bands) in enumerate(shown):
        # One stretch for input and reconstruction: composite them side by side.
        pair = composite(
            np.concatenate([inputs, recon], axis=-1),
            data.bands,
            bands,
            valid=np.ones((inputs.shape[1], 2 * width), dtype=bool),
        )
        source, rebuilt = pair[:, :width], pair[:, width:]
        masked = hidden[sorted({group_of_band[band] for band in bands})].any(0)  # (H, W)
        source = source.copy()
        source[masked] = (1 - HIDDEN_BLEND) * source[masked] + HIDDEN_BLEND * HIDDEN_GREY
        axes[column].imshow(source, interpolation="nearest")
        axes[len(shown) + column].imshow(rebuilt, interpolation="nearest")
    for index, group in enumerate(data.groups):
        channel = data.bands.index(group[0])
        target, prediction = inputs[channel], recon[channel]
        low, high = np.percentile(target, (2.0, 98.0))
        gap = np.full((target.shape[0], 1), np.nan, dtype=np.float32)
        axis = axes[2 * len(shown) + index]
        axis.imshow(
            np.concatenate([target, gap, prediction], axis=1),
            cmap="gray",
            vmin=float(low),
            vmax=float(max(high, low + 1e-6)),
            interpolation="nearest",
        )
        outline = hidden[index].astype(np.float32)
        if 0.0 < outline.mean() < 1.0:  # contour needs both hidden and visible pixels
            axis.contour(
                np.concatenate([outline, gap, outline], axis=1),
                levels=[0.5],
                colors="#ff3b30",
                linewidths=0.6,
            )
    first = 2 * len(shown) + len(data.groups)
    for offset, scale in enumerate(sorted(data.scales)):
        image = data.scales[scale][sample, frame]  # (C', sH, sW)
        axis = axes[first + offset]
        if shown:
            # The stretch of the 1x input, so scales compare with the input in colour.
            size = image.shape[-1]
            upsampled = inputs.repeat(scale, axis=-2).repeat(scale, axis=-1)
            pair = composite(
                np.concatenate([upsampled, image], axis=-1),
                data.bands,
                shown[0][1],
                valid=np.ones((image.shape[1], 2 * size), dtype=bool),
            )
            axis.imshow(pair[:, size:], interpolation="nearest")
        else:
            axis.imshow(image[0], cmap="gray", interpolation="nearest")


def _row_label(data: Reconstruction, sample: int, frame: int) -> str:
    label = f"sample {sample}, frame {frame}"
    if data.times is not None:
        date = datetime.fromtimestamp(int(data.times[sample, frame]), tz=UTC).date()
        label += f"\n{date.isoformat()}"
    return label


def figure_pixels(figure: Figure) -> NDArray[np.uint8]:
    """Render a figure to ``(H, W, 3)`` uint8 RGB pixels."""
    canvas = FigureCanvasAgg(figure)
    canvas.draw()  # type: ignore[no-untyped-call]
    pixels: NDArray[np.uint8] = np.asarray(
        canvas.buffer_rgba()  # type: ignore[no-untyped-call]
    )[..., :3].copy()
    return pixels
