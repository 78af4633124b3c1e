"""Embedding a scene: pixels/s against a naive torchgeo loop, and peak memory against scene size.

Writes a synthetic dated 12-band uint16 GeoTIFF of ``--size`` pixels a side, then, each in a
fresh process so that peak RSS is its own: ``satmae.embed.raster.embed_raster`` (windows read
ahead of compute, strips written as they finish) at its default precision (``auto``: bf16
autocast where the CPU has native bf16) and at fp32, and a naive loop (torchgeo
``RasterDataset`` + ``GridGeoSampler`` + ``DataLoader``, the same encoder in fp32, results kept in
memory), all with the same windows (no overlap) and batch size. ``--block-rows N`` adds a run in
blocks of N map rows (``embed_raster(block_rows=N)``). Prints pixels/s and peak RSS of each.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_embed.py --size 2745 --size 5490 --naive
    PYTHONPATH=. .venv/bin/python benchmarks/bench_embed.py --size 10980 --block-rows 64
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
WINDOW = 64
BATCH = 64


def write_scene(path: Path, size: int) -> None:
    """A dated 12-band uint16 scene written block by block (memory stays small)."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    profile = {
        "driver": "GTiff", "width": size, "height": size, "count": len(BANDS),
        "dtype": "uint16", "crs": "EPSG:32633", "nodata": 0, "tiled": True,
        "blockxsize": 512, "blockysize": 512,
        "transform": from_origin(300_000.0, 5_000_000.0, 10.0, 10.0),
    }  # fmt: skip
    rng = np.random.default_rng(0)
    with rasterio.open(path, "w", **profile) as dataset:
        dataset.update_tags(ACQUISITION_DATETIME="2023-07-01T10:00:00Z")
        for index, band in enumerate(BANDS, start=1):
            dataset.set_band_description(index, band)
        for top in range(0, size, 512):
            rows = min(512, size - top)
            block = rng.integers(300, 4000, (len(BANDS), rows, size), dtype=np.uint16)
            dataset.write(block, window=Window(0, top, size, rows))


def run_ours(
    scene: Path, out: Path, precision: str = "auto", block_rows: int | None = None
) -> dict[str, Any]:
    from satmae.embed.raster import embed_raster, resolved_precision
    from satmae.models import create_model

    encoder = create_model("satmae_tiny", img_size=(WINDOW, WINDOW)).encoder.eval()
    start = time.perf_counter()
    embed_raster(scene, encoder, out, size=WINDOW, stride=WINDOW, batch_size=BATCH,
                 overwrite=True, progress=False, precision=precision,  # type: ignore[arg-type]
                 block_rows=block_rows)  # fmt: skip
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "precision": resolved_precision(encoder, precision)}


def run_naive(scene: Path) -> dict[str, Any]:
    import torch
    from torch.utils.data import DataLoader
    from torchgeo.datasets import RasterDataset, stack_samples
    from torchgeo.samplers import GridGeoSampler

    from satmae.models import create_model

    class Scene(RasterDataset):  # type: ignore[misc]
        filename_glob = scene.name
        is_image = True
        all_bands = BANDS

    encoder = create_model("satmae_tiny", img_size=(WINDOW, WINDOW)).encoder.eval()
    dataset = Scene(paths=str(scene.parent))
    sampler = GridGeoSampler(dataset, size=WINDOW, stride=WINDOW)
    loader = DataLoader(dataset, sampler=sampler, batch_size=BATCH, collate_fn=stack_samples)
    times = torch.full((1,), 1_688_169_600)
    start = time.perf_counter()
    outputs = []
    with torch.no_grad():
        for batch in loader:
            image = batch["image"].float()[:, None]  # (B, 1, C, H, W)
            sample = {"image": image, "bands": BANDS, "times": times.expand(len(image), 1)}
            outputs.append(encoder(sample).dense("mean"))
    return {"seconds": time.perf_counter() - start, "windows": sum(len(o) for o in outputs)}


def child(kind: str, scene: Path, out: Path) -> None:
    if kind == "naive":
        result = run_naive(scene)
    elif kind.startswith("blocks"):
        result = run_ours(scene, out, block_rows=int(kind.removeprefix("blocks")))
    else:
        result = run_ours(scene, out, "auto" if kind == "ours" else "32")
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, action="append", help="scene side(s) in pixels")
    parser.add_argument("--work", type=Path, default=Path("/tmp/satmae_bench_embed"))
    parser.add_argument("--naive", action="store_true", help="also run the naive loop")
    parser.add_argument("--block-rows", type=int, help="also run in blocks of N map rows")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/embed.json"))
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), Path(args.child[2]))
        return
    from satmae.cli.info import collect_info

    results = []
    for size in args.size or [2745]:
        folder = args.work / f"s{size}"
        folder.mkdir(parents=True, exist_ok=True)
        scene = folder / "S2_20230701.tif"
        if not scene.exists():
            write_scene(scene, size)
        row: dict[str, Any] = {"size": size, "pixels": size * size}
        kinds = ["ours", "ours_fp32", *(["naive"] if args.naive else [])]
        if args.block_rows:
            kinds.append(f"blocks{args.block_rows}")
        for kind in kinds:
            command = [sys.executable, __file__, "--child", kind, str(scene), str(folder / "e.tif")]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            measured = json.loads(done.stdout.strip().splitlines()[-1])
            measured["pixels_per_s"] = size * size / measured["seconds"]
            row[kind] = measured
            print(f"{size} px {kind}: {measured['pixels_per_s'] / 1e6:.2f} Mpx/s, "
                  f"peak RSS {measured['peak_rss_mb']:.0f} MB", flush=True)  # fmt: skip
        if args.naive:
            for kind in ("ours", "ours_fp32"):
                row[f"{kind}_vs_naive"] = row[kind]["pixels_per_s"] / row["naive"]["pixels_per_s"]
        results.append(row)
    info = collect_info()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    record = {"command": " ".join(sys.argv), "cpu": info["cpu"], "results": results}
    args.out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
