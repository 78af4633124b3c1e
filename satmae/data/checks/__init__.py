"""The checks behind ``satmae check``: does this data match what a model expects?

Each check returns a :class:`CheckResult` (``ok``, ``warn``, ``error`` or ``skip``) with a
sentence a user can act on: the content check for values no Sentinel-2 file holds
(:mod:`~satmae.data.checks.content`), pixel-based band checks
(:mod:`~satmae.data.checks.bands`), the check for an unapplied Sentinel-2 offset
(:mod:`~satmae.data.checks.offset`), checks against a model bundle
(:mod:`~satmae.data.checks.model`), and the checks of one sample against statistics and of
grids across files, with :func:`check_sample` running them all
(:mod:`~satmae.data.checks.sample`).
"""

from satmae.data.checks.bands import (
    CheckResult,
    Status,
    check_correlations,
    check_nir_pair,
    check_resolution,
    reflectance_scale,
)
from satmae.data.checks.content import check_content
from satmae.data.checks.model import (
    check_model,
    check_normalization,
    model_view,
)
from satmae.data.checks.offset import check_offset
from satmae.data.checks.sample import (
    check_band_means,
    check_grids,
    check_sample,
    check_scale,
    check_times,
    check_validity,
)

__all__ = [
    "CheckResult",
    "Status",
    "check_band_means",
    "check_content",
    "check_correlations",
    "check_grids",
    "check_model",
    "check_nir_pair",
    "check_normalization",
    "check_offset",
    "check_resolution",
    "check_sample",
    "check_scale",
    "check_times",
    "check_validity",
    "model_view",
    "reflectance_scale",
]
