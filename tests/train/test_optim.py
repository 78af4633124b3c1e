from __future__ import annotations

import pytest
import torch
from torch import nn

import satmae
from satmae.models import MaskedAutoencoder
from satmae.train.optim import OptimizerConfig, build_optimizer, param_groups, scaled_lr


@pytest.fixture
def model() -> MaskedAutoencoder:
    return satmae.create_model("satmae_tiny", normalization=None)


def _names(model: nn.Module, group: dict[str, object]) -> set[str]:
    ids = {id(parameter) for parameter in group["params"]}  # type: ignore[attr-defined]
    return {name for name, parameter in model.named_parameters() if id(parameter) in ids}


def test_param_groups_split_matrices_from_norms_biases_and_tokens(model: nn.Module) -> None:
    decayed, undecayed = param_groups(model, 0.05)
    assert decayed["weight_decay"] == 0.05 and undecayed["weight_decay"] == 0.0
    decayed_names, undecayed_names = _names(model, decayed), _names(model, undecayed)
    assert {"encoder.cls_token", "decoder.mask_token"} <= undecayed_names
    assert {"encoder.norm.weight", "encoder.blocks.0.norm1.weight", "decoder.norm.bias"} <= (
        undecayed_names
    )
    # Nothing else is spared: each undecayed parameter is a bias, a norm weight or a token.
    for name in undecayed_names:
        assert name.endswith(("bias", "token")) or ".norm" in name, name
    assert {"encoder.tokenizer.patch_embed.0.weight", "encoder.blocks.0.attn.qkv.weight"} <= (
        decayed_names
    )
    assert "decoder.blocks.0.attn.qkv.weight" in decayed_names
    assert not decayed_names & undecayed_names
    assert decayed_names | undecayed_names == {name for name, _ in model.named_parameters()}
    assert len(decayed["params"]) + len(undecayed["params"]) == len(list(model.parameters()))


def test_param_groups_keep_learned_encoding_tables_undecayed() -> None:
    model = satmae.create_model("satmae_tiny", normalization=None, encoding="learned")
    decayed, undecayed = param_groups(model, 0.05)
    tables = {name for name, _ in model.named_parameters() if "encodings." in name}
    assert tables and tables <= _names(model, undecayed)
    assert not tables & _names(model, decayed)


def test_param_groups_skip_frozen_parameters(model: MaskedAutoencoder) -> None:
    for parameter in model.encoder.parameters():
        parameter.requires_grad_(False)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    decayed, undecayed = param_groups(model, 0.05)
    assert _names(model, decayed) | _names(model, undecayed) == trainable
    assert not any(name.startswith("encoder.") for name in trainable)


def test_param_groups_reject_negative_decay_and_frozen_models(model: nn.Module) -> None:
    with pytest.raises(ValueError, match="weight_decay must be >= 0"):
        param_groups(model, -0.1)
    model.requires_grad_(False)
    with pytest.raises(ValueError, match="has no trainable parameters"):
        param_groups(model, 0.05)


@pytest.mark.parametrize(("blr", "batch", "lr"), [(1.5e-4, 256, 1.5e-4), (1e-3, 64, 2.5e-4)])
def test_scaled_lr(blr: float, batch: int, lr: float) -> None:
    assert scaled_lr(blr, batch) == pytest.approx(lr)


def test_scaled_lr_rejects_empty_batch() -> None:
    with pytest.raises(ValueError, match="effective_batch must be >= 1"):
        scaled_lr(1e-4, 0)


def test_build_optimizer_scales_blr(model: nn.Module) -> None:
    optimizer = build_optimizer(model, OptimizerConfig(blr=1e-3), effective_batch=512)
    assert isinstance(optimizer, torch.optim.AdamW)
    assert [group["lr"] for group in optimizer.param_groups] == pytest.approx([2e-3, 2e-3])
    assert [group["weight_decay"] for group in optimizer.param_groups] == [0.05, 0.0]
    assert optimizer.param_groups[0]["betas"] == (0.9, 0.95)


def test_build_optimizer_absolute_lr_overrides_blr(model: nn.Module) -> None:
    optimizer = build_optimizer(model, OptimizerConfig(lr=3e-4, betas=(0.8, 0.9)), 4096)
    assert optimizer.param_groups[0]["lr"] == 3e-4
    assert optimizer.param_groups[1]["betas"] == (0.8, 0.9)


def test_build_optimizer_rejects_bad_batch_even_with_absolute_lr(model: nn.Module) -> None:
    with pytest.raises(ValueError, match="effective_batch must be >= 1"):
        build_optimizer(model, OptimizerConfig(lr=1e-4), 0)


@pytest.mark.parametrize("fused", [None, True, False])
def test_build_optimizer_fused_choice_on_cpu(model: MaskedAutoencoder, fused: bool | None) -> None:
    optimizer = build_optimizer(model, OptimizerConfig(fused=fused), 8)
    assert optimizer.defaults["fused"] is (fused is not False)  # torch has a CPU kernel
    loss = sum(parameter.square().sum() for parameter in model.parameters())
    loss.backward()  # type: ignore[union-attr]
    before = model.encoder.cls_token.detach().clone()
    optimizer.step()
    assert not torch.equal(before, model.encoder.cls_token)


def test_build_optimizer_auto_fused_off_without_a_kernel(
    model: nn.Module, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        "torch.utils._foreach_utils._get_fused_kernels_supported_devices", lambda: ["cuda"]
    )
    assert build_optimizer(model, OptimizerConfig(), 8).defaults["fused"] is False
    with pytest.raises(ValueError, match=r"no kernel for parameters on \['cpu'\]"):
        build_optimizer(model, OptimizerConfig(fused=True), 8)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"blr": 0.0}, "blr must be > 0"),
        ({"lr": -1e-3}, "lr must be > 0"),
        ({"weight_decay": -0.01}, "weight_decay must be >= 0"),
        ({"betas": (0.9, 1.0)}, r"betas must be two values in \[0, 1\)"),
        ({"betas": (0.9,)}, r"betas must be two values in \[0, 1\)"),
        ({"warmup_steps": -5}, "warmup_steps must be >= 0"),
        ({"min_lr_ratio": 2.0}, r"min_lr_ratio must lie in \[0, 1\]"),
        ({"clip_grad": 0.0}, "clip_grad must be > 0"),
    ],
)
def test_optimizer_config_rejects_bad_values(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        OptimizerConfig(**kwargs)  # type: ignore[arg-type]
