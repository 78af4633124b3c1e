"""``satmae prep``: the data_prep recipes from the installed package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from satmae.data.store.chipstore import ChipStore
from satmae.data.synthetic import DemoConfig, DemoSet, write_demo_set

SCRIPTS = Path(__file__).resolve().parents[2] / "data_prep"
RECIPES = ("s2-scenes", "fmow-sentinel", "ssl4eo-s12", "oscd-torchgeo")
# the Makefile's demo target
DEMO_OPTIONS = ("--size", "64", "--frames", "4", "--dates", "clearest", "--min-valid", "0.6")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoSet:
    return write_demo_set(tmp_path_factory.mktemp("prep") / "demo", DemoConfig(size=128))


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``satmae ARGS`` in this process: exit status, stdout, stderr."""
    from satmae.cli import main

    try:
        status = main(args)
    except SystemExit as exit_info:  # argparse exits from the parser
        status = int(exit_info.code or 0)
    out, err = capsys.readouterr()
    return status, out, err


def test_s2_scenes_writes_the_same_store_as_the_script(
    demo: DemoSet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    by_script = tmp_path / "script"
    script = [sys.executable, str(SCRIPTS / "s2_scenes_to_chips.py"), str(demo.root)]
    command = [*script, "--out", str(by_script), *DEMO_OPTIONS]
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 0, result.stderr
    by_command = tmp_path / "command"
    args = ["prep", "s2-scenes", str(demo.root), "--out", str(by_command), *DEMO_OPTIONS]
    status, out, _ = run_main(args, capsys)
    assert status == 0
    assert out.splitlines()[0] == result.stdout.splitlines()[0]  # the same summary
    script_store, command_store = ChipStore(by_script), ChipStore(by_command)
    assert len(command_store) == len(script_store) > 0
    assert [p.name for p in command_store.parts] == [p.name for p in script_store.parts]
    for index in range(len(script_store)):
        expected, chip = script_store.read(index), command_store.read(index)
        assert chip["bands"] == expected["bands"]
        for key in ("image", "times", "valid"):
            assert torch.equal(chip[key], expected[key]), key
    # a rerun skips the written part
    status, out, _ = run_main(args, capsys)
    assert status == 0 and "(1 already written)" in out


@pytest.mark.parametrize("recipe", RECIPES)
def test_every_recipe_has_help_with_an_example(
    recipe: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run_main(["prep", recipe, "--help"], capsys)
    assert status == 0
    assert out.startswith(f"usage: satmae prep {recipe} ")
    assert f"  satmae prep {recipe} " in out  # the example in the epilog
    assert "--workers" in out and "--scheduler" in out


def test_prep_help_lists_every_recipe(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run_main(["prep", "--help"], capsys)
    assert status == 0 and all(recipe in out for recipe in RECIPES)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["s2-scenes", "DEMO", "--out", "OUT", "--size", "0"], "--size"),
        (["s2-scenes", "DEMO", "--out", "OUT", "--frames", "two"], "--frames"),
        (["s2-scenes", "DEMO", "--out", "OUT", "--dates", "never"], "--dates"),
        (["s2-scenes", "DEMO", "--out", "OUT", "--bands", "B02", "B99"], "B99"),
        (["s2-scenes", "DEMO", "--out", "OUT", "--min-valid", "2"], "min_valid"),
        (["s2-scenes", "DEMO", "--out", "OUT", "--dates", "each", "--frames", "3"], "frames"),
        (["s2-scenes", "DEMO"], "--out"),
        (["s2-scenes", "DEMO", "--out", "OUT", "--frames", "99"], "cannot give 99 frames"),
        (["s2-scenes", "DEMO", "--out", "OUT", "--dates", "season", "--frames", "9"], "seasons"),
        (["fmow-sentinel", "DEMO", "--out", "OUT", "--limit", "-1"], "--limit"),
        (["ssl4eo-s12", "DEMO", "--out", "OUT"], "s2c"),
        (["ssl4eo-s12", "DEMO", "--out", "OUT", "--split", "s1"], "--split"),
        (["oscd-torchgeo", "DEMO", "--out", "OUT"], "dates.txt"),
        (["unknown-recipe"], "unknown-recipe"),
        ([], "RECIPE"),
    ],
)
def test_user_errors_give_one_line(
    demo: DemoSet,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    needle: str,
) -> None:
    paths = {"DEMO": str(demo.root), "OUT": str(tmp_path / "out")}
    status, _, err = run_main(["prep", *(paths.get(a, a) for a in args)], capsys)
    assert status == 2
    assert len(err.strip().splitlines()) == 1, err
    assert needle in err
    assert not (tmp_path / "out" / "parts").exists()  # refused before anything was written


def test_a_run_that_writes_no_chip_fails_and_says_why(
    demo: DemoSet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a demo scene has clouds and nodata on some dates: no 4-date window is wholly valid
    options = ("--size", "64", "--frames", "4", "--dates", "all", "--min-valid", "1.0")
    status, out, err = run_main(
        ["prep", "s2-scenes", str(demo.root), "--out", str(tmp_path / "store"), *options], capsys
    )
    assert "chips written: 0" in out
    assert status == 1 and "no chip was written" in err and "--min-valid" in err
