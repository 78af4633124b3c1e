"""`satmae.data` exports its public names lazily: importing it loads no raster library."""

import subprocess
import sys
from pathlib import Path

import satmae.data


def test_every_exported_name_resolves():
    for name in satmae.data.__all__:
        assert getattr(satmae.data, name) is not None, name


def test_importing_the_package_stays_light():
    code = (
        "import sys, satmae.data; "
        "print(sorted(m for m in ('rasterio', 'xarray', 'torchgeo') if m in sys.modules))"
    )
    command = [sys.executable, "-c", code]
    # run from the repository root, so that this checkout's satmae is the one imported
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(command, capture_output=True, text=True, check=True, cwd=root)
    assert result.stdout.strip() == "[]"
