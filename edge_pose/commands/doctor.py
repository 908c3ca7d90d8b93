"""`edge-pose doctor`: the set-up checklist (edge_pose.doctor), as text or ``--json``.

Exit code 0 when nothing required is broken, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from edge_pose.argtypes import seconds_between
from edge_pose.doctor import DEFAULT_TIMEOUT_S

if TYPE_CHECKING:
    from edge_pose.commands import Subparsers


def add_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "doctor",
        help="check the set-up: runtime, Edge TPU, camera, config, models, MQTT (exit 1 if broken)",
        description="Check everything edge-pose needs on this device and say how to fix what "
        "is broken. Exit code 0 when nothing required is broken, 1 otherwise.",
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="config file (default /etc/edge-pose/config.toml)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--timeout",
        type=seconds_between(0.1, 300),
        default=DEFAULT_TIMEOUT_S,
        metavar="SECONDS",
        help=f"network checks give up after this (default {DEFAULT_TIMEOUT_S:g})",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    from edge_pose.config import config_path
    from edge_pose.doctor import exit_code, format_text, run_checks, to_json

    checks = run_checks(args.config, args.timeout)
    file = config_path(args.config)
    if args.json:
        print(json.dumps(to_json(checks, file), default=str))
    else:
        print(format_text(checks, file))
    return exit_code(checks)
