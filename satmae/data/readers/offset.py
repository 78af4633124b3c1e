"""The Sentinel-2 processing-baseline offset: find it, remove it, record that it was removed.

Products of processing baseline 04.00 and later (from 25 January 2022) store reflectance with an
offset: ``DN = reflectance x 10000 + 1000``. The product declares it as ``BOA_ADD_OFFSET``
(Level-2A, ``MTD_MSIL2A.xml``) or ``RADIO_ADD_OFFSET`` (Level-1C, ``MTD_MSIL1C.xml``), -1000 for
every band. Readers harmonise every sample to one convention, **reflectance x 10000 with no
offset** (the convention of older products and of the built-in statistics), and record what
they did in the sample's ``harmonized`` key: one entry per frame, ``{"offset": {band: -1000.0,
...}, "source": ...}`` where an offset was removed, ``{}`` where none was found.

The offset is looked for, in this order:

1. in the product metadata (``MTD_MSIL2A.xml`` / ``MTD_MSIL1C.xml`` in the ``.SAFE`` folder
   above the band files), by the ``band_id`` of its ``Spectral_Information_List``;
2. in the tags of the file: ``BOA_ADD_OFFSET`` / ``RADIO_ADD_OFFSET`` (one value, or one per
   band, comma separated; file or band tags), ``PROCESSING_BASELINE`` (``"05.09"``), or a
   declared per-band scale and offset (GDAL's ``offset``/``scale``, ``add_offset``);
3. in the processing baseline of the product or file name (``_N0509_``: 05.09; ``_N02.04_``).

Removing the offset adds it to every pixel that does not hold the nodata value; nodata (0)
stays nodata. Valid pixels darker than the offset (``DN < 1000``, noise around zero
reflectance) become 1, the smallest valid value of older products, so they never turn into
nodata or negative reflectance.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rasterio.io import DatasetReader
from torch import Tensor

from satmae.bands import SENTINEL2_BANDS, canonical_band

OFFSET_BASELINE = 4.0
"""The first processing baseline (04.00) whose products carry the offset."""

BASELINE_OFFSET = -1000.0
"""The offset of every band in products of baseline 04.00 and later, in DN."""

METADATA_FILES: tuple[str, ...] = ("MTD_MSIL2A.xml", "MTD_MSIL1C.xml")
"""Product metadata files that declare the offset."""

OFFSET_TAG_KEYS: tuple[str, ...] = ("BOA_ADD_OFFSET", "RADIO_ADD_OFFSET")
"""File or band tags holding the offset in DN."""

BASELINE_TAG_KEYS: tuple[str, ...] = ("PROCESSING_BASELINE", "processing_baseline")
"""File tags holding the processing baseline, e.g. ``"05.09"``."""

BAND_ID_ORDER: tuple[str, ...] = tuple(SENTINEL2_BANDS)
"""Bands by ``band_id`` 0..12 when a metadata file has no spectral list (B8A after B08)."""

_BASELINE_IN_NAME = re.compile(r"_N(\d{2})\.?(\d{2})(?=[_.]|$)")
_MAX_PARENTS = 4  # from IMG_DATA/R10m up: IMG_DATA, granule, GRANULE, the .SAFE product


@dataclass(frozen=True)
class Offset:
    """An offset found for some bands, and where it was found.

    Attributes:
        bands: band name -> offset in DN, added to the pixels to remove it (e.g. -1000).
        source: the file, tag or name that declared it.
    """

    bands: dict[str, float]
    source: str

    def record(self, bands: Sequence[str]) -> dict[str, Any]:
        """The ``harmonized`` entry of a frame holding ``bands``: ``{}`` if nothing is removed."""
        removed = {band: self.bands[band] for band in bands if self.bands.get(band)}
        return {"offset": removed, "source": self.source} if removed else {}


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def metadata_offset(path: Path) -> Offset:
    """The offsets that a product metadata file declares (none for baselines before 04.00).

    Raises:
        ValueError: if the file is not XML or names a band id that is not a Sentinel-2 band.
    """
    try:
        root = ElementTree.parse(path).getroot()
    except ElementTree.ParseError as error:
        raise ValueError(
            f"cannot parse {path} ({error}); re-download the product or remove the file"
        ) from None
    names = dict(enumerate(BAND_ID_ORDER))
    for element in root.iter():
        if _local(element.tag) == "Spectral_Information" and "bandId" in element.attrib:
            names[int(element.attrib["bandId"])] = canonical_band(element.attrib["physicalBand"])
    offsets = {}
    for element in root.iter():
        if _local(element.tag) in OFFSET_TAG_KEYS and "band_id" in element.attrib:
            band_id = int(element.attrib["band_id"])
            if band_id not in names:
                raise ValueError(f"{path} declares an offset for unknown band_id {band_id}")
            offsets[names[band_id]] = float((element.text or "0").strip())
    return Offset(offsets, str(path))


def baseline_from_name(name: str) -> float | None:
    """The processing baseline in a product or file name (``_N0509_`` -> 5.09), if any."""
    match = _BASELINE_IN_NAME.search(name)
    return int(match.group(1)) + int(match.group(2)) / 100 if match else None


def _baseline_offset(baseline: float, bands: Sequence[str], source: str) -> Offset:
    value = BASELINE_OFFSET if baseline >= OFFSET_BASELINE else 0.0
    return Offset(dict.fromkeys(bands, value), source)


def product_offset(path: Path, bands: Sequence[str]) -> Offset | None:
    """The offset of the product holding ``path``: its metadata file, else its name's baseline.

    Looks in the folder ``path`` (or the folder of the file ``path``) and in up to four
    folders above it, stopping at the ``.SAFE`` folder.
    """
    folder = path.resolve() if path.is_dir() else path.resolve().parent
    for candidate in [folder, *folder.parents][: _MAX_PARENTS + 1]:
        for name in METADATA_FILES:
            if (candidate / name).is_file():
                return metadata_offset(candidate / name)
        if (baseline := baseline_from_name(candidate.name)) is not None:
            return _baseline_offset(baseline, bands, f"processing baseline in {candidate.name}")
        if candidate.suffix.upper() == ".SAFE":
            break
    return None


def _numbers(text: str) -> list[float] | None:
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        return None


def _number(text: str, key: str, where: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(
            f"{where}: the {key} tag {text!r} is not a number; fix the tag or remove it"
        ) from None


def _tagged_offset(dataset: DatasetReader, names: Sequence[str], where: str) -> Offset | None:
    """Offsets from ``*_ADD_OFFSET`` and ``PROCESSING_BASELINE`` file tags."""
    tags = dataset.tags()
    for key in OFFSET_TAG_KEYS:
        values = _numbers(tags.get(key, ""))
        if values and len(values) in (1, len(names)):
            per_band = values if len(values) == len(names) else values * len(names)
            return Offset(dict(zip(names, per_band, strict=True)), f"{key} tag of {where}")
    for key in BASELINE_TAG_KEYS:
        if key in tags and (baseline := baseline_from_name(f"_N{tags[key].strip()}_")):
            return _baseline_offset(baseline, names, f"{key} tag of {where}")
    return None


def _band_offsets(dataset: DatasetReader, names: Sequence[str], where: str) -> Offset | None:
    """Offsets from band tags or a declared per-band scale and offset (in DN: offset / scale)."""
    found: dict[str, float] = {}
    for index, name in enumerate(names, start=1):
        tags = dataset.tags(index)
        if key := next((key for key in OFFSET_TAG_KEYS if key in tags), None):
            offset = _number(tags[key], key, where)  # already in DN
        elif "add_offset" in tags:
            scale = _number(tags.get("scale_factor", "1"), "scale_factor", where) or 1.0
            offset = _number(tags["add_offset"], "add_offset", where) / scale
        else:  # rasterio reports offset 0.0 and scale 1.0 for files that declare none
            offset = dataset.offsets[index - 1] / (dataset.scales[index - 1] or 1.0)
        if offset:
            found[name] = offset
    return Offset(found, f"band offsets of {where}") if found else None


def file_offset(dataset: DatasetReader, path: Path, names: Sequence[str]) -> Offset | None:
    """The offset an open raster declares in its tags, else its name's processing baseline.

    Args:
        dataset: the open file.
        path: its path (for the name and for messages).
        names: canonical names of the file's bands, in file order.
    """
    where = path.name
    found = _tagged_offset(dataset, names, where) or _band_offsets(dataset, names, where)
    if found is None and (baseline := baseline_from_name(path.name)) is not None:
        found = _baseline_offset(baseline, names, f"processing baseline in {path.name}")
    return found


def remove_offset(image: Tensor, offsets: Sequence[float], nodata: float) -> Tensor:
    """Add each channel's offset to the pixels that do not hold ``nodata``, in place.

    Args:
        image: ``(T, C, H, W)`` DN as stored.
        offsets: C offsets in DN (0 for channels without one).
        nodata: the nodata value, kept as is.

    Returns:
        ``image``, harmonised to reflectance x 10000 without offset (valid pixels >= 1).
    """
    for channel, offset in enumerate(offsets):
        if not offset:
            continue
        pixels = image[:, channel]  # (T, H, W)
        stored = pixels != nodata
        pixels[stored] = torch.clamp(pixels[stored] + offset, min=1.0)
    return image
