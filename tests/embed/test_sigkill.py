"""A ``satmae embed`` run killed with SIGKILL resumes to the file of an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import rasterio

from satmae.data.synthetic import DemoConfig, write_demo_set
from satmae.embed.blocks import blocks_folder
from satmae.models import create_model, save_bundle


def _command(scene, bundle, out, *extra):
    return [sys.executable, "-m", "satmae", "embed", str(scene), "--model", str(bundle),
            "--out", str(out), "--window", "32", "--stride", "16", "--block-rows", "1",
            "--precision", "32", "--quiet", *extra]  # fmt: skip


@pytest.mark.slow
def test_sigkill_then_resume_gives_the_uninterrupted_map(tmp_path):
    scene = write_demo_set(tmp_path / "demo", DemoConfig(size=256, num_dates=2)).root
    bundle = save_bundle(create_model("satmae_tiny").encoder, tmp_path / "bundle")
    out = tmp_path / "killed.tif"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(_command(scene, bundle, out), env=env)
    folder = blocks_folder(out)
    deadline = time.monotonic() + 120
    while len(list(folder.glob("rows_*.npy"))) < 3:
        assert process.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "no block finished within two minutes"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not out.exists()  # never a partial map in the user's path
    finished = len(list(folder.glob("rows_*.npy")))
    total = 256 // 8  # one block per map row: 256 px at patch 8
    assert 3 <= finished < total

    resumed = subprocess.run(
        _command(scene, bundle, out, "--resume"), env=env, capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "discarding" not in resumed.stderr  # the finished blocks were kept
    subprocess.run(_command(scene, bundle, tmp_path / "whole.tif"), env=env, check=True)
    with rasterio.open(out) as resumed, rasterio.open(tmp_path / "whole.tif") as whole:
        np.testing.assert_array_equal(resumed.read(), whole.read())
        assert resumed.transform == whole.transform and resumed.crs == whole.crs
        assert resumed.tags()["weights_hash"] == whole.tags()["weights_hash"]
    assert not folder.exists()
