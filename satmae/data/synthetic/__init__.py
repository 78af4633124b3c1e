"""A procedurally generated Sentinel-2 L2A time series, written as files a user could download.

The demo set covers one square area in UTM zone 33N over a growing season. It holds, for every
acquisition date, a 12-band Cloud-Optimized GeoTIFF (uint16 reflectance x 10000 at 10 m, band
descriptions set to the band names, date in the file name and tags) and an SCL-like scene
classification layer; plus a land-cover label raster at the first and the last date and a change
mask between them.

What makes it worth learning from:

- spatially coherent land-cover patches (water with a river, forest, cropland split into fields,
  grassland, urban, bare soil) with class-typical spectra: vegetation has low red, a red-edge
  rise and high NIR; water has low NIR and SWIR; urban and bare soil are flat and bright;
- crop phenology: every field has its own sowing date, so cropland greens up and is harvested
  at different times, and deciduous vegetation follows the season;
- the 20 m and 60 m bands are generated at their native resolution, so they look blurrier;
- sensor noise, clouds of varying thickness with displaced shadows, and a nodata wedge at the
  swath edge, all flagged in the SCL layer;
- some patches change class between the first and the last date (clear-cut, construction,
  flooding).

Everything is deterministic for a seed; the arrays take a fraction of a second at the default
size. :mod:`.scene` generates them in memory, :mod:`.files` writes them.
"""

from satmae.data.synthetic.files import CRS, ORIGIN, PIXEL_SIZE, DemoSet, write_demo_set
from satmae.data.synthetic.scene import (
    ACQUISITION_HOUR_UTC,
    LAND_COVER_CLASSES,
    NODATA,
    REFLECTANCE_SCALE,
    SCL_CLASSES,
    DemoArrays,
    DemoConfig,
    generate_demo_arrays,
)

__all__ = [
    "ACQUISITION_HOUR_UTC",
    "CRS",
    "LAND_COVER_CLASSES",
    "NODATA",
    "ORIGIN",
    "PIXEL_SIZE",
    "REFLECTANCE_SCALE",
    "SCL_CLASSES",
    "DemoArrays",
    "DemoConfig",
    "DemoSet",
    "generate_demo_arrays",
    "write_demo_set",
]
