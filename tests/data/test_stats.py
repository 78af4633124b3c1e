import json

import numpy as np
import pytest
import torch

from satmae.data.stats import BandStats, Normalize, StatsAccumulator, compute_stats, load_stats
from satmae.normalization import Normalization


def samples(seed=0, count=4, integer=True):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        image = rng.normal(1000, 300, (2, 3, 16, 16)).clip(1, None)
        image = np.round(image) if integer else image / 10000
        valid = torch.ones(2, 16, 16, dtype=torch.bool)
        valid[:, 0] = False
        yield {
            "image": torch.from_numpy(image.astype(np.float32)),
            "bands": ("B02", "B03", "B04"),
            "valid": valid,
        }


def reference(data, band):
    values = np.concatenate(
        [s["image"][:, band][s["valid"]].numpy().astype(np.float64) for s in data]
    )
    return values


@pytest.mark.parametrize("exact_limit", [10**9, 100])
def test_exact_and_streamed_stats_match_numpy_for_integer_data(exact_limit):
    data = list(samples())
    stats = compute_stats(data, exact_limit=exact_limit, percentiles=(2, 50, 98))
    values = reference(data, 1)
    assert stats.mean["B03"] == pytest.approx(values.mean(), rel=1e-9)
    assert stats.std["B03"] == pytest.approx(values.std(), rel=1e-9)
    assert stats.count["B03"] == values.size
    for q in (2, 50, 98):  # unit-width histogram bins: exact for integer reflectance
        assert stats.percentiles["B03"][f"{q:g}"] == pytest.approx(
            np.percentile(values, q), abs=1e-6
        )
    assert stats.exact


def test_streamed_percentiles_of_float_data_are_close():
    data = list(samples(integer=False))
    stats = compute_stats(data, exact_limit=100, percentiles=(5, 50, 95))
    values = reference(data, 0)
    assert not stats.exact
    for q in (5, 50, 95):
        assert stats.percentiles["B02"][f"{q:g}"] == pytest.approx(
            np.percentile(values, q), rel=2e-3
        )


def test_json_round_trip_and_bundle_normalization(tmp_path):
    stats = compute_stats(samples(), provenance="unit test")
    stats.save(tmp_path / "s.json")
    again = load_stats(tmp_path / "s.json")
    assert again.mean == stats.mean and again.provenance == "unit test"
    normalization = Normalization(stats, "satmae").to_json()
    config = {"format": "satmae-bundle", "version": 2, "normalization": normalization}
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert load_stats(tmp_path / "config.json").std == stats.std
    legacy = {"format": "satmae-bundle", "normalization": {"mean": stats.mean, "std": stats.std}}
    (tmp_path / "v1.json").write_text(json.dumps(legacy))
    assert load_stats(tmp_path / "v1.json").mean == stats.mean


def test_builtin_stats_have_provenance():
    official = load_stats("satmae_official")
    assert official.mean["B02"] == pytest.approx(1184.3824625)
    assert official.std["B8A"] == pytest.approx(1364.38688993)
    for name, bands in (("s2_l1c", 13), ("s2_l2a", 12)):
        stats = load_stats(name)
        assert len(stats.bands) == bands and "satmae stats" in stats.provenance
    rgb = load_stats("fmow_rgb")
    assert rgb.bands == ("B04", "B03", "B02")
    assert rgb.mean["B04"] / 255 == pytest.approx(0.4182007312774658, rel=1e-12)
    assert rgb.std["B02"] / 255 == pytest.approx(0.2764017581939697, rel=1e-12)
    with pytest.raises(FileNotFoundError, match=r"neither built in"):
        load_stats("s2_l3")


def test_normalize_by_band_name_and_satmae_mode():
    stats = BandStats(mean={"B02": 1000.0, "B03": 2000.0}, std={"B02": 100.0, "B03": 500.0})
    sample = {"image": torch.tensor([2000.0, 1100.0]).view(1, 2, 1, 1), "bands": ("B03", "B02")}
    assert Normalize(stats)(sample)["image"].flatten().tolist() == pytest.approx([0.0, 1.0])
    official = Normalize(stats, mode="satmae")(sample)["image"].flatten()
    # clip(0.5 + z/4) on a 1/255 grid: z = 0 -> 127/255, z = 1 -> 191/255
    assert official.tolist() == pytest.approx([127 / 255, 191 / 255])
    with pytest.raises(ValueError, match=r"lack bands \['B8A'\]"):
        Normalize(stats)({"image": torch.zeros(1, 1, 1, 1), "bands": ("B8A",)})


def test_missing_band_in_a_later_sample_and_no_valid_pixels():
    accumulator = StatsAccumulator(["B02", "B03"])
    with pytest.raises(ValueError, match=r"lacks bands \['B03'\]"):
        accumulator.update({"image": torch.zeros(1, 1, 2, 2), "bands": ("B02",)})
    empty = StatsAccumulator()
    empty.update(
        {
            "image": torch.zeros(1, 1, 2, 2),
            "bands": ("B02",),
            "valid": torch.zeros(1, 2, 2, dtype=torch.bool),
        }
    )
    with pytest.raises(ValueError, match=r"no valid pixels in 1 samples"):
        empty.result()
