"""satmae: geospatial foundation models in the SatMAE family.

Read multispectral, multitemporal Sentinel-2 rasters by band name, pretrain a SatMAE with
group-wise spectral and temporal tokens, evaluate encoders on land-cover and change-detection
benchmarks, and extract georeferenced features.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
