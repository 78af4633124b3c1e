"""Windows and date policies used to cut chips."""

from __future__ import annotations

import numpy as np
import pytest

from satmae.data.sample import to_epoch_seconds
from satmae.data.sampling import (
    grid_windows,
    random_windows,
    season_of,
    select_dates,
    valid_fraction,
)


def test_grid_and_random_windows_stay_inside() -> None:
    windows = grid_windows(40, 30, 16, stride=8)
    assert len(windows) == 4 * 2
    assert all(w.row_off + 16 <= 40 and w.col_off + 16 <= 30 for w in windows)
    picked = random_windows(40, 30, 16, 50, np.random.default_rng(0))
    assert len(picked) == 50 and all(0 <= w.row_off <= 24 and 0 <= w.col_off <= 14 for w in picked)
    with pytest.raises(ValueError, match="smaller than one 16x16 chip"):
        grid_windows(10, 30, 16)
    with pytest.raises(ValueError, match="positive"):
        grid_windows(40, 30, 16, stride=0)


def test_seasons_put_december_in_next_winter() -> None:
    assert season_of(to_epoch_seconds("2020-12-15")) == (2021, 0)
    assert season_of(to_epoch_seconds("2021-02-15")) == (2021, 0)
    assert season_of(to_epoch_seconds("2021-08-01")) == (2021, 2)


DAYS = ["2020-12-20", "2021-01-10", "2021-04-01", "2021-05-01", "2021-07-01", "2021-10-01"]
TIMES = [to_epoch_seconds(day) for day in DAYS]
CLEAR = [0.95, 0.99, 0.5, 0.97, 0.92, 0.98]


@pytest.mark.parametrize(
    ("policy", "count", "expected"),
    [
        ("all", 2, [0, 1]),
        ("clearest", 3, [1, 3, 5]),
        ("season", 4, [1, 3, 4, 5]),  # clearest per season, in time order
        ("season", 5, None),  # only four consecutive seasons exist
        ("clearest", 7, None),
    ],
)
def test_select_dates(policy, count, expected) -> None:
    assert select_dates(TIMES, CLEAR, policy, count, min_clear=0.9) == expected


def test_select_dates_errors() -> None:
    with pytest.raises(ValueError, match="unknown date policy"):
        select_dates(TIMES, CLEAR, "random", 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="differ in length"):
        select_dates(TIMES, CLEAR[:2], "all", 1)


def test_valid_fraction_per_frame() -> None:
    valid = np.zeros((2, 4, 4), bool)
    valid[1, :2] = True
    assert valid_fraction(valid).tolist() == [0.0, 0.5]
    with pytest.raises(ValueError, match=r"\(T, H, W\)"):
        valid_fraction(valid[0])
