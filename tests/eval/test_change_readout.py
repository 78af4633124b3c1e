"""The frozen linear change readout: features per patch, exact interpolation, held-out scoring."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from satmae.eval.change.data import OSCDSplit
from satmae.eval.change.readout import (
    CityFeatures,
    ReadoutConfig,
    _pixel_features,
    _score_map,
    average_precision,
    city_features,
    readout_change,
)
from satmae.models import create_model

BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
DAY = 86_400


def _encoder():
    torch.manual_seed(0)
    return create_model("satmae_tiny", normalization="s2_l1c").encoder.eval()


def _city(name: str, seed: int, height: int = 40, width: int = 56) -> dict:
    """Two dates of texture; a bright block appears on date 2 where the mask says change."""
    gen = torch.Generator().manual_seed(seed)
    image = 1000 + 400 * torch.rand(2, len(BANDS), height, width, generator=gen)
    image[1] += 20 * torch.randn(len(BANDS), height, width, generator=gen)
    mask = torch.zeros(1, height, width, dtype=torch.int64)
    row, col = 4 + seed % 3 * 8, 6 + seed % 4 * 8
    mask[0, row : row + 16, col : col + 16] = 1
    image[1, :, row : row + 16, col : col + 16] += 2500
    return {
        "image": image,
        "bands": BANDS,
        "times": torch.tensor([1_500_000_000, 1_500_000_000 + 400 * DAY]),
        "valid": torch.ones(2, height, width, dtype=torch.bool),
        "mask": mask,
        "location": name,
    }


def test_city_features_cover_the_padded_city_on_the_patch_grid():
    encoder = _encoder()
    city = city_features(encoder, _city("a", 0))  # 40 x 56 -> padded to 64 x 64 (32 px windows)
    groups, dim = encoder.config.num_groups, encoder.config.embed_dim
    assert city.features.shape == (groups * dim, 8, 8)
    assert city.size == (40, 56) and city.patch == 8
    assert city.mask.shape == city.valid.shape == (40, 56)
    assert (city.features >= 0).all()  # an absolute difference


def test_logits_on_the_patch_grid_equal_the_regression_on_interpolated_features():
    gen = torch.Generator().manual_seed(1)
    features = torch.randn(5, 3, 4, generator=gen)
    city = CityFeatures(
        "x", features, (20, 29), torch.zeros(20, 29), torch.ones(20, 29, dtype=torch.bool), 8
    )
    weight, bias = torch.randn(5, generator=gen), torch.tensor(0.3)
    full = F.interpolate(features[None], size=(24, 32), mode="bilinear", align_corners=False)[0]
    expected = torch.einsum("fhw,f->hw", full, weight)[:20, :29] + bias
    torch.testing.assert_close(_score_map(city, weight, bias), expected, atol=1e-5, rtol=1e-5)
    rows, cols = torch.tensor([0, 7, 19]), torch.tensor([0, 13, 28])
    torch.testing.assert_close(_pixel_features(city, rows, cols), full[:, rows, cols].T)


def test_readout_scores_only_held_out_cities_and_finds_the_planted_change():
    encoder = _encoder()
    train = [_city(f"t{i}", i) for i in range(5)]
    test = [_city(f"h{i}", 10 + i) for i in range(2)]
    split = OSCDSplit(train=train, test=test)
    result = readout_change(encoder, split, ReadoutConfig(min_negatives=200), val_cities=["t4"])
    assert result["split"] == {"fit": ["t0", "t1", "t2", "t3"], "val": ["t4"], "test": ["h0", "h1"]}
    # a bright block is what |f2 - f1| sees best: even random features find most of it
    assert result["change_f1"] > 0.5
    again = readout_change(encoder, split, ReadoutConfig(min_negatives=200), val_cities=["t4"])
    assert again["change_f1"] == result["change_f1"]  # seeded pixel sample, deterministic fit
    assert encoder.training is False


def test_readout_refuses_a_split_it_cannot_score():
    with pytest.raises(ValueError, match="training and test cities"):
        readout_change(_encoder(), OSCDSplit(train=[_city("a", 0)], test=[]))
    unlabelled = {k: v for k, v in _city("b", 1).items() if k != "mask"}
    with pytest.raises(ValueError, match="no change mask"):
        city_features(_encoder(), unlabelled)


def test_average_precision_ranks_the_change_pixels_over_valid_pixels_only():
    refs = [torch.tensor([[1, 0], [0, 1]])]
    valid = [torch.tensor([[True, True], [True, False]])]
    perfect = [torch.tensor([[0.9, 0.1], [0.2, 0.0]])]
    assert average_precision(perfect, refs, valid) == 1.0
    # the one valid change pixel ranked second of three: precision 1/2 at its rank
    worse = [torch.tensor([[0.5, 0.1], [0.7, 9.0]])]
    assert average_precision(worse, refs, valid) == pytest.approx(0.5)
    assert average_precision(perfect, [torch.zeros(2, 2)], valid) == 0.0


def test_scores_are_means_over_the_pixel_samples():
    split = OSCDSplit(train=[_city(f"t{i}", i) for i in range(4)], test=[_city("h", 9)])
    result = readout_change(_encoder(), split, ReadoutConfig(min_negatives=200, repeats=2))
    assert len(result["per_sample"]) == 2
    for name in ("change_f1", "change_ap", "val_change_f1", "threshold"):
        expected = sum(run[name] for run in result["per_sample"]) / 2
        assert result[name] == pytest.approx(expected)
    assert 0.0 <= result["change_ap"] <= 1.0
