"""decoder_context: the cross decoder attends to one or several encoder blocks (CrossMAE)."""

from __future__ import annotations

import json

import pytest
import torch

from satmae.models import MAEConfig, create_model, load_mae, save_bundle
from satmae.models.decoder_context import FinalContext, MixedContext


def _model(seed: int = 0, **overrides):
    torch.manual_seed(seed)
    fields = {"decoder": "cross", "depth": 4, "decoder_depth": 2, **overrides}
    return create_model("satmae_tiny", **fields)


def _inputs(model, frames: int = 3, batch: int = 2, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, frames, len(model.config.bands), 32, 32, generator=gen)
    times = 1_500_000_000 + torch.randint(0, 10**8, (batch, frames), generator=gen)
    return x, times


def _run(model, seed: int = 1):
    x, times = _inputs(model)
    return model(x, times, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("decoder", ["full", "cross"])
@pytest.mark.parametrize("context", [(-1,), (3,)])
def test_last_block_is_todays_decoder(decoder, context):
    plain = _model(decoder=decoder, decoder_fraction=0.5)
    given = _model(decoder=decoder, decoder_fraction=0.5, decoder_context=context)
    assert given.config.context_blocks == plain.config.context_blocks == (3,)
    assert list(given.state_dict()) == list(plain.state_dict())
    if decoder == "cross":
        assert isinstance(given.decoder.context, FinalContext)
    expected, out = _run(plain), _run(given)
    assert torch.equal(out.loss, expected.loss)
    assert torch.equal(out.pred, expected.pred)


def test_several_blocks_train_and_are_reproducible():
    model = _model(decoder_context=(1, -1), decoder_fraction=0.5)
    context = model.decoder.context
    assert isinstance(context, MixedContext)
    assert model.decoder.encoder_blocks == (1,)
    new = {key for key in model.state_dict() if key.startswith("decoder.context.")}
    assert new == {"decoder.context.weights", "decoder.context.norms.0.weight",
                   "decoder.context.norms.0.bias"}  # fmt: skip
    # One weight per (decoder block, encoder block), started at the mean.
    assert context.weights.shape == (2, 2)
    assert torch.equal(context.weights, torch.full((2, 2), 0.5))
    out = _run(model)
    assert out.pred.shape == (2, 3, len(model.config.bands), 16, 64)
    assert out.latent.shape == (2, 1 + (~out.mask[0]).sum(), 64)
    out.loss.backward()
    assert context.weights.grad is not None and bool((context.weights.grad != 0).all())
    for norm in context.norms:
        assert norm.weight.grad is not None and bool(norm.weight.grad.abs().sum() > 0)
    again = _run(_model(decoder_context=(1, -1), decoder_fraction=0.5))
    assert torch.equal(again.loss, out.loss)


def test_other_weights_are_those_of_the_plain_model():
    plain = _model().state_dict()
    mixed = _model(decoder_context=(0, 2, -1)).state_dict()
    for key, value in plain.items():
        assert torch.equal(mixed[key], value), key


def test_the_mix_depends_on_the_earlier_block():
    model = _model(decoder_context=(1, -1)).eval()
    first = _run(model).pred
    with torch.no_grad():
        model.decoder.context.weights[:, 0] = 0.0
        model.decoder.context.weights[:, 1] = 1.0
    last_only = _run(model).pred
    assert not torch.allclose(first, last_only)


def test_without_the_last_block():
    model = _model(decoder_context=(0,))
    assert model.decoder.encoder_blocks == (0,)
    out = _run(model)
    out.loss.backward()
    # The encoder's final norm feeds nothing: only block 0's output reaches the decoder.
    assert model.encoder.norm.weight.grad is None
    assert model.encoder.blocks[3].mlp.fc2.weight.grad is None


@pytest.mark.parametrize("single_file", [False, True])
def test_bundle_round_trip_keeps_the_mix(tmp_path, single_file):
    model = _model(decoder_context=(1, -1))
    with torch.no_grad():
        model.decoder.context.weights.copy_(torch.tensor([[0.2, 0.7], [0.9, -0.1]]))
    path = tmp_path / ("m.safetensors" if single_file else "bundle")
    save_bundle(model, path)
    loaded = load_mae(path)
    assert loaded.config == model.config and loaded.config.decoder_context == (1, -1)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    torch.testing.assert_close(_run(loaded.eval()).loss, _run(model.eval()).loss)
    if not single_file:
        architecture = json.loads((path / "config.json").read_text())["architecture"]
        assert architecture["decoder_context"] == [1, -1]


def test_lists_from_json_become_tuples():
    config = MAEConfig.from_dict({**_model().config.to_dict(), "decoder_context": [0, -1]})
    assert config.decoder_context == (0, -1) and config.context_blocks == (0, 3)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"decoder_context": ()}, r"decoder_context must be a non-empty list.*got \(\)"),
        ({"decoder_context": -1}, r"decoder_context must be a non-empty list.*got -1"),
        ({"decoder_context": (1.5,)}, r"decoder_context .* an integer.*wrong entries \[1.5\]"),
        ({"decoder_context": (True,)}, r"decoder_context .* an integer"),
        ({"decoder_context": (4,)}, r"blocks \[4\] outside the encoder's 4 blocks: expected "
                                    r"integers from -4 to 3"),
        ({"decoder_context": (-5, 0)}, r"blocks \[-5\] outside"),
        ({"decoder_context": (3, -1)}, r"names blocks \[3\] more than once"),
        ({"decoder_context": (1, -1), "decoder": "full"}, r"needs decoder='cross'.*'full'"),
    ],
)  # fmt: skip
def test_decoder_context_errors(overrides, message):
    with pytest.raises(ValueError, match=message):
        _model(**overrides)
