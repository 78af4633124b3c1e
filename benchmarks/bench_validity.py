"""Cost of the input checks on reader throughput, on the real OSCD cities.

Three arms read the same cities (both dates, all 13 bands, whole scenes) one after the other,
``--repeats`` times each, interleaved so that machine noise falls on every arm alike:

- ``unchecked``: the readers without the checks of issue 11 — band files neither tested for
  georeferencing, band count nor extent, and only NaN/inf zeroed (the rule before);
- ``rule``: the readers as shipped: those open-time checks and the one validity rule (masks,
  then the unmeasured pixels zero-filled);
- ``rule+content``: as ``rule``, plus the content check (plausible range per band) on every
  sample, as ``satmae stats`` and ``satmae check`` run it.

Reports the median CPU seconds of this process per arm (``time.process_time``: on a shared
machine wall time carries the other processes' load) and the ratios to ``unchecked``, measured
in this run, and writes ``benchmarks/results/validity.json``.

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/bench_validity.py --cities 3
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import torch

from satmae.data.readers import band_files, one_date
from satmae.data.readers.layouts import oscd_cities, read_oscd_city
from satmae.data.validity import implausible_values

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "oscd"


def _zero_nonfinite(image: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """The rule before issue 11: only NaN and inf were zeroed."""
    return torch.nan_to_num_(image, nan=0.0, posinf=0.0, neginf=0.0)


@contextmanager
def unchecked() -> Iterator[None]:
    """The readers without the new open-time checks and with the old zeroing."""
    with (
        mock.patch.object(one_date, "zero_fill", _zero_nonfinite),
        mock.patch.object(band_files, "require_georeferenced", lambda *_: None),
        mock.patch.object(band_files, "require_same_extent", lambda *_: None),
        mock.patch.object(band_files, "band_index", lambda *_: 1),
    ):
        yield


def read_all(root: Path, cities: list[str], content: bool) -> int:
    """Read every city; returns the number of values read (pixels x bands x dates)."""
    pixels = 0
    for city in cities:
        sample = read_oscd_city(root, city)
        if content:
            assert not implausible_values(sample["image"], sample["bands"]), city
        pixels += sample["image"].numel()
    return pixels


def timed(run: Callable[[], int]) -> tuple[float, int]:
    """CPU seconds of this process (the machine is shared: wall time carries others' load)."""
    start = time.process_time()
    pixels = run()
    return time.process_time() - start, pixels


def main() -> None:
    """Run the arms and print/write the medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=REAL, help="OSCD root (real cities)")
    parser.add_argument("--cities", type=int, default=3, help="number of cities to read")
    parser.add_argument("--repeats", type=int, default=7, help="runs per arm (median reported)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/validity.json"))
    args = parser.parse_args()
    cities = oscd_cities(args.root)[: args.cities]
    arms: dict[str, Callable[[], int]] = {
        "unchecked": lambda: _unchecked_read(args.root, cities),
        "rule": lambda: read_all(args.root, cities, content=False),
        "rule+content": lambda: read_all(args.root, cities, content=True),
    }
    for run in arms.values():  # warm the page cache and GDAL's block cache once
        run()
    times: dict[str, list[float]] = {name: [] for name in arms}
    pixels = 0
    for _ in range(args.repeats):
        for name, run in arms.items():
            seconds, pixels = timed(run)
            times[name].append(seconds)
    medians = {name: statistics.median(values) for name, values in times.items()}
    base = medians["unchecked"]
    result: dict[str, Any] = {
        "command": f"bench_validity.py --cities {args.cities} --repeats {args.repeats}",
        "cities": cities,
        "values_per_run": pixels,
        "median_seconds": medians,
        "ratio_to_unchecked": {name: value / base for name, value in medians.items()},
        "million_values_per_second": {
            name: pixels / value / 1e6 for name, value in medians.items()
        },
        "all_seconds": times,
        "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
    }
    for name, value in medians.items():
        print(f"{name:>13}: {value * 1000:8.1f} ms  ratio {value / base:.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


def _unchecked_read(root: Path, cities: list[str]) -> int:
    with unchecked():
        return read_all(root, cities, content=False)


if __name__ == "__main__":
    main()
