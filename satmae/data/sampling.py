"""Where and when to cut chips: random or grid windows, minimum valid fraction, date policies.

Windows are :class:`rasterio.windows.Window` objects on a scene's pixel grid, the form the
readers take. Date policies pick frames of a series from their acquisition times and their
fraction of clear (valid) pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from rasterio.windows import Window

DatePolicy = Literal["all", "clearest", "season"]


def grid_windows(height: int, width: int, size: int, stride: int | None = None) -> list[Window]:
    """Windows of ``size``x``size`` pixels on a regular grid inside an ``height``x``width`` scene.

    Args:
        height: scene height in pixels.
        width: scene width in pixels.
        size: chip side in pixels.
        stride: step between windows (default ``size``: no overlap).

    Raises:
        ValueError: if the scene is smaller than one chip or ``stride`` is not positive.
    """
    stride = size if stride is None else stride
    if stride < 1 or size < 1:
        raise ValueError(f"size and stride must be positive, got size={size}, stride={stride}")
    if height < size or width < size:
        raise ValueError(f"scene {height}x{width} is smaller than one {size}x{size} chip")
    return [
        Window(col, row, size, size)
        for row in range(0, height - size + 1, stride)
        for col in range(0, width - size + 1, stride)
    ]


def random_windows(
    height: int, width: int, size: int, count: int, rng: np.random.Generator
) -> list[Window]:
    """``count`` windows of ``size``x``size`` pixels at uniformly random positions.

    Raises:
        ValueError: if the scene is smaller than one chip.
    """
    if height < size or width < size:
        raise ValueError(f"scene {height}x{width} is smaller than one {size}x{size} chip")
    rows = rng.integers(0, height - size + 1, count)
    cols = rng.integers(0, width - size + 1, count)
    return [Window(int(col), int(row), size, size) for row, col in zip(rows, cols, strict=True)]


def valid_fraction(valid: NDArray[np.bool_] | NDArray[np.floating]) -> NDArray[np.float64]:
    """Fraction of valid pixels per frame of a ``(T, H, W)`` mask -> ``(T,)``."""
    if valid.ndim != 3:
        raise ValueError(f"expected valid of shape (T, H, W), got {valid.shape}")
    fraction: NDArray[np.float64] = np.asarray(valid, dtype=np.float64).mean(axis=(1, 2))
    return fraction


def season_of(seconds: int) -> tuple[int, int]:
    """``(year, season)`` of a time, seasons 0-3 being DJF, MAM, JJA and SON.

    December counts towards the next year's winter.
    """
    moment = datetime.fromtimestamp(int(seconds), tz=UTC)
    season = (moment.month % 12) // 3
    return (moment.year + (moment.month == 12), season)


def select_dates(
    times: Sequence[int] | NDArray[np.int64],
    clear: Sequence[float] | NDArray[np.floating],
    policy: DatePolicy,
    count: int,
    *,
    min_clear: float = 0.0,
) -> list[int] | None:
    """Pick frames of a series.

    Args:
        times: ``(T,)`` acquisition times, seconds since epoch.
        clear: ``(T,)`` fraction of valid pixels per frame.
        policy: ``"all"`` keeps the first ``count`` frames by time; ``"clearest"`` the ``count``
            clearest; ``"season"`` the clearest frame of each of ``count`` consecutive seasons
            (e.g. 4 for one date per season over a year), latest complete run first.
        count: frames wanted.
        min_clear: frames below this clear fraction are never chosen.

    Returns:
        Frame positions sorted by time, or None when the series cannot supply ``count`` frames
        (callers count it as a skip).

    Raises:
        ValueError: on an unknown policy or mismatched lengths.
    """
    times_np = np.asarray(times, dtype=np.int64)
    clear_np = np.asarray(clear, dtype=np.float64)
    if times_np.shape != clear_np.shape:
        raise ValueError(f"times {times_np.shape} and clear {clear_np.shape} differ in length")
    usable = [i for i in np.argsort(times_np, kind="stable") if clear_np[i] >= min_clear]
    if policy == "all":
        chosen = usable[:count]
    elif policy == "clearest":
        chosen = sorted(usable, key=lambda i: (-clear_np[i], times_np[i]))[:count]
    elif policy == "season":
        best: dict[tuple[int, int], int] = {}
        for i in usable:
            key = season_of(int(times_np[i]))
            if key not in best or clear_np[i] > clear_np[best[key]]:
                best[key] = i
        chosen = _latest_consecutive_seasons(best, count)
    else:
        raise ValueError(f"unknown date policy {policy!r}; use 'all', 'clearest' or 'season'")
    if len(chosen) < count:
        return None
    return sorted(chosen, key=lambda i: times_np[i])


def _latest_consecutive_seasons(best: dict[tuple[int, int], int], count: int) -> list[int]:
    ordinals = {year * 4 + season: index for (year, season), index in best.items()}
    for end in sorted(ordinals, reverse=True):
        run = [end - offset for offset in range(count)]
        if all(ordinal in ordinals for ordinal in run):
            return [ordinals[ordinal] for ordinal in run]
    return []
