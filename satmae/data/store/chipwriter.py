"""Writing chip store parts: one writer per part, committed atomically (DESIGN §8).

See :mod:`satmae.data.store.chipstore` for the layout. A writer streams chips into a temporary file
and renames it into place on :meth:`ChipStoreWriter.close`, then records it in the store's index
(with its chip count and size; each chip carries a checksum); a writer that is killed leaves only
a temporary file, which readers ignore and :func:`~satmae.data.store.chipstore.remove_temporaries`
deletes.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import torch
from fsspec.implementations.local import LocalFileSystem
from numpy.typing import NDArray

from satmae.bands import band_indices
from satmae.data.store.chipspec import chip_checksum, codec_from_config, row_metadata
from satmae.data.store.chipstore import (
    PARTS_DIR,
    PartInfo,
    PathLike,
    chip_schema,
    create_store,
    filesystem,
    part_exists,
    part_file_name,
    write_index_entry,
)
from satmae.data.validity import ValidityPolicy
from satmae.io import OutputLock

_PART_NAME = re.compile(r"^[A-Za-z0-9_\-]+$")


def _as_numpy(value: Any) -> NDArray[Any]:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


class ChipStoreWriter:
    """Write one part of a chip store; the part appears atomically on :meth:`close`.

    Use it as a context manager: a clean exit commits the part, an exception discards it.
    Writers of different parts may run concurrently (processes, machines); one part has one
    writer.

    Args:
        root: local folder or fsspec URL of the store (created if absent).
        part: part name (letters, digits, ``_`` and ``-``), e.g. the scene id.
        bands: band names of the C axis, in order.
        frames: frames T per chip.
        height: chip height H.
        width: chip width W.
        policy: what to do with chips that have too many invalid pixels; without one, a chip
            with no valid pixel at all raises a ValueError.
        compression: ``"lz4"`` or ``"zstd"``; used only when the store is created.
        chips_per_batch: rows per record batch; used only when the store is created.
        storage_options: passed to fsspec for remote stores.

    Attributes:
        written: chips written so far.
        skipped: chips rejected by ``policy``.

    Raises:
        FileExistsError: if the part is already committed (skip it to resume).
    """

    def __init__(
        self,
        root: PathLike,
        part: str,
        *,
        bands: Sequence[str],
        frames: int,
        height: int,
        width: int,
        policy: ValidityPolicy | None = None,
        compression: Literal["lz4", "zstd"] = "lz4",
        chips_per_batch: int = 64,
        storage_options: Mapping[str, Any] | None = None,
    ) -> None:
        if not _PART_NAME.match(part):
            raise ValueError(
                f"part name {part!r} may hold only letters, digits, '_' and '-'; "
                "replace other characters"
            )
        self.spec = create_store(
            root,
            bands,
            frames,
            height,
            width,
            compression=compression,
            chips_per_batch=chips_per_batch,
            storage_options=storage_options,
        )
        self._fs, path = filesystem(root, storage_options)
        self._folder = f"{path}/{PARTS_DIR}"
        # One writer per part, across processes: the part's lock (satmae.io) is held from here
        # to close() or abort(); a second writer gets OutputBusyError. Local stores only.
        self._lock = (
            OutputLock(Path(self._folder) / part) if isinstance(self._fs, LocalFileSystem) else None
        )
        if self._lock is not None:
            self._lock.acquire()
        try:
            if part_exists(root, part, storage_options):
                raise FileExistsError(
                    f"part {part!r} of {root} is already written; skip it (resume) or delete "
                    "its file"
                )
        except BaseException:
            self._release()
            raise
        self.root, self.part, self.policy = str(root), part, policy
        self.written = self.skipped = 0
        self._codec = codec_from_config(self.spec.codec, str(root))
        self._path = path
        self._temporary = f"{self._folder}/.{part}.{uuid.uuid4().hex}.tmp"
        self._schema = chip_schema(self.spec)
        self._file = self._fs.open(self._temporary, "wb")
        self._sink = pa.ipc.new_file(self._file, self._schema)
        self._rows: list[dict[str, Any]] = []
        self._closed = False

    def __enter__(self) -> ChipStoreWriter:
        return self

    def __exit__(self, error_type: type[BaseException] | None, *_: object) -> None:
        if error_type is None:
            self.close()
        else:
            self.abort()

    def add(self, sample: Mapping[str, Any]) -> bool:
        """Append one chip.

        Args:
            sample: a DESIGN §3 sample: ``image (T, C, H, W)`` with integer values in
                [0, 65535] (reflectance x 10000), ``times (T,)``, ``bands`` naming the C axis
                (reordered by name to the store's bands), ``valid (T, H, W)`` (all True if
                absent) and optional ``crs``, ``bounds``, ``transform`` and ``location``.

        Returns:
            True if written, False if the validity policy skipped it.

        Raises:
            ValueError: on a band mismatch, wrong shape, missing times, values outside uint16,
                or an all-invalid chip without a policy.
        """
        location = str(sample.get("location", f"{self.part}#{self.written + self.skipped}"))
        image = _as_numpy(sample["image"])
        if image.ndim != 4:
            raise ValueError(f"chip {location}: expected image (T, C, H, W), got {image.shape}")
        given = tuple(sample.get("bands") or ())
        if len(given) != image.shape[1]:
            raise ValueError(
                f"chip {location}: image has {image.shape[1]} channels but bands names "
                f"{len(given)}: {given}; every channel needs a band name"
            )
        try:
            image = image[:, band_indices(given, self.spec.bands)]
        except ValueError as error:
            raise ValueError(f"chip {location} does not fit store {self.root}: {error}") from None
        if image.shape != self.spec.shape:
            raise ValueError(
                f"chip {location}: expected (T, C, H, W) = {self.spec.shape} for this store, got "
                f"{image.shape}; cut chips of the store's size and frame count"
            )
        pixels = self._to_uint16(image, location)
        frames, _, height, width = self.spec.shape
        valid = sample.get("valid")
        valid_np = (
            np.ones((frames, height, width), bool) if valid is None else _as_numpy(valid)
        ).astype(bool, copy=False)
        if valid_np.shape != (frames, height, width):
            raise ValueError(
                f"chip {location}: expected valid of shape {(frames, height, width)}, "
                f"got {valid_np.shape}"
            )
        if not self._accept(valid_np, location):
            self.skipped += 1
            return False
        times = sample.get("times")
        if times is None:
            raise ValueError(
                f"chip {location} has no times; a chip store records acquisition times, "
                "so give the reader a date for every frame"
            )
        times_np = _as_numpy(times).astype(np.int64).reshape(-1)
        if times_np.shape != (frames,):
            raise ValueError(f"chip {location}: expected {frames} times, got {times_np.shape[0]}")
        bounds = tuple(float(v) for v in sample.get("bounds", (np.nan,) * 4))
        transform = tuple(float(v) for v in sample.get("transform", (np.nan,) * 6))
        if len(bounds) != 4 or len(transform) != 6:
            raise ValueError(
                f"chip {location}: bounds need 4 values and transform 6, got "
                f"{len(bounds)} and {len(transform)}"
            )
        row = {
            "image": self._codec.encode(np.ascontiguousarray(pixels)),
            "valid": self._codec.encode(np.packbits(valid_np.reshape(-1))),
            "times": times_np.tolist(),
            "crs": str(sample.get("crs", "")),
            "bounds": list(bounds),
            "transform": list(transform),
            "location": location,
        }
        metadata = row_metadata(
            times_np, np.asarray(bounds), np.asarray(transform), row["crs"], location
        )
        assert self.spec.checksum is not None  # new parts go only into checksummed stores
        row["checksum"] = chip_checksum(self.spec.checksum, row["image"], row["valid"], metadata)
        self._rows.append(row)
        self.written += 1
        if len(self._rows) == self.spec.chips_per_batch:
            self._flush()
        return True

    def _accept(self, valid: NDArray[np.bool_], location: str) -> bool:
        if self.policy is not None:
            return self.policy.accept({"valid": torch.from_numpy(valid)}, location)
        if not valid.any():
            raise ValueError(
                f"chip {location} has no valid pixel; pass policy=ValidityPolicy(...) to skip "
                "such chips, or sample windows with a minimum valid fraction"
            )
        return True

    @staticmethod
    def _to_uint16(image: NDArray[Any], location: str) -> NDArray[np.uint16]:
        if image.dtype == np.uint16:
            return image
        if image.size:
            low, high = float(image.min()), float(image.max())
            if low < 0 or high > 65535 or not np.isfinite([low, high]).all():
                raise ValueError(
                    f"chip {location}: values {low:g}..{high:g} do not fit uint16; the store "
                    "holds reflectance x 10000 as read from Sentinel-2 files, not normalised data"
                )
            if np.issubdtype(image.dtype, np.floating) and not np.array_equal(
                image, np.round(image)
            ):
                raise ValueError(
                    f"chip {location}: values are not whole numbers; store reflectance x 10000 "
                    "(round it if it was resampled)"
                )
        return image.astype(np.uint16)

    def _flush(self) -> None:
        if self._rows:
            columns = {name: [row[name] for row in self._rows] for name in self._schema.names}
            self._sink.write_batch(pa.RecordBatch.from_pydict(columns, schema=self._schema))
            self._rows = []

    def close(self) -> PartInfo:
        """Finish the part and make it visible to readers (atomic rename).

        Returns:
            The committed part.
        """
        if self._closed:
            raise ValueError(f"part {self.part!r} of {self.root} is already closed")
        self._flush()
        self._sink.close()
        self._file.flush()
        if isinstance(self._fs, LocalFileSystem) and hasattr(self._file, "fileno"):
            os.fsync(self._file.fileno())
        self._file.close()
        self._closed = True
        final = f"{self._folder}/{part_file_name(self.part, self.written)}"
        try:
            self._fs.mv(self._temporary, final)
            # the index entry commits the part: a reader refuses part files without one
            write_index_entry(
                self._fs, self._path, self.part, self.written, int(self._fs.size(final))
            )
        finally:
            self._release()
        return PartInfo(self.part, final, self.written)

    def abort(self) -> None:
        """Discard the part being written."""
        if self._closed:
            return
        self._closed = True
        try:
            self._file.close()
            if self._fs.exists(self._temporary):
                self._fs.rm(self._temporary)
        finally:
            self._release()

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
