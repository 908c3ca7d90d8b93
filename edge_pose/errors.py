"""Errors a user can act on.

Every error the CLI reports is one of these: its message is one line (per problem) that says
what is wrong, where, and how to fix it; ``exit_code`` is the documented process exit code.
Anything else escaping to the CLI is a bug and is reported as such.
"""

from __future__ import annotations

import re

EX_OK = 0
EX_FAILURE = 1
EX_USAGE = 2
EX_NOT_RUNNING = 3
EX_CONFIG = 78  # sysexits.h EX_CONFIG: systemd's RestartPreventExitStatus=78 stops restart loops


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(line: str) -> str:
    """``line`` with control characters escaped: a key, a value or an argument may hold a
    NUL, an escape sequence or a newline, which must not reach a terminal or a log line as
    they are."""
    return _CONTROL.sub(lambda c: ascii(c[0])[1:-1], line)


class EdgePoseError(Exception):
    """A failure with a message meant for the user."""

    exit_code = EX_FAILURE


class ConfigError(EdgePoseError):
    """Invalid configuration; ``problems`` holds one line per problem."""

    exit_code = EX_CONFIG

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


class ModelError(EdgePoseError):
    """A model file that is missing, corrupt, or not a single-pose MoveNet."""


class CameraError(EdgePoseError):
    """A camera source that cannot be opened or read."""


class UsageError(EdgePoseError):
    """Arguments that cannot work together (an output that is one of the inputs, ...)."""

    exit_code = EX_USAGE
