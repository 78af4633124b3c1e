"""Model bundles (``model.safetensors`` + ``config.json``) and loading of any checkpoint.

A bundle directory holds ``model.safetensors`` (our key names, ``encoder.*`` and, for a full MAE,
``decoder.*``) and ``config.json``, the model spec document (see :mod:`satmae.spec`). A single
``.safetensors`` file with the same JSON in its ``satmae_config`` metadata entry is a bundle too.
:func:`load_mae` and :func:`load_encoder` also read official SatMAE / SatMAE++ ``.pth`` files and
Lightning checkpoints that carry a ``satmae_config`` entry.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from satmae.io import atomic_path
from satmae.models.config import EncoderConfig, MAEConfig
from satmae.models.encoder import SatMAEEncoder
from satmae.models.mae import MaskedAutoencoder
from satmae.models.official import convert_official
from satmae.normalization import Normalization, NormMode, StatsLike
from satmae.spec import (
    CONFIG_NAME,
    METADATA_KEY,
    WEIGHTS_NAME,
    ModelSpec,
    is_bundle_path,
    read_checkpoint,
    read_document,
)


def save_bundle(
    model: MaskedAutoencoder | SatMAEEncoder,
    path: str | Path,
    normalization: StatsLike | None = None,
    provenance: Mapping[str, Any] | None = None,
    mode: NormMode = "zscore",
) -> Path:
    """Write a bundle directory, or a single file when ``path`` ends in ``.safetensors``.

    Args:
        model: an MAE (saved whole) or an encoder (saved without decoder).
        path: target directory or ``.safetensors`` file.
        normalization: the training data's statistics (a :class:`BandStats` from
            ``load_stats``, a :class:`Normalization`, a built-in name or stats file); default
            the model's own.
        provenance: free-form facts (source, data, run id…), merged with the model's.
        mode: normalisation mode when ``normalization`` is not a :class:`Normalization`.

    Returns:
        the written path.
    """
    path = Path(path)
    encoder = model.encoder if isinstance(model, MaskedAutoencoder) else model
    spec = model.spec
    if normalization is not None:
        chosen = Normalization.of(normalization, mode).for_bands(encoder.bands)
        spec = replace(spec, normalization=chosen)
    document = replace(spec, provenance={**spec.provenance, **(provenance or {})}).to_json()
    prefix = "" if isinstance(model, MaskedAutoencoder) else "encoder."
    tensors = {prefix + k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if path.suffix == ".safetensors":
        with atomic_path(path) as staging:
            save_file(tensors, str(staging), metadata={METADATA_KEY: json.dumps(document)})
        return path
    # Weights first, then the config that describes them; each file appears whole or not at all.
    with atomic_path(path / WEIGHTS_NAME) as staging:
        save_file(tensors, str(staging))
    with atomic_path(path / CONFIG_NAME) as staging:
        staging.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return path


def _read_any(path: Path) -> tuple[dict[str, Tensor], ModelSpec]:
    """Our-layout state dict and the spec from any supported file."""
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    if is_bundle_path(path):
        spec = ModelSpec.from_json(read_document(path), str(path))
        weights = path / WEIGHTS_NAME if path.is_dir() else path
        try:
            return load_file(str(weights)), spec
        except (SafetensorError, OSError) as error:
            raise ValueError(
                f"{weights} is not a readable safetensors file ({error}); the bundle is "
                "damaged or incomplete: export it again"
            ) from None
    checkpoint = read_checkpoint(path)
    if isinstance(checkpoint, dict) and METADATA_KEY in checkpoint and "state_dict" in checkpoint:
        spec = ModelSpec.from_json(checkpoint[METADATA_KEY], str(path))
        state = {}
        for key, value in checkpoint["state_dict"].items():
            for part in ("encoder.", "decoder.", "upsampler."):
                if part in key:
                    state[part + key.split(part, 1)[1]] = value
                    break
        return state, spec
    converted, spec, unused = convert_official(checkpoint, path)
    if unused:
        warnings.warn(f"{path}: unused checkpoint keys {unused}", stacklevel=3)
    return converted, spec


def _load_into(
    model: MaskedAutoencoder | SatMAEEncoder, state: Mapping[str, Tensor], source: Path
) -> None:
    """Load with shape checks; raise ValueError for another architecture or non-finite weights."""
    broken = [
        key
        for key, value in state.items()
        if value.is_floating_point() and not bool(torch.isfinite(value).all())
    ]
    if broken:
        raise ValueError(
            f"{source} holds NaN or inf in {len(broken)} weight tensors ({broken[:3]}); the "
            "training run diverged or the file is damaged: use an earlier checkpoint"
        )
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
    state, spec = _read_any(path)
    if not any(key.startswith("decoder.") for key in state):
        raise ValueError(
            f"{path} holds an encoder without a decoder (expected a pretraining MAE checkpoint); "
            "use satmae.load_encoder"
        )
    model = MaskedAutoencoder(MAEConfig.from_dict(spec.architecture))
    _load_into(model, state, path)
    _attach(model.encoder, spec)
    return model.to(device)


def load_encoder(
    path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> SatMAEEncoder:
    """Load the encoder of any bundle, Lightning checkpoint or official ``.pth`` (eval mode).

    The encoder carries the checkpoint's normalisation (official checkpoints: the official
    statistics and mode), so ``encoder.embed(batch)`` takes raw reflectance as read.

    Args:
        path: bundle directory, ``.safetensors`` bundle, official SatMAE/SatMAE++ checkpoint
            (pretraining or fine-tuned) or Lightning checkpoint with a ``satmae_config`` entry.
        device: where to put the encoder.
        dtype: cast the weights, e.g. ``torch.bfloat16`` (where the device has native bf16);
            ``embed`` then runs its matmuls in it and still returns float32.
    """
    path = Path(path)
    state, spec = _read_any(path)
    encoder = SatMAEEncoder(EncoderConfig.from_dict(spec.architecture))
    encoder_state = {
        key.removeprefix("encoder."): value
        for key, value in state.items()
        if key.startswith("encoder.")
    }
    _load_into(encoder, encoder_state, path)
    _attach(encoder, spec)
    return encoder.to(device=device, dtype=dtype).eval()


def _attach(encoder: SatMAEEncoder, spec: ModelSpec) -> None:
    """Give a loaded encoder the spec's normalisation and provenance."""
    encoder.set_normalization(spec.normalization)
    encoder.provenance = dict(spec.provenance)
