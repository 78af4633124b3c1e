"""Options and plumbing shared by the chip-store recipes (imported by the scripts beside it)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from satmae.bands import L2A_BANDS, canonical_bands
from satmae.data.parallel import run_tasks
from satmae.data.readers.frames import Frame
from satmae.data.store.chipping import (
    ChipPlan,
    LocationReport,
    LocationTask,
    chip_location,
    summarize,
)
from satmae.data.store.chipstore import remove_temporaries


def recipe_parser(doc: str) -> argparse.ArgumentParser:
    """A parser whose description is the recipe docstring's first paragraph, the rest its epilog."""
    summary, _, details = doc.partition("\n\n")
    return argparse.ArgumentParser(
        description=summary,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=details,
    )


def add_scale_out_arguments(parser: argparse.ArgumentParser) -> None:
    """``--workers`` (local dask cluster) and ``--scheduler`` (a dask cluster of many machines)."""
    scale = parser.add_argument_group("scale-out")
    scale.add_argument(
        "--workers", type=int, default=1, help="local dask worker processes (1: no dask, run here)"
    )
    scale.add_argument(
        "--scheduler",
        default=None,
        help="address of a dask scheduler (tcp://host:8786) for many machines; inputs and "
        "outputs must be reachable at the same paths from every worker",
    )


def add_plan_arguments(
    parser: argparse.ArgumentParser, *, size: int, sampling: str, frames: int, dates: str
) -> None:
    """Chip-cutting and scale-out options."""
    group = parser.add_argument_group("chips")
    group.add_argument("--out", required=True, help="chip store folder or fsspec URL (s3://...)")
    group.add_argument(
        "--bands",
        nargs="+",
        default=list(L2A_BANDS),
        help="bands of the store, in order (default: the 12 L2A bands)",
    )
    group.add_argument("--size", type=int, default=size, help="chip side in pixels (10 m grid)")
    group.add_argument("--frames", type=int, default=frames, help="frames T per chip")
    group.add_argument("--sampling", choices=["grid", "random", "center"], default=sampling)
    group.add_argument("--stride", type=int, default=None, help="grid step (default --size)")
    group.add_argument("--count", type=int, default=16, help="random windows per location")
    group.add_argument(
        "--dates",
        choices=["all", "clearest", "season", "each"],
        default=dates,
        help="date policy: first T, T clearest, clearest per consecutive season,"
        " or every date its own chip (T=1)",
    )
    group.add_argument(
        "--min-valid",
        type=float,
        default=0.5,
        help="minimum valid (clear, not nodata) fraction of every chosen frame",
    )
    group.add_argument("--seed", type=int, default=0, help="seed of random windows")
    group.add_argument("--compression", choices=["lz4", "zstd"], default="lz4")
    add_scale_out_arguments(parser)


def plan_from_arguments(args: argparse.Namespace) -> ChipPlan:
    return ChipPlan(
        bands=canonical_bands(args.bands),
        size=args.size,
        frames=args.frames,
        sampling=args.sampling,
        stride=args.stride,
        count=args.count,
        date_policy=args.dates,
        min_valid=args.min_valid,
        seed=args.seed,
        compression=args.compression,
    )


def run_locations(
    groups: dict[str, Sequence[Frame]], args: argparse.Namespace, description: str
) -> list[LocationReport]:
    """Cut every location into its own part; print a summary; exit 1 if any location failed."""
    plan = plan_from_arguments(args)
    if args.scheduler is None:
        removed = remove_temporaries(args.out)  # leftovers of killed runs; no writer is active
        if removed:
            print(f"removed {removed} unfinished part(s) of an earlier run", file=sys.stderr)
    tasks = [
        LocationTask(location, tuple(frames), str(args.out), plan)
        for location, frames in sorted(groups.items())
    ]
    reports = run_tasks(
        chip_location,
        tasks,
        scheduler=args.scheduler,
        workers=args.workers,
        description=description,
    )
    print(summarize(reports))
    if any(report.error for report in reports):
        sys.exit(1)
    return reports
