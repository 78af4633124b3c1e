"""Embeddings of whole scenes: sliding windows, overlap blending, bounded memory.

A scene (or a time series of one place) is read window by window on its own grid; each window
goes through the encoder's seam (``encoder.embed(sample, pool="none")``, so the model applies
its own bands and normalisation) and its patch tokens, averaged over frames and band groups,
are blended into a patch-resolution map with weights that fall towards the window's edges.
Window rows are processed as strips: a map row is written as soon as no later window touches
it, so memory holds one strip, whatever the scene's size, and the next strip is read while the
current one is encoded. Patches without a valid pixel on any date are nodata (NaN).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from affine import Affine
from numpy.typing import NDArray
from rasterio.windows import Window
from tqdm.auto import tqdm

from satmae.data.readers.protocol import Reader
from satmae.models.encoder import SatMAEEncoder
from satmae.models.tokenizer import patchify


class MapWriter(Protocol):
    """Where a patch-resolution embedding map goes, row block by row block."""

    def write(self, window: Window, values: NDArray[np.float32]) -> None:
        """Write ``values (F, h, w)`` at ``window`` of the map."""


@dataclass(frozen=True)
class Tiling:
    """Windows over a scene and the patch-resolution map they fill.

    Attributes:
        height: scene height in pixels.
        width: scene width in pixels.
        size: window side in pixels (a multiple of the patch size).
        stride: step between windows in pixels (a multiple of the patch size).
        patch: the model's patch size.
    """

    height: int
    width: int
    size: int
    stride: int
    patch: int

    def __post_init__(self) -> None:
        if self.size % self.patch or self.stride % self.patch:
            raise ValueError(
                f"window {self.size} and stride {self.stride} must be multiples of the model's "
                f"patch size {self.patch}"
            )
        if not 0 < self.stride <= self.size:
            raise ValueError(f"stride must be in (0, window={self.size}], got {self.stride}")
        if self.size > min(self.height, self.width):
            raise ValueError(
                f"window {self.size} px is larger than the scene ({self.height}x{self.width} "
                "px); choose --window at most the scene's smaller side"
            )

    @property
    def map_shape(self) -> tuple[int, int]:
        """Patch rows and columns of the map (the remainder pixels at the edges are dropped)."""
        return self.height // self.patch, self.width // self.patch

    def starts(self, extent: int) -> list[int]:
        """Window offsets along an axis of ``extent`` pixels, the last one flush with the edge."""
        last = (extent // self.patch) * self.patch - self.size
        offsets = list(range(0, last + 1, self.stride))
        if offsets[-1] != last:
            offsets.append(last)
        return offsets

    def map_transform(self, transform: Affine) -> Affine:
        """Affine of the map: the scene's, with pixels ``patch`` times larger."""
        return transform * Affine.scale(self.patch)


def scene_tiling(
    encoder: SatMAEEncoder, height: int, width: int, size: int | None, stride: int | None
) -> Tiling:
    """The windows of a scene, with the defaults every embedding path shares.

    ``size`` defaults to the model's image size and ``stride`` to half a window (rounded to
    whole patches), so that windows overlap.
    """
    patch = encoder.config.patch_size
    size = size or encoder.config.img_size[0]
    stride = stride or max(patch, (size // 2) // patch * patch)
    return Tiling(height, width, size, stride, patch)


def blend_weights(patches: int) -> NDArray[np.float32]:
    """``(patches, patches)`` weights: 1 in the middle of a window, falling towards its edges."""
    ramp = np.minimum(np.arange(patches) + 0.5, patches - np.arange(patches) - 0.5)
    line = (ramp / ramp.max()).astype(np.float32)
    return np.outer(line, line)


class _Strip:
    """Weighted sums of map rows that windows still touch."""

    def __init__(self, features: int, columns: int) -> None:
        self.features, self.columns = features, columns
        self.rows: dict[int, tuple[NDArray[np.float32], NDArray[np.float32]]] = {}

    def add(
        self, row: int, col: int, values: NDArray[np.float32], weights: NDArray[np.float32]
    ) -> None:
        """Add ``values (F, h, w)`` weighted by ``weights (h, w)`` at map ``(row, col)``."""
        for offset in range(values.shape[1]):
            total, weight = self.rows.setdefault(
                row + offset,
                (
                    np.zeros((self.features, self.columns), np.float32),
                    np.zeros(self.columns, np.float32),
                ),
            )
            span = slice(col, col + values.shape[2])
            total[:, span] += values[:, offset] * weights[offset]
            weight[span] += weights[offset]

    def pop_before(self, row: int) -> Iterator[tuple[int, NDArray[np.float32]]]:
        """Finished rows above ``row``, blended (NaN where no window gave a value)."""
        for index in sorted(r for r in self.rows if r < row):
            total, weight = self.rows.pop(index)
            with np.errstate(invalid="ignore", divide="ignore"):
                yield index, np.where(weight > 0, total / weight, np.nan).astype(np.float32)


def embed_reader(
    reader: Reader,
    encoder: SatMAEEncoder,
    writer_factory: Callable[[int, tuple[int, int], Affine], MapWriter],
    *,
    size: int | None = None,
    stride: int | None = None,
    batch_size: int = 8,
    min_valid: float = 0.5,
    progress: bool = True,
    rows: tuple[int, int] | None = None,
) -> None:
    """Embed a whole scene or series (or a band of its map rows) into a patch-resolution map.

    Args:
        reader: an open reader of the scene (``read(window=...)`` gives DESIGN §3 samples).
        encoder: the encoder; it applies its own bands and normalisation.
        writer_factory: ``(features, (rows, cols), transform) -> writer`` called once the
            feature count is known.
        size: window side in pixels (default the model's ``img_size``).
        stride: step between windows (default half a window, so windows overlap).
        batch_size: windows per forward pass.
        min_valid: patches with a smaller fraction of valid pixels (over all dates) are nodata.
        progress: show a progress bar over windows.
        rows: only map rows ``[first, stop)``: the windows that touch them are encoded and
            the writer gets a map of ``stop - first`` rows (its transform shifted to match).
            Blending is the same as in a whole-scene run, so the rows equal its rows.

    Raises:
        ValueError: for a row range outside the map.
    """
    patch = encoder.config.patch_size
    grid = reader.grid
    tiling = scene_tiling(encoder, grid.height, grid.width, size, stride)
    size, stride = tiling.size, tiling.stride
    rows_out, cols_out = tiling.map_shape
    weights = blend_weights(size // patch)
    first, stop = rows or (0, rows_out)
    if not 0 <= first < stop <= rows_out:
        raise ValueError(f"map rows {rows} are outside the map's {rows_out} rows")
    reach = size // patch
    row_starts = [
        y for y in tiling.starts(grid.height) if y // patch < stop and y // patch + reach > first
    ]
    col_starts = tiling.starts(grid.width)
    writer: MapWriter | None = None
    strip: _Strip | None = None
    bar = tqdm(
        total=len(row_starts) * len(col_starts), desc="embed", unit="window", disable=not progress
    )

    columns = col_starts[-1] + size

    def read_row(y: int) -> list[dict[str, Any]]:
        # One read per row of windows, cut in memory: far fewer reads than one per window.
        strip = reader.read(window=Window(0, y, columns, size))
        return [_cut(strip, x, size) for x in col_starts]

    with ThreadPoolExecutor(max_workers=1) as pool:
        pending: Future[list[dict[str, Any]]] = pool.submit(read_row, row_starts[0])
        for index, y in enumerate(row_starts):
            samples = pending.result()
            if index + 1 < len(row_starts):
                pending = pool.submit(read_row, row_starts[index + 1])  # read ahead
            maps = _encode(encoder, samples, batch_size, patch, min_valid)
            if writer is None:
                features = maps[0].shape[0]
                transform = tiling.map_transform(grid.transform) * Affine.translation(0, first)
                writer = writer_factory(features, (stop - first, cols_out), transform)
                strip = _Strip(features, cols_out)
            assert strip is not None
            for x, values in zip(col_starts, maps, strict=True):
                window_weights = np.where(np.isnan(values[0]), 0.0, weights).astype(np.float32)
                strip.add(y // patch, x // patch, np.nan_to_num(values), window_weights)
            bar.update(len(samples))
            done = row_starts[index + 1] // patch if index + 1 < len(row_starts) else rows_out
            _flush(strip, done, writer, cols_out, first, stop)
    bar.close()


def _cut(strip: Any, x: int, size: int) -> dict[str, Any]:
    """The window of a strip sample starting at column ``x``, with the keys the model reads."""
    window = {key: strip[key] for key in ("times", "bands") if key in strip}
    window["image"] = strip["image"][..., x : x + size]
    if strip.get("valid") is not None:
        window["valid"] = strip["valid"][..., x : x + size]
    return window


def _flush(
    strip: _Strip, before: int, writer: MapWriter, columns: int, first: int, stop: int
) -> None:
    """Write the finished rows above ``before`` that lie in ``[first, stop)``."""
    rows = [(row, values) for row, values in strip.pop_before(before) if first <= row < stop]
    if not rows:
        return
    block = np.stack([values for _, values in rows], axis=1)  # (F, h, W)
    writer.write(Window(0, rows[0][0] - first, columns, block.shape[1]), block)


def _encode(
    encoder: SatMAEEncoder,
    samples: list[dict[str, Any]],
    batch_size: int,
    patch: int,
    min_valid: float,
) -> list[NDArray[np.float32]]:
    """``(F, h, w)`` maps of windows: tokens averaged over frames and groups, NaN where invalid."""
    maps: list[NDArray[np.float32]] = []
    for start in range(0, len(samples), batch_size):
        chunk = samples[start : start + batch_size]
        batch = _stack(chunk)
        with torch.no_grad():
            features = encoder(batch)
        dense = features.dense("mean").float().cpu().numpy()  # (B, D, h, w)
        if batch.get("valid") is not None:
            # Valid fraction of each patch over all dates, as the model's loss measures it.
            fraction = patchify(batch["valid"][:, :, None].float(), patch).mean(dim=(1, 2, 4))
            usable = (fraction >= min_valid).reshape(dense.shape[0], 1, *dense.shape[2:])
            dense = np.where(usable.numpy(), dense, np.nan)
        maps += list(dense.astype(np.float32))
    return maps


def _stack(windows: list[dict[str, Any]]) -> dict[str, Any]:
    """Windows of one strip as a batch (same bands and dates, so no contract check needed)."""
    batch: dict[str, Any] = {"bands": windows[0]["bands"]}
    for key in ("image", "times", "valid"):
        if windows[0].get(key) is not None:
            batch[key] = torch.stack([torch.as_tensor(window[key]) for window in windows])
    return batch


def _model_sample(sample: dict[str, Any]) -> dict[str, Any]:
    """The keys the model reads (readers add geo fields that need not be collated)."""
    return {key: sample[key] for key in ("image", "times", "bands", "valid") if key in sample}
