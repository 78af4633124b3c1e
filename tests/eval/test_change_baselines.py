"""OSCD baselines on a fake with a planted change, on real cities, and change-map figures."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from satmae.eval.change.baselines import (
    change_vector_analysis,
    normalized_difference,
    pixel_logistic_regression,
    run_baselines,
)
from satmae.eval.change.data import (
    HELD_OUT_CITIES,
    OSCD_BANDS,
    OSCDSplit,
    iter_windows,
    open_oscd,
)
from satmae.eval.change.figures import change_overlay
from tests.eval.fake_oscd import write_fake_oscd


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> OSCDSplit:
    root = write_fake_oscd(
        tmp_path_factory.mktemp("oscd"), size=48, test_cities=("paris",), test_labels=True
    )
    return open_oscd(root, progress=False)


def test_baselines_find_the_planted_change(split: OSCDSplit) -> None:
    results = run_baselines(split.train, split.test, seed=0)
    assert set(results) == {"cva_zscore", "cva_per_image", "pixel_logreg"}
    for name, result in results.items():
        # the 20 m and 60 m bands blur the edges of the planted change
        assert result["metrics"]["change_f1"] > 0.75, name
        assert set(result["metrics"]) == {
            "change_f1",
            "change_precision",
            "change_recall",
            "change_iou",
        }
        assert result["maps"]["paris"].shape == (48, 48)
        assert list(result["per_city"]) == ["paris"]
        assert "threshold" in result["config"]


def test_threshold_comes_from_training_cities_only(split: OSCDSplit) -> None:
    before = change_vector_analysis(split.train, split.test)
    moved = dict(split.test[0])
    moved["image"] = split.test[0]["image"] * 3.0  # a very different test city
    after = change_vector_analysis(split.train, [moved])  # type: ignore[list-item]
    assert after["config"]["threshold"] == before["config"]["threshold"]
    logreg = pixel_logistic_regression(split.train, split.test, seed=1, max_pixels=500)
    logreg_moved = pixel_logistic_regression(split.train, [moved], seed=1, max_pixels=500)  # type: ignore[list-item]
    assert logreg["config"]["threshold"] == logreg_moved["config"]["threshold"]
    assert logreg["config"]["pixels"] == 500


def test_per_image_normalisation_ignores_a_global_gain(split: OSCDSplit) -> None:
    scene = split.test[0]
    brighter = dict(scene)
    brighter["image"] = scene["image"] * torch.tensor([1.0, 1.5])[:, None, None, None]
    same = normalized_difference(brighter, "per_image")  # type: ignore[arg-type]
    assert torch.allclose(same, normalized_difference(scene, "per_image"), atol=1e-4)
    with pytest.raises(ValueError, match="unknown normalization"):
        normalized_difference(scene, "minmax")


def test_change_overlay_writes_a_png(split: OSCDSplit, tmp_path: Path) -> None:
    scene = split.test[0]
    predicted = scene["mask"][0].bool().clone()
    predicted[:5] = True  # some false positives
    path = change_overlay(scene, predicted, tmp_path / "figs" / "paris.png", "paris: CVA")
    with Image.open(path) as picture:
        assert picture.size[0] > 1000 and picture.size[1] > 300
    with pytest.raises(ValueError, match="does not match"):
        change_overlay(scene, predicted[:10], tmp_path / "bad.png")


def test_real_oscd_split_and_cva_on_windows(real_data: Path) -> None:
    with pytest.warns(UserWarning, match="listed cities skipped"):
        split = open_oscd(real_data / "oscd", progress=False)
    assert sorted(split.test_cities) == sorted(HELD_OUT_CITIES)  # the copy has no test labels
    assert len(split.train_cities) == 7 and not set(split.train_cities) & set(HELD_OUT_CITIES)
    assert "HELD_OUT_CITIES" in split.note
    assert any(line.startswith("norcia") for line in split.skipped)
    assert all(s["image"].shape[:2] == (2, 13) and s["bands"] == OSCD_BANDS for s in split.train)
    # one 96 x 96 window of each city keeps the check fast
    train = [next(iter_windows(scene, 96, 96)) for scene in split.train]
    test = [next(iter_windows(scene, 96, 96)) for scene in split.test]
    result = change_vector_analysis(train, test, normalization="per_image")
    assert 0.0 <= result["metrics"]["change_f1"] <= 1.0
    assert set(result["maps"]) == set(HELD_OUT_CITIES)
    assert all(map_.shape == (96, 96) for map_ in result["maps"].values())
