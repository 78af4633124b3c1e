"""fMoW-Sentinel CSV -> chip store.

Reads ``train.csv``/``val.csv`` (``category, location_id, image_id, timestamp``; files are
found in the dataset's layout beside the CSV, or through an ``image_path`` column). By default every
image becomes its own single-frame chip, centre-cropped (or padded, padding invalid) to
``--size``, as SatMAE uses it; ``--frames T --dates clearest`` builds T-frame series per
location instead. One part per location; chip ids are ``<category>_<location_id>@...``.

    python data_prep/fmow_sentinel.py fmow-sentinel/train.csv --out fmow_chips/ \
        --bands B01 B02 B03 B04 B05 B06 B07 B08 B8A B09 B10 B11 B12 --size 96 --workers 16
"""

from __future__ import annotations

from pathlib import Path

from common import add_plan_arguments, recipe_parser, run_locations

from satmae.data.readers.frames import Frame, read_index


def gather(csv: Path, limit: int | None) -> dict[str, list[Frame]]:
    groups: dict[str, list[Frame]] = {}
    # fMoW location ids repeat across categories: a location is (category, location_id)
    for frame in read_index(csv):
        key = f"{frame.label}_{frame.location}" if frame.label is not None else frame.location
        groups.setdefault(key or csv.stem, []).append(frame)
    return dict(sorted(groups.items())[:limit])


def main(argv: list[str] | None = None) -> None:
    parser = recipe_parser(__doc__)
    parser.add_argument("csv", type=Path, help="fMoW-Sentinel CSV (train.csv, val.csv, ...)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N locations")
    add_plan_arguments(parser, size=96, sampling="center", frames=1, dates="each")
    args = parser.parse_args(argv)
    run_locations(gather(args.csv, args.limit), args, "locations")


if __name__ == "__main__":
    main()
