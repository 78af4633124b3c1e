import numpy as np
import pytest
import torch

from satmae.bands import DATASET_BAND_ORDERS, L1C_BANDS, resolution
from satmae.data.checks import (
    check_correlations,
    check_grids,
    check_nir_pair,
    check_resolution,
    check_sample,
    reflectance_scale,
)
from satmae.data.grid import Grid
from satmae.data.readers.layouts import read_oscd_city
from satmae.data.stats import load_stats


def synthetic_scene(bands=L1C_BANDS, size=96, seed=0):
    """Texture at 10 m; 20 m and 60 m bands block-averaged then upsampled, like real S2 stacks."""
    rng = np.random.default_rng(seed)
    stats = load_stats("s2_l1c")
    image = np.empty((1, len(bands), size, size), np.float32)
    for channel, band in enumerate(bands):
        field = rng.normal(0, 1, (size, size)).cumsum(0).cumsum(1) / size + rng.normal(
            0, 1, (size, size)
        )
        factor = resolution(band) // 10
        coarse = field.reshape(size // factor, factor, size // factor, factor).mean((1, 3))
        field = np.kron(coarse, np.ones((factor, factor)))
        image[0, channel] = (
            stats.mean[band] + stats.std[band] * (field - field.mean()) / field.std()
        )
    return {
        "image": torch.from_numpy(image),
        "bands": tuple(bands),
        "valid": torch.ones(1, size, size, dtype=torch.bool),
    }


def statuses(results):
    return {result.check: result.status for result in results}


def test_clean_synthetic_scene_passes():
    results = check_sample(synthetic_scene(), stats=load_stats("s2_l1c"))
    assert "error" not in statuses(results).values(), results


@pytest.mark.parametrize(("size", "status"), [(132, "error"), (96, "warn")])
def test_b08_b8a_swap_and_60m_band_in_10m_slot_are_flagged(size, status):
    scene = synthetic_scene(size=size)
    swapped = dict(scene, image=scene["image"][:, [0, 1, 2, 3, 4, 5, 6, 8, 7, 9, 10, 11, 12]])
    assert statuses(check_nir_pair(swapped))["B08/B8A order"] == "error"
    wrong = dict(
        scene, image=scene["image"][:, [0, 1, 2, 3, 4, 5, 6, 9, 8, 7, 10, 11, 12]]
    )  # B09 in B08's slot
    (result,) = check_resolution(wrong)
    # below RESOLUTION_MIN_SIZE pixels a side the finding is only a warning
    assert result.status == status and "B08 (a 10 m band) looks like a" in result.detail


def test_resolution_check_skips_without_contrast():
    scene = synthetic_scene()
    blurred = scene["image"].reshape(1, 13, 48, 2, 48, 2).mean((3, 5))  # a 20 m stack
    (result,) = check_resolution(
        dict(scene, image=blurred, valid=torch.ones(1, 48, 48, dtype=torch.bool))
    )
    assert result.status == "skip"


@pytest.mark.parametrize(("factor", "expected"), [(1.0, "x10000"), (1e-4, "x1"), (0.05, "0-255")])
def test_reflectance_scale(factor, expected):
    scene = synthetic_scene()
    image = scene["image"] * factor
    image = image.round() if expected == "0-255" else image
    assert reflectance_scale(dict(scene, image=image)) == expected


def test_scale_and_normalisation_errors_against_stats():
    scene = synthetic_scene()
    results = check_sample(dict(scene, image=scene["image"] / 10000), stats=load_stats("s2_l1c"))
    assert statuses(results)["reflectance scale"] == "error"
    assert statuses(results)["normalised mean/std"] == "error"


def test_all_invalid_sample_is_an_error():
    scene = synthetic_scene()
    results = check_sample(dict(scene, valid=torch.zeros(1, 96, 96, dtype=torch.bool)))
    assert statuses(results)["nodata"] == "error"


def test_grids_across_files():
    from affine import Affine

    grid = Grid(None, Affine(10, 0, 0, 0, -10, 0), 8, 8)
    from rasterio.crs import CRS

    utm = Grid(CRS.from_epsg(32631), Affine(10, 0, 0, 0, -10, 0), 8, 8)
    assert check_grids([("a", utm), ("b", utm)])[0].status == "ok"
    assert (
        check_grids([("a", utm), ("b", Grid(CRS.from_epsg(32630), utm.transform, 8, 8))])[0].status
        == "warn"
    )
    assert check_grids([("a", utm), ("b", grid)])[0].status == "error"


def test_model_spec_checks_cover_only_the_model_bands(tmp_path):
    from satmae.models import create_model, save_bundle
    from satmae.spec import load_spec

    save_bundle(create_model("satmae_tiny", time_fields=(), max_frames=1), tmp_path / "b")
    spec = load_spec(tmp_path / "b")
    results = check_sample(synthetic_scene(("B02", "B03", "B04")), model=spec)
    assert statuses(results)["model bands"] == "error"
    scene = synthetic_scene(("B01", *spec.bands))
    scene["image"][:, 0] = 60_000.0  # B01 far from any statistics: the model does not use it
    checked = {r.check: r for r in check_sample(scene, model=spec)}
    assert checked["model bands"].status == "ok"
    assert "B01" not in checked["normalised mean/std"].detail
    model_stats = spec.normalization.stats
    unrestricted = {r.check: r for r in check_sample(scene, stats=model_stats)}
    assert unrestricted["normalised mean/std"].detail == "statistics lack bands ['B01']"


@pytest.mark.real_data
def test_real_oscd_passes_and_band_swapped_copy_is_flagged(real_data):
    sample = read_oscd_city(real_data / "oscd", "paris")
    assert "error" not in statuses(check_sample(sample, stats=load_stats("s2_l1c"))).values()
    order = list(L1C_BANDS)
    swap = [
        order.index(b)
        for b in (
            "B01",
            "B02",
            "B03",
            "B04",
            "B05",
            "B06",
            "B07",
            "B8A",
            "B08",
            "B09",
            "B10",
            "B11",
            "B12",
        )
    ]
    swapped = dict(sample, image=sample["image"][:, swap])
    assert statuses(check_sample(swapped))["B08/B8A order"] == "error"
    # EuroSAT files (B8A last) read with the fMoW order: B09 lands in the B8A slot, B10 in B09...
    eurosat = [order.index(b) for b in DATASET_BAND_ORDERS["eurosat"]]
    misread = dict(sample, image=sample["image"][:, eurosat])
    assert statuses(check_sample(misread))["band resolution"] == "error"


def test_correlation_check_skips_with_few_bands():
    scene = synthetic_scene(("B02", "B03", "B04"))
    (result,) = check_correlations(scene)
    assert result.status == "skip"


@pytest.mark.real_data
def test_correlations_flag_a_red_edge_swap(real_data):
    sample = read_oscd_city(real_data / "oscd", "rennes")
    assert check_correlations(sample)[0].status == "ok"
    order = list(L1C_BANDS)
    swap = [order.index(b) for b in ("B01", "B02", "B03", "B04", "B06", "B05", *order[6:])]
    (result,) = check_correlations(dict(sample, image=sample["image"][:, swap]))
    assert result.status == "warn" and "B05 and B06" in result.detail
