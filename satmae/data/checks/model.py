"""The checks against a model: its bands, patch size, time fields and normalisation statistics.

What the model expects comes from its spec (:func:`satmae.spec.load_spec`), read from any model
file without building the model.
"""

from __future__ import annotations

from typing import Any

from satmae.data.checks.bands import CheckResult
from satmae.data.stats import BandStats, Normalize
from satmae.spec import ModelSpec


def model_view(sample: dict[str, Any], model: ModelSpec) -> dict[str, Any]:
    """The sample restricted to the bands ``model`` uses (those present), in model order."""
    bands = list(sample["bands"])
    used = [band for band in model.bands if band in bands]
    image = sample["image"][..., [bands.index(band) for band in used], :, :]
    return {**sample, "image": image, "bands": tuple(used)}


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
    """The model's bands must be present, times too for a temporal model; sizes must fit."""
    results = []
    bands = sample["bands"]
    if model.temporal and sample.get("times") is None:
        results.append(
            CheckResult(
                "model times",
                "error",
                f"the model encodes acquisition time {list(model.time_fields)} but the data has "
                "no dates; name files with their date or give a time tag",
                source,
            )
        )
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
