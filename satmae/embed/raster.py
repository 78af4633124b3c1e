"""``satmae.embed_raster``: scenes, series or folders of them to georeferenced embeddings.

Every place under the input (one scene, a time series of one place, or each of many places:
see :mod:`satmae.data.readers.locations`) becomes one output: a patch-resolution
Cloud-Optimized GeoTIFF or Zarr map (:func:`~satmae.embed.pipeline.embed_reader`), or GeoParquet
rows, one per window, with pooled vectors and footprints. Outputs are written atomically, so a
killed run leaves finished places complete and no partial file; ``resume=True`` skips them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import rasterio
import torch
from affine import Affine
from rasterio.windows import Window

from satmae import __version__
from satmae.data.grid import PathLike
from satmae.data.parallel import run_tasks
from satmae.data.readers.locations import SceneLocation, find_locations
from satmae.data.readers.protocol import Reader
from satmae.data.readers.series import SeriesReader
from satmae.data.sample import collate_samples, from_epoch_seconds
from satmae.data.store.chipstore import ChipStore, open_spec
from satmae.embed.blocks import assemble_place, embed_block, plan_blocks
from satmae.embed.index import INDEX_NAME, write_output_index
from satmae.embed.pipeline import MapWriter, Tiling, _model_sample, embed_reader
from satmae.embed.preview import write_preview
from satmae.embed.writers import CogWriter, EmbeddingMeta, ZarrWriter, write_geoparquet
from satmae.models import SatMAEEncoder, create_model, load_encoder
from satmae.train.precision import InferencePrecision, inference_autocast, inference_precision

OutputFormat = Literal["cog", "zarr", "parquet"]
SUFFIXES: dict[str, str] = {"cog": ".tif", "zarr": ".zarr", "parquet": ".parquet"}


def open_encoder(
    model: str, device: str | torch.device = "cpu", random_init: bool = False
) -> SatMAEEncoder:
    """A bundle, ``.ckpt`` or official ``.pth``; or a registry name with ``random_init``.

    With ``random_init`` a model file gives the same architecture and normalisation with fresh
    random weights (a baseline that shares everything but what pretraining learned).

    Raises:
        ValueError: for a registry name without ``random_init`` (it has no weights).
    """
    if Path(model).exists():
        loaded = load_encoder(model, device)
        if not random_init:
            return loaded
        encoder = SatMAEEncoder(loaded.config).to(device).eval()
        encoder.normalization = loaded.normalization
        encoder.provenance = {**loaded.provenance, "source": model, "weights": "random init"}
        return encoder
    if not random_init:
        raise ValueError(
            f"{model!r} is not a model file; give a bundle, .ckpt or .pth, or a registry name "
            "with --random-init to try the pipeline without weights"
        )
    encoder = create_model(model).encoder.to(device).eval()
    encoder.provenance = {"registry": model, "weights": "random init"}
    return encoder


def weights_hash(encoder: SatMAEEncoder) -> str:
    """SHA-256 of the encoder's weights (names, shapes and bytes), first 16 hex digits."""
    digest = hashlib.sha256()
    for name, tensor in sorted(encoder.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def _open(
    location: SceneLocation, bands: Sequence[str] | None, max_frames: int, latest: int | None
) -> Reader:
    if location.frames:
        frames = list(location.frames)
        if latest is not None:
            frames = frames[-latest:]
        if len(frames) > max_frames:
            raise ValueError(
                f"{location.name} has {len(frames)} dates but the model takes at most "
                f"{max_frames}; pass --latest {max_frames} to embed the latest {max_frames}"
            )
        return SeriesReader(frames, bands)
    if location.source is not None and location.source.open is not None:
        return location.source.open()
    raise ValueError(
        f"{location.name} cannot be read window by window (e.g. a cube or BigEarthNet patch); "
        "embed it with encoder.embed(...) instead"
    )


def _meta(
    encoder: SatMAEEncoder, reader: Reader, pool: str, model: str, precision: str
) -> EmbeddingMeta:
    first = reader.read(window=Window(0, 0, 1, 1))
    times = first.get("times")
    dates = tuple(_iso(int(t)) for t in times) if times is not None else ()
    text = _normalization_text(encoder)
    return EmbeddingMeta(
        model=model,
        weights_hash=weights_hash(encoder),
        bands=tuple(band for band in encoder.bands if band in reader.bands),
        dates=dates,
        normalization=text,
        satmae_version=__version__,
        patch_size=encoder.config.patch_size,
        pool=pool,
        precision=resolved_precision(encoder, precision),
    )


def resolved_precision(encoder: SatMAEEncoder, precision: str) -> str:
    """``"32"`` or ``"bf16"``: what ``precision`` means on the encoder's device."""
    return inference_precision(precision, encoder.cls_token.device.type, encoder.config.embed_dim)


def encoder_autocast(encoder: SatMAEEncoder, precision: str) -> AbstractContextManager[Any]:
    """The autocast context for running ``encoder`` at ``precision`` on its device."""
    return inference_autocast(precision, encoder.cls_token.device.type, encoder.config.embed_dim)


def embed_raster(
    inputs: PathLike,
    model: str | SatMAEEncoder,
    out: PathLike,
    *,
    output_format: OutputFormat = "cog",
    size: int | None = None,
    stride: int | None = None,
    batch_size: int = 8,
    bands: Sequence[str] | None = None,
    latest: int | None = None,
    overwrite: bool = False,
    resume: bool = False,
    preview: bool = False,
    workers: int = 1,
    scheduler: str | None = None,
    progress: bool = True,
    block_rows: int | None = None,
    precision: InferencePrecision = "auto",
    devices: int | None = None,
    accelerator: str = "auto",
) -> list[Path]:
    """Embed every place under ``inputs``.

    Args:
        inputs: a scene, a folder of dated scenes (one series), a folder of such folders, an
            OSCD root, an index table — anything ``satmae check`` reads window by window.
        model: an encoder, or a bundle / ``.ckpt`` / ``.pth`` path.
        out: the output file for one place; a folder (one file per place) for several.
        output_format: ``"cog"`` or ``"zarr"`` maps at patch resolution, or ``"parquet"``
            rows of pooled window vectors with footprints.
        size: window side in pixels (default the model's image size).
        stride: step between windows (default half a window; maps blend the overlap).
        batch_size: windows per forward pass.
        bands: bands to read (default every band the data has; the model picks its own).
        latest: embed only the latest ``latest`` dates of each series (a series longer than
            the model's ``max_frames`` is an error otherwise).
        overwrite: replace existing outputs.
        resume: keep existing outputs (finished places) and write only the missing ones.
        preview: beside each map, a PNG of its PCA colours next to a true-colour view of the
            input's last date (the input view only for scenes up to 4096 px a side).
        workers: places embedded at once by a local dask cluster (1: in this process).
        scheduler: address of a dask scheduler for many machines (paths and the model must
            be reachable from every worker).
        progress: progress bars.
        block_rows: embed each place's map in blocks of this many map rows, one task per
            block (see :mod:`satmae.embed.blocks`): a large scene spreads over the workers,
            and with ``resume`` a killed run keeps its finished blocks. COG and Zarr only.
        precision: ``"auto"`` (bf16 autocast where the encoder's device multiplies bf16
            natively, as ``satmae info`` reports; fp32 elsewhere), ``"32"`` or ``"bf16"``.
            Outputs record the precision used in their ``precision`` tag.
        devices: run the blocks with Lightning's predict loop on this many devices (see
            :mod:`satmae.embed.predict`) instead of dask; each place is one block unless
            ``block_rows`` is given. Not with ``workers``/``scheduler``.
        accelerator: Lightning's accelerator for ``devices`` (``"auto"``, ``"gpu"``, ``"cpu"``).

    Returns:
        the outputs, one per place (written, or kept with ``resume``). With several places,
        ``out/index.parquet`` indexes them all (:mod:`satmae.embed.index`).

    Raises:
        FileExistsError: if an output exists and neither ``overwrite`` nor ``resume`` is set.
        ValueError: for data the model cannot take, windows larger than a scene, and the like.
    """
    if output_format not in SUFFIXES:
        raise ValueError(f"output format must be one of {sorted(SUFFIXES)}, got {output_format!r}")
    if block_rows is not None and output_format == "parquet":
        raise ValueError("block_rows (--block-rows) applies to cog and zarr maps, not parquet rows")
    if block_rows is not None and block_rows < 1:
        raise ValueError(f"block_rows must be a positive number of map rows, got {block_rows}")
    if devices is not None:
        if devices < 1:
            raise ValueError(f"devices must be at least 1, got {devices}")
        if output_format == "parquet":
            raise ValueError("devices (--devices) applies to cog and zarr maps, not parquet rows")
        if workers > 1 or scheduler is not None:
            raise ValueError(
                "choose one engine: devices (--devices, Lightning) or workers/scheduler (dask)"
            )
    if _is_chip_store(inputs):
        if output_format != "parquet":
            raise ValueError(
                f"{inputs} is a chip store: its chips have no common grid for a map; use "
                "--format parquet (one row per chip)"
            )
        model_encoder = model if isinstance(model, SatMAEEncoder) else open_encoder(str(model))
        return [
            embed_chip_store(
                inputs,
                model_encoder,
                Path(out),
                str(model),
                batch_size,
                overwrite,
                resume,
                precision,
            )
        ]
    if isinstance(model, SatMAEEncoder):
        encoder: SatMAEEncoder | str = model
        name = str(model.provenance.get("source") or model.provenance.get("registry") or "model")
    else:
        encoder, name = str(model), str(model)
        open_encoder(name)  # a bad model fails here, before any data is read
    locations = find_locations(inputs, bands)
    out = Path(out)
    suffix = SUFFIXES[output_format]
    targets = (
        [out]
        if len(locations) == 1
        else [out / f"{_safe(location.name)}{suffix}" for location in locations]
    )
    tasks = []
    for location, target in zip(locations, targets, strict=True):
        if target.exists():
            if resume:
                continue
            if not overwrite:
                raise FileExistsError(
                    f"{target} exists; pass --overwrite to replace it or --resume to keep it"
                )
        settings = PlaceSettings(
            output_format, size, stride, batch_size, bands, latest, overwrite, preview, precision
        )
        tasks.append(PlaceTask(location, target, encoder, name, settings, progress))
    single = scheduler is None and workers <= 1
    if not single:
        tasks = [replace(task, progress=False) for task in tasks]
    if devices is not None:
        _predict_places(tasks, block_rows, resume, devices, accelerator, progress)
    elif block_rows is not None:
        blocks = [block for task in tasks for block in plan_blocks(task, block_rows, resume)]
        run_tasks(
            embed_block,
            blocks,
            scheduler=scheduler,
            workers=workers,
            description="blocks",
            progress=progress,
        )
        for task in tasks:
            assemble_place(task, block_rows)
    else:
        run_tasks(
            embed_place,
            tasks,
            scheduler=scheduler,
            workers=workers,
            description="places",
            progress=progress and len(tasks) > 1,
        )
    if len(targets) > 1:
        write_output_index(targets, out / INDEX_NAME)
    return targets


def _predict_places(
    tasks: list[PlaceTask],
    block_rows: int | None,
    resume: bool,
    devices: int,
    accelerator: str,
    progress: bool,
) -> None:
    """Plan the places' blocks, run them with Lightning's predict loop, assemble the outputs."""
    from satmae.embed.predict import predict_blocks

    if not tasks:
        return
    rows = block_rows or WHOLE_PLACE_ROWS
    blocks = [block for task in tasks for block in plan_blocks(task, rows, resume)]
    encoder = resolve_encoder(tasks[0].model)
    predict_blocks(encoder, blocks, devices=devices, accelerator=accelerator, progress=progress)
    for task in tasks:
        assemble_place(task, rows)


WHOLE_PLACE_ROWS = 1 << 30
"""Block size (map rows) that makes each place one block."""


@dataclass(frozen=True)
class PlaceSettings:
    """How every place of a run is embedded (see :func:`embed_raster`)."""

    output_format: str
    size: int | None
    stride: int | None
    batch_size: int
    bands: Sequence[str] | None
    latest: int | None
    overwrite: bool
    preview: bool
    precision: str = "auto"


@dataclass(frozen=True)
class PlaceTask:
    """One place to embed into one output (a dask task when run on a cluster)."""

    location: SceneLocation
    target: Path
    model: SatMAEEncoder | str
    model_name: str
    settings: PlaceSettings
    progress: bool = True


GDAL_CACHE_MB = 256
"""GDAL's block cache while embedding, in MiB: reads and writes stream, so a small cache
suffices and memory stays bounded whatever the scene's size (GDAL's default grows to 5 % of
the RAM). rasterio takes the value in bytes."""


def embed_place(task: PlaceTask) -> Path:
    """Embed one place into its output (module level, so dask workers can run it)."""
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB * 1024 * 1024):
        return _embed_place(task)


def _embed_place(task: PlaceTask) -> Path:
    encoder = resolve_encoder(task.model)
    settings = task.settings
    limit = encoder.config.max_frames
    with (
        _open(task.location, settings.bands, limit, settings.latest) as reader,
        encoder_autocast(encoder, settings.precision),
    ):
        pool = "mean" if settings.output_format == "parquet" else "none"
        meta = _meta(encoder, reader, pool, task.model_name, settings.precision)
        if settings.output_format == "parquet":
            _embed_windows(
                reader, encoder, task.target, meta, settings.size, settings.stride,
                settings.batch_size, settings.overwrite,
            )  # fmt: skip
        else:
            factory = MapWriterFactory(
                settings.output_format, task.target, reader.grid.crs, meta, settings.overwrite
            )
            embed_reader(
                reader,
                encoder,
                factory,
                size=settings.size,
                stride=settings.stride,
                batch_size=settings.batch_size,
                progress=task.progress,
            )
            factory.close()
            if settings.preview:
                write_map_preview(task.target, reader)
    return task.target


@cache
def _cached_encoder(model: str) -> SatMAEEncoder:
    """One encoder per model file and process (dask workers reuse it across places)."""
    return open_encoder(model)


def resolve_encoder(model: SatMAEEncoder | str) -> SatMAEEncoder:
    """The encoder itself, or the one of a model file (opened once per process)."""
    return model if isinstance(model, SatMAEEncoder) else _cached_encoder(model)


def open_place(
    location: SceneLocation,
    bands: Sequence[str] | None,
    encoder: SatMAEEncoder,
    latest: int | None,
) -> Reader:
    """A reader of one place, refusing series longer than the encoder takes."""
    return _open(location, bands, encoder.config.max_frames, latest)


def place_meta(
    encoder: SatMAEEncoder, reader: Reader, model_name: str, precision: str
) -> EmbeddingMeta:
    """The provenance tags of a place's map."""
    return _meta(encoder, reader, "none", model_name, precision)


class MapWriterFactory:
    """Builds the map writer once the feature count is known, and commits it at the end."""

    def __init__(
        self, kind: str, target: Path, crs: Any, meta: EmbeddingMeta, overwrite: bool
    ) -> None:
        self.kind, self.target, self.crs, self.meta = kind, target, crs, meta
        self.overwrite = overwrite
        self.writer: CogWriter | ZarrWriter | None = None

    def __call__(self, features: int, shape: tuple[int, int], transform: Affine) -> MapWriter:
        """A COG or Zarr writer of ``features`` bands over a ``(rows, cols)`` map."""
        kind = CogWriter if self.kind == "cog" else ZarrWriter
        self.writer = kind(
            self.target,
            width=shape[1],
            height=shape[0],
            features=features,
            crs=self.crs,
            transform=transform,
            meta=self.meta,
            overwrite=self.overwrite,
        )
        return self.writer

    def close(self) -> None:
        """Commit the output (nothing was written when no writer was made)."""
        if self.writer is not None:
            self.writer.close()


def _embed_windows(
    reader: Reader,
    encoder: SatMAEEncoder,
    target: Path,
    meta: EmbeddingMeta,
    size: int | None,
    stride: int | None,
    batch_size: int,
    overwrite: bool,
) -> None:
    """One GeoParquet row per window: the pooled vector and the window's footprint."""
    patch = encoder.config.patch_size
    size = size or encoder.config.img_size[0]
    grid = reader.grid
    tiling = Tiling(grid.height, grid.width, size, stride or size, patch)
    windows = [Window(x, y, size, size) for y in tiling.starts(grid.height)
               for x in tiling.starts(grid.width)]  # fmt: skip
    vectors, footprints = [], []
    for start in range(0, len(windows), batch_size):
        chunk = windows[start : start + batch_size]
        samples = [_model_sample(dict(reader.read(window=window))) for window in chunk]
        pooled = encoder.embed(collate_samples(samples))
        assert isinstance(pooled, torch.Tensor)
        vectors.append(pooled.float().cpu().numpy())
        footprints += [grid.window(window).bounds for window in chunk]
    write_geoparquet(
        target,
        np.concatenate(vectors),
        footprints,
        grid.crs,
        meta,
        extra={"window": [f"{w.col_off},{w.row_off},{w.width},{w.height}" for w in windows]},
        overwrite=overwrite,
    )


def _is_chip_store(path: PathLike) -> bool:
    try:
        open_spec(path)
    except (FileNotFoundError, ValueError):
        return False
    return True


def embed_chip_store(
    store: PathLike,
    encoder: SatMAEEncoder,
    out: Path,
    model_name: str,
    batch_size: int = 64,
    overwrite: bool = False,
    resume: bool = False,
    precision: InferencePrecision = "auto",
) -> Path:
    """One GeoParquet row per chip of a chip store: pooled vector, footprint, location, dates.

    ``precision`` is as in :func:`embed_raster`.

    Raises:
        FileExistsError: if ``out`` exists and neither ``overwrite`` nor ``resume`` is set.
        ValueError: if the chips lie in different CRSs (one GeoParquet holds one CRS).
    """
    if out.exists() and not overwrite:
        if resume:
            return out
        raise FileExistsError(
            f"{out} exists; pass --overwrite to replace it or --resume to keep it"
        )
    chips = ChipStore(store)
    vectors: list[np.ndarray[Any, Any]] = []
    bounds: list[tuple[float, float, float, float]] = []
    locations: list[str] = []
    dates: list[str] = []
    crs: set[str] = set()
    for start in range(0, len(chips), batch_size):
        batch = chips.read_batch(range(start, min(start + batch_size, len(chips))))
        with encoder_autocast(encoder, precision):
            pooled = encoder.embed(batch)
        assert isinstance(pooled, torch.Tensor)
        vectors.append(pooled.float().cpu().numpy())
        if "bounds" not in batch:
            raise ValueError(f"the chips of {store} have no footprints; rewrite the store")
        bounds += [(float(b[0]), float(b[1]), float(b[2]), float(b[3])) for b in batch["bounds"]]
        crs |= {str(c) for c in batch.get("crs", [])}
        locations += list(batch["location"])
        dates += [",".join(_iso(int(t)) for t in row) for row in batch["times"]]
    if len(crs) > 1:
        raise ValueError(f"the chips of {store} lie in {len(crs)} CRSs {sorted(crs)}; embed each")
    meta = EmbeddingMeta(
        model=model_name,
        weights_hash=weights_hash(encoder),
        bands=encoder.bands,
        dates=(),
        normalization=_normalization_text(encoder),
        satmae_version=__version__,
        patch_size=encoder.config.patch_size,
        pool="mean",
        precision=resolved_precision(encoder, precision),
    )
    write_geoparquet(
        out,
        np.concatenate(vectors),
        bounds,
        next(iter(crs)) if crs else None,
        meta,
        extra={"location": locations, "dates": dates},
        overwrite=overwrite,
    )
    return out


def _iso(seconds: int) -> str:
    return from_epoch_seconds(seconds).date().isoformat()


def _normalization_text(encoder: SatMAEEncoder) -> str:
    normalization = encoder.normalization
    if normalization is None:
        return "none"
    return f"{normalization.mode}: {normalization.stats.provenance}"


PREVIEW_INPUT_LIMIT = 4096
"""Largest scene side whose pixels a preview shows beside the embedding."""


def write_map_preview(target: Path, reader: Reader | None = None) -> Path:
    """``target`` with ``.png``: the map's PCA colours, beside the input when it is small."""
    if target.suffix == ".zarr":
        import xarray as xr

        embedding = xr.open_zarr(target)["embedding"].values
    else:
        import rasterio

        with rasterio.open(target) as dataset:
            embedding = dataset.read()
    valid = np.isfinite(embedding).all(axis=0)
    image, bands = None, None
    if reader is not None and max(reader.grid.height, reader.grid.width) <= PREVIEW_INPUT_LIMIT:
        sample = reader.read()
        image, bands = sample["image"].numpy(), sample["bands"]
    path = target.with_suffix(".png")
    write_preview(path, np.nan_to_num(embedding), image=image, bands=bands, valid=valid)
    return path


def _safe(name: str) -> str:
    """A file name for a location id."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(name).name) or "place"
