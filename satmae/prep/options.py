"""Command-line options the recipes share: how chips are cut and how the work scales out.

Only ``argparse`` and the band catalog are imported here, so that ``satmae --help`` stays fast;
:func:`plan_from_arguments` imports the chip plan when a recipe runs.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from satmae.bands import L2A_BANDS, canonical_bands
from satmae.cli.arguments import positive_int

__all__ = ["add_plan_arguments", "add_scale_out_arguments", "plan_from_arguments"]

if TYPE_CHECKING:
    from satmae.data.store.chipping import ChipPlan


def add_scale_out_arguments(parser: argparse.ArgumentParser) -> None:
    """``--workers`` (local dask cluster) and ``--scheduler`` (a dask cluster of many machines)."""
    scale = parser.add_argument_group("scale-out")
    scale.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        help="local dask worker processes (1: no dask, run here)",
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
    """Chip-cutting and scale-out options; the keywords are this recipe's defaults."""
    group = parser.add_argument_group("chips")
    group.add_argument("--out", required=True, help="chip store folder or fsspec URL (s3://...)")
    group.add_argument(
        "--bands",
        nargs="+",
        default=list(L2A_BANDS),
        help="bands of the store, in order (default: the 12 L2A bands)",
    )
    group.add_argument(
        "--size", type=positive_int, default=size, help="chip side in pixels (10 m grid)"
    )
    group.add_argument("--frames", type=positive_int, default=frames, help="frames T per chip")
    group.add_argument("--sampling", choices=["grid", "random", "center"], default=sampling)
    group.add_argument(
        "--stride", type=positive_int, default=None, help="grid step (default --size)"
    )
    group.add_argument("--count", type=positive_int, default=16, help="random windows per location")
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
    """The chip plan that the options of :func:`add_plan_arguments` describe."""
    from satmae.data.store.chipping import ChipPlan

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
