"""`edge-pose status`: the health of the running service, once or redrawn (``--watch``).

Exit codes: 0 healthy, 1 degraded, 3 not running. It never opens the camera or the model, and
neither does building its parser (edge_pose.service.status_report says how it stays cheap).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from edge_pose.argtypes import seconds_between

if TYPE_CHECKING:
    from edge_pose.commands import Subparsers


def add_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "status",
        help="health of the running service (exit 0 healthy, 1 degraded, 3 not running)",
        description="Show what the edge-pose daemon is doing, from its status file and systemd. "
        "Exit code: 0 healthy, 1 degraded, 3 not running. Never opens the camera or the model.",
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="config file, to find status.dir and status.min_fps "
        "(default /etc/edge-pose/config.toml)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--watch",
        nargs="?",
        const=2.0,
        default=None,
        type=seconds_between(0.1, 3600),
        metavar="SECONDS",
        help="redraw every SECONDS (default 2) until Ctrl-C",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    from edge_pose.service.status_report import report_status

    return report_status(args.config, as_json=args.json, interval=args.watch)
