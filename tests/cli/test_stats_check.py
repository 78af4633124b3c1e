import json

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from satmae.bands import L1C_BANDS
from satmae.cli import main
from satmae.data.readers.layouts import read_oscd_city


def write_stack(path, image, names):
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=image.shape[2],
        height=image.shape[1],
        count=image.shape[0],
        dtype="uint16",
        crs="EPSG:4326",
        transform=from_origin(2.36, 48.87, 1e-4, 1e-4),
    ) as dst:
        dst.write(image.astype(np.uint16))
        for index, name in enumerate(names, start=1):
            dst.set_band_description(index, name)
    return path


def test_stats_command_writes_json(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for name in ("a.tif", "b.tif"):
        write_stack(tmp_path / name, rng.integers(1, 5000, (3, 16, 16)), ["B02", "B03", "B04"])
    out = tmp_path / "stats.json"
    assert main(["stats", str(tmp_path), "--out", str(out), "--quiet"]) == 0
    data = json.loads(out.read_text())
    assert data["format"] == "satmae-stats" and set(data["bands"]) == {"B02", "B03", "B04"}
    assert data["bands"]["B02"]["count"] == 512 and "2 samples" in data["provenance"]
    assert main(["stats", str(tmp_path), "--out", str(out)]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err


def test_check_reports_user_errors_in_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["check", str(tmp_path / "empty")]) == 2
    assert "satmae check: error: nothing to read in" in capsys.readouterr().err


@pytest.mark.real_data
def test_check_flags_a_band_swapped_copy(real_data, tmp_path, capsys):
    image = read_oscd_city(real_data / "oscd", "bercy")["image"][0].numpy()  # 13 bands at 10 m
    (tmp_path / "good").mkdir()
    good = write_stack(tmp_path / "good" / "bercy.tif", image, L1C_BANDS)
    assert main(["check", str(good), "--width", "200"]) == 0
    swapped = list(L1C_BANDS)
    swapped[7], swapped[8] = swapped[8], swapped[7]  # descriptions claim B8A where B08 is stored
    (tmp_path / "bad").mkdir()
    bad = write_stack(tmp_path / "bad" / "bercy.tif", image, swapped)
    capsys.readouterr()
    assert main(["check", str(bad), "--width", "200", "--json"]) == 1
    results = json.loads(capsys.readouterr().out)
    assert any(r["check"] == "B08/B8A order" and r["status"] == "error" for r in results)


def test_check_asks_a_temporal_model_for_dates(tmp_path, capsys):
    from satmae.models import create_model, save_bundle

    rng = np.random.default_rng(2)
    write_stack(tmp_path / "s2.tif", rng.integers(500, 3000, (3, 32, 32)), ["B02", "B03", "B04"])
    save_bundle(create_model("satmae_tiny"), tmp_path / "bundle")
    args = ["check", str(tmp_path / "s2.tif"), "--model", str(tmp_path / "bundle"), "--json"]
    assert main(args) == 1
    results = {r["check"]: r for r in json.loads(capsys.readouterr().out)}
    assert results["model times"]["status"] == "error"
    assert "no dates" in results["model times"]["detail"]


def test_stats_in_tiles_equal_stats_in_one_piece(tmp_path):
    rng = np.random.default_rng(2)
    write_stack(tmp_path / "scene.tif", rng.integers(1, 5000, (2, 30, 20)), ["B02", "B8A"])
    whole, tiled = tmp_path / "whole.json", tmp_path / "tiled.json"
    assert main(["stats", str(tmp_path / "scene.tif"), "--out", str(whole), "--quiet"]) == 0
    assert (
        main(["stats", str(tmp_path / "scene.tif"), "--out", str(tiled), "--quiet", "--tile", "7"])
        == 0
    )
    first, second = json.loads(whole.read_text())["bands"], json.loads(tiled.read_text())["bands"]
    assert first["B8A"]["count"] == second["B8A"]["count"] == 600
    assert first["B8A"]["mean"] == pytest.approx(second["B8A"]["mean"])
    assert first["B8A"]["percentiles"] == second["B8A"]["percentiles"]
