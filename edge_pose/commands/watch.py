"""`edge-pose watch`: live poses, reps and fps of the devices on a broker (edge_pose.watch).

Broker, TLS and login come from the config file (``--config``, else /etc/edge-pose/config.toml
when present, else the defaults), with ``--host``, ``--port`` and ``--prefix`` on top.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edge_pose.commands import Subparsers

_DEVICE = re.compile(r"[A-Za-z0-9_-]{1,64}")


def add_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "watch",
        help="show live poses, reps and fps of the devices on a broker",
        description=(
            "Subscribe to the devices' MQTT topics and show one line per device, refreshed in "
            "place: status, pose, person, reps, fps, inference time, last event. Broker, TLS "
            "and login come from the config file; Ctrl-C stops."
        ),
    )
    parser.add_argument("--host", metavar="HOST", help="broker (default: mqtt.host)")
    parser.add_argument("--port", type=int, metavar="PORT", help="broker port (default: mqtt.port)")
    parser.add_argument(
        "--prefix", metavar="PREFIX", help="topic prefix (default: mqtt.topic_prefix)"
    )
    parser.add_argument(
        "--device",
        default="all",
        type=_device_arg,
        metavar="ID|all",
        help="one device id, or all devices (default)",
    )
    parser.add_argument(
        "--json", action="store_true", help="one JSON object per update on stdout, for piping"
    )
    parser.add_argument(
        "--config",
        type=Path,
        help="config file for broker, TLS and login (default /etc/edge-pose/config.toml)",
    )
    return parser


def _device_arg(value: str) -> str:
    if value != "all" and not _DEVICE.fullmatch(value):
        raise argparse.ArgumentTypeError(
            f"{value!r}: a device id is 1-64 letters, digits, '_' or '-' (or 'all')"
        )
    return value


def run(args: argparse.Namespace) -> int:
    """Runs until Ctrl-C."""
    from edge_pose.config import load_config, read_password
    from edge_pose.watch import watch_devices

    overrides = {
        key: value
        for key, value in (
            ("mqtt.host", args.host),
            ("mqtt.port", args.port),
            ("mqtt.topic_prefix", args.prefix),
        )
        if value is not None
    }
    settings = load_config(args.config, overrides).mqtt
    device = None if args.device == "all" else args.device
    return watch_devices(settings, read_password(settings), device, args.json)
