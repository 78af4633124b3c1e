"""The Sentinel-2 band catalog: names, aliases, wavelengths, resolutions and standard orders.

Every other module matches bands by the canonical names defined here (``B01`` ... ``B12``,
``B8A``); a file, dataset or checkpoint that uses another spelling is translated with
:func:`canonical_band` before anything is compared.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Band:
    """One Sentinel-2 MSI band.

    Attributes:
        name: canonical name, e.g. ``"B8A"``.
        common_name: STAC electro-optical common name, e.g. ``"nir08"``.
        wavelength_nm: centre wavelength in nanometres (Sentinel-2A).
        bandwidth_nm: full width at half maximum in nanometres (Sentinel-2A).
        resolution_m: native ground sampling distance in metres.
        in_l1c: present in Level-1C (top-of-atmosphere) products.
        in_l2a: present in Level-2A (bottom-of-atmosphere) products.
    """

    name: str
    common_name: str
    wavelength_nm: float
    bandwidth_nm: float
    resolution_m: int
    in_l1c: bool = True
    in_l2a: bool = True


SENTINEL2_BANDS: dict[str, Band] = {
    band.name: band
    for band in (
        Band("B01", "coastal", 442.7, 21, 60),
        Band("B02", "blue", 492.4, 66, 10),
        Band("B03", "green", 559.8, 36, 10),
        Band("B04", "red", 664.6, 31, 10),
        Band("B05", "rededge1", 704.1, 15, 20),
        Band("B06", "rededge2", 740.5, 15, 20),
        Band("B07", "rededge3", 782.8, 20, 20),
        Band("B08", "nir", 832.8, 106, 10),
        Band("B8A", "nir08", 864.7, 21, 20),
        Band("B09", "nir09", 945.1, 20, 60),
        Band("B10", "cirrus", 1373.5, 31, 60, in_l2a=False),
        Band("B11", "swir16", 1613.7, 91, 20),
        Band("B12", "swir22", 2202.4, 175, 20),
    )
}
"""All thirteen MSI bands keyed by canonical name, in order of increasing wavelength."""

# Spellings used by other tools, mapped to canonical names. Lookups are case-insensitive.
_EXTRA_ALIASES: dict[str, str] = {
    # Unpadded numbers (torchgeo weights, SNAP, many papers).
    **{f"B{i}": f"B{i:02d}" for i in range(1, 13)},
    "B8A": "B8A",
    "B08A": "B8A",
    "B8_A": "B8A",
    # Plain English and Landsat-like spellings.
    "AEROSOL": "B01",
    "COASTAL_BLUE": "B01",
    "RED_EDGE1": "B05",
    "RED_EDGE2": "B06",
    "RED_EDGE3": "B07",
    "RE1": "B05",
    "RE2": "B06",
    "RE3": "B07",
    "NIR_NARROW08": "B8A",
    "NARROW_NIR": "B8A",
    "SWIR16": "B11",
    "SWIR22": "B12",
    "SWIR_16": "B11",
    "SWIR_22": "B12",
    # STAC earth-search variants and wavelength-coded common names.
    "rededge071": "B05",
    "rededge075": "B06",
    "rededge078": "B07",
    "nir": "B08",
    "nir08": "B8A",
    "nir09": "B09",
    "wvp": "B09",
    "water_vapour": "B09",
    "swir1": "B11",
    "swir2": "B12",
    # HLS-style enum names (TerraTorch and Prithvi configs).
    "COASTAL_AEROSOL": "B01",
    "RED_EDGE_1": "B05",
    "RED_EDGE_2": "B06",
    "RED_EDGE_3": "B07",
    "NIR_BROAD": "B08",
    "NIR_NARROW": "B8A",
    "WATER_VAPOR": "B09",
    "CIRRUS": "B10",
    "SWIR_1": "B11",
    "SWIR_2": "B12",
}

BAND_ALIASES: dict[str, str] = {
    **{name.upper(): name for name in SENTINEL2_BANDS},
    **{band.common_name.upper(): band.name for band in SENTINEL2_BANDS.values()},
    **{alias.upper(): name for alias, name in _EXTRA_ALIASES.items()},
}
"""Upper-cased alias -> canonical band name."""

L1C_BANDS: tuple[str, ...] = tuple(b.name for b in SENTINEL2_BANDS.values() if b.in_l1c)
"""The 13 Level-1C bands in wavelength order (fMoW-Sentinel and OSCD file order)."""

L2A_BANDS: tuple[str, ...] = tuple(b.name for b in SENTINEL2_BANDS.values() if b.in_l2a)
"""The 12 Level-2A bands in wavelength order (B10 is dropped by Sen2Cor)."""

SATMAE_BANDS: tuple[str, ...] = (
    "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12",
)  # fmt: skip
"""The 10 bands SatMAE's multispectral models take, in their channel order."""

SATMAE_GROUPS: tuple[tuple[str, ...], ...] = (
    ("B02", "B03", "B04", "B08"),
    ("B05", "B06", "B07", "B8A"),
    ("B11", "B12"),
)
"""SatMAE's default band groups: visible + NIR (10 m), red edge (20 m), SWIR (20 m)."""

RGB_BANDS: tuple[str, ...] = ("B04", "B03", "B02")
"""True-colour composite order (red, green, blue)."""

FALSE_COLOUR_BANDS: tuple[str, ...] = ("B08", "B04", "B03")
"""Colour-infrared composite order (NIR, red, green): vegetation shows red."""

DATASET_BAND_ORDERS: dict[str, tuple[str, ...]] = {
    "fmow_sentinel": L1C_BANDS,
    "oscd": L1C_BANDS,
    "eurosat": (*L1C_BANDS[:8], *L1C_BANDS[9:], "B8A"),
    "bigearthnet": L2A_BANDS,
    "ssl4eo_s12_l1c": L1C_BANDS,
    "ssl4eo_s12_l2a": L2A_BANDS,
    "satmae": SATMAE_BANDS,
}
"""Native channel order of each dataset's files, by canonical name.

EuroSAT's GeoTIFFs store B8A *last* (after B12), unlike every other 13-band product; reading
them by position with the fMoW order silently swaps B8A/B09/B10/B11/B12.
"""


CLASS_LAYERS: tuple[str, ...] = ("SCL",)
"""Non-spectral layers a reader recognises next to the bands: the L2A scene classification."""


def canonical_layer(name: str) -> str:
    """Like :func:`canonical_band`, but also accepts class layers (``"SCL"``, ``"scl_20m"``).

    Raises:
        ValueError: if the name is neither a Sentinel-2 band nor a known class layer.
    """
    key = name.strip().upper()
    for layer in CLASS_LAYERS:
        if key == layer or key.startswith(f"{layer}_"):
            return layer
    return canonical_band(name)


def canonical_band(name: str) -> str:
    """Return the canonical catalog name for any known spelling of a Sentinel-2 band.

    Args:
        name: a band name such as ``"B8a"``, ``"b2"``, ``"nir08"`` or ``"NIR_NARROW"``.

    Returns:
        The canonical name, e.g. ``"B8A"``.

    Raises:
        ValueError: if the name is not a Sentinel-2 band.
    """
    key = name.strip().upper()
    if key in BAND_ALIASES:
        return BAND_ALIASES[key]
    known = ", ".join(SENTINEL2_BANDS)
    raise ValueError(
        f"unknown Sentinel-2 band {name!r}; use one of {known} "
        "(aliases such as B8a, B1, nir08 and NIR_NARROW are accepted too)"
    )


def canonical_bands(names: Iterable[str]) -> tuple[str, ...]:
    """Canonicalise a sequence of band names, rejecting duplicates.

    Args:
        names: band names in any known spelling.

    Returns:
        The canonical names in the same order.

    Raises:
        ValueError: if a name is unknown or two names denote the same band.
    """
    given = list(names)
    result = tuple(canonical_band(name) for name in given)
    seen: dict[str, int] = {}
    for index, band in enumerate(result):
        if band in seen:
            raise ValueError(
                f"band {band} appears twice in {given} (positions {seen[band]} and {index}); "
                "each band may be given once"
            )
        seen[band] = index
    return result


def band_indices(source: Sequence[str], wanted: Sequence[str]) -> list[int]:
    """Positions in ``source`` of each band in ``wanted``, matched by canonical name.

    Args:
        source: the band order of the data, e.g. a file's channels.
        wanted: the bands to select, in the order they should come out.

    Returns:
        Indices such that ``[source[i] for i in result]`` names ``wanted``.

    Raises:
        ValueError: if any wanted band is missing from ``source``; the message lists them.
    """
    source_names = canonical_bands(source)
    wanted_names = canonical_bands(wanted)
    missing = [band for band in wanted_names if band not in source_names]
    if missing:
        raise ValueError(
            f"bands {missing} are required but the data has only {list(source_names)}; "
            "select a model or band set that the data covers"
        )
    return [source_names.index(band) for band in wanted_names]


def resolution(name: str) -> int:
    """Native ground sampling distance in metres of a band given in any spelling."""
    return SENTINEL2_BANDS[canonical_band(name)].resolution_m
