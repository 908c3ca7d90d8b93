"""Argument types shared by the command-line parsers: bad values become usage errors (exit 2)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import NoReturn

from edge_pose.errors import printable


def whole_number_at_least(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse ``type`` for a whole number of at least ``minimum`` (and at most
    ``maximum``, when given)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {value}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum}, not {value}")
        return value

    return parse


def seconds_between(low: float, high: float) -> Callable[[str], float]:
    """An argparse ``type`` for a finite number of seconds from ``low`` to ``high``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
        if not (math.isfinite(value) and low <= value <= high):
            raise argparse.ArgumentTypeError(
                f"must be from {low:g} to {high:g} seconds, not {text}"
            )
        return value

    return parse


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, like every other edge-pose error.

    argparse prints the whole usage block before the message; here the message says what is
    wrong and where the usage is (``--help``). Sub-command parsers are of this class too.
    """

    def error(self, message: str) -> NoReturn:
        # argparse quotes what it did not recognise as typed: escaped, so an argument cannot
        # put a control sequence on the terminal.
        shown = printable(message)
        self.exit(2, f"{self.prog}: error: {shown} (see {self.prog} --help)\n")
