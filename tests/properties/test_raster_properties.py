"""Property: reading a bad raster gives a correct sample or a clear error naming the file.

Hypothesis generates small rasters with random data types, NaN/inf patches, nodata values,
band counts, missing or geographic CRSs, shifted transforms and tiny sizes. Every read must
either return a sample whose image is finite, whose invalid pixels are False in ``valid`` and 0
in ``image``, and whose shape is what was asked for; or raise a ``ValueError`` /
``FileNotFoundError`` family error that names the file. Never another exception type, never
NaN, never a silent partial result.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np
import rasterio
import torch
from hypothesis import given
from hypothesis import strategies as st
from rasterio.errors import NotGeoreferencedWarning
from rasterio.transform import from_origin

from satmae.data.readers.band_files import read_band_files
from satmae.data.readers.geotiff import read_geotiff

BANDS = ("B02", "B03", "B04", "B08", "B11")
DTYPES = ("uint8", "uint16", "int16", "float32", "float64")
CRSS = {
    "utm": ("EPSG:32631", 10.0, (500000.0, 4000000.0)),
    "geographic": ("EPSG:4326", 1e-4, (5.0, 45.0)),
    "none": (None, 10.0, (500000.0, 4000000.0)),
}


@st.composite
def rasters(draw: st.DrawFn) -> dict[str, object]:
    """A small raster's pixels and metadata, valid or not."""
    dtype = draw(st.sampled_from(DTYPES))
    count = draw(st.integers(1, 5))
    height, width = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    data = rng.integers(0, 200 if dtype == "uint8" else 5000, (count, height, width)).astype(dtype)
    if dtype.startswith("float") and draw(st.booleans()):
        patch = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
        row, col = draw(st.integers(0, height - 1)), draw(st.integers(0, width - 1))
        data[draw(st.integers(0, count - 1)), row : row + 3, col : col + 3] = patch
    nodata = draw(st.sampled_from([None, 0, 7, -9999 if dtype in ("int16", "float32") else 0]))
    if nodata not in (None, 0) and draw(st.booleans()):
        data[:, 0, :] = nodata
    named = draw(st.booleans())
    return {
        "data": data,
        "names": BANDS[:count] if named else None,
        "nodata": nodata,
        "crs": draw(st.sampled_from(sorted(CRSS))),
    }


def write(path: Path, raster: dict[str, object], shift: float = 0.0) -> Path:
    data = np.asarray(raster["data"])
    crs, res, (x, y) = CRSS[str(raster["crs"])]
    profile = {
        "driver": "GTiff",
        "width": data.shape[2],
        "height": data.shape[1],
        "count": data.shape[0],
        "dtype": data.dtype.name,
    }
    if crs is not None:
        profile.update(crs=crs, transform=from_origin(x + shift * res, y, res, res))
    if raster["nodata"] is not None:
        profile["nodata"] = raster["nodata"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(data)
            for index, name in enumerate(raster["names"] or [], start=1):  # type: ignore[arg-type]
                dst.set_band_description(index, name)
    return path


def assert_correct(sample: dict[str, torch.Tensor], shape: tuple[int, ...]) -> None:
    image, valid = sample["image"], sample["valid"]
    assert tuple(image.shape) == shape
    assert image.dtype == torch.float32 and valid.dtype == torch.bool
    assert torch.isfinite(image).all(), "NaN or inf reached the image"
    assert (image.permute(1, 0, 2, 3)[:, ~valid] == 0).all(), "an invalid pixel is not zero"


def read_or_refuse(read, names: list[str]):  # type: ignore[no-untyped-def]
    """The sample, or None after checking that the error is of the right family and names a file."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            return read()
    except (ValueError, FileNotFoundError) as error:  # OSError subclasses included
        assert any(name in str(error) for name in names), f"error names no file: {error}"
        return None


@given(raster=rasters())
def test_multi_band_file_reads_correctly_or_refuses(raster: dict[str, object]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = write(Path(folder) / "input.tif", raster)
        data = np.asarray(raster["data"])
        sample = read_or_refuse(lambda: read_geotiff(path), [path.name])
        if sample is None:
            return
        assert raster["names"] is not None, "a file without band names was read by position"
        assert_correct(sample, (1, *data.shape))
        finite = np.isfinite(data.astype(np.float64)).all(axis=0)
        assert not sample["valid"][0][torch.from_numpy(~finite)].any()


@given(
    raster=rasters(),
    shifts=st.lists(st.sampled_from([0.0, 3.0, 1e5]), min_size=2, max_size=3),
    resolution=st.sampled_from([None, 20.0]),
)
def test_band_files_read_correctly_or_refuse(
    raster: dict[str, object], shifts: list[float], resolution: float | None
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        paths = [
            write(Path(folder) / f"T31_{band}.tif", raster, shift)
            for band, shift in zip(BANDS, shifts, strict=False)
        ]
        names = [path.name for path in paths] + [Path(folder).name]
        sample = read_or_refuse(lambda: read_band_files(folder, resolution=resolution), names)
        if sample is None:
            return
        data = np.asarray(raster["data"])
        assert raster["crs"] != "none", "a file without georeferencing was placed on a grid"
        assert len(set(shifts)) == 1, "a band file off the others was read as padding"
        assert data.shape[0] == 1 or raster["names"] is not None, "band 1 taken by position"
        assert resolution is None or raster["crs"] == "utm", "resolution read in degrees"
        height, width = sample["image"].shape[-2:]
        assert_correct(sample, (1, len(paths), height, width))


@given(raster=rasters())
def test_cubes_and_torchgeo_samples_follow_the_same_rule(raster: dict[str, object]) -> None:
    import xarray as xr

    from satmae.data.readers.cube import read_cube
    from satmae.data.readers.torchgeo_adapter import from_torchgeo

    data = np.asarray(raster["data"]).astype(np.float32)
    names = list(BANDS[: data.shape[0]])
    nodata = raster["nodata"]
    cube = xr.DataArray(data[None], dims=("time", "band", "y", "x"), coords={"band": names})
    for sample in (
        read_cube(cube, nodata=nodata),  # type: ignore[arg-type]
        from_torchgeo({"image": torch.from_numpy(data)}, names, nodata=nodata),  # type: ignore[arg-type]
    ):
        assert_correct(sample, (1, *data.shape))
        finite = np.isfinite(data).all(axis=0)
        assert not sample["valid"][0][torch.from_numpy(~finite)].any()
