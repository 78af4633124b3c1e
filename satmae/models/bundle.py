"""Model bundles (``model.safetensors`` + ``config.json``) and loading of any checkpoint.

A bundle directory holds ``model.safetensors`` (our key names, ``encoder.*`` and, for a full MAE,
``decoder.*``) and ``config.json``::

    {"format": "satmae-bundle", "version": 1, "contents": "mae" | "encoder",
     "architecture": {...MAEConfig fields...}, "bands": [...], "band_groups": [[...], ...],
     "time_fields": [...], "patch_size": 8, "img_size": [96, 96],
     "normalization": {"mean": {band: float}, "std": {band: float}} | null,
     "provenance": {...}}

A single ``.safetensors`` file with the same JSON in its ``satmae_config`` metadata entry is a
bundle too. :func:`load_mae` and :func:`load_encoder` also read official SatMAE / SatMAE++
``.pth`` files and Lightning checkpoints that carry a ``satmae_config`` entry.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor

from satmae.io import atomic_path
from satmae.models.config import MAEConfig
from satmae.models.encoder import SatMAEEncoder
from satmae.models.mae import MaskedAutoencoder
from satmae.models.official import from_official, official_state, read_checkpoint

BUNDLE_FORMAT = "satmae-bundle"
BUNDLE_VERSION = 1
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
METADATA_KEY = "satmae_config"


def bundle_config(
    model: MaskedAutoencoder | SatMAEEncoder,
    normalization: Mapping[str, Mapping[str, float]] | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``config.json`` content describing ``model``."""
    config = model.config
    normalization = normalization if normalization is not None else model.normalization
    if normalization is not None:
        for key in ("mean", "std"):
            missing = [band for band in config.bands if band not in normalization.get(key, {})]
            if missing:
                raise ValueError(
                    f"normalization[{key!r}] lacks bands {missing}; "
                    f"it must cover {list(config.bands)}"
                )
        normalization = {
            k: {b: float(v) for b, v in normalization[k].items()} for k in ("mean", "std")
        }
    return {
        "format": BUNDLE_FORMAT,
        "version": BUNDLE_VERSION,
        "contents": "mae" if isinstance(model, MaskedAutoencoder) else "encoder",
        "architecture": config.to_dict(),
        "bands": list(config.bands),
        "band_groups": [list(group) for group in config.band_groups],
        "time_fields": list(config.time_fields),
        "patch_size": config.patch_size,
        "img_size": list(config.img_size),
        "normalization": normalization,
        "provenance": {**model.provenance, **(provenance or {})},
    }


def save_bundle(
    model: MaskedAutoencoder | SatMAEEncoder,
    path: str | Path,
    normalization: Mapping[str, Mapping[str, float]] | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> Path:
    """Write a bundle directory, or a single file when ``path`` ends in ``.safetensors``.

    Args:
        model: an MAE (saved whole) or an encoder (saved without decoder).
        path: target directory or ``.safetensors`` file.
        normalization: per-band ``{"mean": {...}, "std": {...}}`` of the training data.
        provenance: free-form facts (source, data, run id…), merged with ``model.provenance``.

    Returns:
        the written path.
    """
    path = Path(path)
    meta = bundle_config(model, normalization, provenance)
    prefix = "" if isinstance(model, MaskedAutoencoder) else "encoder."
    tensors = {prefix + k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if path.suffix == ".safetensors":
        with atomic_path(path) as staging:
            save_file(tensors, str(staging), metadata={METADATA_KEY: json.dumps(meta)})
        return path
    # Weights first, then the config that describes them; each file appears whole or not at all.
    with atomic_path(path / WEIGHTS_NAME) as staging:
        save_file(tensors, str(staging))
    with atomic_path(path / CONFIG_NAME) as staging:
        staging.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return path


def read_bundle_config(path: str | Path) -> dict[str, Any]:
    """The ``config.json`` of a bundle directory or single-file bundle."""
    path = Path(path)
    if path.is_dir():
        if not (path / CONFIG_NAME).is_file():
            raise FileNotFoundError(f"{path} has no {CONFIG_NAME}; not a satmae bundle")
        meta: dict[str, Any] = json.loads((path / CONFIG_NAME).read_text())
    else:
        with safe_open(str(path), framework="pt") as handle:
            text = (handle.metadata() or {}).get(METADATA_KEY)
        if text is None:
            raise ValueError(f"{path} has no {METADATA_KEY!r} metadata; not a satmae bundle")
        meta = json.loads(text)
    if meta.get("format") != BUNDLE_FORMAT or meta.get("version") != BUNDLE_VERSION:
        raise ValueError(
            f"{path}: expected format {BUNDLE_FORMAT!r} version {BUNDLE_VERSION}, got "
            f"{meta.get('format')!r} version {meta.get('version')}"
        )
    return meta


def _read_any(path: Path) -> tuple[MAEConfig, dict[str, Tensor], dict[str, Any]]:
    """Config, our-layout state dict and bundle metadata from any supported file."""
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    if path.is_dir() or path.suffix == ".safetensors":
        meta = read_bundle_config(path)
        weights = path / WEIGHTS_NAME if path.is_dir() else path
        return MAEConfig.from_dict(meta["architecture"]), load_file(str(weights)), meta
    checkpoint = read_checkpoint(path)
    if isinstance(checkpoint, dict) and METADATA_KEY in checkpoint and "state_dict" in checkpoint:
        meta = checkpoint[METADATA_KEY]
        state = {}
        for key, value in checkpoint["state_dict"].items():
            for part in ("encoder.", "decoder."):
                if part in key:
                    state[part + key.split(part, 1)[1]] = value
                    break
        return MAEConfig.from_dict(meta["architecture"]), state, meta
    official, args = official_state(checkpoint, path)
    config, converted, report = from_official(official, args)
    if report.unexpected:
        warnings.warn(f"{path}: unused checkpoint keys {report.unexpected}", stacklevel=3)
    provenance = {"source": str(path), "official": report.kind, "stage": report.stage,
                  "notes": report.notes}  # fmt: skip
    return config, converted, {"normalization": None, "provenance": provenance}


def _load_into(
    model: MaskedAutoencoder | SatMAEEncoder, state: Mapping[str, Tensor], source: Path
) -> None:
    """Load with shape checks; raise ValueError for another architecture."""
    own = model.state_dict()
    mismatched = [
        f"{key}: expected {tuple(own[key].shape)}, given {tuple(value.shape)}"
        for key, value in state.items()
        if key in own and own[key].shape != value.shape
    ]
    missing = sorted(set(own) - set(state))
    if mismatched or missing:
        raise ValueError(
            f"{source} holds a checkpoint of another architecture than its config describes: "
            f"shape mismatches {mismatched[:5]}, missing keys {missing[:8]}"
        )
    unexpected = sorted(set(state) - set(own))
    if unexpected:
        warnings.warn(f"{source}: unused keys {unexpected[:10]}", stacklevel=3)
    model.load_state_dict({k: v for k, v in state.items() if k in own})


def load_mae(path: str | Path, device: str | torch.device = "cpu") -> MaskedAutoencoder:
    """Load a full masked autoencoder from a bundle or an official pretraining checkpoint.

    Raises:
        ValueError: if the file holds only an encoder (e.g. an official fine-tuned ViT) or
            weights that do not fit its config.
    """
    path = Path(path)
    config, state, meta = _read_any(path)
    if not any(key.startswith("decoder.") for key in state):
        raise ValueError(
            f"{path} holds an encoder without a decoder (expected a pretraining MAE checkpoint); "
            "use satmae.load_encoder"
        )
    model = MaskedAutoencoder(config)
    _load_into(model, state, path)
    model.normalization = meta.get("normalization")
    model.provenance = dict(meta.get("provenance") or {})
    return model.to(device)


def load_encoder(path: str | Path, device: str | torch.device = "cpu") -> SatMAEEncoder:
    """Load the encoder of any bundle, Lightning checkpoint or official ``.pth`` (eval mode).

    Args:
        path: bundle directory, ``.safetensors`` bundle, official SatMAE/SatMAE++ checkpoint
            (pretraining or fine-tuned) or Lightning checkpoint with a ``satmae_config`` entry.
        device: where to put the encoder.
    """
    path = Path(path)
    config, state, meta = _read_any(path)
    encoder = SatMAEEncoder(config)
    encoder_state = {
        key.removeprefix("encoder."): value
        for key, value in state.items()
        if key.startswith("encoder.")
    }
    _load_into(encoder, encoder_state, path)
    encoder.normalization = meta.get("normalization")
    encoder.provenance = dict(meta.get("provenance") or {})
    return encoder.to(device).eval()
