"""Data loading throughput: torchgeo vs our windowed reader vs the chip store (issue 4).

All three read the same scenes: the OSCD cities in ../shared/data/real/oscd, both dates, stacked
to 13 bands on the 10 m grid and written as tiled GeoTIFFs (one per city and date). Each method
delivers 13-band 96x96 chips to a DataLoader (batch 16) with 0 and with 2 workers:

(a) torchgeo ``RasterDataset`` + ``RandomGeoSampler``;
(b) our windowed reader (``satmae.data.readers.geotiff.GeoTiffReader``, one open reader per file and
    process) on random windows of the same files;
(c) the chip store (``ChipStream`` in batched mode), cut from the same files on a 96 px grid
    (stride 48).

It also compares chip-store formats: our Arrow parts with Blosc-LZ4 or Blosc-Zstd blobs against
Zarr v3 arrays chunked per chip (plain and sharded), all read chip by chip into samples that
``collate_samples`` stacks.

    .venv/bin/python benchmarks/bench_data.py --out benchmarks/results/bench_data.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
from rasterio.windows import Window
from torch.utils.data import DataLoader, Dataset

from satmae.bands import L1C_BANDS
from satmae.data.readers.geotiff import GeoTiffReader, read_geotiff
from satmae.data.readers.layouts import oscd_cities, read_oscd_city
from satmae.data.sample import collate_samples, from_epoch_seconds
from satmae.data.sampling import grid_windows
from satmae.data.store.chipstore import ChipStore
from satmae.data.store.chipwriter import ChipStoreWriter
from satmae.data.store.datasets import ChipStream, batch_loader

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "oscd"
SIZE = 96
BATCH = 16


def stack_scenes(root: Path, out: Path) -> list[tuple[Path, int]]:
    """Write each OSCD city and date as a 13-band 10 m GeoTIFF; returns (file, time) pairs."""
    out.mkdir(parents=True, exist_ok=True)
    scenes = []
    for city in oscd_cities(root):
        sample = read_oscd_city(root, city, L1C_BANDS)
        for frame, seconds in enumerate(sample["times"].tolist()):
            day = from_epoch_seconds(seconds).strftime("%Y%m%d")
            path = out / f"{city}_{day}.tif"
            scenes.append((path, seconds))
            if path.exists():
                continue
            pixels = sample["image"][frame].round().clamp(0, 65535).numpy().astype(np.uint16)
            profile = {
                "driver": "GTiff",
                "dtype": "uint16",
                "count": pixels.shape[0],
                "height": pixels.shape[1],
                "width": pixels.shape[2],
                "crs": sample["crs"],
                "transform": rasterio.Affine(*sample["transform"]),
                "tiled": True,
                "blockxsize": 256,
                "blockysize": 256,
            }
            with rasterio.open(path, "w", **profile) as dst:
                dst.write(pixels)
                dst.descriptions = tuple(sample["bands"])
    return scenes


def torchgeo_dataset(folder: Path) -> tuple[Dataset[Any], Any]:
    """(a) torchgeo RasterDataset over the stacked files and its RandomGeoSampler."""
    from torchgeo.datasets import RasterDataset
    from torchgeo.samplers import RandomGeoSampler

    class StackedOSCD(RasterDataset):  # type: ignore[misc]
        filename_glob = "*.tif"
        filename_regex = r"^(?P<city>[a-z_]+)_(?P<date>\d{8})\.tif$"
        date_format = "%Y%m%d"
        is_image = True
        separate_files = False
        all_bands = L1C_BANDS

    dataset = StackedOSCD(paths=str(folder))
    return dataset, RandomGeoSampler(dataset, size=SIZE, length=10**6)


class WindowDataset(Dataset[Any]):
    """(b) our windowed reader on random 96x96 windows of the stacked files."""

    def __init__(self, scenes: list[tuple[Path, int]], count: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        shapes = []
        for path, _ in scenes:
            with rasterio.open(path) as src:
                shapes.append((src.height, src.width))
        picks = rng.integers(0, len(scenes), count)
        self.items = [
            (
                scenes[i][0],
                scenes[i][1],
                Window(
                    int(rng.integers(0, shapes[i][1] - SIZE + 1)),
                    int(rng.integers(0, shapes[i][0] - SIZE + 1)),
                    SIZE,
                    SIZE,
                ),
            )
            for i in picks
        ]
        self.readers: dict[Path, GeoTiffReader] = {}
        self.pid = os.getpid()

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Any:
        path, seconds, window = self.items[index]
        if os.getpid() != self.pid:  # readers hold open files: one set per worker process
            self.readers, self.pid = {}, os.getpid()
        if path not in self.readers:
            self.readers[path] = GeoTiffReader(path, L1C_BANDS, time=seconds)
        return self.readers[path].read(window)


def write_store(scenes: list[tuple[Path, int]], root: Path, compression: str) -> ChipStore:
    """(c) cut the stacked files into a chip store: 96 px grid, stride 48, one part per scene."""
    for path, seconds in scenes:
        with rasterio.open(path) as src:
            height, width = src.height, src.width
        with ChipStoreWriter(
            root,
            path.stem,
            bands=L1C_BANDS,
            frames=1,
            height=SIZE,
            width=SIZE,
            compression=compression,  # type: ignore[arg-type]
        ) as writer:
            for window in grid_windows(height, width, SIZE, stride=SIZE // 2):
                sample = read_geotiff(path, L1C_BANDS, window=window, time=seconds)
                writer.add(sample)
    return ChipStore(root)


class ZarrChips(Dataset[Any]):
    """Zarr v3 arrays ``image (N, T, C, H, W)`` and ``valid (N, T, H, W)``, one chunk per chip."""

    def __init__(self, store: ChipStore, root: Path, shard: int | None) -> None:
        import zarr

        count, shape = len(store), store.spec.shape
        codec = zarr.codecs.BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")
        extra = {"shards": (shard, *shape)} if shard else {}
        image = zarr.create_array(
            root / "image",
            shape=(count, *shape),
            chunks=(1, *shape),
            dtype="uint16",
            compressors=codec,
            **extra,
        )
        valid_shape = (shape[0], shape[2], shape[3])
        valid = zarr.create_array(
            root / "valid",
            shape=(count, *valid_shape),
            chunks=(1, *valid_shape),
            dtype="bool",
            compressors=codec,
            **({"shards": (shard, *valid_shape)} if shard else {}),
        )
        step = shard or 64
        for start in range(0, count, step):
            chips = [store.read_arrays(i) for i in range(start, min(start + step, count))]
            image[start : start + len(chips)] = np.stack([c["image"] for c in chips])
            valid[start : start + len(chips)] = np.stack([c["valid"] for c in chips])
        self.root, self.count, self.bands = root, count, store.bands
        self.order = np.random.default_rng(0).permutation(count)
        self.arrays: tuple[Any, Any] | None = None

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> Any:
        import zarr

        if self.arrays is None:  # opened once per process, like the chip store's files
            self.arrays = tuple(
                zarr.open_array(self.root / n, mode="r") for n in ("image", "valid")
            )
        chip = int(self.order[index])
        image, valid = self.arrays[0][chip], self.arrays[1][chip]
        return {
            "image": torch.from_numpy(image.astype(np.float32)),
            "valid": torch.from_numpy(valid),
            "bands": self.bands,
        }


def chips_per_second(
    make_loader: Callable[[int], Iterable[Any]], workers: int, chips: int, repeats: int
) -> float:
    """Median chips/s over ``repeats`` runs of ``chips`` chips, after one warm-up batch."""
    rates = []
    for _ in range(repeats):
        loader = iter(make_loader(workers))
        next(loader)  # worker start-up and file opening are not throughput
        seen, start = 0, time.perf_counter()
        while seen < chips:
            batch = next(loader)
            seen += batch["image"].shape[0]
        rates.append(seen / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--oscd", type=Path, default=REAL, help="OSCD root (real data)")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default temp)")
    parser.add_argument("--chips", type=int, default=512, help="chips timed per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per method; median is kept")
    parser.add_argument("--out", type=Path, default=None, help="write results as JSON here")
    args = parser.parse_args()
    if not args.oscd.is_dir():
        raise SystemExit(f"OSCD data not found at {args.oscd}; pass --oscd")
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_data_"))
    torch.set_num_threads(1)

    scenes = stack_scenes(args.oscd, work / "stacked")
    stores = {}
    for compression in ("lz4", "zstd"):
        root = work / f"store_{compression}"
        shutil.rmtree(root, ignore_errors=True)
        stores[compression] = write_store(scenes, root, compression)
    store = stores["lz4"]
    windows = WindowDataset(scenes, count=10**5)
    zarr_sets = {}
    import zarr

    zarr_shards = (None, 64) if int(zarr.__version__.split(".")[0]) >= 3 else ()  # v3 API only
    for shard in zarr_shards:
        root = work / f"zarr_{shard or 'plain'}"
        shutil.rmtree(root, ignore_errors=True)
        zarr_sets[shard] = ZarrChips(store, root, shard)

    def torchgeo_loader(workers: int) -> Iterable[Any]:
        from torchgeo.datasets import stack_samples

        # a fresh dataset per loader: torchgeo caches open files, and workers forked from a
        # process holding them would share file offsets (corrupt reads)
        tg_dataset, tg_sampler = torchgeo_dataset(work / "stacked")
        return DataLoader(
            tg_dataset,
            sampler=tg_sampler,
            batch_size=BATCH,
            num_workers=workers,
            collate_fn=stack_samples,
        )

    def loader_of(dataset: Any, shuffle: bool = False) -> Callable[[int], Iterable[Any]]:
        return lambda workers: DataLoader(
            dataset,
            batch_size=BATCH,
            shuffle=shuffle,
            num_workers=workers,
            collate_fn=collate_samples,
        )

    methods: dict[str, Callable[[int], Iterable[Any]]] = {
        "a_torchgeo": torchgeo_loader,
        "b_windowed_reader": loader_of(windows),
        "c_chip_store": lambda workers: batch_loader(
            ChipStream(store, seed=0, batch_size=BATCH), num_workers=workers
        ),
    }
    formats: dict[str, Callable[[int], Iterable[Any]]] = {
        "arrow_blosc_lz4_per_chip": loader_of(ChipStream(store, seed=0)),
        "arrow_blosc_zstd_per_chip": loader_of(ChipStream(stores["zstd"], seed=0)),
    }
    if zarr_sets:
        formats["zarr3_chunk_per_chip"] = loader_of(zarr_sets[None])
        formats["zarr3_sharded_64"] = loader_of(zarr_sets[64])
    results: dict[str, Any] = {
        "machine": f"{platform.processor() or platform.machine()}, shared, "
        f"{torch.get_num_threads()} torch thread(s)",
        "scenes": len(scenes),
        "store_chips": len(store),
        "chip": f"1x13x{SIZE}x{SIZE} uint16",
        "batch_size": BATCH,
        "chips_per_run": args.chips,
        "repeats": args.repeats,
        "methods": {},
        "formats": {},
        "store_bytes": {
            name: sum(f.stat().st_size for f in (work / name).rglob("*") if f.is_file())
            for name in ("store_lz4", "store_zstd", "zarr_plain", "zarr_64")
            if (work / name).exists()
        },
    }
    for workers in (0, 2):
        for name, make in methods.items():
            rate = chips_per_second(make, workers, args.chips, args.repeats)
            results["methods"].setdefault(name, {})[f"workers_{workers}"] = rate
            print(f"{name:22s} workers={workers}: {rate:9.1f} chips/s", flush=True)
    for name, make in formats.items():
        rate = chips_per_second(make, 0, args.chips, args.repeats)
        results["formats"][name] = rate
        print(f"format {name:24s} workers=0: {rate:9.1f} chips/s", flush=True)
    for workers in ("workers_0", "workers_2"):
        base = results["methods"]["a_torchgeo"][workers]
        results.setdefault("ratios_vs_torchgeo", {})[workers] = {
            name: values[workers] / base for name, values in results["methods"].items()
        }
    print(json.dumps(results["ratios_vs_torchgeo"], indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
