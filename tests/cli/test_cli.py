"""The ``satmae`` command: help, info and demo-data, run in-process and as a console script."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from satmae.cli import COMMAND_MODULES, build_parser, main


def test_help_lists_every_registered_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for module in COMMAND_MODULES:
        assert module.rsplit(".", 1)[1].replace("_", "-") in out


def test_info_reports_versions_and_compute(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    for package in ("torch", "torchgeo", "rasterio", "timm", "lightning", "kornia"):
        assert info["packages"][package] != "not installed"
    assert isinstance(info["cuda"]["available"], bool)
    assert info["cpu"]["threads"] >= 1
    assert main(["info"]) == 0
    assert "cpu bf16" in capsys.readouterr().out


def test_demo_data_writes_and_refuses_to_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demo"
    assert main(["demo-data", "--out", str(out), "--size", "64", "--dates", "4"]) == 0
    assert "wrote 4 dates" in capsys.readouterr().out
    assert len(list(out.glob("S2_L2A_????????.tif"))) == 4
    assert (out / "overview.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["demo-data", "--out", str(out), "--size", "64"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--overwrite" in err and len(err.splitlines()) == 1
    assert main(["demo-data", "--out", str(out), "--size", "64", "--overwrite"]) == 0


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--size", "12"], "--size"),
        (["--dates", "0"], "--dates"),
        (["--seed", "-3"], "--seed"),
        (["--size", "big"], "--size"),
        (["--dates", "2.5"], "--dates"),
    ],
)
def test_demo_data_invalid_options_give_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    try:
        status = main(["demo-data", "--out", str(tmp_path / "d"), *args])
    except SystemExit as exit_info:  # argparse type errors exit from the parser
        status = int(exit_info.code or 0)
    assert status == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert needle in err


def test_console_script_and_module_entry_points(tmp_path: Path) -> None:
    script = shutil.which("satmae", path=str(Path(sys.executable).parent))
    assert script is not None, "the satmae console script is not installed in this environment"
    result = subprocess.run([script, "--help"], capture_output=True, text=True, check=True)
    assert "demo-data" in result.stdout
    result = subprocess.run(
        [sys.executable, "-m", "satmae", "--version"], capture_output=True, text=True, check=True
    )
    assert result.stdout.startswith("satmae ")


def test_help_is_fast_because_commands_import_lazily() -> None:
    code = (
        "import sys; from satmae.cli import build_parser; build_parser(); "
        "print(' '.join(m for m in ('torch', 'rasterio', 'matplotlib') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_stats_help_states_the_default_percentiles() -> None:
    from satmae.data.stats import DEFAULT_PERCENTILES

    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    option = next(
        a for a in action.choices["stats"]._actions if "--percentiles" in a.option_strings
    )
    assert " ".join(f"{q:g}" for q in DEFAULT_PERCENTILES) in (option.help or "")


class _Refusing(torch.utils.data.Dataset[int]):
    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int) -> int:
        raise ValueError(f"chip store S: chip {index} has xxh3_64 1 but 2 was written")


def test_errors_from_dataloader_workers_are_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def run(args: argparse.Namespace) -> int:
        loader = torch.utils.data.DataLoader(
            _Refusing(), num_workers=1, multiprocessing_context="fork"
        )
        list(loader)
        return 0

    monkeypatch.setattr("satmae.cli.info.run", run)
    assert main(["info"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "satmae info: error: chip store S: chip 0 has xxh3_64 1 but 2 was written "
        "(in DataLoader worker process 0)\n"
    )
