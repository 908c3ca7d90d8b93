"""Which edge-pose command a process runs, read from ``/proc/<pid>/cmdline``.

A pid from a status file or from systemd may have been reused by any process, so two places
ask what a pid runs: whether it is edge-pose at all (a status document counts only while its
writer is, :func:`is_edge_pose`) and whether it is the daemon, ``edge-pose run``, before
`config set --reload` sends it SIGHUP (``edge_pose_command(argv) == "run"``). Both read the
command line with :func:`read_command_line` and parse it with :func:`edge_pose_command`.

The forms recognised are how edge-pose is started: ``edge-pose CMD``, the console script run by
an interpreter ``python [opts] .../edge-pose CMD``, and ``python [opts] -m edge_pose.cli CMD``,
with ``-v``/``--verbose`` before ``CMD``. A command line is easy to fake (``exec -a``); whoever
must trust a process checks its owner too.
"""

from __future__ import annotations

import os
from pathlib import Path

MAX_COMMAND_LINE = 1 << 16  # bytes read of /proc/<pid>/cmdline


def read_command_line(pid: int) -> list[str]:
    """The argv of process ``pid`` (empty words dropped); OSError when /proc cannot tell."""
    raw = Path(f"/proc/{pid}/cmdline").read_bytes()[:MAX_COMMAND_LINE]
    return [word.decode(errors="replace") for word in raw.split(b"\0") if word]


def edge_pose_command(argv: list[str]) -> str:
    """The edge-pose subcommand an argv runs ("" = not edge-pose, or no subcommand)."""
    rest = _after_program(argv)
    while rest and rest[0] in ("-v", "--verbose"):
        rest = rest[1:]
    return rest[0] if rest else ""


def is_edge_pose(pid: int) -> bool:
    """Whether process ``pid`` runs an edge-pose command: a live pid alone may be any process
    that reused it."""
    try:
        return edge_pose_command(read_command_line(pid)) != ""
    except OSError:
        return False


def _after_program(argv: list[str]) -> list[str]:
    """The words after the edge-pose program in ``argv`` ([] when it runs no edge-pose)."""
    if argv and os.path.basename(argv[0]) == "edge-pose":
        return argv[1:]
    if not argv or not os.path.basename(argv[0]).startswith("python"):
        return []
    i = 1
    while i < len(argv) and argv[i].startswith("-"):
        if argv[i] == "-m":
            return argv[i + 2 :] if argv[i + 1 : i + 2] == ["edge_pose.cli"] else []
        if argv[i] == "-c":
            return []
        i += 2 if argv[i] in ("-W", "-X") else 1
    if i < len(argv) and os.path.basename(argv[i]) == "edge-pose":
        return argv[i + 1 :]
    return []
