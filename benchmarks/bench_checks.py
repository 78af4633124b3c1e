"""Cost of the chip-store input checks: read throughput with verification off vs the default.

The store holds real Sentinel-2 chips: 13-band 96 x 96 chips cut on a 48 px grid from both dates
of the first OSCD cities in ../shared/data/real/oscd (one part per city and date, Blosc-LZ4).
Each repeat opens the store afresh (so the index is checked and every chip is read for the
first time in the process, as in a training run's first epoch) and reads one shuffled epoch in
batches of 16 with ``ChipStore.read_batch``, the path ``ChipStream`` takes. The arms
(``verify="off"``, ``"once"``, ``"always"``, and ``"off"`` and ``"once"`` on a second epoch
read by the same store, whose parts are open and whose chips ``"once"`` has verified) are
interleaved repeat by repeat to cancel drift on a shared machine; the medians are compared as
ratios against ``"off"``, which still checks the index, each part's spec and each blob's size;
the ``unchecked`` arm is ``"off"`` without the per-chip blob-size checks.
Times are the CPU time of this process (all its threads), so other work on a shared machine
slows the run but biases the ratios far less than wall time does.

A second part times the two DataLoaders over the same store, with each ``--workers`` count
(0: read in this process; more: worker processes rebuilt every epoch,
``persistent_workers=False``, as Lightning runs them) for
``--epochs`` epochs a run: ``pretrain``, what ``satmae pretrain`` reads (``PretrainData``'s
training loader: ``ChipDataset``, one chip per read, collated in the workers), and ``stream``
(``ChipStream(batch_size=16)`` with ``batch_loader``: ``read_batch`` into shared memory, the
fast path). The arms ``verify="off"``, ``"once"`` and ``"always"`` are interleaved over
``--loader-repeats`` runs. Times are the CPU time of the process and of its finished workers
(``RUSAGE_CHILDREN``), per epoch and for the run.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_checks.py --cities 5 --repeats 41 \
        --loader-repeats 11 --loader-cities 5 11 --workers 0 2
"""

from __future__ import annotations

import argparse
import json
import resource
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
from satmae.data.store.datasets import ChipStream, batch_loader, epoch_order
from satmae.train.data import PretrainData

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


class _Unchecked(ChipStore):
    """A store that skips the per-chip Blosc header checks: the reads before this version."""

    def _check_blob(self, *args: Any) -> None:
        pass


def _cpu_seconds() -> float:
    """CPU time of this process and of its children that have finished (DataLoader workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def loader_run(root: Path, kind: str, verify: Verify, epochs: int, workers: int) -> list[float]:
    """CPU seconds of each epoch of the ``pretrain`` or ``stream`` loader over the store."""
    if kind == "pretrain":
        data = PretrainData(
            str(root), batch_size=BATCH, num_workers=workers, val_fraction=0.0, augment=False,
            verify=verify,
        )  # fmt: skip
        data.setup()
        loader = data.train_dataloader()
        set_epoch = loader.sampler.set_epoch  # type: ignore[attr-defined]  # Lightning calls it
    else:
        stream = ChipStream(ChipStore(root, verify=verify), batch_size=BATCH, seed=0)
        loader = batch_loader(stream, num_workers=workers)
        set_epoch = stream.set_epoch
    seconds = []
    for epoch in range(epochs):
        set_epoch(epoch)
        start = _cpu_seconds()
        for _ in loader:
            pass
        seconds.append(_cpu_seconds() - start)  # the workers have exited and been reaped
    return seconds


def loader_arms(root: Path, kind: str, epochs: int, workers: int, repeats: int) -> dict[str, Any]:
    """Median CPU time per epoch and per run of each verify mode, and the ratios to ``off``."""
    modes: list[Verify] = ["off", "once", "always"]
    runs: dict[str, list[list[float]]] = {mode: [] for mode in modes}
    for repeat in range(repeats):
        shift = repeat % len(modes)
        for mode in modes[shift:] + modes[:shift]:
            runs[mode].append(loader_run(root, kind, mode, epochs, workers))
    medians = {
        mode: {
            "epoch_cpu_s": [statistics.median(run[e] for run in values) for e in range(epochs)],
            "run_cpu_s": statistics.median(sum(run) for run in values),
        }
        for mode, values in runs.items()
    }
    off = medians["off"]
    return {
        "workers": workers,
        "epochs": epochs,
        "repeats": repeats,
        "arms": {
            mode: {
                **median,
                "epoch_vs_off": [
                    e / o for e, o in zip(median["epoch_cpu_s"], off["epoch_cpu_s"], strict=True)
                ],
                "run_vs_off": median["run_cpu_s"] / off["run_cpu_s"],
            }
            for mode, median in medians.items()
        },
    }


def per_chip(small: dict[str, Any], large: dict[str, Any]) -> dict[str, Any]:
    """Each loader's CPU µs per chip and epoch from the difference of two store sizes."""
    chips = large["chips"] - small["chips"]
    result: dict[str, Any] = {}
    for kind in [name for name in large if name != "chips"]:
        marginal = {
            mode: [
                (big - little) / chips * 1e6
                for big, little in zip(
                    large[kind]["arms"][mode]["epoch_cpu_s"],
                    small[kind]["arms"][mode]["epoch_cpu_s"],
                    strict=True,
                )
            ]
            for mode in large[kind]["arms"]
        }
        result[kind] = {
            mode: {
                "epoch_us_per_chip": values,
                "epoch_vs_off": [v / o for v, o in zip(values, marginal["off"], strict=True)],
            }
            for mode, values in marginal.items()
        }
    return result


def main() -> None:
    """Run the arms, print and write the medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cities", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=41)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per loader run")
    parser.add_argument(
        "--workers", type=int, nargs="+", default=(0, 2), help="DataLoader worker counts"
    )
    parser.add_argument("--loader-repeats", type=int, default=9, help="loader runs per arm")
    parser.add_argument(
        "--loader-cities",
        type=int,
        nargs=2,
        default=(5, 11),
        help="two store sizes for the loaders (their difference gives the cost per chip "
        "without the fixed cost of starting workers every epoch)",
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/checks.json"))
    args = parser.parse_args()

    from satmae.cli.info import collect_info

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "store"
        chips = write_store(root, args.cities)
        order = epoch_order(chips, block_size=64, seed=0, epoch=0).tolist()
        arms: list[tuple[str, Verify, bool]] = [
            ("unchecked: off without the blob-header checks", "off", False),
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
                store = (_Unchecked if name.startswith("unchecked") else ChipStore)(
                    root, verify=verify
                )
                if warm:
                    read_epoch(store, order)
                    start = time.process_time()
                read_epoch(store, order)
                times[name].append(time.process_time() - start)
        loaders: dict[str, Any] = {}
        for cities in args.loader_cities:
            store_root = root if cities == args.cities else Path(folder) / f"store{cities}"
            count = chips if cities == args.cities else write_store(store_root, cities)
            loaders[f"{cities} cities"] = {
                "chips": count,
                **{
                    f"{kind}, {workers} workers": loader_arms(
                        store_root, kind, args.epochs, workers, args.loader_repeats
                    )
                    for kind in ("pretrain", "stream")
                    for workers in args.workers
                },
            }
        sizes = [loaders[f"{cities} cities"] for cities in args.loader_cities]
        loaders["per chip"] = per_chip(*sizes)
    off = statistics.median(times["off"])
    result: dict[str, Any] = {
        "command": "PYTHONPATH=. .venv/bin/python benchmarks/bench_checks.py "
        f"--cities {args.cities} --repeats {args.repeats} --epochs {args.epochs} "
        f"--workers {' '.join(map(str, args.workers))} --loader-repeats {args.loader_repeats} "
        f"--loader-cities {' '.join(map(str, args.loader_cities))}",
        "info": collect_info(),
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
        "loaders": loaders,
    }
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
