from __future__ import annotations

import warnings

import pytest

from satmae.train import precision
from satmae.train.precision import native_bf16, resolve_precision


@pytest.fixture
def cpu_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("satmae.train.precision.cpu_supports_bf16", lambda: True)


@pytest.fixture
def cpu_without_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("satmae.train.precision.cpu_supports_bf16", lambda: False)


@pytest.mark.usefixtures("cpu_bf16")
def test_auto_picks_bf16_on_a_cpu_with_native_bf16() -> None:
    assert native_bf16("cpu")
    assert resolve_precision("auto", "cpu") == "bf16-mixed"


@pytest.mark.usefixtures("cpu_without_bf16")
def test_auto_picks_fp32_on_a_cpu_without_native_bf16() -> None:
    assert not native_bf16("cpu")
    assert resolve_precision("auto", "cpu") == "32-true"


@pytest.mark.parametrize("supported", [True, False])
def test_auto_on_cuda_follows_torch(monkeypatch: pytest.MonkeyPatch, supported: bool) -> None:
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    monkeypatch.setattr("torch.cuda.is_bf16_supported", lambda: supported)
    assert native_bf16("cuda") is supported
    assert resolve_precision("auto", "cuda") == ("bf16-mixed" if supported else "32-true")


def test_no_cuda_means_no_cuda_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert not native_bf16("cuda")


def test_other_devices_fall_back_to_fp32() -> None:
    assert not native_bf16("mps")
    assert resolve_precision("auto", "mps") == "32-true"


def test_real_cpu_detection_answers_a_bool() -> None:
    assert isinstance(native_bf16("cpu"), bool)


@pytest.mark.usefixtures("cpu_without_bf16")
@pytest.mark.parametrize("requested", ["32", "32-true", "64-true", "16-true"])
def test_lightning_spellings_pass_through_on_cpu(requested: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_precision(requested, "cpu") == requested


@pytest.mark.parametrize("requested", ["bf16-mixed", "bf16", "bf16-true", "16-mixed", "16"])
def test_gpu_precisions_pass_through_on_cuda(requested: str) -> None:
    assert resolve_precision(requested, "cuda") == requested


@pytest.mark.usefixtures("cpu_without_bf16")
@pytest.mark.parametrize("requested", precision.BF16_PRECISIONS)
def test_explicit_bf16_on_a_slow_cpu_warns_and_names_fp32(requested: str) -> None:
    with pytest.warns(UserWarning, match="hundreds of times slower than fp32") as record:
        assert resolve_precision(requested, "cpu") == requested
    message = str(record[0].message)
    assert "0.3 vs 128 GFLOP/s" in message and "--trainer.precision 32-true" in message


@pytest.mark.usefixtures("cpu_bf16")
def test_explicit_bf16_on_a_native_bf16_cpu_is_quiet() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_precision("bf16-mixed", "cpu") == "bf16-mixed"


@pytest.mark.parametrize("requested", precision.FP16_MIXED_PRECISIONS)
def test_fp16_mixed_on_cpu_is_rejected(requested: str) -> None:
    with pytest.raises(ValueError, match="is not supported on CPU"):
        resolve_precision(requested, "cpu")


@pytest.mark.parametrize("requested", ["fp32", "bf32", "16-bf", ""])
def test_unknown_precision_lists_the_allowed_ones(requested: str) -> None:
    with pytest.raises(ValueError, match=r"unknown precision .*choose one of auto, 32-true, "):
        resolve_precision(requested, "cpu")
