"""xarray in, xarray out: :meth:`SatMAEEncoder.embed` on a DataArray of raw reflectance.

xarray and rioxarray are imported inside the functions, and this module is imported only when
``embed`` is given an xarray object, so ``satmae.models`` never loads them (nor rasterio) itself.
The DataArray is read with :func:`satmae.data.readers.cube.read_cube`, so band names, times and
the valid mask follow the readers' rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from satmae.models.tokenizer import select_bands

if TYPE_CHECKING:
    import xarray as xr

    from satmae.models.encoder import PoolMode, SatMAEEncoder


def embed_dataarray(
    encoder: SatMAEEncoder,
    array: Any,
    pool: PoolMode = "mean",
    layers: Sequence[int] | None = None,
    batch_size: int | None = None,
) -> xr.DataArray | dict[int, xr.DataArray]:
    """Embed a ``(time, band, y, x)`` or ``(band, y, x)`` DataArray of raw reflectance.

    Args:
        encoder: the encoder (it normalises with its own statistics).
        array: an ``xr.DataArray`` of raw reflectance with band names in its ``band``
            coordinate and, for temporal models, datetime64 (or int64 seconds) in its ``time``
            coordinate. Pixels at the nodata value in every band, or NaN, are invalid; NaN is
            read as 0.
        pool: ``"mean"`` / ``"cls"`` -> dims ``(feature,)``; ``"none"`` -> ``(time, group,
            feature, y, x)`` at patch resolution (``time`` only when the input has it), with
            ``x``/``y`` at the patch centres, the input's CRS and times, and NaN at patches
            without a valid pixel.
        layers: block indices; the result is then ``{layer: DataArray}``.
        batch_size: passed to :meth:`SatMAEEncoder.embed` (frames are one sample).

    Raises:
        ValueError: see :func:`~satmae.data.readers.cube.read_cube` and ``embed``.
    """
    from satmae.data.readers.cube import read_cube

    if not type(array).__name__ == "DataArray":
        raise ValueError(
            f"expected an xarray DataArray with dims (time, band, y, x), got {type(array).__name__}"
            "; pick the image variable of a Dataset (dataset['image']) or use read_cube"
        )
    sample = read_cube(array)
    image = sample["image"]
    sample["image"] = torch.nan_to_num(image, nan=0.0)  # invalid anyway; NaN would spread
    result: Any = encoder.embed(sample, pool=pool, layers=layers, batch_size=batch_size)
    embeddings: dict[int | None, Tensor] = {None: result} if layers is None else result
    groups = select_bands(encoder.config, sample["bands"], image.shape[1]).groups
    converted = {
        layer: _to_dataarray(encoder, array, value[0], pool, groups, sample["valid"])
        for layer, value in embeddings.items()
    }
    if layers is None:
        return converted[None]
    return {layer: value for layer, value in converted.items() if layer is not None}


def _to_dataarray(
    encoder: SatMAEEncoder,
    array: xr.DataArray,
    embedding: Tensor,
    pool: PoolMode,
    groups: tuple[int, ...],
    valid: Tensor,
) -> xr.DataArray:
    """One sample's embedding as a DataArray with the input's coordinates."""
    import rioxarray  # noqa: F401  (registers the .rio accessor)
    import xarray as xr

    config = encoder.config
    attrs: dict[str, Any] = {
        "bands": ",".join(config.bands),
        "band_groups": ";".join(",".join(group) for group in config.band_groups),
        "pool": pool,
    }
    values = embedding.cpu().numpy()
    if pool != "none":
        feature = np.arange(values.shape[-1])
        return xr.DataArray(values, dims=("feature",), coords={"feature": feature}, attrs=attrs)
    # (T, G, h, w, D) -> (T, G, D, h, w); patches without a valid pixel are nodata
    patch = config.patch_size
    frames, _, height, width, _ = values.shape
    empty = ~valid.reshape(frames, height, patch, width, patch).any(dim=(2, 4)).numpy()
    values = np.where(empty[:, None, :, :, None], np.nan, values).transpose(0, 1, 4, 2, 3)
    x_dim, y_dim = array.rio.x_dim, array.rio.y_dim
    coords: dict[str, Any] = {"group": list(groups), "feature": np.arange(values.shape[2])}
    for dim, size in ((y_dim, height), (x_dim, width)):
        if dim in array.coords:  # patch centre = mean of its pixel centres
            coords[dim] = np.asarray(array[dim].values, np.float64).reshape(size, patch).mean(1)
    dims: tuple[str, ...] = ("time", "group", "feature", y_dim, x_dim)
    if "time" in array.dims:
        if "time" in array.coords:
            coords["time"] = array["time"].values
    else:
        values, dims = values[0], dims[1:]
    out = xr.DataArray(values, dims=dims, coords=coords, attrs=attrs)
    out = out.rio.set_spatial_dims(x_dim=x_dim, y_dim=y_dim)
    if array.rio.crs is not None:
        out = out.rio.write_crs(array.rio.crs)
    result: xr.DataArray = out
    return result
