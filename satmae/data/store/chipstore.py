"""The chip store: pretraining chips on local disk or object storage (DESIGN §8).

A chip is one place seen ``T`` times: uint16 pixels ``(T, C, H, W)``, acquisition times, a valid
mask and a footprint (CRS, bounds, transform). A store is a folder (or fsspec URL) holding::

    chipstore.json            format, version, bands, chip shape, codec
    parts/<name>.n<count>.arrow   committed parts: Arrow IPC files, one row per chip
    parts/.<name>.<uuid>.tmp      a part being written; invisible to readers

Each row holds the chip's pixels and packed valid mask as separately compressed blobs
(Blosc-LZ4 with byte shuffle by default, the same codec Zarr uses), plus ``times``, ``crs``,
``bounds``, ``transform`` and ``location`` columns, so any Arrow tool can read the metadata.
Rows are grouped in record batches of ``chips_per_batch`` chips, the unit of sequential reads.

Parts are written by independent writers (one per scene, e.g. one dask task each) and become
visible by an atomic rename once complete, so a killed writer never leaves a half-written part
behind, and a rerun skips parts that already exist (resumable appends). Measured against Zarr
v3 arrays chunked per chip, this layout reads several times faster per chip
(``docs/performance.md``, "Data loading").
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import fsspec
import numcodecs
import numpy as np
import pyarrow as pa
import torch
from fsspec.implementations.local import LocalFileSystem
from numpy.typing import NDArray

from satmae.bands import band_indices, canonical_bands
from satmae.data.sample import Sample

FORMAT_NAME = "satmae-chipstore"
FORMAT_VERSION = 1
METADATA_FILE = "chipstore.json"
PARTS_DIR = "parts"
_PART_FILE = re.compile(r"^(?P<name>[A-Za-z0-9_\-]+)\.n(?P<count>\d+)\.arrow$")
_CODECS: dict[str, dict[str, Any]] = {
    "lz4": {"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1},
    "zstd": {"id": "blosc", "cname": "zstd", "clevel": 1, "shuffle": 1},
}
_BATCH_CACHE = 4  # decoded record batches kept per store; covers a shuffle window of neighbours

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class ChipSpec:
    """What every chip of a store looks like.

    Attributes:
        bands: canonical band names of the C axis, in order.
        frames: number of frames T per chip.
        height: chip height H in pixels.
        width: chip width W in pixels.
        codec: numcodecs configuration of the pixel and mask blobs.
        chips_per_batch: rows per Arrow record batch (the unit of sequential reads).
    """

    bands: tuple[str, ...]
    frames: int
    height: int
    width: int
    codec: Mapping[str, Any]
    chips_per_batch: int = 64

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """Chip shape ``(T, C, H, W)``."""
        return (self.frames, len(self.bands), self.height, self.width)

    def to_json(self) -> dict[str, Any]:
        """The ``chipstore.json`` document."""
        return {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "bands": list(self.bands),
            "frames": self.frames,
            "height": self.height,
            "width": self.width,
            "dtype": "uint16",
            "codec": dict(self.codec),
            "chips_per_batch": self.chips_per_batch,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], source: str) -> ChipSpec:
        """Parse a ``chipstore.json`` document; ``source`` names it in errors."""
        if doc.get("format") != FORMAT_NAME:
            raise ValueError(f"{source} is not a satmae chip store (format={doc.get('format')!r})")
        if doc.get("version") != FORMAT_VERSION:
            raise ValueError(
                f"{source} has chip store version {doc.get('version')}; this satmae reads "
                f"version {FORMAT_VERSION}; rewrite the store with this version's data_prep"
            )
        try:
            return cls(
                bands=canonical_bands(doc["bands"]),
                frames=int(doc["frames"]),
                height=int(doc["height"]),
                width=int(doc["width"]),
                codec=dict(doc["codec"]),
                chips_per_batch=int(doc["chips_per_batch"]),
            )
        except KeyError as missing:
            raise ValueError(f"{source} lacks the field {missing}; the store is corrupt") from None


@dataclass(frozen=True)
class PartInfo:
    """One committed part: its name, file path inside the store's filesystem and chip count."""

    name: str
    path: str
    count: int


@dataclass
class _Batch:
    """The decoded columns of one record batch, kept while neighbouring chips are read."""

    image_offsets: NDArray[np.int64]
    image_data: memoryview
    valid_offsets: NDArray[np.int64]
    valid_data: memoryview
    times: NDArray[np.int64]
    bounds: NDArray[np.float64]
    transform: NDArray[np.float64]
    crs: list[str]
    location: list[str]


def chip_schema(spec: ChipSpec) -> pa.Schema:
    """Arrow schema of a part file; the spec travels in its metadata."""
    metadata = {b"satmae_chipstore": json.dumps(spec.to_json()).encode()}
    return pa.schema(
        [
            ("image", pa.large_binary()),
            ("valid", pa.large_binary()),
            ("times", pa.list_(pa.int64(), spec.frames)),
            ("crs", pa.string()),
            ("bounds", pa.list_(pa.float64(), 4)),
            ("transform", pa.list_(pa.float64(), 6)),
            ("location", pa.string()),
        ],
        metadata=metadata,
    )


def filesystem(
    root: PathLike, storage_options: Mapping[str, Any] | None
) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem of ``root`` and the path inside it."""
    fs, path = fsspec.core.url_to_fs(str(root), **dict(storage_options or {}))
    return fs, str(path).rstrip("/")


def open_spec(root: PathLike, storage_options: Mapping[str, Any] | None = None) -> ChipSpec:
    """Read a store's ``chipstore.json``.

    Raises:
        FileNotFoundError: if ``root`` holds no ``chipstore.json``.
        ValueError: if the document is unreadable or of another format or version.
    """
    fs, path = filesystem(root, storage_options)
    meta = f"{path}/{METADATA_FILE}"
    if not fs.exists(meta):
        raise FileNotFoundError(
            f"{root} is not a chip store: {METADATA_FILE} is missing; write one with "
            "ChipStoreWriter or a data_prep recipe"
        )
    try:
        doc = json.loads(fs.cat_file(meta))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{meta} is corrupt ({error}); restore it or rewrite the store") from None
    return ChipSpec.from_json(doc, meta)


def create_store(
    root: PathLike,
    bands: Sequence[str],
    frames: int,
    height: int,
    width: int,
    *,
    compression: Literal["lz4", "zstd"] = "lz4",
    chips_per_batch: int = 64,
    storage_options: Mapping[str, Any] | None = None,
) -> ChipSpec:
    """Create an empty store, or check that an existing one holds chips of this kind.

    Args:
        root: local folder or fsspec URL of the store.
        bands: band names of the C axis, in order (any known spelling).
        frames: frames T per chip.
        height: chip height H.
        width: chip width W.
        compression: ``"lz4"`` (fastest to read) or ``"zstd"`` (about 10 % smaller).
        chips_per_batch: rows per record batch.
        storage_options: passed to fsspec for remote stores.

    Returns:
        The store's chip spec.

    Raises:
        ValueError: if the store exists with other bands, shape or codec.
    """
    if compression not in _CODECS:
        raise ValueError(f"compression must be one of {sorted(_CODECS)}, got {compression!r}")
    if min(frames, height, width, chips_per_batch) < 1:
        raise ValueError(
            f"frames, height, width and chips_per_batch must be positive, got "
            f"{frames}, {height}, {width}, {chips_per_batch}"
        )
    spec = ChipSpec(
        bands=canonical_bands(bands),
        frames=frames,
        height=height,
        width=width,
        codec=_CODECS[compression],
        chips_per_batch=chips_per_batch,
    )
    fs, path = filesystem(root, storage_options)
    meta = f"{path}/{METADATA_FILE}"
    if fs.exists(meta):
        existing = open_spec(root, storage_options)
        if existing.bands != spec.bands or existing.shape != spec.shape:
            raise ValueError(
                f"{root} holds chips of bands {list(existing.bands)} and shape (T,C,H,W)="
                f"{existing.shape}, but the writer was given bands {list(spec.bands)} and shape "
                f"{spec.shape}; write to a new store or match the existing one"
            )
        return existing
    fs.makedirs(f"{path}/{PARTS_DIR}", exist_ok=True)
    temporary = f"{path}/.{METADATA_FILE}.{uuid.uuid4().hex}.tmp"
    fs.pipe_file(temporary, json.dumps(spec.to_json(), indent=2).encode())
    fs.mv(temporary, meta)
    return spec


def list_parts(root: PathLike, storage_options: Mapping[str, Any] | None = None) -> list[PartInfo]:
    """Committed parts of a store, sorted by name (temporary files of writers are skipped)."""
    fs, path = filesystem(root, storage_options)
    folder = f"{path}/{PARTS_DIR}"
    if not fs.exists(folder):
        return []
    parts = []
    for entry in fs.ls(folder, detail=False):
        match = _PART_FILE.match(entry.rstrip("/").rsplit("/", 1)[-1])
        if match:
            parts.append(PartInfo(match["name"], entry, int(match["count"])))
    parts.sort(key=lambda part: part.name)
    names = [part.name for part in parts]
    if len(set(names)) != len(names):
        duplicated = sorted({name for name in names if names.count(name) > 1})
        raise ValueError(
            f"{folder} holds more than one file for parts {duplicated}; two writers wrote the same "
            "part. Delete all but one file of each"
        )
    return parts


def remove_temporaries(root: PathLike, storage_options: Mapping[str, Any] | None = None) -> int:
    """Delete the leftovers of killed writers; run only while no writer is active.

    Returns:
        The number of temporary files removed.
    """
    fs, path = filesystem(root, storage_options)
    folder = f"{path}/{PARTS_DIR}"
    if not fs.exists(folder):
        return 0
    stale = [p for p in fs.ls(folder, detail=False) if p.rsplit("/", 1)[-1].endswith(".tmp")]
    for temporary in stale:
        fs.rm(temporary)
    return len(stale)


def part_exists(
    root: PathLike, part: str, storage_options: Mapping[str, Any] | None = None
) -> bool:
    """Whether ``part`` is committed in the store at ``root`` (recipes skip it when resuming)."""
    return any(info.name == part for info in list_parts(root, storage_options))


class ChipStore:
    """Random and sequential access to the chips of a store.

    Safe to pickle into DataLoader workers: open files are dropped and reopened per process.

    Args:
        root: local folder or fsspec URL of the store.
        storage_options: passed to fsspec for remote stores.

    Attributes:
        spec: bands and chip shape.
        parts: committed parts, in index order.

    Raises:
        FileNotFoundError: if ``root`` is not a chip store.
        ValueError: if its metadata is corrupt.
    """

    def __init__(self, root: PathLike, storage_options: Mapping[str, Any] | None = None) -> None:
        self.root = str(root)
        self.storage_options = dict(storage_options or {})
        self.spec = open_spec(root, storage_options)
        self.parts = list_parts(root, storage_options)
        self._starts = np.cumsum([0] + [part.count for part in self.parts])
        self._codec = numcodecs.get_codec(dict(self.spec.codec))
        self._readers: dict[int, pa.ipc.RecordBatchFileReader] = {}
        self._batches: OrderedDict[tuple[int, int], _Batch] = OrderedDict()
        self._pid = os.getpid()

    def __len__(self) -> int:
        return int(self._starts[-1])

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_readers"], state["_batches"] = {}, OrderedDict()
        return state

    @property
    def bands(self) -> tuple[str, ...]:
        """Canonical band names of the C axis."""
        return self.spec.bands

    def locations(self) -> list[str]:
        """The location id of every chip, in index order (reads only that column)."""
        found: list[str] = []
        for part in range(len(self.parts)):
            reader = self._reader(part)
            for number in range(reader.num_record_batches):
                found += reader.get_batch(number).column("location").to_pylist()
        return found

    def locate(self, index: int) -> tuple[int, int]:
        """``(part position, row in part)`` of chip ``index``."""
        if not 0 <= index < len(self):
            raise IndexError(f"chip index {index} out of range for a store of {len(self)} chips")
        part = int(np.searchsorted(self._starts, index, side="right")) - 1
        return part, index - int(self._starts[part])

    def _reader(self, part: int) -> pa.ipc.RecordBatchFileReader:
        if self._pid != os.getpid():  # forked into a worker: handles are not shareable
            self._readers, self._batches, self._pid = {}, OrderedDict(), os.getpid()
        if part not in self._readers:
            info = self.parts[part]
            fs, _ = filesystem(self.root, self.storage_options)
            try:
                if isinstance(fs, LocalFileSystem):
                    source: Any = pa.memory_map(info.path)
                else:
                    source = fs.open(info.path, "rb")
                reader = pa.ipc.open_file(source)
            except (pa.ArrowInvalid, OSError) as error:
                raise ValueError(
                    f"chip store part {info.path} is corrupt or truncated ({error}); delete it and "
                    f"rerun its recipe to rewrite part {info.name!r}"
                ) from None
            expected = -(-info.count // self.spec.chips_per_batch)
            if reader.num_record_batches != expected:
                raise ValueError(
                    f"chip store part {info.path} holds {reader.num_record_batches} record "
                    f"batches but its name says {info.count} chips ({expected} batches); the "
                    "file is corrupt, delete it and rerun its recipe"
                )
            self._readers[part] = reader
        return self._readers[part]

    def _batch(self, part: int, number: int) -> _Batch:
        key = (part, number)
        if key in self._batches:
            self._batches.move_to_end(key)
            return self._batches[key]
        record = self._reader(part).get_batch(number)
        frames = self.spec.frames

        def blobs(name: str) -> tuple[NDArray[np.int64], memoryview]:
            column = record.column(name)
            _, offsets, data = column.buffers()
            start = column.offset
            bounds = np.frombuffer(offsets, np.int64)[start : start + len(column) + 1]
            return bounds, memoryview(data)

        image_offsets, image_data = blobs("image")
        valid_offsets, valid_data = blobs("valid")
        batch = _Batch(
            image_offsets=image_offsets,
            image_data=image_data,
            valid_offsets=valid_offsets,
            valid_data=valid_data,
            times=record.column("times").flatten().to_numpy().reshape(-1, frames),
            bounds=record.column("bounds").flatten().to_numpy().reshape(-1, 4),
            transform=record.column("transform").flatten().to_numpy().reshape(-1, 6),
            crs=record.column("crs").to_pylist(),
            location=record.column("location").to_pylist(),
        )
        self._batches[key] = batch
        if len(self._batches) > _BATCH_CACHE:
            self._batches.popitem(last=False)
        return batch

    def read_arrays(self, index: int) -> dict[str, Any]:
        """Chip ``index`` as numpy arrays, without conversion.

        Returns:
            ``image`` uint16 ``(T, C, H, W)``, ``valid`` bool ``(T, H, W)``, ``times`` int64
            ``(T,)``, ``location`` and the footprint fields that were written.

        Raises:
            IndexError: if ``index`` is out of range.
            ValueError: if the chip's part is corrupt.
        """
        part, row = self.locate(index)
        batch = self._batch(part, row // self.spec.chips_per_batch)
        row %= self.spec.chips_per_batch
        frames, _, height, width = self.spec.shape
        image = np.empty(self.spec.shape, np.uint16)
        packed = np.empty((frames * height * width + 7) // 8, np.uint8)
        try:
            span = batch.image_data[batch.image_offsets[row] : batch.image_offsets[row + 1]]
            self._codec.decode(span, out=image)
            span = batch.valid_data[batch.valid_offsets[row] : batch.valid_offsets[row + 1]]
            self._codec.decode(span, out=packed)
        except (RuntimeError, ValueError) as error:
            raise ValueError(
                f"chip {row} of part {self.parts[part].path} cannot be decoded ({error}); the part "
                "is corrupt, delete it and rerun its recipe"
            ) from None
        valid = np.unpackbits(packed, count=frames * height * width).astype(bool)
        chip: dict[str, Any] = {
            "image": image,
            "valid": valid.reshape(frames, height, width),
            "times": batch.times[row].copy(),
            "location": batch.location[row],
        }
        if batch.crs[row]:
            chip["crs"] = batch.crs[row]
        if not np.isnan(batch.bounds[row]).any():
            chip["bounds"] = tuple(float(v) for v in batch.bounds[row])
        if not np.isnan(batch.transform[row]).any():
            chip["transform"] = tuple(float(v) for v in batch.transform[row])
        return chip

    def _band_positions(self, bands: Sequence[str] | None) -> tuple[tuple[str, ...], list[int]]:
        if bands is None:
            return self.spec.bands, list(range(len(self.spec.bands)))
        wanted = canonical_bands(bands)
        try:
            return wanted, band_indices(self.spec.bands, wanted)
        except ValueError as error:
            raise ValueError(f"chip store {self.root}: {error}") from None

    def read(self, index: int, bands: Sequence[str] | None = None) -> Sample:
        """Chip ``index`` as a DESIGN §3 sample (``image`` float32 ``(T, C, H, W)``).

        Args:
            index: position in ``[0, len(self))``.
            bands: bands to return, in this order (default: all, in store order).

        Raises:
            ValueError: if a requested band is not in the store.
        """
        names, positions = self._band_positions(bands)
        chip = self.read_arrays(index)
        image = chip.pop("image")
        if bands is not None:
            image = image[:, positions]
        sample: dict[str, Any] = {
            **chip,
            "image": torch.from_numpy(image.astype(np.float32)),
            "times": torch.from_numpy(chip["times"]),
            "valid": torch.from_numpy(chip["valid"]),
            "bands": names,
        }
        return sample  # type: ignore[return-value]

    def read_batch(
        self, indices: Sequence[int], bands: Sequence[str] | None = None, *, shared: bool = False
    ) -> dict[str, Any]:
        """Several chips as one batch, decoded straight into the batch tensor.

        Args:
            indices: chip positions.
            bands: bands to return, in this order (default: all, in store order).
            shared: allocate the tensors in shared memory, so a DataLoader worker hands them
                to the main process without a copy.

        Returns:
            ``image`` float32 ``(B, T, C, H, W)``, ``valid`` bool ``(B, T, H, W)``, ``times``
            int64 ``(B, T)``, ``bands``, and lists ``location`` (and ``crs``, ``bounds``,
            ``transform`` when every chip has them), as :func:`collate_samples` would give.
        """
        names, positions = self._band_positions(bands)
        frames, _, height, width = self.spec.shape
        count = len(indices)
        image = torch.empty(count, frames, len(names), height, width)
        valid = torch.empty(count, frames, height, width, dtype=torch.bool)
        times = torch.empty(count, frames, dtype=torch.int64)
        if shared:
            for tensor in (image, valid, times):
                tensor.share_memory_()  # type: ignore[no-untyped-call]
        image_np, valid_np, times_np = image.numpy(), valid.numpy(), times.numpy()
        extras: dict[str, list[Any]] = {"location": [], "crs": [], "bounds": [], "transform": []}
        for slot, index in enumerate(indices):
            chip = self.read_arrays(int(index))
            np.copyto(image_np[slot], chip["image"][:, positions], casting="unsafe")
            valid_np[slot], times_np[slot] = chip["valid"], chip["times"]
            for key, values in extras.items():
                values.append(chip.get(key))
        batch: dict[str, Any] = {"image": image, "times": times, "bands": names, "valid": valid}
        batch.update({k: v for k, v in extras.items() if all(x is not None for x in v)})
        return batch

    def __iter__(self) -> Iterator[Sample]:
        for index in range(len(self)):
            yield self.read(index)
