"""Bad configs, tensors, times, block indices and model files: a clear error or a right answer.

Every property asserts that the model code either raises a ``ValueError`` /
``FileNotFoundError`` whose message names the argument or the file, or returns a correct,
finite result; any other exception type fails the test.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

import satmae
from satmae.models import create_model, load_encoder, load_mae, save_bundle
from satmae.models.official import to_official
from tests.models.tiny_sizes import TINY_OFFICIAL_SIZES

DAY = 86_400
T0 = 1_600_000_000
CLEAR_ERRORS = (ValueError, FileNotFoundError)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return create_model("satmae_tiny").eval()


def _names_one(error: Exception, names: tuple[str, ...]) -> bool:
    return any(name in str(error) for name in names)


# Configs ------------------------------------------------------------------------------------

SIZE_FIELDS = (
    "patch_size",
    "embed_dim",
    "depth",
    "num_heads",
    "group_dim",
    "time_dim",
    "max_frames",
    "decoder_dim",
    "decoder_depth",
    "decoder_num_heads",
    "decoder_group_dim",
    "decoder_time_dim",
)
odd_values = st.one_of(
    st.integers(-3, 70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
)
overrides = st.dictionaries(
    st.sampled_from(
        (
            *SIZE_FIELDS,
            "mask_ratio",
            "mlp_ratio",
            "img_size",
            "band_groups",
            "time_fields",
            "min_valid_fraction",
        )
    ),
    st.one_of(
        odd_values,
        st.lists(st.integers(-1, 40), max_size=3),
        st.lists(st.lists(st.sampled_from(("B02", "B03", "B04", "B99", "x")), max_size=3)),
    ),
    min_size=1,
    max_size=3,
)


@given(overrides)
def test_configs_build_a_working_model_or_name_the_field(changes: dict[str, Any]) -> None:
    try:
        model = create_model("satmae_tiny", **changes)
    except CLEAR_ERRORS as error:
        assert _names_one(error, tuple(changes)), f"{error} names none of {sorted(changes)}"
        return
    config = model.config
    assert all(isinstance(getattr(config, name), int) for name in SIZE_FIELDS)
    height, width = config.img_size
    if height * width > 64 * 64 or config.depth > 4:
        return  # a valid but large model: building it was the property
    x = torch.randn(1, 1, len(config.input_order), height, width)
    with torch.no_grad():
        out = model(x, torch.full((1, 1), T0) if config.temporal else None)
    assert math.isfinite(out.loss.item())


# Tensors and times ----------------------------------------------------------------------------

DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int16, torch.bool)
INPUT_NAMES = ("x", "times", "valid", "frame_mask", "bands", "channels", "max_frames", "patch")


@st.composite
def model_inputs(draw: st.DrawFn) -> dict[str, Any]:
    batch = draw(st.integers(0, 2))
    frames = draw(st.integers(0, 5))
    channels = draw(st.sampled_from((9, 10, 11)))
    height = draw(st.sampled_from((0, 8, 12, 32)))
    x = torch.randn(batch, frames, channels, height, 32).to(draw(st.sampled_from(DTYPES)))
    if x.is_floating_point() and x.numel() and draw(st.booleans()):
        x.view(-1)[draw(st.integers(0, x.numel() - 1))] = draw(
            st.sampled_from((math.nan, math.inf, -math.inf))
        )
    kind = draw(st.sampled_from(("seconds", "millis", "nan", "huge", "none", "shape", "bool")))
    seconds = torch.tensor([[T0 + DAY * index for index in range(frames)]] * batch)
    times = {
        "seconds": seconds,
        "millis": seconds * 1000,
        "nan": torch.full((batch, frames), math.nan),
        "huge": torch.full((batch, frames), 2**62),
        "none": None,
        "shape": seconds.reshape(-1),
        "bool": torch.ones(batch, frames, dtype=torch.bool),
    }[kind]
    valid = draw(st.sampled_from((None, "ok", "narrow")))
    if valid is not None:
        valid = torch.ones(batch, frames, height, 32 if valid == "ok" else 31, dtype=torch.bool)
    return {"x": x, "times": times, "valid": valid}


def _clean(inputs: dict[str, Any]) -> bool:
    """Whether the inputs are right for the tiny model (then a result is expected)."""
    x, times, valid = inputs["x"], inputs["times"], inputs["valid"]
    return (
        x.is_floating_point()
        and 0 not in x.shape
        and x.shape[1] <= 4
        and x.shape[2] == 10
        and x.shape[3] % 8 == 0
        and bool(torch.isfinite(x.float()).all())
        and times is not None
        and times.dtype == torch.int64
        and times.ndim == 2
        and int(times.max()) < 4_102_444_800
        and (valid is None or valid.shape[-1] == 32)
    )


@given(model_inputs())
def test_tensors_and_times_give_features_or_name_the_argument(tiny, inputs: dict[str, Any]):
    x, times, valid = inputs["x"], inputs["times"], inputs["valid"]
    try:
        with torch.no_grad():
            pooled = tiny.encoder(x, times).pooled
            out = tiny(x, times, valid=valid)
    except CLEAR_ERRORS as error:
        assert _names_one(error, INPUT_NAMES), str(error)
        assert not _clean(inputs), f"right inputs refused: {error}"
        return
    assert _clean(inputs)
    assert pooled.shape == (x.shape[0], 64) and bool(torch.isfinite(pooled).all())
    assert math.isfinite(out.loss.item())


@given(st.lists(st.integers(-5, 5), max_size=4))
def test_block_indices_count_from_the_end_or_are_refused(tiny, blocks: list[int]):
    x = torch.randn(1, 1, 10, 32, 32)
    times = torch.full((1, 1), T0)
    try:
        with torch.no_grad():
            features = tiny.encoder(x, times, blocks=blocks)
    except CLEAR_ERRORS as error:
        assert "blocks" in str(error) and any(not -2 <= index < 2 for index in blocks)
        return
    assert set(features.intermediates) == {index % 2 for index in blocks}


# Model files ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def good_files(tmp_path_factory: pytest.TempPathFactory, tiny) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("good")
    official = create_model(
        "satmae_group_channel_vit_base_patch8_96",
        normalization=None,
        **TINY_OFFICIAL_SIZES,
    )
    pth = root / "official.pth"
    state = to_official(official.config, official.state_dict())
    torch.save({"model": state, "args": argparse.Namespace(num_heads=2)}, pth)
    ckpt = root / "last.ckpt"
    weights = {f"model.{key}": value for key, value in tiny.state_dict().items()}
    torch.save({"state_dict": weights, "satmae_config": tiny.spec.to_json()}, ckpt)
    return {
        "bundle": save_bundle(tiny, root / "bundle"),
        "single": save_bundle(tiny, root / "single.safetensors"),
        "pth": pth,
        "ckpt": ckpt,
    }


@pytest.fixture
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as folder:
        yield Path(folder)


LOADERS: tuple[Callable[[Path], Any], ...] = (satmae.load_spec, load_encoder, load_mae)


def _load_all(path: Path) -> None:
    """Every loader gives a clear error naming ``path`` or a model with finite weights."""
    for loader in LOADERS:
        try:
            result = loader(path)
        except CLEAR_ERRORS as error:
            assert str(path) in str(error) or path.name in str(error), str(error)
            continue
        if isinstance(result, torch.nn.Module):
            assert all(bool(torch.isfinite(p).all()) for p in result.parameters())


def _copy(source: Path, scratch: Path) -> Path:
    """A copy of ``source`` in a fresh folder under ``scratch`` (one per example)."""
    target = Path(tempfile.mkdtemp(dir=scratch)) / source.name
    if source.is_dir():
        return Path(shutil.copytree(source, target))
    return Path(shutil.copyfile(source, target))


@given(
    st.sampled_from(("bundle", "single", "pth", "ckpt")),
    st.floats(0, 1, exclude_max=True),
)
def test_truncated_files_name_the_file(good_files, scratch, kind: str, fraction: float):
    path = _copy(good_files[kind], scratch)
    target = path / "model.safetensors" if path.is_dir() else path
    data = target.read_bytes()
    target.write_bytes(data[: int(len(data) * fraction)])
    _load_all(path)


@given(
    st.sampled_from((".pth", ".ckpt", ".pt", ".safetensors")),
    st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)),
)
def test_random_bytes_and_text_name_the_file(scratch, suffix: str, content: bytes):
    path = Path(tempfile.mkdtemp(dir=scratch)) / f"model{suffix}"
    path.write_bytes(content)
    _load_all(path)


@given(
    st.sampled_from(("nan", "inf", "shape", "rename", "drop", "extra", "int")),
    st.integers(0, 10_000),
    st.sampled_from(("bundle", "single")),
)
def test_damaged_weights_name_the_file(good_files, scratch, change: str, pick: int, kind: str):
    path = _copy(good_files[kind], scratch)
    target = path / "model.safetensors" if path.is_dir() else path
    metadata = None
    if kind == "single":
        from safetensors import safe_open

        with safe_open(str(target), framework="pt") as handle:
            metadata = handle.metadata()
    state = load_file(str(target))
    key = sorted(state)[pick % len(state)]
    if change == "nan":
        state[key] = torch.full_like(state[key], math.nan)
    elif change == "inf":
        state[key] = torch.full_like(state[key], -math.inf)
    elif change == "shape":
        state[key] = torch.zeros(state[key].numel() + 1)
    elif change == "rename":
        state[key + "_renamed"] = state.pop(key)
    elif change == "drop":
        del state[key]
    elif change == "extra":
        state["encoder.blocks.9.attn.qkv.weight"] = torch.zeros(3)
    else:
        state[key] = state[key].to(torch.int64)
    save_file(state, str(target), metadata=metadata)
    _load_all(path)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 100) | st.floats() | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)


@given(
    st.sampled_from(("top", "architecture", "normalization", "text")),
    st.sampled_from(
        (
            "format",
            "version",
            "contents",
            "architecture",
            "normalization",
            "bands",
            "patch_size",
            "img_size",
            "band_groups",
            "depth",
            "mode",
            "time_fields",
        )
    ),
    json_values,
)
def test_broken_bundle_configs_name_the_file(good_files, scratch, where: str, key: str, value: Any):
    path = _copy(good_files["bundle"], scratch)
    config = path / "config.json"
    document = json.loads(config.read_text())
    if where == "text":
        config.write_text(json.dumps(document)[: len(key) * 20])
    else:
        part = document if where == "top" else document[where]
        part[key] = value
        config.write_text(json.dumps(document))
    _load_all(path)
