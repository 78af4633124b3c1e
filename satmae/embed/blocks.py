"""Large scenes in blocks of map rows: one task per block, and resume after a kill.

With ``block_rows``, a place's patch-resolution map is cut into bands of that many map rows.
Each block is its own task (a dask task on a cluster): it encodes the windows that touch its
rows, blends them exactly as a whole-scene run would, and saves its rows atomically as a
``.npy`` file in a hidden folder beside the output (``.<output>.blocks/``). When every block is
there, the blocks are written into the COG or Zarr output in order and the folder is removed.

A killed run leaves finished blocks complete (each is written atomically) and the output
absent; ``resume=True`` then encodes only the missing blocks. A manifest records what the
blocks were made with (weights, window, stride, bands, dates, block size); blocks of another
configuration are discarded rather than mixed in.
"""

from __future__ import annotations

import json
import shutil
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from numpy.typing import NDArray
from rasterio.windows import Window

from satmae.embed.pipeline import embed_reader, scene_tiling
from satmae.io import atomic_path

MANIFEST = "manifest.json"


def blocks_folder(target: Path) -> Path:
    """The hidden folder of ``target``'s finished blocks."""
    return target.parent / f".{target.name}.blocks"


def block_ranges(rows: int, block_rows: int) -> list[tuple[int, int]]:
    """``[first, stop)`` map-row ranges of ``block_rows`` rows covering ``rows`` rows.

    Raises:
        ValueError: for a non-positive block size.
    """
    if block_rows < 1:
        raise ValueError(f"block_rows must be a positive number of map rows, got {block_rows}")
    return [(first, min(first + block_rows, rows)) for first in range(0, rows, block_rows)]


def block_path(folder: Path, rows: tuple[int, int]) -> Path:
    """Where the block of map rows ``rows`` is saved."""
    return folder / f"rows_{rows[0]:06d}_{rows[1]:06d}.npy"


@dataclass(frozen=True)
class BlockTask:
    """One block of one place (see the module docstring).

    Attributes:
        place: the place's task (location, output, model, settings).
        rows: the block's map rows ``[first, stop)``.
    """

    place: Any  # satmae.embed.raster.PlaceTask (kept untyped to avoid an import cycle)
    rows: tuple[int, int]


class _BlockWriter:
    """Collects a block's rows in memory; :meth:`save` writes them atomically."""

    def __init__(self, features: int, shape: tuple[int, int]) -> None:
        self.values = np.full((features, *shape), np.nan, dtype=np.float32)

    def write(self, window: Window, values: NDArray[np.float32]) -> None:
        rows = slice(window.row_off, window.row_off + window.height)
        self.values[:, rows, window.col_off : window.col_off + window.width] = values

    def save(self, path: Path) -> None:
        with atomic_path(path) as staging, open(staging, "wb") as handle:
            np.save(handle, self.values)


def embed_block(task: BlockTask, encoder: Any = None) -> Path:
    """Encode one block and save it (module level, so dask workers can run it).

    ``encoder`` (a :class:`~satmae.models.encoder.SatMAEEncoder`, e.g. on a rank's device)
    replaces the place's model.
    """
    from satmae.embed import raster

    place = task.place
    settings = place.settings
    encoder = encoder if encoder is not None else raster.resolve_encoder(place.model)
    path = block_path(blocks_folder(place.target), task.rows)
    holder: dict[str, _BlockWriter] = {}

    def factory(features: int, shape: tuple[int, int], transform: Affine) -> _BlockWriter:
        holder["writer"] = _BlockWriter(features, shape)
        return holder["writer"]

    with (
        rasterio.Env(GDAL_CACHEMAX=raster.GDAL_CACHE_MB * 1024 * 1024),
        raster.open_place(place.location, settings.bands, encoder, settings.latest) as reader,
        raster.encoder_autocast(encoder, settings.precision),
    ):
        embed_reader(
            reader,
            encoder,
            factory,
            size=settings.size,
            stride=settings.stride,
            batch_size=settings.batch_size,
            progress=False,
            rows=task.rows,
        )
    holder["writer"].save(path)
    return path


def plan_blocks(place: Any, block_rows: int, resume: bool) -> list[BlockTask]:
    """The blocks of ``place`` still to encode; prepares the blocks folder and manifest.

    Finished blocks are kept only with ``resume`` and only when the manifest matches.
    """
    from satmae.embed import raster

    settings = place.settings
    encoder = raster.resolve_encoder(place.model)
    with raster.open_place(place.location, settings.bands, encoder, settings.latest) as reader:
        meta = raster.place_meta(encoder, reader, place.model_name, settings.precision)
        grid = reader.grid
    tiling = scene_tiling(encoder, grid.height, grid.width, settings.size, settings.stride)
    rows = tiling.map_shape[0]
    manifest = {
        "meta": meta.tags(),
        "size": tiling.size,
        "stride": tiling.stride,
        "block_rows": block_rows,
        "map_shape": list(tiling.map_shape),
        "settings": {
            key: value
            for key, value in asdict(settings).items()
            if key not in ("overwrite", "preview")
        },
    }
    folder = blocks_folder(place.target)
    if folder.exists():
        same = _read_manifest(folder) == json.loads(json.dumps(manifest))
        if not (resume and same):
            finished = len(list(folder.glob("rows_*.npy")))
            if finished:
                why = "pass --resume to keep them" if same else "its settings or model differ"
                warnings.warn(
                    f"{place.target}: discarding {finished} finished blocks of an interrupted "
                    f"run ({why})",
                    stacklevel=2,
                )
            shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / MANIFEST) as staging:
        staging.write_text(json.dumps(manifest, indent=2))
    return [
        BlockTask(place, span)
        for span in block_ranges(rows, block_rows)
        if not block_path(folder, span).exists()
    ]


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        value = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def assemble_place(place: Any, block_rows: int) -> Path:
    """Write a place's finished blocks into its output, then remove them.

    Raises:
        FileNotFoundError: if a block is missing (a task failed).
    """
    from satmae.embed import raster

    settings = place.settings
    folder = blocks_folder(place.target)
    manifest = _read_manifest(folder)
    if manifest is None:
        raise FileNotFoundError(f"{folder} has no manifest; rerun the embedding")
    rows, columns = manifest["map_shape"]
    spans = block_ranges(rows, block_rows)
    missing = [block_path(folder, s).name for s in spans if not block_path(folder, s).exists()]
    if missing:
        raise FileNotFoundError(
            f"blocks {missing[:5]} of {place.target} are missing; rerun with --resume"
        )
    encoder = raster.resolve_encoder(place.model)
    with raster.open_place(place.location, settings.bands, encoder, settings.latest) as reader:
        meta = raster.place_meta(encoder, reader, place.model_name, settings.precision)
        grid = reader.grid
        tiling = scene_tiling(encoder, grid.height, grid.width, settings.size, settings.stride)
        factory = raster.MapWriterFactory(
            settings.output_format, place.target, grid.crs, meta, settings.overwrite
        )
        writer = None
        for span in spans:
            values = np.load(block_path(folder, span))
            if writer is None:
                writer = factory(
                    values.shape[0], tiling.map_shape, tiling.map_transform(grid.transform)
                )
            writer.write(Window(0, span[0], columns, span[1] - span[0]), values)
        factory.close()
        if settings.preview:
            raster.write_map_preview(place.target, reader)
    shutil.rmtree(folder)
    return Path(place.target)
