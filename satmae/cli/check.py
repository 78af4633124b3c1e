"""``satmae check DATA [--model BUNDLE]``: validate data against what a model expects."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import TYPE_CHECKING

from satmae.cli.arguments import non_negative_int, positive_int

if TYPE_CHECKING:  # the real imports are in the functions, so `satmae --help` stays fast
    from satmae.data.checks import CheckResult
    from satmae.data.grid import Grid
    from satmae.data.stats import BandStats

_STYLE = {"ok": "green", "warn": "yellow", "error": "bold red", "skip": "dim"}


def _default_stats(bands: tuple[str, ...]) -> BandStats:
    """Built-in statistics for the product level the bands suggest (B10 only exists in L1C)."""
    from satmae.data.stats import load_stats

    return load_stats("s2_l1c" if "B10" in bands else "s2_l2a")


def run(args: argparse.Namespace) -> int:
    """Check every sample (up to --max-samples) and print a table; exit 1 on errors."""
    from rich.console import Console
    from rich.table import Table
    from tqdm.auto import tqdm

    from satmae.data.checks import check_content, check_grids, check_sample
    from satmae.data.readers.sources import list_sources, read_center_window
    from satmae.data.stats import load_stats
    from satmae.spec import load_spec

    model = load_spec(args.model) if args.model else None
    chosen = load_stats(args.stats) if args.stats else None
    sources = list_sources(args.data, args.bands, band_order=args.band_order)
    results: list[CheckResult] = []
    grids: list[tuple[str, Grid]] = []
    limit = args.max_samples or len(sources)  # 0: every source
    chosen_sources = sources[:limit]
    progress = tqdm(
        chosen_sources,
        desc="checking",
        unit="sample",
        leave=False,
        disable=args.json or len(chosen_sources) < 4,
    )
    for source in progress:
        if (grid := source.grid()) is not None:
            grids.append((source.name, grid))
        window, sample = read_center_window(source, args.size)
        content = check_content(dict(sample), source.name, window)
        results += content
        if content[0].status == "error":
            continue  # statistics of a corrupt file would only repeat the finding
        stats = chosen or (model.normalization.stats if model and model.normalization else None)
        stats = stats or _default_stats(sample["bands"])
        results += check_sample(
            dict(sample), stats=stats, model=model, source=source.name, dtype=source.dtype()
        )
    results += check_grids(grids)
    errors = sum(result.status == "error" for result in results)
    if args.json:
        print(json.dumps([asdict(result) for result in results], indent=2))
    else:
        table = Table(title=f"satmae check {args.data}")
        for column in ("source", "check", "status", "detail"):
            table.add_column(column, overflow="fold")
        for result in results:
            if result.status in ("ok", "skip") and args.errors_only:
                continue
            style = _STYLE[result.status]
            table.add_row(
                result.source, result.check, f"[{style}]{result.status}[/]", result.detail
            )
        console = Console(width=args.width)
        if table.row_count:
            console.print(table)
        warnings = sum(result.status == "warn" for result in results)
        checked = len(chosen_sources)
        skipped = len(sources) - checked
        more = (
            f" ({skipped} more samples not checked; raise --max-samples, 0 checks all)"
            if skipped
            else ""
        )
        console.print(f"{errors} error(s), {warnings} warning(s) in {checked} sample(s){more}")
    return 1 if errors else 0


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``satmae check``."""
    parser = subparsers.add_parser(
        "check",
        help="validate data (bands, order, scale, nodata, grids, normalisation) before training",
        description="Check data against what a model expects: plausible values (a file "
        "corrupt inside a tile), band names and order (from the pixels: B08/B8A swaps, 60 m "
        "bands in 10 m slots), reflectance scale, nodata, grids and CRSs, and mean/std after "
        "normalisation. Exits 1 when any check fails.",
    )
    parser.add_argument("data", help="raster, folder, OSCD/BigEarthNet root, cube or index")
    parser.add_argument(
        "--model",
        help="what the data must fit: a bundle folder, .safetensors bundle, Lightning .ckpt or "
        "official SatMAE .pth (its bands, patch size, time fields and statistics)",
    )
    parser.add_argument(
        "--stats",
        help="statistics in use: s2_l1c, s2_l2a, satmae_official, fmow_rgb or a JSON file "
        "(default: the model's, else built-in by product level)",
    )
    parser.add_argument("--bands", nargs="+", help="bands to read (default: all found)")
    parser.add_argument(
        "--band-order", nargs="+", help="band order of multi-band files without band names"
    )
    parser.add_argument(
        "--max-samples",
        type=non_negative_int,
        default=20,
        help="check the first N samples (default 20; 0 checks every sample)",
    )
    parser.add_argument(
        "--size",
        type=positive_int,
        default=1024,
        help="check the central SIZE x SIZE pixels of each raster (default 1024)",
    )
    parser.add_argument("--errors-only", action="store_true", help="show only warnings and errors")
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    parser.add_argument("--width", type=int, default=None, help="table width in characters")
    parser.set_defaults(func=run)
