"""satmae: geospatial foundation models in the SatMAE family.

Read multispectral, multitemporal Sentinel-2 rasters by band name, pretrain a SatMAE with
group-wise spectral and temporal tokens, evaluate encoders on land-cover and change-detection
benchmarks, and extract georeferenced features.

The seam from raster to model is one call: ``satmae.load_encoder(path).embed(batch)`` takes a
sample or batch as read (raw reflectance, bands by name) and applies the model's own band order
and normalisation. ``satmae.create_model``, ``satmae.load_mae``, ``satmae.load_encoder``,
``satmae.load_spec`` and the model classes are imported on first use, so ``import satmae`` stays
cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from satmae.lazy import lazy_attributes

__version__ = "0.1.0"

_LAZY = {
    "load_spec": "satmae.spec",
    "ModelSpec": "satmae.spec",
    "load_stats": "satmae.normalization",
    "BandStats": "satmae.normalization",
    "Normalization": "satmae.normalization",
    "create_model": "satmae.models",
    "load_mae": "satmae.models",
    "load_encoder": "satmae.models",
    "SatMAEEncoder": "satmae.models",
    "MaskedAutoencoder": "satmae.models",
    "MAEConfig": "satmae.models",
}

if TYPE_CHECKING:
    from satmae.models import (
        MAEConfig,
        MaskedAutoencoder,
        SatMAEEncoder,
        create_model,
        load_encoder,
        load_mae,
    )
    from satmae.normalization import BandStats, Normalization, load_stats
    from satmae.spec import ModelSpec, load_spec

__all__ = [
    "BandStats",
    "MAEConfig",
    "MaskedAutoencoder",
    "ModelSpec",
    "Normalization",
    "SatMAEEncoder",
    "__version__",
    "create_model",
    "load_encoder",
    "load_mae",
    "load_spec",
    "load_stats",
]


__getattr__ = lazy_attributes(__name__, _LAZY, globals())
