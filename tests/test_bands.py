import pytest

from satmae.bands import (
    DATASET_BAND_ORDERS,
    L1C_BANDS,
    L2A_BANDS,
    SATMAE_BANDS,
    SATMAE_GROUPS,
    SENTINEL2_BANDS,
    band_indices,
    canonical_band,
    canonical_bands,
    canonical_layer,
    resolution,
)


@pytest.mark.parametrize(
    ("alias", "name"),
    [
        ("B1", "B01"), ("b2", "B02"), ("B8", "B08"), ("B8a", "B8A"), ("B08A", "B8A"),
        ("nir08", "B8A"), ("NIR_NARROW", "B8A"), ("nir", "B08"), ("BLUE", "B02"),
        ("red", "B04"), ("rededge1", "B05"), ("SWIR_1", "B11"), ("swir22", "B12"),
        ("coastal", "B01"), ("cirrus", "B10"), (" B12 ", "B12"),
    ],
)  # fmt: skip
def test_aliases_map_to_canonical_names(alias, name):
    assert canonical_band(alias) == name


def test_unknown_band_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown Sentinel-2 band 'B13'.*B01"):
        canonical_band("B13")


def test_duplicate_bands_are_rejected():
    with pytest.raises(ValueError, match=r"band B8A appears twice"):
        canonical_bands(["B8A", "nir08"])


def test_catalog_facts():
    assert len(SENTINEL2_BANDS) == 13
    assert resolution("B8a") == 20 and resolution("B02") == 10 and resolution("B09") == 60
    centres = [band.wavelength_nm for band in SENTINEL2_BANDS.values()]
    assert centres == sorted(centres)  # the catalog is in wavelength order
    assert "B10" in L1C_BANDS and "B10" not in L2A_BANDS
    assert [b for group in SATMAE_GROUPS for b in group] == sorted(
        SATMAE_BANDS, key=[b for g in SATMAE_GROUPS for b in g].index
    )


def test_dataset_orders_match_torchgeo():
    assert DATASET_BAND_ORDERS["eurosat"][-1] == "B8A"
    assert DATASET_BAND_ORDERS["eurosat"][8:12] == ("B09", "B10", "B11", "B12")
    assert DATASET_BAND_ORDERS["bigearthnet"] == (
        "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12",
    )  # fmt: skip
    assert DATASET_BAND_ORDERS["oscd"][8] == "B8A"


def test_band_indices_reorders_by_name_and_lists_missing():
    # SatMAE's 10 bands from EuroSAT's file order (reference §7.1): [1,2,3,4,5,6,7,12,10,11]
    assert band_indices(DATASET_BAND_ORDERS["eurosat"], SATMAE_BANDS) == [
        1,
        2,
        3,
        4,
        5,
        6,
        7,
        12,
        10,
        11,
    ]
    assert band_indices(DATASET_BAND_ORDERS["bigearthnet"], SATMAE_BANDS) == [
        1,
        2,
        3,
        4,
        5,
        6,
        7,
        8,
        10,
        11,
    ]
    with pytest.raises(ValueError, match=r"bands \['B10'\] are required"):
        band_indices(L2A_BANDS, ["B02", "B10"])


def test_class_layers_are_recognised_apart_from_bands():
    assert canonical_layer("SCL") == "SCL"
    assert canonical_layer("scl_20m") == "SCL"
    assert canonical_layer("b8a") == "B8A"
    with pytest.raises(ValueError, match=r"unknown Sentinel-2 band 'SCL'"):
        canonical_band("SCL")
