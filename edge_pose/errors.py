"""Errors a user can act on.

Every error the CLI reports is one of these: its message is one line (per problem) that says
what is wrong, where, and how to fix it; ``exit_code`` is the documented process exit code.
Anything else escaping to the CLI is a bug and is reported as such.
"""

from __future__ import annotations

EX_OK = 0
EX_FAILURE = 1
EX_USAGE = 2
EX_NOT_RUNNING = 3
EX_CONFIG = 78  # sysexits.h EX_CONFIG: systemd's RestartPreventExitStatus=78 stops restart loops


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
