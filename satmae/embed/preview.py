"""A look at an embedding raster: its first three principal components as RGB.

The components are fitted on (a regular subsample of) the valid pixels with numpy's SVD, each
is stretched between its 2nd and 98th percentile, and their signs are fixed so the same
embedding always gives the same colours. :func:`write_preview` puts the picture beside a
true-colour composite of the input.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from matplotlib.image import imsave
from numpy.typing import NDArray

from satmae.bands import RGB_BANDS
from satmae.io import atomic_path
from satmae.viz import composite

_FIT_PIXELS = 100_000  # pixels the components are fitted on; all pixels are projected


def pca_rgb(
    embedding: NDArray[np.floating],
    valid: NDArray[np.bool_] | None = None,
    percentiles: tuple[float, float] = (2.0, 98.0),
) -> NDArray[np.uint8]:
    """The first three principal components of an embedding raster as an RGB image.

    Args:
        embedding: ``(F, H, W)`` features per pixel.
        valid: ``(H, W)`` pixels to fit and show (default: pixels whose features are all
            finite); others are black.
        percentiles: low and high percentile of each component mapped to 0 and 255.

    Returns:
        ``(H, W, 3)`` uint8. Components beyond the rank of the data are black.

    Raises:
        ValueError: if ``embedding`` is not 3-D or ``valid`` does not match it.
    """
    if embedding.ndim != 3:
        raise ValueError(f"expected an embedding of shape (F, H, W), got {embedding.shape}")
    features, height, width = embedding.shape
    pixels = np.asarray(embedding, dtype=np.float32).reshape(features, -1).T  # (H*W, F)
    finite = np.isfinite(pixels).all(axis=1)
    if valid is not None:
        if valid.shape != (height, width):
            raise ValueError(f"valid mask of shape {valid.shape} does not match {(height, width)}")
        finite &= np.asarray(valid, dtype=bool).reshape(-1)
    rgb = np.zeros((height * width, 3), dtype=np.uint8)
    chosen = np.flatnonzero(finite)
    if len(chosen) == 0:
        return rgb.reshape(height, width, 3)
    fit = pixels[chosen[:: max(1, len(chosen) // _FIT_PIXELS)]].astype(np.float64)
    mean = fit.mean(axis=0)
    _, _, vt = np.linalg.svd(fit - mean, full_matrices=False)
    components = vt[:3]
    # a component's sign is arbitrary: make its largest loading positive
    signs = np.sign(components[np.arange(len(components)), np.abs(components).argmax(axis=1)])
    components = components * np.where(signs == 0, 1.0, signs)[:, None]
    projected = (pixels[chosen] - mean) @ components.T  # (N, <=3)
    low, high = np.percentile(projected, percentiles, axis=0)
    span = np.where(high > low, high - low, 1.0)
    scaled = np.clip((projected - low) / span, 0.0, 1.0)
    rgb[chosen, : scaled.shape[1]] = np.rint(scaled * 255).astype(np.uint8)
    return rgb.reshape(height, width, 3)


def _resize_nearest(image: NDArray[np.uint8], height: int, width: int) -> NDArray[np.uint8]:
    rows = np.arange(height) * image.shape[0] // height
    cols = np.arange(width) * image.shape[1] // width
    resized: NDArray[np.uint8] = image[rows][:, cols]
    return resized


def write_preview(
    path: str | os.PathLike[str],
    embedding: NDArray[np.floating],
    image: NDArray[np.floating] | NDArray[np.integer] | None = None,
    bands: Sequence[str] | None = None,
    valid: NDArray[np.bool_] | None = None,
) -> None:
    """Write a PNG of an embedding's PCA colours, beside a true-colour view of its input.

    With ``image``, the PCA picture is scaled (nearest neighbour) to the input's size and
    placed to the right of its true-colour composite, so the PNG is ``(H_in, 2 * W_in)``;
    without it, the PNG is the ``(H, W)`` PCA picture. The write is atomic.

    Args:
        path: the ``.png`` to write.
        embedding: ``(F, H, W)`` features per pixel.
        image: ``(C, H_in, W_in)`` input pixels, or ``(T, C, H_in, W_in)`` of which the last
            date is shown.
        bands: names of the C channels of ``image``, which must include the true-colour bands.
        valid: ``(H, W)`` embedding pixels to fit and show (see :func:`pca_rgb`).

    Raises:
        ValueError: if ``image`` is given without ``bands`` or lacks the true-colour bands.
    """
    picture = pca_rgb(embedding, valid)
    if image is not None:
        if bands is None:
            raise ValueError("write_preview needs the band names of image (bands=...)")
        frame = image[-1] if image.ndim == 4 else image
        colour = np.rint(composite(frame, bands, RGB_BANDS) * 255).astype(np.uint8)
        height, width = colour.shape[:2]
        picture = np.concatenate([colour, _resize_nearest(picture, height, width)], axis=1)
    with atomic_path(path) as staging:
        imsave(staging, picture, format="png")
