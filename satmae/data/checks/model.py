"""The checks against a model bundle: its bands, patch size and normalisation statistics.

The bundle is read as JSON (``config.json``), without importing the model code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from satmae.bands import canonical_bands
from satmae.data.checks.bands import CheckResult
from satmae.data.stats import BandStats, Normalize


@dataclass(frozen=True)
class ModelSpec:
    """What a model bundle expects of its input (read from ``config.json``, no model import).

    Attributes:
        bands: canonical bands in the model's channel order.
        band_groups: the model's band groups.
        patch_size: patch size in pixels.
        img_size: (H, W) the model was built for.
        normalization: the statistics that travel with the model, if any.
        path: the bundle directory.
    """

    bands: tuple[str, ...]
    band_groups: tuple[tuple[str, ...], ...]
    patch_size: int
    img_size: tuple[int, int]
    normalization: BandStats | None
    path: str


def load_model_spec(bundle: str | Path) -> ModelSpec:
    """Read a model bundle's ``config.json`` as JSON.

    Raises:
        FileNotFoundError: if the bundle or its config is missing.
        ValueError: if the config is not a satmae bundle or lacks required keys.
    """
    path = Path(bundle)
    config_path = path / "config.json" if path.is_dir() else path
    if not config_path.is_file():
        raise FileNotFoundError(f"model bundle {path} has no config.json")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
        bands = canonical_bands(config["bands"])
        groups = tuple(canonical_bands(group) for group in config.get("band_groups") or [bands])
        patch = int(config["patch_size"])
        height, width = (int(v) for v in config["img_size"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise ValueError(
            f"{config_path} is not a satmae model bundle config ({error}); it needs bands, "
            "band_groups, patch_size and img_size"
        ) from None
    if config.get("format", "satmae-bundle") != "satmae-bundle":
        raise ValueError(f"{config_path} has format {config.get('format')!r}, not satmae-bundle")
    normalization = config.get("normalization")
    stats = BandStats.from_dict(normalization, str(config_path)) if normalization else None
    return ModelSpec(bands, groups, patch, (height, width), stats, str(path))


def check_normalization(
    sample: dict[str, Any], stats: BandStats, source: str = ""
) -> list[CheckResult]:
    """Mean and std of each band after normalising with ``stats`` should be near 0 and 1."""
    normalised = Normalize(stats)(sample)["image"]
    valid = sample.get("valid")
    bad, odd = [], []
    for channel, band in enumerate(sample["bands"]):
        pixels = normalised[:, channel][valid] if valid is not None else normalised[:, channel]
        if pixels.numel() < 2:
            continue
        mean, std = float(pixels.mean()), float(pixels.std())
        text = f"{band}: mean {mean:+.2f}, std {std:.2f}"
        if abs(mean) > 5 or std < 0.01 or std > 50:
            bad.append(text)
        elif abs(mean) > 2 or not 0.1 <= std <= 5:
            odd.append(text)
    if bad:
        return [
            CheckResult(
                "normalised mean/std",
                "error",
                "; ".join(bad) + " — the statistics do not fit this data (scale x10000 vs x1, "
                "divide-by-255, wrong bands?)",
                source,
            )
        ]
    if odd:
        return [CheckResult("normalised mean/std", "warn", "; ".join(odd), source)]
    return [CheckResult("normalised mean/std", "ok", "all bands near mean 0, std 1", source)]


def check_model(sample: dict[str, Any], model: ModelSpec, source: str = "") -> list[CheckResult]:
    """The model's bands must be present; image sizes must fit its patch size."""
    results = []
    bands = sample["bands"]
    if missing := [band for band in model.bands if band not in bands]:
        results.append(
            CheckResult(
                "model bands",
                "error",
                f"model needs {list(model.bands)} but the data lacks {missing}; "
                f"it has {list(bands)}",
                source,
            )
        )
    else:
        extra = [band for band in bands if band not in model.bands]
        note = f" (extra bands {extra} are ignored)" if extra else ""
        results.append(
            CheckResult(
                "model bands",
                "ok",
                f"all {len(model.bands)} model bands present, matched by name{note}",
                source,
            )
        )
    height, width = sample["image"].shape[-2:]
    if height < model.patch_size or width < model.patch_size:
        results.append(
            CheckResult(
                "image size",
                "error",
                f"image {height}x{width} is smaller than one {model.patch_size}px patch",
                source,
            )
        )
    elif height % model.patch_size or width % model.patch_size:
        results.append(
            CheckResult(
                "image size",
                "warn",
                f"image {height}x{width} is not divisible by patch_size={model.patch_size}; chips "
                f"of {model.img_size[0]}x{model.img_size[1]} will be cut from it",
                source,
            )
        )
    else:
        results.append(
            CheckResult(
                "image size",
                "ok",
                f"{height}x{width}, divisible by patch_size={model.patch_size}",
                source,
            )
        )
    return results
