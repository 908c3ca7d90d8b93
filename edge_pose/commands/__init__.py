"""The subcommands of `edge-pose`, one module each, all of one shape.

A command module has two functions: ``add_parser(subparsers) -> argparse.ArgumentParser``
registers the subcommand, its help text and flags; ``run(args) -> int`` turns the parsed flags
into calls of the feature it fronts and returns the exit code. ``edge_pose/cli.py`` lists the
modules by name (the order of ``edge-pose --help``), builds the parser from them and calls the
chosen ``run``; errors the user can act on (:class:`~edge_pose.errors.EdgePoseError`) are
printed there, once for every command.

Why it is built this way:

- Adding a subcommand is one new module here, its name in cli.py's list, and its docs.
- Every module is imported to build the parser, also for `edge-pose status`, which must stay
  cheap: only argparse, paths and ``edge_pose.argtypes`` are imported at the top of a command
  module; the feature (OpenCV, the model runtime, paho) is imported inside ``run``.
- The feature modules hold the logic (the watch screen, the config editor, the status text, the
  measurements) and know nothing of argparse.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from typing import TypeAlias

    from edge_pose.argtypes import Parser

    Subparsers: TypeAlias = argparse._SubParsersAction[Parser]


class Command(Protocol):
    """What cli.py needs of a command module."""

    def add_parser(self, subparsers: Subparsers) -> argparse.ArgumentParser: ...

    def run(self, args: argparse.Namespace) -> int: ...
