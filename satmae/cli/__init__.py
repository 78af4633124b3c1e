"""The ``satmae`` command: one entry point, one module per subcommand.

Each subcommand lives in ``satmae/cli/<name>.py`` and defines ``add_parser(subparsers)``
(which registers its arguments and sets ``func``) so that ``satmae --help`` lists exactly the
commands that are installed here. A command that sets ``passthrough=True`` receives its
arguments unparsed in ``args.passthrough_args`` (``satmae pretrain`` hands them to
LightningCLI).
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from collections.abc import Sequence
from typing import NoReturn

from satmae import __version__

COMMAND_MODULES: tuple[str, ...] = (
    "satmae.cli.info",
    "satmae.cli.demo_data",
    "satmae.cli.stats",
    "satmae.cli.check",
    "satmae.cli.pretrain",
    "satmae.cli.export",
    "satmae.cli.prep",
    "satmae.cli.embed",
    "satmae.cli.evaluate",
)
"""Subcommand modules, in the order ``satmae --help`` lists them."""


class CommandError(Exception):
    """A user error that the command reports as one line and exit status 2."""


class _OneLineErrorParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are a single line naming the fix."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every registered subcommand."""
    parser = _OneLineErrorParser(
        prog="satmae",
        description="Geospatial foundation models in the SatMAE family for Sentinel-2.",
    )
    parser.add_argument("--version", action="version", version=f"satmae {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).add_parser(subparsers)
    return parser


_WORKER_ERROR = re.compile(r"^Caught \w+ in (?P<where>[^\n]+?)\.\nOriginal Traceback", re.DOTALL)


def error_message(error: BaseException) -> str:
    """The one line a command prints for ``error``.

    An error raised in a DataLoader worker reaches this process re-raised by torch with the
    worker's whole traceback as its message; the line is then the original message, and where
    it was raised.
    """
    text = str(error)
    worker = _WORKER_ERROR.match(text)
    if worker is None:
        return text
    last = text.rstrip().splitlines()[-1]
    return f"{last.removeprefix(type(error).__name__ + ': ')} (in {worker['where']})"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``satmae`` command line; returns the process exit status."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if getattr(args, "passthrough", False):
        args.passthrough_args = unknown  # parsed by the command itself (e.g. LightningCLI)
    elif unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        status: int = args.func(args)
    except (CommandError, ValueError, OSError) as error:
        print(f"satmae {args.command}: error: {error_message(error)}", file=sys.stderr)
        return 2
    return status


if __name__ == "__main__":
    sys.exit(main())
