"""`edge-pose`: the command line. Each subcommand parses its flags and calls one module.

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


signal.signal(signal.SIGINT, _interrupted_while_loading)  # main() restores KeyboardInterrupt

import argparse  # noqa: E402 (after the Ctrl-C handler, on purpose)
import json  # noqa: E402
import logging  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from edge_pose import __version__  # noqa: E402
from edge_pose.argtypes import Parser, whole_number_at_least  # noqa: E402
from edge_pose.errors import EX_FAILURE, EX_OK, ConfigError, EdgePoseError  # noqa: E402

log = logging.getLogger("edge_pose")

Handler = Callable[[argparse.Namespace], int]


def _common_run_flags(parser: argparse.ArgumentParser) -> None:
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


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Config key paths set by flags (only those given)."""
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
    }
    return {key: value for key, value in pairs.items() if value is not None}


def _load(args: argparse.Namespace) -> Any:
    from edge_pose.config import load_config

    return load_config(args.config, _overrides(args))


def cmd_run(args: argparse.Namespace) -> int:
    from edge_pose.service.daemon import run

    cfg = _load(args)
    if args.annotate:
        from edge_pose.outputs import check_video_output, refuse_input_as_output

        check_video_output(args.annotate, "--annotate")
        camera = Path(cfg.camera.source.removeprefix("file:"))
        refuse_input_as_output(args.annotate, [camera], "--annotate")
    run(
        cfg,
        args.config,
        _overrides(args),
        printer=sys.stdout if args.print else None,
        max_frames=args.max_frames,
        annotate=args.annotate,
    )
    return EX_OK


def cmd_validate(args: argparse.Namespace) -> int:
    from edge_pose.config import config_path, file_problems, run_warnings, to_toml_dict

    cfg = _load(args)
    if problems := file_problems(cfg):
        raise ConfigError(problems)
    source = config_path(args.config)
    warnings = run_warnings(cfg)
    print_warnings(warnings)
    if args.json:
        print(
            json.dumps(
                {
                    "valid": True,
                    "file": str(source) if source else None,
                    "warnings": warnings,
                    "config": to_toml_dict(cfg),
                }
            )
        )
    else:
        print(
            f"config OK: {source or 'built-in defaults'} (device {cfg.device.id}, "
            f"camera {cfg.camera.source}, model {cfg.model.name})"
        )
    return EX_OK


def print_warnings(warnings: list[str]) -> None:
    """One ``edge-pose: warning:`` line each on stderr (what `run` on this machine refuses)."""
    for line in warnings:
        print(f"edge-pose: warning: {line}", file=sys.stderr)


def cmd_estimate(args: argparse.Namespace) -> int:
    from edge_pose.estimate import estimate_images

    return estimate_images(args)


def cmd_models(args: argparse.Namespace) -> int:
    """`models list | fetch | verify`: the catalog, downloads, checksums."""
    from edge_pose.inference import models

    # The folder `run` loads from: --dir, else the config's model.dir, else the default.
    model_cfg = _model_config(args.config)
    model_dir = args.dir or models.default_model_dir(model_cfg.dir)
    if args.models_command == "list":
        rows = [
            {
                "name": i.name,
                "input": i.input_size,
                "backend": i.backend,
                "installed": (model_dir / i.file).is_file(),
                "file": str(model_dir / i.file),
                "description": i.description,
            }
            for i in models.catalog().values()
        ]
        if args.json:
            print(json.dumps(rows))
        else:
            print(f"models in {model_dir}:")
            for r in rows:
                mark = "installed" if r["installed"] else "-"
                print(f"  {r['name']:<32} {r['input']}x{r['input']:<5} {r['backend']:<8} {mark}")
        return EX_OK
    if args.models_command == "fetch":
        names = list(models.catalog()) if args.all else (args.names or [_fetch_name(model_cfg)])
        paths = [str(models.fetch(name, model_dir)) for name in names]
        if args.json:
            print(json.dumps({"installed": paths}))
        return EX_OK
    results = models.verify(model_dir, args.names or None)
    if args.json:
        print(
            json.dumps(
                [
                    {"name": r.name, "path": str(r.path), "status": r.status, "detail": r.detail}
                    for r in results
                ]
            )
        )
    else:
        for r in results:
            print(f"{r.status:<9} {r.name:<32} {r.detail}")
    # Missing models only fail when asked for by name; a bad checksum always fails.
    bad = {"mismatch"} | ({"missing"} if args.names else set())
    return EX_FAILURE if any(r.status in bad for r in results) else EX_OK


def _model_config(path: Path | None) -> Any:
    """``[model]`` of ``--config``, else of the system config. A broken system config does not
    stop `models` (the package's postinst fetches with ``--dir`` before the config is fixed):
    the defaults stand in; a broken ``--config`` is reported."""
    from edge_pose.config import ModelConfig, load_config

    try:
        return load_config(path).model
    except ConfigError:
        if path is not None:
            raise
        return ModelConfig()


def _fetch_name(model_cfg: Any) -> str:
    """The configured model when it is a catalog name, else the default model."""
    name = model_cfg.name
    return name if not name.endswith(".tflite") else "movenet_lightning_int8"


def cmd_bench(args: argparse.Namespace) -> int:
    from edge_pose.bench import command

    return command(args)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="edge-pose",
        description="Pose estimation on the Raspberry Pi: camera -> MoveNet -> MQTT.",
    )
    parser.add_argument("--version", action="version", version=f"edge-pose {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser("run", help="run the pipeline in the foreground")
    _common_run_flags(run)
    run.add_argument(
        "--print", action="store_true",
        help="also write one JSON line per frame, and one per event, to stdout"
    )
    run.add_argument(
        "--max-frames",
        type=whole_number_at_least(1),
        metavar="N",
        help="stop after N processed frames",
    )
    run.add_argument(
        "--annotate",
        type=Path,
        metavar="OUT",
        help="also write a video (.mp4 or .avi) with the skeleton drawn on each frame",
    )
    run.set_defaults(handler=cmd_run)

    validate = sub.add_parser("validate", help="check a config file and the flags on top of it")
    _common_run_flags(validate)
    validate.add_argument("--json", action="store_true")
    validate.set_defaults(handler=cmd_validate)

    estimate = sub.add_parser("estimate", help="estimate the pose in still images")
    estimate.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    estimate.add_argument("--config", type=Path, help="config file for model settings")
    estimate.add_argument("--model", metavar="NAME|PATH")
    estimate.add_argument("--threads", type=int, metavar="N")
    estimate.add_argument(
        "--fit",
        choices=("letterbox", "stretch"),
        default="letterbox",
        help="letterbox keeps the aspect ratio (default); stretch squeezes",
    )
    estimate.add_argument(
        "--refine",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="look again at a crop around the person found (default on)",
    )
    estimate.add_argument(
        "--annotate",
        type=Path,
        metavar="OUT",
        help="write the image with the skeleton drawn (a folder for several)",
    )
    estimate.add_argument("--json", action="store_true", help="JSON output")
    estimate.set_defaults(handler=cmd_estimate)

    models = sub.add_parser("models", help="list, fetch and verify models")
    models_sub = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    m_list = models_sub.add_parser("list", help="the model catalog and what is installed")
    m_fetch = models_sub.add_parser("fetch", help="download models (default: the configured one)")
    m_fetch.add_argument("names", nargs="*", metavar="NAME")
    m_fetch.add_argument("--all", action="store_true", help="every model in the catalog")
    m_verify = models_sub.add_parser("verify", help="check installed models against checksums")
    m_verify.add_argument("names", nargs="*", metavar="NAME")
    for p in (m_list, m_fetch, m_verify):
        p.add_argument(
            "--dir", type=Path, help="model directory (default: the config's model.dir, see README)"
        )
        p.add_argument(
            "--config", type=Path, help="config file (default /etc/edge-pose/config.toml)"
        )
        p.add_argument("--json", action="store_true")
    models.set_defaults(handler=cmd_models)

    bench = sub.add_parser("bench", help="measure throughput, latency and memory")
    bench.add_argument(
        "--camera",
        metavar="VIDEO",
        action="append",
        required=True,
        help="a video file to measure on (repeat with --smoothing)",
    )
    bench.add_argument(
        "--smoothing",
        action="store_true",
        help="measure keypoint jitter and lag, raw vs smoothed, instead",
    )
    bench.add_argument(
        "--frames",
        type=whole_number_at_least(20, 100_000),
        default=300,
        metavar="N",
        help="frames per measure (20 to 100000)",
    )
    bench.add_argument("--model", metavar="NAME|PATH")
    bench.add_argument("--threads", type=int, metavar="N")
    bench.add_argument("--backend", choices=("auto", "cpu", "edgetpu"))
    bench.add_argument("--config", type=Path)
    bench.add_argument("--json", action="store_true")
    bench.set_defaults(handler=cmd_bench)

    from edge_pose.classify.commands import add_classifier_parser
    from edge_pose.config_edit import add_config_parser
    from edge_pose.doctor import add_doctor_parser
    from edge_pose.service.status_command import add_status_parser
    from edge_pose.watch import add_watch_parser

    add_classifier_parser(sub)
    add_status_parser(sub)
    add_watch_parser(sub)
    add_doctor_parser(sub)
    add_config_parser(sub)
    return parser


# OpenCV's and FFmpeg's own log lines ("moov atom not found", "[ERROR:0@0.03] imread_...")
# would come on top of the one-line error that says what failed and how to fix it. Set before
# OpenCV is first imported; the environment overrides them for debugging (docs/service.md).
QUIET_LIBRARIES = {"OPENCV_LOG_LEVEL": "SILENT", "OPENCV_FFMPEG_LOGLEVEL": "-8"}


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; a Ctrl-C at any moment (numpy and OpenCV take a while to import) ends
    it with one line and exit 130, never a traceback."""
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        return _main(argv)
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return EX_INTERRUPTED


def _main(argv: Sequence[str] | None) -> int:
    for name, value in QUIET_LIBRARIES.items():
        os.environ.setdefault(name, value)
    args = build_parser().parse_args(argv)
    from edge_pose.service.logs import setup_logging

    setup_logging(args.verbose)
    try:
        return args.handler(args)
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
