"""The model spec: what a model expects of its input, readable without building the model.

A spec names the input band order (the order a plain tensor is taken to be in), the band
groups, the patch and image size, the time fields and frame count, and the normalisation by band
name (statistics and mode), plus provenance. It is the non-weight part of every bundle and
checkpoint (``config.json`` of a bundle directory, the ``satmae_config`` metadata entry of a
single-file bundle or Lightning checkpoint)::

    {"format": "satmae-bundle", "version": 2, "contents": "mae" | "encoder",
     "architecture": {...MAEConfig or EncoderConfig fields...},
     "normalization": {"mode": "zscore" | "satmae", "convention": ..., "bands": {...}} | null,
     "provenance": {...}}

:func:`load_spec` reads a spec from everything :func:`satmae.load_encoder` accepts: a bundle
directory, a ``.safetensors`` bundle, a Lightning ``.ckpt`` and an official SatMAE ``.pth``.
Only the last one needs the model code (to derive the official architecture from its weights).
"""

from __future__ import annotations

import argparse
import json
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from satmae.bands import canonical_bands
from satmae.normalization import Normalization

BUNDLE_FORMAT = "satmae-bundle"
BUNDLE_VERSION = 2
READABLE_VERSIONS = (1, 2)
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
METADATA_KEY = "satmae_config"
CONTENTS: tuple[str, ...] = ("mae", "encoder")
"""What a bundle holds: a whole masked autoencoder or only its encoder."""


def positive_int(value: object, name: str) -> int:
    """``value`` as an integer >= 1 (bools and fractions refused).

    Raises:
        ValueError: naming ``name``, the allowed range and the value.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def check_img_size(size: object) -> tuple[int, int]:
    """``img_size`` as ``(H, W)`` positive integers (an int means a square).

    Raises:
        ValueError: for anything else.
    """
    values = (size, size) if isinstance(size, numbers.Integral) else size
    try:
        if not isinstance(values, tuple | list) or len(values) != 2:
            raise ValueError
        return positive_int(values[0], "H"), positive_int(values[1], "W")
    except ValueError:
        raise ValueError(f"img_size must be two integers (H, W) >= 1, got {size!r}") from None


def band_names(value: object, name: str) -> tuple[str, ...]:
    """Canonical band names of a list field (``band_groups`` entries, ``input_bands``…).

    Raises:
        ValueError: if ``value`` is not a list of known band names, or repeats a band.
    """
    if not isinstance(value, tuple | list) or not all(isinstance(band, str) for band in value):
        raise ValueError(f"{name} must be a list of band names such as 'B04', got {value!r}")
    try:
        return canonical_bands(value)
    except ValueError as error:
        raise ValueError(f"{name}: {error}") from None


def band_lists(value: object, name: str) -> tuple[tuple[str, ...], ...]:
    """Canonical band names of a list-of-lists field (``band_groups``, ``head_bands``).

    Raises:
        ValueError: if ``value`` is not a list of lists of known band names.
    """
    if not isinstance(value, tuple | list):
        raise ValueError(f"{name} must be a list of band lists, got {value!r}")
    return tuple(band_names(group, f"{name}[{index}]") for index, group in enumerate(value))


@dataclass(frozen=True)
class ModelSpec:
    """What a model expects of its input.

    Attributes:
        input_bands: the channel order of a tensor given without band names.
        band_groups: the model's band groups (tokens are made per group).
        patch_size: patch side in pixels.
        img_size: ``(H, W)`` the model was built for (any multiple of the patch works unless the
            model stores learned tables).
        time_fields: calendar fields of the time encoding; empty for a non-temporal model.
        max_frames: the most frames a sample may have.
        normalization: statistics and mode the model applies to raw reflectance, or ``None``.
        contents: ``"mae"`` (encoder and decoder) or ``"encoder"``.
        architecture: the full architecture dict (config fields).
        provenance: free-form facts (source, data, run id, official layout, …).
        source: where the spec was read from.
    """

    input_bands: tuple[str, ...]
    band_groups: tuple[tuple[str, ...], ...]
    patch_size: int
    img_size: tuple[int, int]
    time_fields: tuple[str, ...]
    max_frames: int
    normalization: Normalization | None
    contents: str = "encoder"
    architecture: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    @property
    def bands(self) -> tuple[str, ...]:
        """The bands the model uses, in group order."""
        return tuple(band for group in self.band_groups for band in group)

    @property
    def temporal(self) -> bool:
        """Whether the model needs acquisition times."""
        return bool(self.time_fields)

    @classmethod
    def from_config(
        cls,
        architecture: Mapping[str, Any],
        normalization: Normalization | None,
        provenance: Mapping[str, Any] | None = None,
        contents: str = "encoder",
        source: str = "",
    ) -> ModelSpec:
        """Build from an architecture dict (``config.to_dict()``) and normalisation.

        Raises:
            ValueError: if the architecture lacks a required field.
        """
        try:
            groups = band_lists(architecture["band_groups"], "band_groups")
            bands = tuple(band for group in groups for band in group)
            inputs = architecture.get("input_bands")
            time_fields = architecture.get("time_fields") or ()
            if not isinstance(time_fields, list | tuple):
                raise ValueError(f"time_fields must be a list of names, got {time_fields!r}")
            spec = cls(
                input_bands=band_names(inputs, "input_bands") if inputs else bands,
                band_groups=groups,
                patch_size=positive_int(architecture["patch_size"], "patch_size"),
                img_size=check_img_size(architecture["img_size"]),
                time_fields=tuple(time_fields),
                max_frames=positive_int(architecture.get("max_frames", 1), "max_frames"),
                normalization=normalization,
                contents=contents,
                architecture=dict(architecture),
                provenance=dict(provenance or {}),
                source=source,
            )
        except KeyError as error:
            raise ValueError(
                f"{source or 'model config'}: the architecture lacks {error}; it needs "
                "band_groups, patch_size and img_size"
            ) from None
        except (TypeError, IndexError, ValueError, AttributeError) as error:
            raise ValueError(
                f"{source or 'model config'}: the architecture is invalid ({error}); export the "
                "model again or fix config.json"
            ) from None
        return spec

    def to_json(self) -> dict[str, Any]:
        """The bundle document (``config.json``)."""
        return {
            "format": BUNDLE_FORMAT,
            "version": BUNDLE_VERSION,
            "contents": self.contents,
            "architecture": self.architecture,
            "normalization": None if self.normalization is None else self.normalization.to_json(),
            "provenance": self.provenance,
        }

    @classmethod
    def from_json(cls, document: Mapping[str, Any], source: str = "model config") -> ModelSpec:
        """Read a bundle document (version 1 or 2).

        Raises:
            ValueError: if it is not a satmae bundle document.
        """
        if not isinstance(document, Mapping):
            raise ValueError(f"{source} is not a satmae bundle config (not a JSON object)")
        version = document.get("version")
        if document.get("format") != BUNDLE_FORMAT or version not in READABLE_VERSIONS:
            raise ValueError(
                f"{source}: expected format {BUNDLE_FORMAT!r} version "
                f"{' or '.join(map(str, READABLE_VERSIONS))}, got {document.get('format')!r} "
                f"version {version!r}"
            )
        if not isinstance(document.get("architecture"), Mapping):
            raise ValueError(f"{source} has no 'architecture'; not a satmae bundle config")
        stored = document.get("normalization")
        if stored is not None and not isinstance(stored, Mapping):
            raise ValueError(
                f"{source}: 'normalization' must be a statistics object or null, got "
                f"{type(stored).__name__}"
            )
        normalization = Normalization.from_json(stored, source) if stored else None
        spec = cls.from_config(
            document["architecture"],
            normalization,
            document.get("provenance"),
            str(document.get("contents", "encoder")),
            source,
        )
        spec.check_summary(document)
        return spec

    def check_summary(self, document: Mapping[str, Any]) -> None:
        """Refuse a document whose top-level summary disagrees with its architecture.

        Version-1 documents repeat ``bands``, ``band_groups``, ``time_fields``, ``patch_size``
        and ``img_size`` beside the architecture; a copy that disagrees would describe another
        model than the one that is built, so it is an error rather than ignored.

        Raises:
            ValueError: naming each field, both values and the source.
        """
        if self.contents not in CONTENTS:
            raise ValueError(
                f"{self.source}: contents must be one of {CONTENTS}, got {self.contents!r}"
            )
        built = {
            "bands": list(self.bands),
            "input_bands": list(self.input_bands),
            "band_groups": [list(group) for group in self.band_groups],
            "time_fields": list(self.time_fields),
            "patch_size": self.patch_size,
            "img_size": list(self.img_size),
            "max_frames": self.max_frames,
        }
        disagree = []
        for name, value in built.items():
            if name not in document:
                continue
            given = document[name]
            try:
                if name in ("bands", "input_bands"):
                    given = list(band_names(given, name))
                elif name == "band_groups":
                    given = [list(group) for group in band_lists(given, name)]
                elif name in ("time_fields", "img_size"):
                    given = list(given)
            except (TypeError, ValueError):
                pass  # not comparable: reported as a disagreement below
            if given != value:
                disagree.append(f"{name} {document[name]!r} (the architecture says {value!r})")
        if disagree:
            raise ValueError(
                f"{self.source} describes another model at its top level than its architecture: "
                f"{'; '.join(disagree)}; the architecture is what loads, so fix or remove the "
                "top-level fields"
            )

    def describe(self) -> str:
        """A one-paragraph summary for people."""
        stats = (
            "no normalisation statistics"
            if self.normalization is None
            else f"{self.normalization.mode} normalisation of {len(self.normalization.stats.mean)}"
            " bands"
        )
        time = f"time fields {list(self.time_fields)}" if self.temporal else "no time encoding"
        groups = " | ".join(",".join(group) for group in self.band_groups)
        return (
            f"{self.contents}: input bands {','.join(self.input_bands)}; groups {groups}; patch "
            f"{self.patch_size}, image {self.img_size[0]}x{self.img_size[1]}; {time}, up to "
            f"{self.max_frames} frame(s); {stats}"
        )


def read_checkpoint(path: str | Path) -> Any:
    """``torch.load`` with ``weights_only=True``, allowing ``argparse.Namespace`` (official args).

    Nothing else is unpickled, so an untrusted file cannot run code.

    Raises:
        ValueError: if the file is no checkpoint, is truncated, or holds objects other than
            tensors and plain containers (which are refused rather than unpickled).
    """
    import pickle

    import torch

    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(Path(path), map_location="cpu", weights_only=True)
    # The bytes are untrusted: whatever torch's reader raises on them (unpickling, zip, struct,
    # decoding, memory errors…) means the same thing to the user, an unreadable file.
    except Exception as error:
        reason = (
            "no torch checkpoint, or objects other than tensors in it"
            if isinstance(error, pickle.UnpicklingError)
            else (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        )
        raise ValueError(
            f"{path} is not a readable checkpoint ({reason}); give a bundle folder, a "
            ".safetensors bundle, a .ckpt of satmae pretrain or an official SatMAE .pth. "
            "Files holding arbitrary Python objects are refused, never unpickled"
        ) from None


def read_document(path: str | Path) -> dict[str, Any]:
    """The bundle document of a bundle directory or single-file ``.safetensors`` bundle.

    Raises:
        FileNotFoundError: if a directory has no ``config.json``.
        ValueError: if a ``.safetensors`` file has no ``satmae_config`` metadata.
    """
    from safetensors import safe_open

    path = Path(path)
    if path.is_dir():
        if not (path / CONFIG_NAME).is_file():
            raise FileNotFoundError(f"{path} has no {CONFIG_NAME}; not a satmae bundle")
        try:
            document: dict[str, Any] = json.loads((path / CONFIG_NAME).read_text("utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"{path / CONFIG_NAME} is not valid JSON: {error}") from None
        return document
    from safetensors import SafetensorError

    try:
        with safe_open(str(path), framework="numpy") as handle:
            text = (handle.metadata() or {}).get(METADATA_KEY)
    except (SafetensorError, OSError) as error:
        raise ValueError(
            f"{path} is not a readable safetensors file ({error}); the bundle is damaged or "
            "incomplete: export it again"
        ) from None
    if text is None:
        raise ValueError(f"{path} has no {METADATA_KEY!r} metadata; not a satmae bundle")
    try:
        loaded: dict[str, Any] = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: its {METADATA_KEY!r} metadata is not JSON: {error}") from None
    return loaded


def is_bundle_path(path: Path) -> bool:
    """Whether ``path`` is a bundle directory or single-file bundle (by its form, not content)."""
    return path.is_dir() or path.suffix == ".safetensors"


def load_spec(path: str | Path) -> ModelSpec:
    """Read the spec of any model file without building the model.

    Accepts everything :func:`satmae.load_encoder` reads: a bundle folder, a ``.safetensors``
    bundle, a Lightning ``.ckpt`` and an official SatMAE ``.pth``.

    Raises:
        FileNotFoundError: if nothing is at ``path``.
        ValueError: if the file is none of the supported forms.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no model at {path}: expected a bundle folder or checkpoint")
    if is_bundle_path(path):
        return ModelSpec.from_json(read_document(path), str(path))
    checkpoint = read_checkpoint(path)
    if isinstance(checkpoint, Mapping) and METADATA_KEY in checkpoint:
        return ModelSpec.from_json(checkpoint[METADATA_KEY], str(path))
    from satmae.models.official import official_spec

    return official_spec(checkpoint, path)
