"""``satmae prep RECIPE``: turn source datasets into chip stores (the ``data_prep/`` recipes).

One sub-subcommand per recipe of :mod:`satmae.prep`; the scripts in ``data_prep/`` run these
same commands, so ``python data_prep/s2_scenes_to_chips.py ARGS`` is ``satmae prep s2-scenes
ARGS``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from satmae.cli.arguments import positive_int
from satmae.prep.options import add_plan_arguments, add_scale_out_arguments

if TYPE_CHECKING:  # the real imports are in the functions, so `satmae --help` stays fast
    from satmae.data.readers.frames import Frame
    from satmae.data.store.chipping import ChipPlan


def _cut(groups: Mapping[str, Sequence[Frame]], plan: ChipPlan, args: argparse.Namespace) -> int:
    """Cut the gathered locations, print the summary; 1 if a location failed."""
    from satmae.data.store.chipping import summarize
    from satmae.prep.chips import cut_locations

    reports = cut_locations(
        groups, str(args.out), plan, workers=args.workers, scheduler=args.scheduler
    )
    print(summarize(reports))
    if any(report.error for report in reports):
        return 1
    if reports and not any(report.written or report.resumed for report in reports):
        print(
            f"error: no chip was written to {args.out}: every window had too few valid pixels "
            "or clear dates for the plan; lower --min-valid, choose other --dates or check the "
            "data with `satmae check`",
            file=sys.stderr,
        )
        return 1
    return 0


def run_s2_scenes(args: argparse.Namespace) -> int:
    """``satmae prep s2-scenes``."""
    from satmae.prep.options import plan_from_arguments
    from satmae.prep.s2_scenes import gather

    plan = plan_from_arguments(args)  # bad options fail before any scene is listed
    return _cut(gather(args.sources), plan, args)


def run_fmow_sentinel(args: argparse.Namespace) -> int:
    """``satmae prep fmow-sentinel``."""
    from satmae.prep.fmow_sentinel import gather
    from satmae.prep.options import plan_from_arguments

    plan = plan_from_arguments(args)
    return _cut(gather(args.csv, args.limit), plan, args)


def run_ssl4eo_s12(args: argparse.Namespace) -> int:
    """``satmae prep ssl4eo-s12``."""
    from satmae.prep.options import plan_from_arguments
    from satmae.prep.ssl4eo_s12 import gather

    plan = plan_from_arguments(args)
    return _cut(gather(args.root, args.split, args.limit), plan, args)


def run_oscd_torchgeo(args: argparse.Namespace) -> int:
    """``satmae prep oscd-torchgeo``: print how many cities were written; 1 if one failed."""
    from satmae.prep.oscd_torchgeo import convert

    results = convert(
        args.root, args.out, args.cities, workers=args.workers, scheduler=args.scheduler
    )
    failed = [result for result in results if result not in ("written", "exists")]
    print(
        f"cities: {len(results)} ({results.count('exists')} already written), failed: {len(failed)}"
    )
    for message in failed:
        print(f"  FAILED {message}")
    return 1 if failed else 0


def _add_recipe(
    recipes: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    run: Callable[[argparse.Namespace], int],
    summary: str,
    details: str,
) -> argparse.ArgumentParser:
    """One recipe's parser: ``summary`` is its help line and description, ``details`` its epilog."""
    parser = recipes.add_parser(
        name,
        help=summary,
        description=f"{summary}.",
        epilog=details,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(func=run)
    return parser


def _add_limit(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--limit", type=positive_int, default=None, help="only the first N locations"
    )


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``satmae prep`` and one sub-subcommand per recipe."""
    parser = subparsers.add_parser(
        "prep",
        help="cut source datasets (Sentinel-2 scenes, fMoW-Sentinel, SSL4EO-S12, OSCD) into "
        "chip stores",
        description="Turn a source dataset into a chip store for pretraining (or OSCD into "
        "torchgeo's layout). Every recipe shows a progress bar, prints a summary, exits 1 if a "
        "location failed and skips what is already written when rerun; --workers and "
        "--scheduler scale it out with dask.",
    )
    recipes = parser.add_subparsers(dest="recipe", metavar="RECIPE", required=True)

    scenes = _add_recipe(
        recipes,
        "s2-scenes",
        run_s2_scenes,
        "Sentinel-2 scene folders (SAFE or COGs) or index tables -> chip store",
        "Each SOURCE is one location: a folder of dated scenes (SAFE products, per-band\n"
        "folders or multi-band GeoTIFF/COGs with the date in their names), or an index\n"
        "CSV/Parquet listing `path, datetime, location` rows (several locations allowed).\n"
        "Every location becomes one part of the store; a rerun skips the parts already\n"
        "written.\n"
        "\n"
        "  satmae prep s2-scenes tiles/T31UDQ tiles/T32TPP --out chips/ \\\n"
        "      --size 96 --frames 4 --dates season --min-valid 0.9 --workers 8",
    )
    scenes.add_argument(
        "sources",
        nargs="+",
        type=Path,
        help="series folders (one location each) or index CSV/Parquet files",
    )
    add_plan_arguments(scenes, size=96, sampling="grid", frames=1, dates="clearest")

    fmow = _add_recipe(
        recipes,
        "fmow-sentinel",
        run_fmow_sentinel,
        "fMoW-Sentinel CSV -> chip store",
        "Reads train.csv/val.csv (`category, location_id, image_id, timestamp`; files are\n"
        "found in the dataset's layout beside the CSV, or through an `image_path` column).\n"
        "By default every image becomes its own single-frame chip, centre-cropped (or padded,\n"
        "padding invalid) to --size, as SatMAE uses it; --frames T --dates clearest builds\n"
        "T-frame series per location instead. One part per location; chip ids are\n"
        "<category>_<location_id>@...\n"
        "\n"
        "  satmae prep fmow-sentinel fmow-sentinel/train.csv --out fmow_chips/ \\\n"
        "      --bands B01 B02 B03 B04 B05 B06 B07 B08 B8A B09 B10 B11 B12 --workers 16",
    )
    fmow.add_argument("csv", type=Path, help="fMoW-Sentinel CSV (train.csv, val.csv, ...)")
    _add_limit(fmow)
    add_plan_arguments(fmow, size=96, sampling="center", frames=1, dates="each")

    ssl4eo = _add_recipe(
        recipes,
        "ssl4eo-s12",
        run_ssl4eo_s12,
        "SSL4EO-S12 (L1C s2c or L2A s2a) -> chip store of four-season series",
        "The layout is the one torchgeo's SSL4EOS12 reads: ROOT/<split>/<location>/<season>/\n"
        "B1.tif ... B12.tif, a season folder named <YYYYMMDDTHHMMSS>_<YYYYMMDDTHHMMSS>_<tile>\n"
        "and bands at their native resolutions (264 px at 10 m). Each location becomes one\n"
        "part; chips keep the seasons as frames with their acquisition times.\n"
        "\n"
        "  satmae prep ssl4eo-s12 /data/ssl4eo-s12 --split s2c --out ssl4eo_chips/ \\\n"
        "      --bands B01 B02 B03 B04 B05 B06 B07 B08 B8A B09 B10 B11 B12 --workers 16",
    )
    ssl4eo.add_argument("root", type=Path, help="SSL4EO-S12 root (holding s2c/ or s2a/)")
    ssl4eo.add_argument("--split", choices=["s2c", "s2a"], default="s2c")
    _add_limit(ssl4eo)
    add_plan_arguments(ssl4eo, size=264, sampling="center", frames=4, dates="all")

    oscd = _add_recipe(
        recipes,
        "oscd-torchgeo",
        run_oscd_torchgeo,
        "OSCD native-resolution folders -> torchgeo's imgs_*_rect layout",
        "Resamples every band of imgs_1/ and imgs_2/ onto the city's 10 m grid (bilinear,\n"
        "rounded back to uint16) and writes <city>/imgs_{1,2}_rect/B01.tif ... B8A.tif,\n"
        "copying dates.txt, the city GeoJSON, train.txt/test.txt and the label folders. Each\n"
        "city is written to a temporary folder and renamed into place, so a rerun skips\n"
        "finished cities.\n"
        "\n"
        "  satmae prep oscd-torchgeo ../shared/data/real/oscd --out data/oscd --workers 4",
    )
    oscd.add_argument("root", type=Path, help="OSCD root (holding the '... - Images' folder)")
    oscd.add_argument("--out", type=Path, required=True, help="torchgeo OSCD root to write")
    oscd.add_argument("--cities", nargs="+", default=None, help="only these cities")
    add_scale_out_arguments(oscd)
