"""Sentinel-2 scene folders (SAFE or COGs) -> chip store.

Each SOURCE is one location: a folder of dated scenes (SAFE products, per-band folders or
multi-band GeoTIFF/COGs with the date in their names), or an index CSV/Parquet listing
``path, datetime, location`` rows (several locations allowed). Every location becomes one part
of the store; a rerun skips the parts already written.

    python data_prep/s2_scenes_to_chips.py tiles/T31UDQ tiles/T32TPP --out chips/ \
        --size 96 --frames 4 --dates season --min-valid 0.9 --workers 8
"""

from __future__ import annotations

from pathlib import Path

from common import add_plan_arguments, recipe_parser, run_locations

from satmae.data.readers.frames import Frame, frames_from_folder, group_by_location, read_index


def gather(sources: list[Path]) -> dict[str, list[Frame]]:
    groups: dict[str, list[Frame]] = {}
    for source in sources:
        frames = frames_from_folder(source) if source.is_dir() else read_index(source)
        for location, series in group_by_location(frames).items():
            groups.setdefault(location or source.stem, []).extend(series)
    return groups


def main(argv: list[str] | None = None) -> None:
    parser = recipe_parser(__doc__)
    parser.add_argument(
        "sources",
        nargs="+",
        type=Path,
        help="series folders (one location each) or index CSV/Parquet files",
    )
    add_plan_arguments(parser, size=96, sampling="grid", frames=1, dates="clearest")
    args = parser.parse_args(argv)
    run_locations(gather(args.sources), args, "locations")


if __name__ == "__main__":
    main()
