"""Change scores on hand-computed cases, pooling over cities, and threshold selection."""

from __future__ import annotations

import pytest
import torch

from satmae.eval.change.metrics import (
    Counts,
    best_threshold,
    change_counts,
    change_scores,
    scores_at_threshold,
)


def test_counts_and_scores_by_hand() -> None:
    pred = torch.tensor([[1, 1, 0], [0, 0, 1]], dtype=torch.bool)
    ref = torch.tensor([[[1, 0, 0], [1, 0, 1]]])  # (1, H, W)
    counts = change_counts(pred, ref)
    assert counts == Counts(tp=2, fp=1, fn=1, tn=2)
    scores = change_scores(counts)
    assert scores["change_precision"] == pytest.approx(2 / 3)
    assert scores["change_recall"] == pytest.approx(2 / 3)
    assert scores["change_f1"] == pytest.approx(2 / 3)
    assert scores["change_iou"] == pytest.approx(2 / 4)


def test_invalid_pixels_do_not_count() -> None:
    pred = torch.tensor([[1, 1], [0, 0]], dtype=torch.bool)
    ref = torch.tensor([[1, 0], [1, 0]])
    valid = torch.tensor(
        [[[True, True], [True, True]], [[True, False], [False, True]]]
    )  # (T, H, W)
    assert change_counts(pred, ref, valid) == Counts(tp=1, fp=0, fn=0, tn=1)


def test_scores_pool_counts_over_cities() -> None:
    small = Counts(tp=1, fp=0, fn=0, tn=10)  # F1 1.0 alone
    large = Counts(tp=0, fp=9, fn=9, tn=100)  # F1 0.0 alone
    pooled = change_scores([small, large])
    assert pooled["change_f1"] == pytest.approx(2 / (2 + 18))  # not the mean 0.5
    assert change_scores(Counts(0, 0, 0, 5))["change_f1"] == 0.0  # no change anywhere


def test_best_threshold_maximises_pooled_f1() -> None:
    score = torch.tensor([[0.1, 0.2, 0.3, 0.4, 0.9, 0.8]])
    ref = torch.tensor([[0, 0, 0, 1, 1, 1]])
    assert best_threshold([score], [ref], [None]) == pytest.approx(0.4)
    # 0.15: F1 6/8; 0.85: F1 2/4
    assert best_threshold([score], [ref], [None], candidates=[0.15, 0.85]) == pytest.approx(0.15)
    pooled, counts = scores_at_threshold([score], [ref], [None], 0.4)
    assert pooled["change_f1"] == 1.0 and counts == [Counts(3, 0, 0, 3)]


def test_threshold_never_depends_on_cities_it_is_not_given() -> None:
    generator = torch.Generator().manual_seed(0)
    train = [torch.rand(20, 20, generator=generator) for _ in range(2)]
    train_refs = [(s > 0.7).long() for s in train]
    chosen = best_threshold(train, train_refs, [None, None])
    # test cities whose best threshold is far away: moving them changes nothing on train
    test = torch.rand(20, 20, generator=generator) * 0.1
    test_ref = (test > 0.05).long()
    assert best_threshold([test], [test_ref], [None]) < 0.1
    assert best_threshold(train, train_refs, [None, None]) == chosen
    assert chosen == pytest.approx(0.7, abs=0.02)
