"""Checks of configurations and loaded checkpoints: the allowed range of every value, one place.

Config classes call :func:`check_fields` with their table of limits (:data:`ENCODER_LIMITS`,
:data:`DECODER_LIMITS`, :data:`MASKING_LIMITS`) before any cross-field rule, so a size of 0, a
negative depth or a string where a number belongs is named with its allowed range instead of
failing later in a division or a layer constructor.

Loaders go through :func:`naming_file` (every error names the file and is a ``ValueError``)
and :func:`check_checkpoint` (one step: spec agreement, tensors only, finite weights, shapes,
missing and unexpected keys, normalisation that covers the model's bands).
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

if TYPE_CHECKING:
    from torch import nn

    from satmae.spec import ModelSpec


@dataclass(frozen=True)
class Limit:
    """The allowed values of one config field.

    Attributes:
        kind: ``"int"``, ``"number"`` (int or float, finite) or ``"bool"``.
        low: smallest allowed value, or ``None``.
        high: largest allowed value, or ``None``.
        low_open: ``low`` itself is not allowed.
        high_open: ``high`` itself is not allowed.
    """

    kind: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def describe(self) -> str:
        """The allowed values in words, e.g. ``"an integer >= 1"``."""
        noun = {"int": "an integer", "number": "a number", "bool": "true or false"}[self.kind]
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"{noun} in {left}{self.low:g}, {self.high:g}{right}"
        if self.low is not None:
            return f"{noun} {'>' if self.low_open else '>='} {self.low:g}"
        return noun

    def allows(self, value: object) -> bool:
        """Whether ``value`` has the right type and lies in the range."""
        if self.kind == "bool":
            return isinstance(value, bool)
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return False
        if self.kind == "int" and not isinstance(value, numbers.Integral):
            return False
        number = float(value)
        if not math.isfinite(number):
            return False
        if self.low is not None and (number <= self.low if self.low_open else number < self.low):
            return False
        return not (
            self.high is not None
            and (number >= self.high if self.high_open else number > self.high)
        )


POSITIVE = Limit("int", 1)
NON_NEGATIVE = Limit("int", 0)

ENCODER_LIMITS: dict[str, Limit] = {
    "patch_size": POSITIVE,
    "embed_dim": POSITIVE,
    "depth": POSITIVE,
    "num_heads": POSITIVE,
    "mlp_ratio": Limit("number", 0, low_open=True),
    "group_dim": NON_NEGATIVE,
    "time_dim": NON_NEGATIVE,
    "max_frames": POSITIVE,
    "global_pool_norm": Limit("bool"),
    "num_classes": NON_NEGATIVE,
}
"""Allowed values of the :class:`~satmae.models.config.EncoderConfig` number fields."""

DECODER_LIMITS: dict[str, Limit] = {
    "decoder_fraction": Limit("number", 0, 1, low_open=True),
    "decoder_dim": POSITIVE,
    "decoder_depth": NON_NEGATIVE,
    "decoder_num_heads": POSITIVE,
    "decoder_group_dim": NON_NEGATIVE,
    "decoder_time_dim": NON_NEGATIVE,
}
"""Allowed values of the :class:`~satmae.models.config.DecoderConfig` number fields."""

DECODER_ITEM_LIMITS: dict[str, Limit] = {"decoder_context": Limit("int")}
"""Allowed entries of the :class:`~satmae.models.config.DecoderConfig` list fields (the block
range depends on the encoder depth and is checked by :class:`~satmae.models.config.MAEConfig`)."""

MASKING_LIMITS: dict[str, Limit] = {
    "mask_ratio": Limit("number", 0, 1, high_open=True),
    "norm_pix_loss": Limit("bool"),
    "min_valid_fraction": Limit("number", 0, 1),
}
"""Allowed values of the :class:`~satmae.models.config.MaskingConfig` number fields."""

MASKING_ITEM_LIMITS: dict[str, Limit] = {"group_loss_weights": Limit("number", 0)}
"""Allowed entries of the :class:`~satmae.models.config.MaskingConfig` list fields."""


def check_fields(config: object, limits: Mapping[str, Limit]) -> None:
    """Raise ValueError naming every field of ``config`` outside its :class:`Limit`."""
    bad = [
        f"{name} must be {limit.describe()}, got {getattr(config, name)!r}"
        for name, limit in limits.items()
        if not limit.allows(getattr(config, name))
    ]
    if bad:
        raise ValueError("; ".join(bad))


def check_items(config: object, limits: Mapping[str, Limit]) -> None:
    """Raise ValueError naming every list field of ``config`` with an entry outside its limit.

    A field that is ``None`` passes (optional lists); one that is not a list or is empty fails.
    """
    bad = []
    for name, limit in limits.items():
        value = getattr(config, name)
        if value is None:
            continue
        entries = list(value) if isinstance(value, tuple | list) else []
        wrong = [entry for entry in entries if not limit.allows(entry)]
        if not entries or wrong:
            wrong_part = f" (wrong entries {wrong})" if wrong else ""
            bad.append(
                f"{name} must be a non-empty list, each entry {limit.describe()}, got "
                f"{value!r}{wrong_part}"
            )
    if bad:
        raise ValueError("; ".join(bad))


# Loading ------------------------------------------------------------------------------------

RAW_FILE_ERRORS = (KeyError, TypeError, AttributeError, IndexError, RuntimeError, ValueError)
"""What parsing a damaged or foreign file can raise before a check catches it."""


@contextmanager
def naming_file(path: str | Path) -> Iterator[None]:
    """Turn any error of reading or converting ``path`` into one ValueError that names it.

    ``FileNotFoundError`` passes through; messages that already name the file are kept.
    """
    try:
        yield
    except FileNotFoundError:
        raise
    except RAW_FILE_ERRORS as error:
        text = str(error) if isinstance(error, ValueError) else f"{type(error).__name__}: {error}"
        if str(path) in text:
            raise ValueError(text) from None
        raise ValueError(
            f"{path} is not a usable satmae model file ({text}); give a bundle folder, a "
            ".safetensors bundle, a .ckpt of satmae pretrain or an official SatMAE .pth"
        ) from None


def check_checkpoint(
    model: nn.Module,
    state: Mapping[str, Any],
    spec: ModelSpec,
    source: str | Path,
    strict: bool = True,
) -> dict[str, Tensor]:
    """The one check between a file's weights and the model built from its spec.

    Args:
        model: the model built from the spec's architecture.
        state: the file's weights in our key names, restricted to what ``model`` may use.
        spec: the file's spec (its normalisation must cover the model's bands).
        source: the file, named in every message.
        strict: refuse keys the model does not have; ``False`` warns and skips them.

    Returns:
        the state to load (unexpected keys dropped).

    Raises:
        ValueError: for values that are not tensors, NaN or inf weights, shape mismatches,
            missing keys, unexpected keys (when ``strict``) or a malformed normalisation.
    """
    if foreign := [key for key, value in state.items() if not isinstance(value, Tensor)]:
        raise ValueError(
            f"{source} holds entries that are not tensors where weights belong: {foreign[:5]}; "
            "the file is damaged or not a model checkpoint"
        )
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
            f"shape mismatches {mismatched[:5]}, missing keys {missing[:8]}; the config and "
            "the weights come from different models"
        )
    if unexpected := sorted(set(state) - set(own)):
        message = (
            f"{source} holds {len(unexpected)} weights that the model of its config does not "
            f"have: {unexpected[:8]}; the config and the weights come from different models"
        )
        if strict:
            raise ValueError(f"{message}. Pass strict=False to load anyway without them")
        warnings.warn(f"{message}; they are skipped (strict=False)", stacklevel=3)
    check_normalization(spec, spec.bands, source)
    return {key: value for key, value in state.items() if key in own}


def check_normalization(spec: ModelSpec, bands: tuple[str, ...], source: str | Path) -> None:
    """The spec's statistics, if any, must cover ``bands`` with finite means and stds > 0.

    Raises:
        ValueError: naming the file, the bands lacking and the bands given.
    """
    if spec.normalization is None:
        return
    stats = spec.normalization.stats
    if missing := [band for band in bands if band not in stats.mean or band not in stats.std]:
        raise ValueError(
            f"{source}: the normalisation statistics lack the model bands {missing} (they "
            f"cover {list(stats.mean)}); the statistics belong to another model: attach the "
            "training data's statistics (satmae stats DATA --out stats.json)"
        )
