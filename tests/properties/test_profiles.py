"""The property tests run under the profile that ``--slow`` selects."""

from __future__ import annotations

import pytest
from hypothesis import settings


def test_profile_follows_the_slow_option(request: pytest.FixtureRequest) -> None:
    expected = 300 if request.config.getoption("--slow") else 12
    assert settings().max_examples == expected
    assert settings().deadline is None
