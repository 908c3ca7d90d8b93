"""`edge-pose`: the command line. Each subcommand is a module of edge_pose.commands (its flags
and what it runs); this one lists them, and for every command handles Ctrl-C, prints the
errors a user can act on, and returns the exit code.

Exit codes (documented in the README): 0 ok, 1 runtime failure, 2 usage, 3 not running
(`status`), 78 invalid configuration, 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import os
import signal
import sys

EX_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a command ended by Ctrl-C
INTERRUPTED = "edge-pose: interrupted"


def _interrupted_while_loading(_signum: int, _frame: object) -> None:
    """Ctrl-C while this module's imports run, before :func:`main` can catch it: a
    KeyboardInterrupt raised inside an import would print a long traceback instead."""
    os.write(2, f"{INTERRUPTED}\n".encode())
    os._exit(EX_INTERRUPTED)


signal.signal(signal.SIGINT, _interrupted_while_loading)  # main() raises KeyboardInterrupt

import argparse  # noqa: E402 (after the Ctrl-C handler, on purpose)
import importlib  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from types import FrameType  # noqa: E402
from typing import cast  # noqa: E402

from edge_pose import __version__  # noqa: E402
from edge_pose.argtypes import Parser  # noqa: E402
from edge_pose.commands import Command  # noqa: E402
from edge_pose.errors import EX_OK, EdgePoseError  # noqa: E402

# The subcommands, in the order of `edge-pose --help`: each is edge_pose/commands/<name>.py.
COMMANDS = (
    "run",
    "validate",
    "estimate",
    "models",
    "bench",
    "classifier",
    "status",
    "watch",
    "doctor",
    "config",
)


def command(name: str) -> Command:
    """The module of subcommand ``name``."""
    return cast(Command, importlib.import_module(f"edge_pose.commands.{name}"))


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="edge-pose",
        description="Pose estimation on the Raspberry Pi: camera -> MoveNet -> MQTT.",
    )
    parser.add_argument("--version", action="version", version=f"edge-pose {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        command(name).add_parser(subparsers)
    return parser


# OpenCV's and FFmpeg's own log lines ("moov atom not found", "[ERROR:0@0.03] imread_...")
# would come on top of the one-line error that says what failed and how to fix it. Set before
# OpenCV is first imported; the environment overrides them for debugging (docs/service.md).
QUIET_LIBRARIES = {"OPENCV_LOG_LEVEL": "SILENT", "OPENCV_FFMPEG_LOGLEVEL": "-8"}


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; a Ctrl-C at any moment (numpy and OpenCV take a while to import) ends
    it with one line and exit 130, never a traceback."""
    try:
        signal.signal(signal.SIGINT, _interrupt)
        return _main(argv)
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return EX_INTERRUPTED
    finally:  # a Ctrl-C while Python shuts down: the one line too, not "Exception ignored"
        signal.signal(signal.SIGINT, _interrupted_while_loading)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """Ctrl-C: a KeyboardInterrupt for :func:`main` to catch, except while a module is being
    imported (commands import their libraries when they start): raised there, a C extension's
    import turns it into an ImportError of its own (numpy's "PyCapsule_Import could not import
    module datetime") and pydantic's class building into a RuntimeError, so it ends the process
    at once with the one line instead."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            _interrupted_while_loading(signum, frame)
        frame = frame.f_back
    raise KeyboardInterrupt


def _main(argv: Sequence[str] | None) -> int:
    for name, value in QUIET_LIBRARIES.items():
        os.environ.setdefault(name, value)
    args = build_parser().parse_args(argv)
    from edge_pose.service.logs import setup_logging

    setup_logging(args.verbose)
    try:
        return command(args.command).run(args)
    except EdgePoseError as exc:
        from edge_pose.service.logs import stderr_is_journal

        prefix = "<3>" if stderr_is_journal() else ""  # journald: priority "err"
        for line in str(exc).splitlines():
            print(f"{prefix}edge-pose: error: {line}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        return EX_OK


if __name__ == "__main__":
    sys.exit(main())
