"""group_loss_weights: the weight of each band group in the MSE loss."""

from __future__ import annotations

import pytest
import torch

from satmae.models import MaskingConfig, create_model


def _model(**overrides):
    torch.manual_seed(0)
    return create_model("satmae_tiny", **overrides)


def _run(model, seed: int = 1, **kwargs):
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 10, 32, 32, generator=gen)
    times = 1_500_000_000 + torch.randint(0, 10**8, (2, 3), generator=gen)
    return model(x, times, generator=torch.Generator().manual_seed(seed), **kwargs)


@pytest.mark.parametrize("decoder", ["full", "cross"])
def test_equal_weights_are_todays_loss(decoder):
    plain = _run(_model(decoder=decoder, decoder_fraction=0.5))
    ones = _run(_model(decoder=decoder, decoder_fraction=0.5, group_loss_weights=(1.0,) * 3))
    torch.testing.assert_close(ones.loss, plain.loss, rtol=0, atol=1e-7)
    torch.testing.assert_close(ones.frame_losses, plain.frame_losses, rtol=0, atol=1e-7)
    assert torch.equal(ones.group_losses, plain.group_losses)
    assert torch.equal(ones.weight, plain.weight)


@pytest.mark.parametrize("group", [0, 1, 2])
def test_one_group_alone_is_its_group_loss(group):
    weights = tuple(float(index == group) for index in range(3))
    out = _run(_model(group_loss_weights=weights))
    plain = _run(_model())
    torch.testing.assert_close(out.loss, out.group_losses[group], rtol=1e-6, atol=0)
    assert torch.equal(out.group_losses, plain.group_losses)  # reported unweighted


def test_weights_are_a_weighted_mean_over_tokens():
    weights = (0.5, 2.0, 0.01)
    out = _run(_model(group_loss_weights=weights))
    token_weight = out.weight * torch.tensor(weights)[None, None, :, None]
    expected = (out.token_losses * token_weight).sum() / token_weight.sum()
    torch.testing.assert_close(out.loss, expected)
    # Scaling every weight changes nothing, even below 1 in total.
    tiny = _run(_model(group_loss_weights=tuple(w * 1e-4 for w in weights)))
    torch.testing.assert_close(tiny.loss, out.loss)


def test_weights_follow_the_present_groups():
    # Only groups 0 and 2 in the input: the loss uses their own weights.
    model = _model(group_loss_weights=(0.0, 5.0, 1.0))
    gen = torch.Generator().manual_seed(0)
    bands = ("B02", "B03", "B04", "B08", "B11", "B12")
    x = torch.rand(2, 3, len(bands), 32, 32, generator=gen)
    times = 1_500_000_000 + torch.randint(0, 10**8, (2, 3), generator=gen)
    out = model(x, times, bands, generator=torch.Generator().manual_seed(1))
    assert out.groups == (0, 2)
    torch.testing.assert_close(out.loss, out.group_losses[1], rtol=1e-6, atol=0)


def test_lists_from_json_become_tuples():
    assert MaskingConfig(group_loss_weights=[1, 0.5, 0]).group_loss_weights == (1, 0.5, 0)


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ((1.0, 1.0), r"one weight per band group: expected 3 .* given 2"),
        ((1.0, 1.0, 1.0, 1.0), r"expected 3 .* given 4"),
        ((1.0, -0.5, 1.0), r"group_loss_weights .* a number >= 0.*wrong entries \[-0.5\]"),
        ((1.0, float("nan"), 1.0), r"group_loss_weights .*wrong entries \[nan\]"),
        ((1.0, float("inf"), 1.0), r"group_loss_weights .*wrong entries \[inf\]"),
        ((0.0, 0.0, 0.0), r"group_loss_weights must not all be 0"),
        ((), r"group_loss_weights must be a non-empty list"),
        ("1,1,1", r"group_loss_weights must be a non-empty list"),
    ],
)
def test_group_loss_weights_errors(weights, message):
    with pytest.raises(ValueError, match=message):
        _model(group_loss_weights=weights)
