"""``satmae embed INPUTS --model M --out OUT``: georeferenced embeddings of scenes."""

from __future__ import annotations

import argparse
from pathlib import Path

from satmae.cli.arguments import positive_int
from satmae.prep.options import add_scale_out_arguments


def run(args: argparse.Namespace) -> int:
    """Embed every place under INPUTS and say where the outputs are."""
    from satmae.embed.raster import embed_raster, open_encoder

    scaled_out = args.workers > 1 or args.scheduler is not None
    model = (
        args.model
        if scaled_out and not args.random_init
        else open_encoder(args.model, args.device, random_init=args.random_init)
    )
    outputs = embed_raster(
        args.inputs,
        model,
        args.out,
        output_format=args.format,
        size=args.window,
        stride=args.stride,
        batch_size=args.batch_size,
        bands=args.bands,
        latest=args.latest,
        overwrite=args.overwrite,
        resume=args.resume,
        preview=args.preview and args.format != "parquet",
        workers=args.workers,
        scheduler=args.scheduler,
        progress=not args.quiet,
        block_rows=args.block_rows,
        precision=args.precision,
        devices=args.devices,
        accelerator=args.accelerator,
    )
    for output in outputs:
        print(f"wrote {output}")
    if len(outputs) > 1:
        from satmae.embed.index import INDEX_NAME

        print(f"wrote {Path(args.out) / INDEX_NAME} (a GeoParquet index of the outputs)")
    return 0


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``satmae embed``."""
    parser = subparsers.add_parser(
        "embed",
        help="embed scenes into georeferenced COG / Zarr maps or GeoParquet rows",
        description="Embed a scene, a time series of one place, or a folder of places with a "
        "SatMAE encoder: sliding windows with overlap blending into a patch-resolution map "
        "(COG or Zarr, with CRS, transform and model tags), or one GeoParquet row per window. "
        "Memory is bounded by a strip of windows; finished places are kept with --resume.",
    )
    parser.add_argument("inputs", help="scene, dated folder, folder of places or index table")
    parser.add_argument(
        "--model",
        required=True,
        help="bundle, .ckpt or official .pth; or a registry name with --random-init",
    )
    parser.add_argument("--out", required=True, help="output file (one place) or folder")
    parser.add_argument(
        "--format", choices=("cog", "zarr", "parquet"), default="cog", help="output kind"
    )
    parser.add_argument("--window", type=int, help="window side in pixels (default: model's)")
    parser.add_argument("--stride", type=int, help="step between windows (default: half)")
    parser.add_argument("--batch-size", type=int, default=8, help="windows per forward pass")
    parser.add_argument("--bands", nargs="+", help="bands to read (default: all found)")
    parser.add_argument("--latest", type=int, help="embed only the latest N dates of each series")
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:1, ...)")
    parser.add_argument(
        "--precision",
        choices=("auto", "32", "bf16"),
        default="auto",
        help="auto: bf16 autocast where the device has native bf16 (see satmae info) and, on "
        "a CPU, the encoder is at least 768 wide; else fp32",
    )
    parser.add_argument(
        "--random-init", action="store_true", help="a registry model with random weights"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.add_argument(
        "--resume", action="store_true", help="keep finished outputs (and finished blocks)"
    )
    parser.add_argument(
        "--block-rows",
        type=int,
        help="embed each map in blocks of N patch rows, one task per block (large scenes over "
        "many workers; a killed run keeps finished blocks for --resume)",
    )
    parser.add_argument("--preview", action="store_true", help="write a PCA-to-RGB PNG too")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_scale_out_arguments(parser)
    lightning = parser.add_argument_group("accelerators")
    lightning.add_argument(
        "--devices",
        type=positive_int,
        help="run the blocks with Lightning's predict loop on N devices (e.g. GPUs) instead of "
        "dask; each place is one block unless --block-rows is given",
    )
    lightning.add_argument(
        "--accelerator",
        default="auto",
        help="Lightning accelerator for --devices: auto, gpu, cpu (default: auto)",
    )
    parser.set_defaults(func=run)
