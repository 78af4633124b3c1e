"""decoder_selection: which hidden tokens the cross decoder reconstructs in training."""

from __future__ import annotations

import pytest
import torch

from satmae.models import create_model
from satmae.models.decoder import TokenGrid, balanced_queries


def _model(selection: str, fraction: float, **overrides):
    torch.manual_seed(0)
    return create_model(
        "satmae_tiny",
        decoder="cross",
        decoder_fraction=fraction,
        decoder_selection=selection,
        mask_groups="independent",
        **overrides,
    )


def _inputs(batch: int = 2, frames: int = 1, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, frames, 10, 32, 32, generator=gen)
    times = 1_500_000_000 + torch.randint(0, 10**8, (batch, frames), generator=gen)
    return x, times


def _uneven_mask(batch: int = 2) -> torch.Tensor:
    """(B, 1, 3, 16): groups hide 14, 10 and 6 of their 16 tokens (30 hidden, 18 visible)."""
    gen = torch.Generator().manual_seed(7)
    mask = torch.zeros(batch, 1, 3, 16, dtype=torch.bool)
    for sample in range(batch):
        for group, count in enumerate((14, 10, 6)):
            mask[sample, 0, group, torch.randperm(16, generator=gen)[:count]] = True
    return mask


def _group_counts(predicted: torch.Tensor) -> torch.Tensor:
    return predicted.sum((1, 3))  # (B, G')


def test_random_is_todays_default():
    x, times = _inputs()
    default = _model("random", 0.25)
    torch.manual_seed(0)
    plain = create_model("satmae_tiny", decoder="cross", decoder_fraction=0.25)
    gen = torch.Generator
    first = default(x, times, generator=gen().manual_seed(3))
    second = plain(x, times, generator=gen().manual_seed(3))
    assert torch.equal(first.predicted, second.predicted)
    assert torch.equal(first.loss, second.loss)


def test_whole_fraction_predicts_every_hidden_token_either_way():
    x, times = _inputs()
    mask = _uneven_mask()
    outs = [
        _model(selection, 1.0)(x, times, mask=mask, generator=torch.Generator().manual_seed(1))
        for selection in ("random", "balanced")
    ]
    assert torch.equal(outs[0].predicted, outs[1].predicted)
    assert torch.equal(outs[0].predicted, mask)


def test_balanced_splits_the_queries_evenly_over_groups():
    x, times = _inputs()
    mask = _uneven_mask()
    balanced, random = _model("balanced", 0.25), _model("random", 0.25)
    spreads = []
    for seed in range(8):
        out = balanced(x, times, mask=mask, generator=torch.Generator().manual_seed(seed))
        counts = _group_counts(out.predicted)
        assert counts.sum(1).tolist() == [round(0.25 * 30)] * 2  # same Q as "random"
        assert (counts.max(1).values - counts.min(1).values <= 1).all(), counts
        assert (out.predicted <= mask).all()
        other = random(x, times, mask=mask, generator=torch.Generator().manual_seed(seed))
        counts = _group_counts(other.predicted)
        spreads.append(int((counts.max(1).values - counts.min(1).values).max()))
    # A uniform draw follows the hidden counts 14:10:6, so it is not held to the split.
    assert max(spreads) > 1


def test_balanced_gives_a_short_group_all_it_has():
    grid = TokenGrid(frames=1, groups=(0, 1, 2), patch_grid=(2, 2), times=None, frame_mask=None)
    hidden = torch.tensor([[True, False, False, False] + [True] * 4 + [True] * 4])  # (1, 12)
    noise = torch.rand(hidden.shape, generator=torch.Generator().manual_seed(0))
    noise = noise.masked_fill(~hidden, 2.0)
    queries = balanced_queries(noise, hidden, 7, grid)
    groups = torch.div(queries, 4, rounding_mode="floor")
    assert torch.bincount(groups[0], minlength=3).tolist() == [1, 3, 3]
    assert bool(hidden[0, queries[0]].all())
    assert queries[0].tolist() == sorted(queries[0].tolist())


def test_balanced_is_reproducible_under_a_generator():
    x, times = _inputs(frames=3)
    model = _model("balanced", 0.3)
    gen = torch.Generator
    first = model(x, times, generator=gen().manual_seed(4))
    second = model(x, times, generator=gen().manual_seed(4))
    other = model(x, times, generator=gen().manual_seed(5))
    assert torch.equal(first.predicted, second.predicted)
    assert torch.equal(first.loss, second.loss)
    assert not torch.equal(first.predicted, other.predicted)


@pytest.mark.parametrize("selection", ["random", "balanced"])
def test_eval_mode_predicts_every_hidden_token(selection):
    x, times = _inputs(frames=3)
    model = _model(selection, 0.25).eval()
    out = model(x, times, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out.predicted, out.mask)


def test_unknown_selection():
    with pytest.raises(ValueError, match=r"decoder_selection must be one of \('random', "):
        _model("stratified", 0.5)
