"""Shared fixtures: the real Sentinel-2 samples and small generated rasters."""

from __future__ import annotations

from pathlib import Path

import pytest

REAL_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"


@pytest.fixture(scope="session")
def real_data() -> Path:
    """Root of the real OSCD and BigEarthNet samples; skips the test where it is absent."""
    if not REAL_DATA.is_dir():
        pytest.skip(f"real Sentinel-2 samples not found at {REAL_DATA} (../shared/data/real)")
    return REAL_DATA


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--slow``: the long hypothesis profile for the property-based tests."""
    parser.addoption(
        "--slow",
        action="store_true",
        default=False,
        help="run the property-based tests with many more examples (hypothesis profile 'slow')",
    )
