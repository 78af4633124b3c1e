"""``satmae stats DATA --out stats.json``: per-band normalisation statistics of a dataset."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from satmae.normalization import BandStats

from satmae.cli.arguments import positive_int


def run(args: argparse.Namespace) -> int:
    """Stream every sample under DATA and write the statistics JSON."""
    # Heavy imports live here so that `satmae --help` stays fast.
    from satmae.data.stats import DEFAULT_PERCENTILES
    from satmae.io import claim_output

    if args.percentiles is None:
        args.percentiles = list(DEFAULT_PERCENTILES)
    # Claimed before the work: a second run of the same --out fails at once (busy or exists),
    # and the lock is held until the JSON is in place.
    with claim_output(args.out, overwrite=args.overwrite) as out:
        stats = _compute(args)
        stats.save(out)  # under the claim: checked above, and no other run can write it
    if not args.quiet:
        _show(stats, out)
    return 0


def _compute(args: argparse.Namespace) -> BandStats:
    """Stream every sample under ``args.data`` into the statistics."""
    from tqdm.auto import tqdm

    from satmae.data.readers.sources import iter_tiles, list_sources
    from satmae.data.stats import StatsAccumulator

    sources = list_sources(args.data, args.bands, band_order=args.band_order)
    accumulator = StatsAccumulator(
        args.bands, exact_limit=args.exact_limit, percentiles=args.percentiles
    )
    for source in tqdm(sources, desc="stats", unit="sample", disable=args.quiet):
        for tile in iter_tiles(source, args.tile):  # bounded memory, even for whole scenes
            accumulator.update(tile)
    today = datetime.now(UTC).date().isoformat()
    provenance = args.provenance or (
        f"computed with `satmae stats {args.data}` on {len(sources)} samples ({today}); "
        "valid pixels only"
    )
    return accumulator.result(provenance)


def _show(stats: BandStats, out: Path) -> None:
    """Print the per-band table."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{out} ({'exact' if stats.exact else 'histogram'} percentiles)")
    for column in ("band", "mean", "std", "p2", "p50", "p98", "pixels"):
        table.add_column(column, justify="right")
    for band in stats.bands:
        q = stats.percentiles[band]
        table.add_row(
            band,
            f"{stats.mean[band]:.2f}",
            f"{stats.std[band]:.2f}",
            f"{q.get('2', float('nan')):.1f}",
            f"{q.get('50', float('nan')):.1f}",
            f"{q.get('98', float('nan')):.1f}",
            f"{stats.count[band]:,}",
        )
    Console().print(table)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``satmae stats``."""
    parser = subparsers.add_parser(
        "stats",
        help="compute per-band mean, std and percentiles of a dataset (JSON keyed by band)",
        description="Stream a dataset and write per-band normalisation statistics (valid pixels "
        "only): exact for small data, bounded memory for large data.",
    )
    parser.add_argument("data", help="raster, folder, OSCD/BigEarthNet root, cube or index")
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--bands", nargs="+", help="bands to compute (default: all found)")
    parser.add_argument(
        "--band-order", nargs="+", help="band order of multi-band files without band names"
    )
    parser.add_argument(
        "--percentiles",
        nargs="+",
        type=float,
        default=None,
        help="percentiles to report (default: satmae.data.stats.DEFAULT_PERCENTILES, "
        "0.5 1 2 5 25 50 75 95 98 99 99.5)",
    )
    parser.add_argument(
        "--exact-limit",
        type=positive_int,
        default=2_000_000,
        help="values per band kept for exact percentiles before a histogram takes over",
    )
    parser.add_argument(
        "--tile",
        type=positive_int,
        default=2048,
        help="read rasters in tiles of this many pixels a side (bounds memory per scene); "
        "a tile with values outside the plausible Sentinel-2 range stops the run",
    )
    parser.add_argument("--provenance", help="text stored in the JSON about where data came from")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing --out (a regular file only)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar or table")
    parser.set_defaults(func=run)
