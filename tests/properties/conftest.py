"""Hypothesis profiles for the property-based tests of bad inputs.

``fast`` (the default) keeps the whole module to a few seconds of the suite; ``slow`` (chosen
with ``pytest --slow``) tries many more examples. Every property asserts a clear error of the
``ValueError`` / ``FileNotFoundError`` family naming the file or argument, or a correct result.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "fast",
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "slow",
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def pytest_configure(config: pytest.Config) -> None:
    """Load the profile named by ``--slow``."""
    settings.load_profile("slow" if config.getoption("--slow") else "fast")
