"""Model bundles (``model.safetensors`` + ``config.json``) and loading of any checkpoint.

A bundle directory holds ``model.safetensors`` (our key names, ``encoder.*`` and, for a full MAE,
``decoder.*``) and ``config.json``, the model spec document (see :mod:`satmae.spec`). A single
``.safetensors`` file with the same JSON in its ``satmae_config`` metadata entry is a bundle too.
:func:`load_mae` and :func:`load_encoder` also read official SatMAE / SatMAE++ ``.pth`` files and
Lightning checkpoints that carry a ``satmae_config`` entry.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from satmae.io import atomic_folder, atomic_path
from satmae.models.config import EncoderConfig, MAEConfig
from satmae.models.encoder import SatMAEEncoder
from satmae.models.mae import MaskedAutoencoder
from satmae.models.official import convert_official
from satmae.models.validation import check_checkpoint, naming_file
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
    *,
    overwrite: bool = True,
) -> Path:
    """Write a bundle directory, or a single file when ``path`` ends in ``.safetensors``.

    The write follows :mod:`satmae.io`: a single file is written to a temporary and renamed, a
    directory is staged whole and swapped in, so a killed export leaves the old bundle (or none)
    and its leftovers are removed by the next export to the same path.

    Args:
        model: an MAE (saved whole) or an encoder (saved without decoder).
        path: target directory or ``.safetensors`` file.
        normalization: the training data's statistics (a :class:`BandStats` from
            ``load_stats``, a :class:`Normalization`, a built-in name or stats file); default
            the model's own.
        provenance: free-form facts (source, data, run id…), merged with the model's.
        mode: normalisation mode when ``normalization`` is not a :class:`Normalization`.
        overwrite: replace an existing bundle at ``path``. A folder holding anything but a
            bundle's two files is never replaced.

    Returns:
        the written path.

    Raises:
        FileExistsError: if ``path`` exists and ``overwrite`` is False, is not a bundle, or is
            being written by another process (``OutputBusyError``).
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
        with atomic_path(path, overwrite=overwrite) as staging:
            _save_weights(tensors, staging, path, {METADATA_KEY: json.dumps(document)})
        return path
    with atomic_folder(path, overwrite=overwrite, is_ours=_is_bundle_folder) as staging:
        _save_weights(tensors, staging / WEIGHTS_NAME, path, None)
        (staging / CONFIG_NAME).write_text(json.dumps(document, indent=2) + "\n", "utf-8")
    return path


def _save_weights(
    tensors: dict[str, Tensor], staging: Path, target: Path, metadata: dict[str, str] | None
) -> None:
    """``save_file`` into ``staging``; its errors become an OSError naming ``target``."""
    try:
        save_file(tensors, str(staging), metadata=metadata)
    except SafetensorError as error:
        reason = re.sub(r' at path ".*"', "", str(error))  # the path is a hidden temporary
        raise OSError(
            f"cannot write {target}: {reason}; check that its folder is writable and has free space"
        ) from None


def _is_bundle_folder(folder: Path) -> bool:
    """Whether ``folder`` holds a bundle and nothing else (only such a folder is replaced)."""
    names = {entry.name for entry in folder.iterdir()}
    return CONFIG_NAME in names and names <= {CONFIG_NAME, WEIGHTS_NAME}


def _read_any(path: Path) -> tuple[dict[str, Tensor], ModelSpec]:
    """Our-layout state dict and the spec from any supported file.

    Raises:
        FileNotFoundError: if nothing is at ``path``.
        ValueError: naming ``path`` for anything unreadable, foreign or damaged.
    """
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    with naming_file(path):
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
        if isinstance(checkpoint, dict) and METADATA_KEY in checkpoint:
            return _lightning_state(checkpoint, path), ModelSpec.from_json(
                checkpoint[METADATA_KEY], str(path)
            )
        converted, spec, unused = convert_official(checkpoint, path)
    if unused:
        # Parts of an official model that ours has no counterpart for: reported, not refused,
        # since the converter maps every part it knows.
        warnings.warn(f"{path}: unused checkpoint keys {unused}", stacklevel=3)
    return converted, spec


def _lightning_state(checkpoint: Mapping[str, Any], path: Path) -> dict[str, Tensor]:
    """The model weights of a Lightning checkpoint, module prefix off.

    Those are the ``encoder.*``, ``decoder.*`` and (multi-scale models) ``upsampler.*`` keys.
    """
    weights = checkpoint.get("state_dict")
    if not isinstance(weights, Mapping):
        raise ValueError(
            f"{path} has a {METADATA_KEY!r} entry but no 'state_dict' of weights; it is not a "
            "complete checkpoint of satmae pretrain"
        )
    state = {}
    for key, value in weights.items():
        for part in ("encoder.", "decoder.", "upsampler."):
            if part in str(key):
                state[part + str(key).split(part, 1)[1]] = value
                break
    return state


_Built = TypeVar("_Built", bound=EncoderConfig)


def _build(config_type: type[_Built], spec: ModelSpec, path: Path) -> _Built:
    """The config of ``spec``'s architecture, its errors naming ``path``."""
    try:
        return config_type.from_dict(dict(spec.architecture))
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"{path}: the architecture in its config is invalid ({error}); export the model "
            "again or fix the config"
        ) from None


def load_mae(
    path: str | Path, device: str | torch.device = "cpu", strict: bool = True
) -> MaskedAutoencoder:
    """Load a full masked autoencoder from a bundle or an official pretraining checkpoint.

    Args:
        path: bundle directory, ``.safetensors`` bundle, official SatMAE pretraining ``.pth``
            or Lightning checkpoint with a ``satmae_config`` entry.
        device: where to put the model.
        strict: refuse weights the model of the config does not have (the config and weights
            then come from different models); ``False`` warns and skips them.

    Raises:
        FileNotFoundError: if nothing is at ``path``.
        ValueError: naming ``path``: if the file holds only an encoder (e.g. an official
            fine-tuned ViT), is damaged or foreign, or holds weights that do not fit its config
            (shapes, missing keys, unexpected keys when ``strict``, NaN or inf values), or
            statistics that do not cover the model's bands.
    """
    path = Path(path)
    state, spec = _read_any(path)
    if not any(key.startswith("decoder.") for key in state):
        raise ValueError(
            f"{path} holds an encoder without a decoder (expected a pretraining MAE checkpoint); "
            "use satmae.load_encoder"
        )
    if spec.contents != "mae":
        raise ValueError(
            f"{path} says it holds {spec.contents!r} but its weights include a decoder; the "
            "config does not describe these weights: export the model again"
        )
    model = MaskedAutoencoder(_build(MAEConfig, spec, path))
    model.load_state_dict(check_checkpoint(model, state, spec, path, strict))
    _attach(model.encoder, spec)
    return model.to(device)


def load_encoder(
    path: str | Path,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    strict: bool = True,
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
        strict: refuse ``encoder.*`` weights the encoder of the config does not have (the
            decoder and up-sampler of a whole MAE are not needed and skipped); ``False`` warns
            and skips them.

    Raises:
        FileNotFoundError: if nothing is at ``path``.
        ValueError: naming ``path`` for a damaged or foreign file, weights that do not fit
            its config or statistics that do not cover the model's bands (see :func:`load_mae`).
    """
    path = Path(path)
    state, spec = _read_any(path)
    if spec.contents == "encoder" and any(key.startswith(_DECODING) for key in state):
        raise ValueError(
            f"{path} says it holds an encoder but its weights include a decoder; the config "
            "does not describe these weights: export the model again"
        )
    encoder = SatMAEEncoder(_build(EncoderConfig, spec, path))
    encoder_state = {
        key.removeprefix("encoder."): value
        for key, value in state.items()
        if not key.startswith(_DECODING)
    }
    encoder.load_state_dict(check_checkpoint(encoder, encoder_state, spec, path, strict))
    _attach(encoder, spec)
    return encoder.to(device=device, dtype=dtype).eval()


_DECODING = ("decoder.", "upsampler.")
"""Key prefixes of the parts of a whole MAE that an encoder does without."""


def _attach(encoder: SatMAEEncoder, spec: ModelSpec) -> None:
    """Give a loaded encoder the spec's normalisation and provenance."""
    encoder.set_normalization(spec.normalization)
    encoder.provenance = dict(spec.provenance)
