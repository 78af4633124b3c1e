"""``satmae pretrain --config RECIPE.yaml [--section.key value ...]``: pretrain a SatMAE.

Everything after ``pretrain`` goes to LightningCLI (``model`` / ``data`` / ``trainer``
sections, ``--print_config``, ``--ckpt_path last``); see :mod:`satmae.train.cli`.
"""

from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    """Hand the remaining arguments to the Lightning command line."""
    from satmae.train.cli import run_pretrain

    return run_pretrain(args.passthrough_args)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``satmae pretrain`` (its own options are parsed by LightningCLI)."""
    parser = subparsers.add_parser(
        "pretrain",
        add_help=False,
        help="pretrain a SatMAE with Lightning from a YAML recipe (configs/pretrain/)",
        description="Pretrain a SatMAE: satmae pretrain --config configs/pretrain/demo.yaml "
        "[--model.x ...] [--data.x ...] [--trainer.x ...] [--ckpt_path last]; "
        "satmae pretrain --help lists every option.",
    )
    parser.set_defaults(func=run, passthrough=True)
