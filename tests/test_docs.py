"""The docs and README stay true to the command line."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from satmae.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]


def _subcommands(
    parser: argparse.ArgumentParser | None = None, prefix: str = ""
) -> dict[str, argparse.ArgumentParser]:
    """Subcommand name -> parser; with ``prefix`` nested ones too (``prep s2-scenes``)."""
    parser = parser or build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {prefix + name: subparser for name, subparser in action.choices.items()}


def _all_subcommands() -> dict[str, argparse.ArgumentParser]:
    found = _subcommands()
    for name, subparser in list(found.items()):
        if any(isinstance(a, argparse._SubParsersAction) for a in subparser._actions):
            found |= _subcommands(subparser, f"{name} ")
    return found


def test_cli_reference_documents_every_command_and_option() -> None:
    reference = (ROOT / "docs" / "cli.md").read_text()
    assert "prep s2-scenes" in _all_subcommands()
    for name, subparser in _all_subcommands().items():
        assert f"`satmae {name}`" in reference, f"docs/cli.md lacks a section for {name}"
        for action in subparser._actions:
            for option in action.option_strings:
                if option in ("-h", "--help"):
                    continue
                assert f"`{option}" in reference, f"docs/cli.md lacks {option} of satmae {name}"


def test_readme_lists_every_command_and_the_two_setup_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "## Quickstart" in readme
    assert "make demo" in readme and "make test" in readme
    for name in _subcommands():
        assert f"`satmae {name}" in readme, f"README.md does not mention satmae {name}"


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci


def test_readme_python_example_runs_on_the_demo_set(tmp_path: Path) -> None:
    from satmae.data.synthetic import DemoConfig, write_demo_set

    readme = (ROOT / "README.md").read_text()
    block = readme.split("```python\n", 1)[1].split("```", 1)[0]
    demo = write_demo_set(tmp_path / "demo_data", DemoConfig(size=160))
    namespace: dict[str, object] = {}
    exec(
        compile(block.replace('"demo_data"', repr(str(demo.root))), "README.md", "exec"), namespace
    )
    out: Any = namespace["out"]
    assert out.loss.isfinite() and out.loss > 0
    # One call from the reader's output to features equals normalising by hand.
    from satmae.data.stats import Normalize, load_stats

    model: Any = namespace["model"]
    series: Any = namespace["series"]
    by_hand = Normalize(load_stats("s2_l2a"))(series)
    expected = model.encoder.embed(by_hand["image"][None], by_hand["times"][None], series["bands"])
    torch.testing.assert_close(namespace["features"], expected, rtol=0, atol=0)
    assert out.weight.sum() > 0 and out.frame_losses.shape == (len(series["times"]),)
    # The loss is a weighted mean of the per-group (and per-frame) losses the example shows.
    assert out.group_losses.min() <= out.loss <= out.group_losses.max()
    assert out.frame_losses.min() <= out.loss <= out.frame_losses.max()
