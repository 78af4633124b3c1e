"""``satmae demo-data``: write the synthetic Sentinel-2 demo set."""

from __future__ import annotations

import argparse
from pathlib import Path


def run(args: argparse.Namespace) -> int:
    """Generate the demo set and print what was written."""
    from satmae.data.synthetic import DemoConfig, DemoSet, write_demo_set
    from satmae.data.synthetic.files import OVERVIEW
    from satmae.viz import demo_overview

    def draw_overview(staged: DemoSet) -> None:  # inside the staged set, so it swaps in with it
        demo_overview(staged.root).savefig(staged.root / OVERVIEW, dpi=80, format="png")

    config = DemoConfig(seed=args.seed, size=args.size, num_dates=args.dates)
    demo = write_demo_set(args.out, config, overwrite=args.overwrite, extras=draw_overview)
    overview = demo.root / OVERVIEW
    total = sum(path.stat().st_size for path in demo.root.iterdir() if path.is_file())
    first, last = demo.dates[0].date(), demo.dates[-1].date()
    print(
        f"wrote {len(demo.images)} dates ({first} .. {last}) of {config.size}x{config.size} "
        f"12-band Sentinel-2 L2A COGs, SCL layers, land cover and a change mask to "
        f"{demo.root} ({total / 1e6:.1f} MB); overview: {overview}"
    )
    return 0


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``satmae demo-data``."""
    parser = subparsers.add_parser(
        "demo-data",
        help="write a synthetic multi-date Sentinel-2 L2A demo set (COGs, SCL, labels)",
        description=(
            "Write a procedurally generated Sentinel-2 L2A time series over one area: one "
            "12-band COG and one SCL layer per date, land cover at the first and last date, "
            "a change mask and an overview figure (overview.png). Deterministic for a seed."
        ),
    )
    parser.add_argument("--out", type=Path, required=True, help="destination folder")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument(
        "--size", type=int, default=256, help="width and height in 10 m pixels (default: 256)"
    )
    parser.add_argument(
        "--dates", type=int, default=6, help="number of acquisition dates (default: 6)"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a demo set written earlier, whole (a folder holding anything else is "
        "never replaced)",
    )
    parser.set_defaults(func=run)
