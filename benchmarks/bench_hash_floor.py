"""Where the chip-store first-read check spends its time: the hash call and its after-effect.

``bench_checks.py`` measures ``verify="once"`` at about +16 µs a chip while the XXH3 call it
makes takes about 5 µs. This benchmark separates the two on the same store (real OSCD chips,
13 x 96 x 96 uint16, Blosc-LZ4, read in shuffled epochs with ``read_batch``):

- ``epoch``: the CPU time of one epoch whose per-chip check does nothing but one hash of the
  chip's compressed image blob (no metadata, no comparison, no bookkeeping), against
  ``verify="off"`` and the real ``verify="once"``; and the wall time inside that hash call.
- ``after``: the wall time of a fixed piece of scalar Python work (about 30 µs) run right after
  hashing a 164 KB buffer, for no hash, ``xxh64`` (scalar code) and ``xxh3_64`` (vector code;
  python-xxhash picks AVX-512 where the CPU has it). Work that runs slower after a hash than
  after none is the hash's cost on the code around it (cache and CPU-frequency effects), which
  the hash call's own time does not show.

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/bench_hash_floor.py
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import xxhash

from benchmarks.bench_checks import read_epoch, write_store
from satmae.data.store.chipstore import ChipStore, _Batch
from satmae.data.store.datasets import epoch_order

HASHES: dict[str, Callable[[Any], int] | None] = {
    "none": None,
    "xxh64": xxhash.xxh64_intdigest,
    "xxh3_64": xxhash.xxh3_64_intdigest,
}


class _HashOnly(ChipStore):
    """A store whose per-chip check is one hash of the image blob, timed, and nothing else."""

    hash_name = "xxh3_64"
    inside_ns: list[int] = []  # noqa: RUF012 (one list per subclass, filled by the epochs)

    def _verify_chip(
        self,
        batch: _Batch,
        part: int,
        row: int,
        index: int,
        image_blob: memoryview,
        valid_blob: memoryview,
    ) -> None:
        digest = HASHES[self.hash_name]
        assert digest is not None
        start = time.perf_counter_ns()
        digest(image_blob)
        self.inside_ns.append(time.perf_counter_ns() - start)


def epoch_arms(cities: int, repeats: int) -> dict[str, Any]:
    """Median epoch CPU time of each arm, per chip, and the time inside the hash calls."""
    arms: dict[str, Callable[[Path], ChipStore]] = {
        "off": lambda root: ChipStore(root, verify="off"),
        "once": lambda root: ChipStore(root, verify="once"),
    }
    hash_only: dict[str, type[_HashOnly]] = {}
    for name in ("xxh64", "xxh3_64"):
        hash_only[name] = type(f"_Only_{name}", (_HashOnly,), {"hash_name": name, "inside_ns": []})
        arms[f"{name} call only"] = hash_only[name]
    times: dict[str, list[float]] = {name: [] for name in arms}
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "store"
        chips = write_store(root, cities)
        order = epoch_order(chips, block_size=64, seed=0, epoch=0).tolist()
        read_epoch(ChipStore(root, verify="off"), order)  # page cache warm for every arm
        names = list(arms)
        for repeat in range(repeats):
            shift = repeat % len(names)
            for name in names[shift:] + names[:shift]:
                start = time.process_time()
                read_epoch(arms[name](root), order)
                times[name].append(time.process_time() - start)
    off = statistics.median(times["off"])
    result: dict[str, Any] = {"chips": chips}
    for name, values in times.items():
        median = statistics.median(values)
        result[name] = {
            "time_vs_off": median / off,
            "extra_us_per_chip": (median - off) / chips * 1e6,
        }
    for name, cls in hash_only.items():
        result[f"{name} call only"]["inside_call_us"] = statistics.median(cls.inside_ns) / 1e3
    return result


def after_effect(rounds: int = 3, calls: int = 3000) -> dict[str, float]:
    """Median wall time (µs) of fixed scalar work right after each hash of a 164 KB buffer."""
    buffer = np.random.default_rng(0).integers(0, 256, 164_000, dtype=np.uint8).tobytes()
    best: dict[str, float] = {}
    for _ in range(rounds):
        for name, digest in HASHES.items():
            spans = []
            for _ in range(calls):
                if digest is not None:
                    digest(buffer)
                start = time.perf_counter_ns()
                sum(range(3000))  # scalar interpreter work, no memory traffic
                spans.append(time.perf_counter_ns() - start)
            median = statistics.median(spans) / 1e3
            best[name] = min(best.get(name, median), median)
    return best


def main() -> None:
    """Run both parts, print and optionally write the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cities", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    result = {
        "after_scalar_work_us": after_effect(),
        "epoch": epoch_arms(args.cities, args.repeats),
    }
    print(json.dumps(result, indent=2))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
