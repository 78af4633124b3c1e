"""``argparse`` types shared by the subcommands: numbers refused at parse time, with the value.

Only ``argparse`` is imported here, so that ``satmae --help`` stays fast.
"""

from __future__ import annotations

import argparse


def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def positive_int(text: str) -> int:
    """An ``argparse`` type: a whole number of at least 1."""
    value = _whole_number(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text}")
    return value


def non_negative_int(text: str) -> int:
    """An ``argparse`` type: a whole number of at least 0 (the option says what 0 means)."""
    value = _whole_number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 0, got {text}")
    return value
