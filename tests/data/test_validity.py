import numpy as np
import pytest
import torch

from satmae.data.validity import SCL_INVALID, ValidityPolicy, invalid_fraction, valid_mask


def test_nodata_needs_every_band_and_scl_classes():
    image = torch.full((1, 2, 4, 4), 500.0)
    image[0, :, 0, 0] = 0  # nodata in all bands
    image[0, 0, 0, 1] = 0  # a legitimate zero in one band
    scl = np.full((1, 4, 4), 4)
    scl[0, 3] = [3, 8, 9, 10]  # shadow, clouds, cirrus
    valid = valid_mask(image, nodata=0, scl=scl)
    assert not valid[0, 0, 0] and valid[0, 0, 1]
    assert not valid[0, 3].any() and int(valid.sum()) == 11
    assert {0, 1, 3, 8, 9, 10} == SCL_INVALID


def test_scl_shape_mismatch():
    with pytest.raises(ValueError, match=r"SCL layer of shape \(1, 2, 2\) does not match"):
        valid_mask(torch.ones(1, 2, 4, 4), scl=np.zeros((1, 2, 2)))


def chip(invalid_rows):
    valid = torch.ones(1, 4, 4, dtype=torch.bool)
    valid[0, :invalid_rows] = False
    return {"valid": valid}


def test_policy_drops_and_counts():
    policy = ValidityPolicy(max_invalid_fraction=0.5)
    assert [policy.accept(chip(rows)) for rows in (0, 2, 3, 4)] == [True, True, False, False]
    assert (policy.kept, policy.dropped, policy.all_invalid) == (2, 2, 1)
    assert "dropped 2" in policy.summary()
    keeper = ValidityPolicy(max_invalid_fraction=0.1, on_exceed="keep")
    assert keeper.accept(chip(4)) and keeper.exceeded == 1
    assert invalid_fraction(chip(1)["valid"]) == pytest.approx(0.25)


def test_all_invalid_chip_is_an_error_under_raise():
    policy = ValidityPolicy(max_invalid_fraction=0.5, on_exceed="raise")
    with pytest.raises(ValueError, match=r"tile_7.tif has no valid pixel .*on_exceed='drop'"):
        policy.accept(chip(4), source="tile_7.tif")
    with pytest.raises(ValueError, match=r"chip is 75.0% invalid"):
        policy.accept(chip(3))


def test_policy_arguments_are_checked():
    with pytest.raises(ValueError, match=r"max_invalid_fraction must lie in"):
        ValidityPolicy(max_invalid_fraction=1.5)
    with pytest.raises(ValueError, match=r"on_exceed must be"):
        ValidityPolicy(on_exceed="skip")  # type: ignore[arg-type]


def test_non_finite_pixels_are_invalid_in_every_reader(tmp_path):
    import rasterio
    from rasterio.transform import from_origin

    from satmae.data.readers.geotiff import read_geotiff

    values = np.full((4, 8, 8), 1200.0, np.float32)
    values[:, 0, 0] = np.nan  # a gap in every band
    values[1, 2, 3] = np.inf  # one band broken
    values[2, 5, 5] = -np.inf
    path = tmp_path / "S2_20210615.tif"
    profile = {"driver": "GTiff", "width": 8, "height": 8, "count": 4, "dtype": "float32",
               "crs": "EPSG:32633", "transform": from_origin(0, 80, 10, 10)}  # fmt: skip
    with rasterio.open(path, "w", **profile) as dataset:
        dataset.write(values)
    sample = read_geotiff(path, band_order=["B02", "B03", "B04", "B08"])
    valid = sample["valid"][0]
    assert not valid[0, 0] and not valid[2, 3] and not valid[5, 5]
    assert int(valid.sum()) == 64 - 3
    assert torch.isfinite(sample["image"]).all()  # the model never sees NaN or inf


def test_an_all_nan_raster_is_all_invalid():
    image = torch.full((1, 3, 4, 4), float("nan"))
    assert not valid_mask(image, nodata=None).any()
    assert invalid_fraction(valid_mask(image)) == 1.0
