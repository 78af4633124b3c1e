"""Cost of the chip-store input checks: read throughput with verification off vs the default.

The store holds real Sentinel-2 chips: 13-band 96 x 96 chips cut on a 48 px grid from both dates
of the first OSCD cities in ../shared/data/real/oscd (one part per city and date, Blosc-LZ4).
Each repeat opens the store afresh (so the index is checked and every chip is read for the
first time in the process, as in a training run's first epoch) and reads one shuffled epoch in
batches of 16 with ``ChipStore.read_batch``, the path ``ChipStream`` takes. The arms
(``verify="off"``, ``"once"``, ``"always"``, and ``"off"`` and ``"once"`` on a second epoch
read by the same store, whose parts are open and whose chips ``"once"`` has verified) are
interleaved repeat by repeat to cancel drift on a shared machine; the medians are compared as
ratios against ``"off"``, which still checks the index, each part's spec and each blob's size.
Times are the CPU time of this process (all its threads), so other work on a shared machine
slows the run but biases the ratios far less than wall time does.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_checks.py --cities 5 --repeats 41
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from satmae.bands import L1C_BANDS
from satmae.data.readers.layouts import oscd_cities, read_oscd_city
from satmae.data.sampling import grid_windows
from satmae.data.store.chipstore import ChipStore, Verify
from satmae.data.store.chipwriter import ChipStoreWriter
from satmae.data.store.datasets import epoch_order

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "oscd"
SIZE, BATCH = 96, 16


def write_store(root: Path, cities: int) -> int:
    """Cut the first ``cities`` OSCD cities (both dates) into a store; returns the chip count."""
    count = 0
    for city in oscd_cities(REAL)[:cities]:
        sample = read_oscd_city(REAL, city, L1C_BANDS)
        image = sample["image"].round().clamp(0, 65535).numpy().astype(np.uint16)
        for frame, seconds in enumerate(sample["times"].tolist()):
            part = f"{city}_{frame}".replace(" ", "_")
            with ChipStoreWriter(
                root, part, bands=L1C_BANDS, frames=1, height=SIZE, width=SIZE
            ) as writer:
                height, width = image.shape[-2:]
                for window in grid_windows(height, width, SIZE, stride=SIZE // 2):
                    rows, cols = window.toslices()
                    writer.add(
                        {
                            "image": image[frame : frame + 1, :, rows, cols],
                            "bands": L1C_BANDS,
                            "times": np.array([seconds]),
                            "valid": sample["valid"][frame : frame + 1, rows, cols],
                            "location": f"{city}:{window.row_off},{window.col_off}",
                        }
                    )
            count += writer.written
    return count


def read_epoch(store: ChipStore, order: list[int]) -> None:
    for start in range(0, len(order), BATCH):
        store.read_batch(order[start : start + BATCH])


def main() -> None:
    """Run the arms, print and write the medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cities", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=41)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/checks.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "store"
        chips = write_store(root, args.cities)
        order = epoch_order(chips, block_size=64, seed=0, epoch=0).tolist()
        arms: list[tuple[str, Verify, bool]] = [
            ("off", "off", False),
            ("once (default), first read", "once", False),
            ("always", "always", False),
            ("off, warm re-read", "off", True),
            ("once, warm re-read", "once", True),
        ]
        times: dict[str, list[float]] = {name: [] for name, _, _ in arms}
        read_epoch(ChipStore(root, verify="off"), order)  # page cache warm for every arm
        for repeat in range(args.repeats):
            shift = repeat % len(arms)  # rotate the order of the arms
            for name, verify, warm in arms[shift:] + arms[:shift]:
                start = time.process_time()
                store = ChipStore(root, verify=verify)
                if warm:
                    read_epoch(store, order)
                    start = time.process_time()
                read_epoch(store, order)
                times[name].append(time.process_time() - start)
    off = statistics.median(times["off"])
    result: dict[str, Any] = {
        "command": "PYTHONPATH=. .venv/bin/python benchmarks/bench_checks.py "
        f"--cities {args.cities} --repeats {args.repeats}",
        "machine": platform.processor() or platform.machine(),
        "chips": chips,
        "chip": f"1 x 13 x {SIZE} x {SIZE} uint16",
        "arms": {
            name: {
                "median_cpu_s": statistics.median(values),
                "chips_per_s": chips / statistics.median(values),
                "time_vs_off": statistics.median(values) / off,
            }
            for name, values in times.items()
        },
    }
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
