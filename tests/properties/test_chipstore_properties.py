"""Corrupted chip stores fail with a clear error naming the store or part, or read correctly.

Each example writes a small store of two parts, damages it one way (flipped bytes, truncated or
deleted or renamed parts, edited ``chipstore.json`` fields, unknown codecs, edited index
entries) and reads every chip with the default verification. The read must either raise a
``ValueError`` / ``FileNotFoundError`` whose message names the store or the damaged part, or
return exactly the chips that were written: never another exception, never a partial store.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from satmae.data.store.chipstore import ChipStore
from satmae.data.store.chipwriter import ChipStoreWriter

BANDS = ("B02", "B04", "B08")
FRAMES, SIZE = 2, 4


def chip(seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    return {
        "image": rng.integers(0, 3000, (FRAMES, len(BANDS), SIZE, SIZE)).astype(np.uint16),
        "bands": BANDS,
        "times": np.array([1_600_000_000 + seed, 1_700_000_000 + seed]),
        "valid": rng.random((FRAMES, SIZE, SIZE)) > 0.2,
        "crs": "EPSG:32631",
        "bounds": (0.0, 0.0, 40.0, 40.0 + seed),
        "location": f"loc-{seed}",
    }


def write_store(root: Path, counts: tuple[int, int], per_batch: int) -> list[int]:
    seeds, seed = [], 0
    for name, count in zip(("a", "b"), counts, strict=True):
        shape = dict(bands=BANDS, frames=FRAMES, height=SIZE, width=SIZE)
        with ChipStoreWriter(root, name, **shape, chips_per_batch=per_batch) as writer:
            for _ in range(count):
                writer.add(chip(seed))
                seeds.append(seed)
                seed += 1
    return seeds


def part_file(root: Path, name: str) -> Path:
    return next((root / "parts").glob(f"{name}.n*.arrow"))


def corrupt(root: Path, data: st.DataObject) -> str:
    """Damage the store one way; returns what the error may name (store root or part)."""
    kind = data.draw(
        st.sampled_from(
            ["flip", "truncate", "delete", "rename", "field", "codec", "index", "extra"]
        ),
        label="kind",
    )
    name = data.draw(st.sampled_from(["a", "b"]), label="part")
    path = part_file(root, name)
    if kind == "flip":
        raw = bytearray(path.read_bytes())
        positions = data.draw(
            st.lists(st.integers(0, len(raw) - 1), min_size=1, max_size=3), label="positions"
        )
        for position in positions:
            raw[position] ^= data.draw(st.integers(1, 255), label="bits")
        path.write_bytes(bytes(raw))
    elif kind == "truncate":
        size = path.stat().st_size
        path.write_bytes(path.read_bytes()[: data.draw(st.integers(0, size - 1), label="keep")])
    elif kind == "delete":
        path.unlink()
    elif kind == "rename":
        target = data.draw(st.sampled_from(["c.n1.arrow", f"{name}.n99.arrow", "x.arrow"]))
        path.rename(path.with_name(target))
    elif kind in ("field", "codec"):
        doc = json.loads((root / "chipstore.json").read_text())
        if kind == "field":
            field = data.draw(st.sampled_from(sorted(doc)), label="field")
            doc[field] = data.draw(
                st.one_of(
                    st.integers(-2, 70_000),
                    st.booleans(),
                    st.text(max_size=5),
                    st.just(["B04", "B02", "B08"]),
                    st.just("float32"),
                    st.none(),
                ),
                label="value",
            )
        else:
            doc["codec"] = data.draw(
                st.sampled_from(
                    [
                        {"id": "pickle"},
                        {"id": "zlib", "level": 1},
                        {"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1, "x": 1},
                        {"id": "blosc", "cname": "zstd", "clevel": 1, "shuffle": 1},
                        "blosc",
                    ]
                ),
                label="codec",
            )
        (root / "chipstore.json").write_text(json.dumps(doc))
    elif kind == "index":
        entry_path = root / "index" / f"{name}.json"
        entry = json.loads(entry_path.read_text())
        key = data.draw(st.sampled_from(sorted(entry)), label="key")
        entry[key] = data.draw(st.one_of(st.integers(0, 99), st.text(max_size=4)), label="v")
        entry_path.write_text(json.dumps(entry))
    else:
        (root / "parts" / data.draw(st.sampled_from(["stray.arrow", "notes.txt"]))).write_text("")
    return name


@given(
    counts=st.tuples(st.integers(1, 4), st.integers(1, 3)),
    per_batch=st.integers(1, 3),
    data=st.data(),
)
def test_corrupted_store_errors_clearly_or_reads_exactly(
    counts: tuple[int, int], per_batch: int, data: st.DataObject
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "store"
        seeds = write_store(root, counts, per_batch)
        name = corrupt(root, data)
        try:
            store = ChipStore(root)
            got = [store.read_arrays(index) for index in range(len(store))]
            batch = store.read_batch(list(range(len(store))))
        except (ValueError, FileNotFoundError) as error:
            message = str(error)
            assert str(root) in message or f"'{name}'" in message, message
            assert "\n" not in message, message
            return
        assert len(got) == len(seeds), "a partial store was read without an error"
        for seed, read in zip(seeds, got, strict=True):
            expected = chip(seed)
            assert np.array_equal(read["image"], expected["image"])
            assert np.array_equal(read["valid"], expected["valid"])
            assert np.array_equal(read["times"], expected["times"])
            assert read["location"] == expected["location"]
            assert read["bounds"] == expected["bounds"]
        assert batch["location"] == [chip(seed)["location"] for seed in seeds]
