"""SSL4EO-S12 (Sentinel-2 L1C ``s2c`` or L2A ``s2a``) -> chip store of four-season series.

The layout is the one torchgeo's ``SSL4EOS12`` reads: ``ROOT/<split>/<location>/<season>/B1.tif
... B12.tif``, a season folder named ``<YYYYMMDDTHHMMSS>_<YYYYMMDDTHHMMSS>_<tile>`` and bands at
their native resolutions (264 px at 10 m). Each location becomes one part; chips keep the seasons
as frames with their acquisition times.

    python data_prep/ssl4eo_s12.py /data/ssl4eo-s12 --split s2c --out ssl4eo_chips/ \
        --bands B01 B02 B03 B04 B05 B06 B07 B08 B8A B09 B10 B11 B12 --workers 16
"""

from __future__ import annotations

from pathlib import Path

from common import add_plan_arguments, recipe_parser, run_locations

from satmae.data.readers.frames import Frame, frames_from_folder


def gather(root: Path, split: str, limit: int | None) -> dict[str, list[Frame]]:
    folder = root / split
    if not folder.is_dir():
        raise SystemExit(f"{folder} does not exist; expected ROOT/{split}/<location>/<season>/")
    locations = sorted(p for p in folder.iterdir() if p.is_dir())[:limit]
    if not locations:
        raise SystemExit(f"{folder} holds no location folders")
    return {p.name: frames_from_folder(p) for p in locations}


def main(argv: list[str] | None = None) -> None:
    parser = recipe_parser(__doc__)
    parser.add_argument("root", type=Path, help="SSL4EO-S12 root (holding s2c/ or s2a/)")
    parser.add_argument("--split", choices=["s2c", "s2a"], default="s2c")
    parser.add_argument("--limit", type=int, default=None, help="only the first N locations")
    add_plan_arguments(parser, size=264, sampling="center", frames=4, dates="all")
    args = parser.parse_args(argv)
    run_locations(gather(args.root, args.split, args.limit), args, "locations")


if __name__ == "__main__":
    main()
