"""What a chip store holds, checked strictly: the spec, the codec allow-list and chip checksums.

``chipstore.json`` is data a user (or a bad copy) can change, so nothing in it is trusted:
:meth:`ChipSpec.from_json` accepts only the known fields with their types and ranges,
:func:`codec_from_config` instantiates only Blosc with known parameters, and
:func:`blob_header` reads the 16-byte Blosc header of a stored blob so a reader can check the
decoded size and item size against the spec before decoding into its buffers.

Checksums cover every stored byte of a chip (both compressed blobs and the metadata columns),
computed on the compressed bytes, which are smaller than the decoded arrays. The hash is
XXH3-64 (``xxhash``): about 3 µs for a 13-band 96 x 96 chip of real Sentinel-2 pixels
(196 KB stored), against 14 µs for CRC-32C in hardware (``google-crc32c``), 34-41 µs for
``zlib.crc32`` and 55-60 µs to decode the chip; it catches accidental corruption (flipped
bits, truncation, misplaced bytes), not tampering.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numcodecs
import numpy as np
import xxhash
from numpy.typing import NDArray

from satmae.bands import canonical_bands

FORMAT_NAME = "satmae-chipstore"
FORMAT_VERSION = 2  # 2: index of committed parts and a checksum per chip; 1: neither
READABLE_VERSIONS = (1, 2)
DTYPE = "uint16"

CODECS: dict[str, dict[str, Any]] = {
    "lz4": {"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1},
    "zstd": {"id": "blosc", "cname": "zstd", "clevel": 1, "shuffle": 1},
}
_BLOSC_NAMES = ("blosclz", "lz4", "lz4hc", "zlib", "zstd")
_BLOSC_SHUFFLES = (-1, 0, 1, 2)  # auto, none, byte, bit


def _xxh3_64(*pieces: Any) -> int:
    digest = xxhash.xxh3_64()
    for piece in pieces:
        digest.update(piece)
    return int(digest.intdigest())


CHECKSUMS: dict[str, Callable[..., int]] = {"xxh3_64": _xxh3_64}
DEFAULT_CHECKSUM = "xxh3_64"

_FIELDS_V1 = {
    "format",
    "version",
    "bands",
    "frames",
    "height",
    "width",
    "dtype",
    "codec",
    "chips_per_batch",
}
_FIELDS = {1: _FIELDS_V1, 2: _FIELDS_V1 | {"checksum"}}


def _positive_int(value: Any, name: str, source: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"{source}: {name} must be a whole number of at least 1, got {value!r}; "
            "restore the file or rewrite the store"
        )
    return value


def codec_from_config(config: Any, source: str) -> numcodecs.Blosc:
    """The Blosc codec that ``config`` describes, if it is on the allow-list.

    Only ``{"id": "blosc", "cname", "clevel", "shuffle"[, "blocksize"]}`` with known values is
    accepted: a store's JSON never chooses which code runs.

    Args:
        config: the ``codec`` field of ``chipstore.json``.
        source: the file it came from, for errors.

    Raises:
        ValueError: on another codec id, an unknown parameter or a value out of range.
    """
    if not isinstance(config, Mapping) or config.get("id") != "blosc":
        raise ValueError(
            f"{source}: codec {config!r} is not allowed; a chip store uses Blosc "
            f"({{'id': 'blosc', 'cname': one of {list(_BLOSC_NAMES)}, ...}})"
        )
    unknown = sorted(set(config) - {"id", "cname", "clevel", "shuffle", "blocksize"})
    if unknown:
        raise ValueError(f"{source}: codec parameters {unknown} are not allowed for blosc")
    cname, clevel = config.get("cname", "lz4"), config.get("clevel", 5)
    shuffle, blocksize = config.get("shuffle", 1), config.get("blocksize", 0)
    if cname not in _BLOSC_NAMES:
        raise ValueError(
            f"{source}: blosc cname must be one of {list(_BLOSC_NAMES)}, got {cname!r}"
        )
    if isinstance(clevel, bool) or not isinstance(clevel, int) or not 0 <= clevel <= 9:
        raise ValueError(f"{source}: blosc clevel must be a whole number 0-9, got {clevel!r}")
    if isinstance(shuffle, bool) or shuffle not in _BLOSC_SHUFFLES:
        raise ValueError(
            f"{source}: blosc shuffle must be one of {_BLOSC_SHUFFLES}, got {shuffle!r}"
        )
    if isinstance(blocksize, bool) or not isinstance(blocksize, int) or blocksize < 0:
        raise ValueError(
            f"{source}: blosc blocksize must be a whole number >= 0, got {blocksize!r}"
        )
    return numcodecs.Blosc(cname=cname, clevel=clevel, shuffle=shuffle, blocksize=blocksize)


@dataclass(frozen=True)
class ChipSpec:
    """What every chip of a store looks like.

    Attributes:
        bands: canonical band names of the C axis, in order.
        frames: number of frames T per chip.
        height: chip height H in pixels.
        width: chip width W in pixels.
        codec: numcodecs configuration of the pixel and mask blobs (Blosc only).
        chips_per_batch: rows per Arrow record batch (the unit of sequential reads).
        checksum: algorithm of the per-chip checksum (``"xxh3_64"``), or None for version-1
            stores, which have none.
        version: format version of the store.
    """

    bands: tuple[str, ...]
    frames: int
    height: int
    width: int
    codec: Mapping[str, Any]
    chips_per_batch: int = 64
    checksum: str | None = DEFAULT_CHECKSUM
    version: int = FORMAT_VERSION

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """Chip shape ``(T, C, H, W)``."""
        return (self.frames, len(self.bands), self.height, self.width)

    @property
    def mask_bytes(self) -> int:
        """Bytes of a chip's bit-packed valid mask ``(T, H, W)``."""
        return (self.frames * self.height * self.width + 7) // 8

    def to_json(self) -> dict[str, Any]:
        """The ``chipstore.json`` document."""
        doc = {
            "format": FORMAT_NAME,
            "version": self.version,
            "bands": list(self.bands),
            "frames": self.frames,
            "height": self.height,
            "width": self.width,
            "dtype": DTYPE,
            "codec": dict(self.codec),
            "chips_per_batch": self.chips_per_batch,
        }
        if self.version >= 2:
            doc["checksum"] = self.checksum
        return doc

    @classmethod
    def from_json(cls, doc: Any, source: str) -> ChipSpec:
        """Parse a ``chipstore.json`` document strictly; ``source`` names it in errors.

        Raises:
            ValueError: on another format or version, a missing or unknown field, a value of
                the wrong type or range, an unknown band or a codec not on the allow-list.
        """
        if not isinstance(doc, Mapping) or doc.get("format") != FORMAT_NAME:
            found = doc.get("format") if isinstance(doc, Mapping) else type(doc).__name__
            raise ValueError(f"{source} is not a satmae chip store (format={found!r})")
        version = doc.get("version")
        if isinstance(version, bool) or version not in READABLE_VERSIONS:
            raise ValueError(
                f"{source} has chip store version {version!r}; this satmae reads versions "
                f"{list(READABLE_VERSIONS)}; rewrite the store with this version's data_prep"
            )
        if missing := sorted(_FIELDS[version] - set(doc)):
            raise ValueError(f"{source} lacks the fields {missing}; the store is corrupt")
        if unknown := sorted(set(doc) - _FIELDS[version]):
            raise ValueError(
                f"{source} has unknown fields {unknown} for version {version}; remove them or "
                "restore the file"
            )
        if doc["dtype"] != DTYPE:
            raise ValueError(
                f"{source}: dtype must be {DTYPE!r} (chips are reflectance x 10000), got "
                f"{doc['dtype']!r}; restore the file"
            )
        bands = doc["bands"]
        if not isinstance(bands, list) or not bands or not all(isinstance(b, str) for b in bands):
            raise ValueError(f"{source}: bands must be a non-empty list of names, got {bands!r}")
        try:
            canonical = canonical_bands(bands)
        except ValueError as error:
            raise ValueError(f"{source}: {error}") from None
        checksum = doc.get("checksum")
        if version >= 2 and checksum not in CHECKSUMS:
            raise ValueError(
                f"{source}: checksum must be one of {sorted(CHECKSUMS)}, got {checksum!r}"
            )
        codec_from_config(doc["codec"], source)
        return cls(
            bands=canonical,
            frames=_positive_int(doc["frames"], "frames", source),
            height=_positive_int(doc["height"], "height", source),
            width=_positive_int(doc["width"], "width", source),
            codec=dict(doc["codec"]),
            chips_per_batch=_positive_int(doc["chips_per_batch"], "chips_per_batch", source),
            checksum=checksum if version >= 2 else None,
            version=version,
        )


def row_metadata(
    times: NDArray[np.int64],
    bounds: NDArray[np.float64],
    transform: NDArray[np.float64],
    crs: str,
    location: str,
) -> bytes:
    """The metadata columns of one chip as the bytes its checksum covers.

    Args:
        times: ``(T,)`` int64.
        bounds: ``(4,)`` float64 (NaN when absent).
        transform: ``(6,)`` float64 (NaN when absent).
        crs: the CRS text ("" when absent).
        location: the location id.
    """
    return b"".join(
        (
            np.ascontiguousarray(times, "<i8").tobytes(),
            np.ascontiguousarray(bounds, "<f8").tobytes(),
            np.ascontiguousarray(transform, "<f8").tobytes(),
            crs.encode(),
            b"\x00",
            location.encode(),
        )
    )


def chip_checksum(algorithm: str, image: Any, valid: Any, metadata: bytes) -> int:
    """Checksum of one stored chip: its compressed image and mask blobs and its metadata."""
    return CHECKSUMS[algorithm](image, valid, metadata)


@dataclass(frozen=True)
class BlobHeader:
    """The sizes a Blosc blob declares in its 16-byte header."""

    typesize: int
    nbytes: int
    cbytes: int


_BLOSC_HEADER = struct.Struct("<BBBBIII")


def blob_header(blob: Any) -> BlobHeader | None:
    """Read the Blosc header of a stored blob, or None if the blob is too short to hold one."""
    if len(blob) < _BLOSC_HEADER.size:
        return None
    _, _, _, typesize, nbytes, _, cbytes = _BLOSC_HEADER.unpack_from(blob)
    return BlobHeader(typesize, nbytes, cbytes)
