"""Composites pick bands by name; the demo overview draws every date and the labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from satmae.data.synthetic import DemoConfig, write_demo_set
from satmae.viz import composite, demo_overview

BANDS = ("B02", "B03", "B04", "B08")


def test_composite_orders_channels_by_name_and_stretches() -> None:
    rng = np.random.default_rng(0)
    image = rng.uniform(100, 3000, size=(4, 8, 8)).astype(np.float32)
    rgb = composite(image, BANDS)
    assert rgb.shape == (8, 8, 3) and rgb.dtype == np.float32
    assert rgb.min() >= 0.0 and rgb.max() <= 1.0
    # red is B04 (position 2), whatever position it has in the file
    shuffled = composite(image[[2, 0, 3, 1]], ("B04", "B02", "B08", "B03"))
    np.testing.assert_allclose(rgb, shuffled)
    assert np.corrcoef(rgb[..., 0].ravel(), image[2].ravel())[0, 1] > 0.99


def test_composite_blackens_nodata_and_fits_the_stretch_to_valid_pixels() -> None:
    image = np.full((4, 4, 4), 1000.0, dtype=np.float32)
    image[:, 0, 0] = 0.0  # nodata
    image[:, 3, 3] = 9000.0  # a cloud
    valid = np.ones((4, 4), dtype=bool)
    valid[3, 3] = False
    rgb = composite(image, BANDS, valid=valid, percentiles=(0, 100))
    assert (rgb[0, 0] == 0).all()
    assert (rgb[3, 3] == 1).all()  # brighter than anything valid: clipped white


@pytest.mark.parametrize(
    ("image", "show", "message"),
    [
        (np.zeros((4, 4)), ("B04", "B03", "B02"), "shape"),
        (np.zeros((4, 4, 4)), ("B04", "B03"), "three bands"),
        (np.zeros((4, 4, 4)), ("B04", "B03", "B11"), "B11"),
    ],
)
def test_composite_errors(image: np.ndarray, show: tuple[str, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        composite(image, BANDS, show)


def test_demo_overview_draws_dates_and_labels(tmp_path: Path) -> None:
    demo = write_demo_set(tmp_path / "d", DemoConfig(size=64, num_dates=3))
    figure = demo_overview(demo.root)
    titles = [axis.get_title() for axis in figure.axes]
    for date in demo.dates:
        assert date.strftime("%Y-%m-%d") in titles
    assert "change" in titles
    assert sum(bool(axis.images) for axis in figure.axes) == 2 * 3 + 3
    out = tmp_path / "overview.png"
    figure.savefig(out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_overview_needs_a_demo_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"demo\.json"):
        demo_overview(tmp_path)
