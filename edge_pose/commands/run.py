"""`edge-pose run`: the pipeline in the foreground (what the service runs).

The flags that override the config (:func:`add_override_flags`, :func:`overrides`) are shared
with `validate`, which checks exactly what `run` would load.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_pose.argtypes import whole_number_at_least
from edge_pose.errors import EX_OK, UsageError

if TYPE_CHECKING:
    from edge_pose.commands import Subparsers


def add_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("run", help="run the pipeline in the foreground")
    add_override_flags(parser)
    parser.add_argument(
        "--print",
        action="store_true",
        help="also write one JSON line per frame, and one per event, to stdout",
    )
    parser.add_argument(
        "--max-frames",
        type=whole_number_at_least(1),
        metavar="N",
        help="stop after N processed frames",
    )
    parser.add_argument(
        "--annotate",
        type=Path,
        metavar="OUT",
        help="also write a video (.mp4 or .avi) with the skeleton drawn on each frame",
    )
    return parser


HTTP_PORT_ENV = "EDGE_POSE_HTTP_PORT"


def _env_port() -> int | None:
    """``$EDGE_POSE_HTTP_PORT`` as the web view's port: several runs on one machine (a test
    suite, a second camera) each take a free port without editing their configs."""
    value = os.environ.get(HTTP_PORT_ENV, "").strip()
    if not value:
        return None
    if not (value.isdecimal() and value.isascii() and int(value) <= 65535):
        raise UsageError(
            f"${HTTP_PORT_ENV} = {value[:40]!r}: not a port (0 to 65535, 0 = any free one); "
            f"fix it or unset it (unset {HTTP_PORT_ENV})"
        )
    return int(value)


def add_override_flags(parser: argparse.ArgumentParser) -> None:
    """Flags that override the config, shared by `run` and `validate`."""
    parser.add_argument(
        "--config", type=Path, help="config file (default /etc/edge-pose/config.toml)"
    )
    parser.add_argument(
        "--camera",
        metavar="SRC",
        help="picamera2[:N], v4l2:/dev/videoN, file:PATH or a video/image path",
    )
    parser.add_argument("--model", metavar="NAME|PATH", help="catalog name or .tflite path")
    parser.add_argument("--backend", choices=("auto", "cpu", "edgetpu"))
    parser.add_argument("--threads", type=int, metavar="N", help="CPU inference threads")
    parser.add_argument(
        "--device-id", metavar="ID", help="device id in MQTT topics (default host name)"
    )
    parser.add_argument("--mqtt-host", metavar="HOST")
    parser.add_argument("--mqtt-port", type=int, metavar="PORT")
    parser.add_argument("--no-mqtt", action="store_true", help="do not connect to a broker")
    parser.add_argument(
        "--http-port",
        type=int,
        metavar="PORT",
        help=f"web view port, 0 = any free one (default ${HTTP_PORT_ENV}, else the config)",
    )
    parser.add_argument("--no-http", action="store_true", help="no web view")
    parser.add_argument(
        "--realtime",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="file sources: pace at the file's frame rate (default from config)",
    )
    parser.add_argument(
        "--loop",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="file sources: start again at the end",
    )


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Config key paths set by the flags of :func:`add_override_flags` (only those given)."""
    pairs = {
        "camera.source": args.camera,
        "model.name": args.model,
        "model.backend": args.backend,
        "model.threads": args.threads,
        "device.id": args.device_id,
        "mqtt.host": args.mqtt_host,
        "mqtt.port": args.mqtt_port,
        "camera.realtime": args.realtime,
        "camera.loop": args.loop,
        "mqtt.enabled": False if args.no_mqtt else None,
        "http.port": args.http_port if args.http_port is not None else _env_port(),
        "http.enabled": False if args.no_http else None,
    }
    return {key: value for key, value in pairs.items() if value is not None}


def run(args: argparse.Namespace) -> int:
    from edge_pose.config import load_config
    from edge_pose.service.daemon import run as run_daemon

    flags = overrides(args)
    cfg = load_config(args.config, flags)
    if args.annotate:
        from edge_pose.camera.source import file_path
        from edge_pose.outputs import check_video_output, refuse_input_as_output

        check_video_output(args.annotate, "--annotate")
        footage = file_path(cfg.camera.source)  # None: a live camera, no input file to overwrite
        inputs = [] if footage is None else [Path(footage)]
        refuse_input_as_output(args.annotate, inputs, "--annotate")
    run_daemon(
        cfg,
        args.config,
        flags,
        printer=sys.stdout if args.print else None,
        max_frames=args.max_frames,
        annotate=args.annotate,
    )
    return EX_OK
