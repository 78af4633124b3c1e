"""``satmae evaluate`` end to end on fake datasets in torchgeo's layouts, and its errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from satmae.cli import main
from satmae.models import create_model, save_bundle
from tests.eval.fake_oscd import write_fake_oscd
from tests.eval.fakes import write_fake_bigearthnet_v1, write_fake_eurosat

TINY = ["--model", "satmae_tiny", "--random-init", "--quiet"]


@pytest.fixture(autouse=True)
def _one_thread():
    """One thread: these runs are tiny, and 2 shared cores oversubscribe easily."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def eurosat(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("eurosat")
    write_fake_eurosat(root, per_class=2)
    return root


@pytest.fixture(scope="module")
def oscd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("oscd")
    return write_fake_oscd(
        root,
        cities=("aguas", "bercy", "nantes", "paris", "pisa"),
        size=64,
        test_cities=("pisa",),
        test_labels=True,
    )


def _report(out: Path) -> dict:
    document = json.loads((out / "report.json").read_text())
    assert (out / "report.md").is_file()
    return document["results"][0]


@pytest.mark.parametrize("protocol", ["knn", "linear", "finetune"])
def test_every_classification_protocol_runs_through_the_command(
    eurosat, tmp_path, protocol, capsys
):
    out = tmp_path / protocol
    args = [
        "evaluate",
        "--benchmark",
        "eurosat",
        "--protocol",
        protocol,
        "--data-root",
        str(eurosat),
        "--out",
        str(out),
        "--date",
        "2020-06-01",
        "--epochs",
        "1",
        *TINY,
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    result = _report(out)
    assert result["protocol"] == protocol and result["benchmark"] == "eurosat"
    assert 0.0 <= result["metrics"]["top1"]["mean"] <= 1.0
    assert result["baselines"] and result["verdict"] in printed
    assert result["machine"]["cpu_capability"] and result["versions"]["torch"]
    assert result["model"]["random_init"] and result["model"]["weights_hash"]
    assert main(args) == 2  # an existing report is kept unless --overwrite
    assert "--overwrite" in capsys.readouterr().err


def test_bigearthnet_reports_multilabel_scores(tmp_path):
    root = tmp_path / "ben"
    write_fake_bigearthnet_v1(root, n=4)
    out = tmp_path / "out"
    args = [
        "evaluate",
        "--benchmark",
        "bigearthnet",
        "--protocol",
        "knn",
        "--data-root",
        str(root),
        "--out",
        str(out),
        "--date",
        "2017-06-13",
        *TINY,
    ]
    assert main(args) == 0
    metrics = _report(out)["metrics"]
    assert {"map_micro", "f1_micro", "f1_macro"} <= set(metrics)


@pytest.mark.parametrize("mode", ["siamese", "temporal"])
def test_oscd_change_detection_runs_with_baselines_and_figures(oscd, tmp_path, mode):
    out = tmp_path / mode
    args = [
        "evaluate",
        "--benchmark",
        "oscd",
        "--data-root",
        str(oscd),
        "--out",
        str(out),
        "--change-mode",
        mode,
        "--steps",
        "3",
        "--batch-size",
        "4",
        "--blocks",
        "-1",
        *TINY,
    ]
    assert main(args) == 0
    result = _report(out)
    assert result["protocol"] == f"{mode}-frozen"
    assert result["data"]["splits"]["test"] == ["pisa"]
    assert "pisa" not in result["data"]["splits"]["train"] + result["data"]["splits"]["val"]
    assert set(result["metrics"]) >= {
        "change_f1",
        "change_precision",
        "change_recall",
        "change_iou",
    }
    assert {"cva_zscore", "pixel_logreg"} <= set(result["baselines"])
    assert (out / result["figures"]["change_pisa"]).is_file()


def test_compare_prints_reports_side_by_side(eurosat, tmp_path, capsys):
    outs = []
    for protocol in ("knn", "linear"):
        out = tmp_path / protocol
        assert (
            main(
                [
                    "evaluate",
                    "--benchmark",
                    "eurosat",
                    "--protocol",
                    protocol,
                    "--data-root",
                    str(eurosat),
                    "--out",
                    str(out),
                    "--date",
                    "2020-06-01",
                    *TINY,
                ]
            )
            == 0
        )
        outs.append(str(out / "report.json"))
    capsys.readouterr()
    assert main(["evaluate", "--compare", *outs]) == 0
    table = capsys.readouterr().out
    assert "top1" in table and "knn" in table and "linear" in table


def test_user_errors_are_one_line_with_the_fix(eurosat, oscd, tmp_path, capsys):
    base = ["evaluate", "--out", str(tmp_path / "o"), *TINY]
    # A missing data root lists what is expected where.
    assert (
        main(
            [
                *base,
                "--benchmark",
                "eurosat",
                "--data-root",
                str(tmp_path / "none"),
                "--date",
                "2020-06-01",
            ]
        )
        == 2
    )
    assert "eurosat-train.txt" in capsys.readouterr().err
    # A temporal change mode needs a time encoding.
    still = create_model("satmae_tiny", normalization="s2_l1c", time_fields=(), max_frames=1)
    bundle = save_bundle(still, tmp_path / "still")
    assert (
        main(
            [
                "evaluate",
                "--benchmark",
                "oscd",
                "--data-root",
                str(oscd),
                "--out",
                str(tmp_path / "t"),
                "--model",
                str(bundle),
                "--change-mode",
                "temporal",
                "--quiet",
            ]
        )
        == 2
    )
    assert "no time encoding" in capsys.readouterr().err
    # A temporal model on an undated benchmark needs --date.
    assert main([*base, "--benchmark", "eurosat", "--data-root", str(eurosat)]) == 2
    assert "--date" in capsys.readouterr().err
    # Protocols belong to their benchmark kind; unknown benchmarks are refused.
    assert main([*base, "--benchmark", "oscd", "--protocol", "knn", "--data-root", str(oscd)]) == 2
    assert "frozen, finetune" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*base, "--benchmark", "imagenet", "--data-root", str(eurosat)])
    assert "invalid choice: 'imagenet'" in capsys.readouterr().err
    assert main(["evaluate", "--benchmark", "eurosat"]) == 2
    assert "--model" in capsys.readouterr().err


def test_oscd_runs_on_the_real_cities(real_data, tmp_path):
    out = tmp_path / "real"
    args = ["evaluate", "--benchmark", "oscd", "--data-root", str(real_data / "oscd"),
            "--out", str(out), "--train-cities", "bercy", "paris", "nantes", "--val-cities",
            "nantes", "--test-cities", "rennes", "--steps", "2", "--batch-size", "16",
            "--stride", "32", *TINY]  # fmt: skip
    assert main(args) == 0
    result = _report(out)
    assert result["data"]["splits"] == {"train": ["bercy", "paris"], "val": ["nantes"],
                                        "test": ["rennes"]}  # fmt: skip
    assert 0.0 <= result["metrics"]["change_f1"]["mean"] <= 1.0
    # Change-vector analysis finds some of rennes' real change with a training-city threshold.
    assert result["baselines"]["cva_zscore"]["metrics"]["change_f1"]["mean"] > 0.05
    assert (out / result["figures"]["change_rennes"]).is_file()


def test_a_report_that_exists_or_is_being_written_fails_before_any_work(tmp_path, capsys):
    out = tmp_path / "report"
    out.mkdir()
    (out / "report.json").write_text("{}")
    args = ["evaluate", "--benchmark", "eurosat", "--model", str(tmp_path / "no_such_model"),
            "--data-root", str(tmp_path / "no_data"), "--out", str(out), "--quiet"]  # fmt: skip
    assert main(args) == 2  # refused before the model or the data are looked at
    assert "report.json exists" in capsys.readouterr().err
    code = "from satmae.io import OutputLock; import sys, time\n"
    code += "OutputLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(60)"
    holder = subprocess.Popen([sys.executable, "-c", code, str(out / "report.json")],
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert main([*args, "--overwrite"]) != 0
        assert "being written" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()
