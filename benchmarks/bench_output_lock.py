"""Cost of the output rule on a small write (issue 11): ``atomic_path`` with and without its lock.

Writes a 4 KiB file many times, in a fresh temporary folder on the local disk, three ways:

(a) the full rule, :func:`satmae.io.atomic_path`: lock, check, stale-temporary scan, staged
    write, chmod, rename, lock file removed;
(b) the same staged write without the lock (check, temporary, write, chmod, rename);
(c) a plain ``write_bytes`` (no staging at all), for scale;
(d) the lock alone (:class:`satmae.io.OutputLock` taken and given back).

Reports the median time per write of each and the ratios (a)/(b) and (a)/(c). On ext4 a rename
over a file with unwritten data forces a flush, so (a)-(c) there measure the disk; ``--dir
/dev/shm`` (tmpfs) measures the system calls alone.

    .venv/bin/python benchmarks/bench_output_lock.py --repeats 2000 [--dir /dev/shm]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from satmae.io import OutputLock, atomic_path, check_output, current_umask

PAYLOAD = b"x" * 4096


def with_lock(target: Path) -> None:
    with atomic_path(target) as staging:
        staging.write_bytes(PAYLOAD)


def without_lock(target: Path) -> None:
    check_output(target, overwrite=True)
    handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(handle)
    staging = Path(name)
    try:
        staging.write_bytes(PAYLOAD)
        os.chmod(staging, 0o666 & ~current_umask())
        os.replace(staging, target)
    finally:
        staging.unlink(missing_ok=True)


def plain(target: Path) -> None:
    target.write_bytes(PAYLOAD)


def lock_only(target: Path) -> None:
    with OutputLock(target):
        pass


def median_seconds(write: Callable[[Path], None], folder: Path, repeats: int) -> float:
    target = folder / f"{write.__name__}.bin"
    for _ in range(20):  # warm up
        write(target)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        write(target)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    """Run the three writes (interleaved rounds) and print the medians and ratios as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=2000, help="writes per method and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (the median is reported)")
    parser.add_argument("--dir", help="folder to write in (default: the system temporary folder)")
    args = parser.parse_args()
    methods = (with_lock, without_lock, plain, lock_only)
    results: dict[str, list[float]] = {method.__name__: [] for method in methods}
    with tempfile.TemporaryDirectory(dir=args.dir) as name:
        for _ in range(args.rounds):
            for write in methods:
                results[write.__name__].append(median_seconds(write, Path(name), args.repeats))
    medians = {key: statistics.median(values) * 1e6 for key, values in results.items()}
    report = {
        "median_us": {key: round(value, 1) for key, value in medians.items()},
        "lock_over_no_lock": round(medians["with_lock"] / medians["without_lock"], 2),
        "lock_over_plain": round(medians["with_lock"] / medians["plain"], 2),
        "folder": args.dir or tempfile.gettempdir(),
        "repeats": args.repeats,
        "rounds": args.rounds,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
