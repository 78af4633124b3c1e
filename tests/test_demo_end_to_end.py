"""The demo set read back through the readers, checked, normalised and fed to a model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.windows import Window

import satmae
from satmae.bands import L2A_BANDS
from satmae.cli import main
from satmae.data.readers.geotiff import GeoTiffReader, scl_companion
from satmae.data.readers.series import SeriesReader, read_series
from satmae.data.readers.sources import list_sources
from satmae.data.stats import Normalize, load_stats
from satmae.data.store.chipstore import ChipStore
from satmae.data.synthetic import DemoConfig, DemoSet, write_demo_set

SCL_INVALID_CODES = (0, 1, 3, 8, 9, 10)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoSet:
    return write_demo_set(tmp_path_factory.mktemp("e2e") / "demo", DemoConfig(seed=4, size=96))


def test_demo_folder_reads_as_one_series_with_times_and_scl_validity(demo: DemoSet) -> None:
    sample = read_series(demo.root)
    assert sample["bands"] == L2A_BANDS
    assert sample["image"].shape == (len(demo.dates), 12, 96, 96)
    assert sample["times"].tolist() == [int(d.timestamp()) for d in demo.dates]
    for t, (image_path, scl_path) in enumerate(zip(demo.images, demo.scl, strict=True)):
        with rasterio.open(image_path) as src:
            np.testing.assert_array_equal(sample["image"][t].numpy(), src.read().astype("float32"))
        with rasterio.open(scl_path) as src:
            expected = ~np.isin(src.read(1), SCL_INVALID_CODES)
        np.testing.assert_array_equal(sample["valid"][t].numpy(), expected)


def test_scl_companion_can_be_named_or_ignored(demo: DemoSet) -> None:
    assert scl_companion(demo.images[1]) == demo.scl[1]
    window = Window(0, 0, 96, 96)
    with GeoTiffReader(demo.images[1], scl=False) as reader:
        no_scl = reader.read(window)["valid"]
    with GeoTiffReader(demo.images[1], scl=demo.scl[1]) as reader:
        with_scl = reader.read(window)["valid"]
    assert with_scl.sum() < no_scl.sum()  # clouds and shadows are invalid only with the SCL
    assert not (with_scl & ~no_scl).any()


def test_class_layers_are_not_samples(demo: DemoSet) -> None:
    names = [source.name for source in list_sources(demo.root)]
    assert names == [path.name for path in demo.images]


def test_check_passes_on_the_demo_set(demo: DemoSet, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(demo.root), "--errors-only"]) == 0
    assert "0 error(s)" in capsys.readouterr().out


def test_windowed_series_feeds_the_model_by_band_name(demo: DemoSet) -> None:
    normalize = Normalize(load_stats("s2_l2a"))
    with SeriesReader(demo.root) as reader:
        sample = normalize(reader.read(Window(16, 16, 32, 32)))
    frames = 4  # satmae_tiny takes up to 4 frames
    model = satmae.create_model("satmae_tiny")

    def loss_of(order: list[int]) -> torch.Tensor:
        return model(
            sample["image"][None, :frames, order],
            sample["times"][None, :frames],
            bands=[sample["bands"][i] for i in order],
            valid=sample["valid"][None, :frames],
            generator=torch.Generator().manual_seed(0),
        )

    out = loss_of(list(range(len(sample["bands"]))))
    assert torch.isfinite(out.loss)
    # Matched by name: the channels in reverse file order, named so, give the same loss.
    reversed_loss = loss_of(list(range(len(sample["bands"])))[::-1]).loss.item()
    assert out.loss.item() == pytest.approx(reversed_loss, rel=1e-5)
    out.loss.backward()
    assert out.frame_losses.shape == (frames,)


def test_demo_series_becomes_a_chip_store(demo: DemoSet, tmp_path: Path) -> None:
    recipe = Path(__file__).resolve().parents[1] / "data_prep" / "s2_scenes_to_chips.py"
    store_path = tmp_path / "chips"
    options = ["--size", "32", "--frames", "3", "--dates", "clearest", "--min-valid", "0.6"]
    result = subprocess.run(
        [sys.executable, str(recipe), str(demo.root), "--out", str(store_path), *options],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    store = ChipStore(store_path)
    assert len(store) > 0
    demo_times = {int(date.timestamp()) for date in demo.dates}
    for index in range(len(store)):
        chip = store.read(index)
        assert chip["image"].shape == (3, 12, 32, 32)
        assert set(chip["times"].tolist()) <= demo_times
        assert chip["valid"].float().mean(dim=(1, 2)).min() >= 0.6


def test_series_of_different_lengths_batch_with_a_frame_mask(demo: DemoSet) -> None:
    from satmae.data.sample import collate_samples

    normalize = Normalize(load_stats("s2_l2a"))
    with SeriesReader(demo.root) as reader:
        full = normalize(reader.read(Window(0, 0, 32, 32)))

    def first(frames: int) -> dict[str, object]:
        return {**full, **{key: full[key][:frames] for key in ("image", "times", "valid")}}

    batch = collate_samples([first(4), first(2)])
    assert batch["image"].shape == (2, 4, 12, 32, 32)
    assert batch["frame_mask"].tolist() == [[True] * 4, [True, True, False, False]]
    assert not batch["valid"][1, 2:].any() and (batch["image"][1, 2:] == 0).all()
    model = satmae.create_model("satmae_tiny")

    def run(image: torch.Tensor) -> torch.Tensor:
        return model(
            image,
            batch["times"],
            bands=batch["bands"],
            valid=batch["valid"],
            frame_mask=batch["frame_mask"],
            generator=torch.Generator().manual_seed(0),
        )

    out = run(batch["image"])
    assert torch.isfinite(out.loss) and out.loss > 0
    assert not out.weight[1, 2:].any()  # padded frames are left out of the loss
    # ... and out of attention: whatever they hold, the loss does not change.
    garbage = batch["image"].clone()
    garbage[1, 2:] = 1e4
    assert run(garbage).loss.item() == pytest.approx(out.loss.item(), rel=1e-5)
    # padded frames are never predicted into the loss
    assert not out.weight[1, 2:].any()
