"""`edge-pose doctor`: one screen that says what is wrong with this device's set-up, and the fix.

Why it is built this way:

- Each check stands alone and never raises: a check that crashes is reported as that check
  failing, so one broken part never hides the others.
- Nothing is opened that the service would hold: the Edge TPU is looked at through sysfs and its
  library (not opened), the Pi camera through ``Picamera2.global_camera_info()`` (lists, does not
  start). The MQTT check connects with its own client id (the service's would kick the running
  service off the broker), with the configured TLS and credentials, and a short timeout.
- Status ``fail`` is for what stops the service from working as configured (exit code 1);
  ``warn`` is for what works but should be fixed (a Coral that ``auto`` cannot use, throttling);
  ``info`` is context. Exit code 0 means nothing required is broken.
"""

from __future__ import annotations

import argparse
import grp
import json
import os
import platform
import pwd
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, assert_never

from edge_pose.argtypes import Parser, seconds_between
from edge_pose.camera.source import FileSource, PiCameraSource, V4l2Source, parse_source
from edge_pose.config import Config, config_path, load_config, read_password
from edge_pose.errors import EX_FAILURE, EX_OK, ConfigError, EdgePoseError
from edge_pose.inference import edgetpu

Status = Literal["ok", "warn", "fail", "info"]
SERVICE_USER = "edge-pose"
# SupplementaryGroups= of deploy/edge-pose.service, and what each one opens.
SERVICE_GROUPS = {
    "video": "the camera (/dev/video*, /dev/media*, /dev/dma_heap) and vcgencmd",
    "plugdev": "the Coral USB Accelerator (deploy/udev rules)",
    "apex": "the Coral M.2/PCIe module (/dev/apex_*)",
}
MIN_PYTHON = (3, 11)
HOT_C = 80.0  # the Pi starts soft throttling at 80 degrees C
DEFAULT_TIMEOUT_S = 3.0
_MARK = {"ok": "ok", "warn": "warn", "fail": "FAIL", "info": "--"}


@dataclass
class Check:
    """One line of the report; ``fix`` is shown for warn and fail."""

    name: str
    status: Status
    summary: str
    fix: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Context:
    """What the checks share: the config (None when invalid) and the Edge TPU look-up."""

    cfg: Config | None
    config_file: Path | None
    config_problems: list[str]
    timeout: float
    who: edgetpu.Identity
    who_note: str
    tpu_settings: edgetpu.Settings
    tpu: edgetpu.Diagnosis | None = None

    @property
    def backend(self) -> str:
        return self.cfg.model.backend if self.cfg is not None else "auto"

    def diagnose(self, runtime: Any) -> edgetpu.Diagnosis:
        """The Edge TPU look-up, done once and shared by the checks that need it."""
        if self.tpu is None:
            self.tpu = edgetpu.diagnose(self.tpu_settings, runtime, who=self.who)
        return self.tpu

    def tpu_devices(self) -> list[edgetpu.Device]:
        return edgetpu.find_devices(self.tpu_settings.sysfs_root)


# --------------------------------------------------------------------------- running


def run_checks(config: Path | None, timeout: float = DEFAULT_TIMEOUT_S) -> list[Check]:
    """Every check, in the order a user would fix things."""
    file = config_path(config)
    try:
        cfg: Config | None = load_config(config)
        problems: list[str] = []
    except ConfigError as exc:
        cfg, problems = None, exc.problems
    who, note = _service_identity()
    settings = edgetpu.Settings.from_config(cfg.model if cfg is not None else None)
    return run_context(Context(cfg, file, problems, timeout, who, note, settings))


def run_context(ctx: Context) -> list[Check]:
    """The checks for an assembled context (tests give it a fixture sysfs tree)."""
    checks: list[Check] = []
    for check in (
        _python,
        _os,
        _runtime,
        _numpy,
        _config,
        _models,
        _classifier,
        _camera,
        _edgetpu,
        _groups,
        _mqtt,
        _system,
        _service,
    ):
        try:
            result = check(ctx)
        except Exception as exc:  # a doctor that crashes helps nobody: report it, go on
            name = check.__name__.lstrip("_")
            result = Check(
                name,
                "fail",
                f"the check itself failed: {type(exc).__name__}: {exc}",
                "report this as a bug in edge-pose",
            )
        checks.extend(result if isinstance(result, list) else [result])
    return checks


def exit_code(checks: Sequence[Check]) -> int:
    return EX_FAILURE if any(c.status == "fail" for c in checks) else EX_OK


def format_text(checks: Sequence[Check], config_file: Path | None) -> str:
    lines = [f"edge-pose doctor (config: {config_file or 'built-in defaults'})"]
    for c in checks:
        lines.append(f"{_MARK[c.status]:<5} {c.name:<14} {c.summary}")
        if c.fix and c.status in ("warn", "fail"):
            lines.append(f"{'':<5} {'':<14} fix: {c.fix}")
    failed = [c.name for c in checks if c.status == "fail"]
    warned = [c.name for c in checks if c.status == "warn"]
    if failed:
        lines.append(f"{len(failed)} required item(s) broken: {', '.join(failed)}")
    else:
        note = f" ({len(warned)} warning(s))" if warned else ""
        lines.append(f"nothing required is broken{note}")
    return "\n".join(lines)


def to_json(checks: Sequence[Check], config_file: Path | None) -> dict[str, Any]:
    return {
        "ok": exit_code(checks) == EX_OK,
        "config": str(config_file) if config_file else None,
        "failed": [c.name for c in checks if c.status == "fail"],
        "checks": [asdict(c) for c in checks],
    }


# --------------------------------------------------------------------------- platform


def _python(_ctx: Context) -> Check:
    version = platform.python_version()
    data = {"version": version, "executable": sys.executable}
    if sys.version_info[:2] < MIN_PYTHON:
        return Check(
            "python",
            "fail",
            f"Python {version}: edge-pose needs 3.11 or later",
            "use Raspberry Pi OS Bookworm (3.11) or Trixie (3.13)",
            data,
        )
    return Check("python", "ok", f"Python {version} ({sys.executable})", data=data)


def _os(_ctx: Context) -> Check:
    release = _os_release()
    machine = platform.machine()
    board = _read(Path("/proc/device-tree/model")).rstrip("\0")
    name = release.get("PRETTY_NAME", "unknown OS")
    data = {
        "pretty_name": name,
        "codename": release.get("VERSION_CODENAME", ""),
        "machine": machine,
        "board": board,
        "kernel": platform.release(),
    }
    text = ", ".join(p for p in (name, machine, board) if p)
    if machine in ("armv7l", "armv6l"):
        return Check(
            "os",
            "warn",
            f"{text}: a 32-bit OS",
            "install the 64-bit Raspberry Pi OS (LiteRT has no 32-bit ARM wheels)",
            data,
        )
    return Check("os", "ok", text, data=data)


def _runtime(_ctx: Context) -> Check:
    from edge_pose.inference.runtime import resolve_runtime

    try:
        runtime = resolve_runtime()
    except EdgePoseError as exc:
        return Check("runtime", "fail", str(exc), "pip install ai-edge-litert")
    data = {"name": runtime.name, "version": runtime.version}
    return Check("runtime", "ok", str(runtime), data=data)


def _numpy(_ctx: Context) -> Check:
    import numpy as np

    return Check("numpy", "ok", f"numpy {np.__version__}", data={"version": np.__version__})


# --------------------------------------------------------------------------- config and models


def _config(ctx: Context) -> Check:
    where = str(ctx.config_file or "built-in defaults")
    if ctx.cfg is None:
        return Check(
            "config",
            "fail",
            # the loader's lines already name the file, except for flags and defaults
            ctx.config_problems[0]
            if ctx.config_problems[0].startswith(where)
            else f"{where}: {ctx.config_problems[0]}",
            "fix the lines listed by `edge-pose validate`",
            {"file": where, "problems": ctx.config_problems},
        )
    return Check("config", "ok", f"{where} is valid", data={"file": where})


def _models(ctx: Context) -> list[Check]:
    if ctx.cfg is None:
        return [_skipped("model")]
    from edge_pose.inference.models import default_model_dir

    model_dir = default_model_dir(ctx.cfg.model.dir)
    backend = ctx.backend
    tpu_present = bool(ctx.tpu_devices())
    needs = {"cpu": [("cpu", True)], "edgetpu": [("edgetpu", True)]}.get(
        backend, [("cpu", True), ("edgetpu", False)] if tpu_present else [("cpu", True)]
    )
    return [_model_check(ctx.cfg.model.name, kind, required, model_dir) for kind, required in needs]


def _model_check(name: str, kind: str, required: bool, model_dir: Path) -> Check:
    from edge_pose.inference.backend import model_build
    from edge_pose.inference.models import catalog, fetch_command, verify

    label = "model" if kind == "cpu" else "model (tpu)"
    bad: Status = "fail" if required else "warn"
    models = catalog()
    info = models.get(name)
    target = (name if info.backend == kind else info.twin) if info is not None else ""
    if target:
        result = verify(model_dir, [target])[0]
        data = {"name": target, "path": str(result.path), "status": result.status}
        if result.status in ("ok", "unpinned"):
            return Check(label, "ok", f"{target}: {result.detail}", data=data)
        fix = fetch_command(target, model_dir)
        return Check(label, bad, f"{target} at {result.path}: {result.detail}", fix, data)
    try:
        build, path = model_build(kind, name, model_dir)
    except EdgePoseError as exc:
        return Check(label, bad, str(exc), "see docs/coral.md, models", {"name": name})
    return Check(label, "ok", f"{build} ({path})", data={"name": build, "path": str(path)})


# --------------------------------------------------------------------------- camera


def _classifier(ctx: Context) -> Check:
    """The configured pose classifier loads (a trained file exists and is readable)."""
    if ctx.cfg is None:
        return Check("classifier", "info", "not checked: the config is invalid")
    kind = ctx.cfg.classifier.type
    if kind in ("none", "rules"):
        what = "no pose labels" if kind == "none" else "the built-in pose rules"
        return Check("classifier", "ok", f"{kind}: {what}", data={"type": kind})
    from edge_pose.classify import load_trained_classifier

    data = {"type": kind, "path": ctx.cfg.classifier.path}
    try:
        classifier = load_trained_classifier(ctx.cfg.classifier)
    except EdgePoseError as exc:
        return Check(
            "classifier",
            "fail",
            str(exc).splitlines()[0],
            "set classifier.path to a trained classifier (edge-pose classifier train) "
            "or classifier.type = \"rules\"",
            data,
        )
    labels = ", ".join(classifier.labels)
    summary = f"{kind} {ctx.cfg.classifier.path}: {labels}"
    from edge_pose.classify.events import unreachable_reps

    if (reason := unreachable_reps(ctx.cfg.classifier, classifier.labels)) is not None:
        return Check("classifier", "warn", f"{summary}; reps never count", reason, data)
    return Check("classifier", "ok", summary, data=data)


def _camera(ctx: Context) -> Check:
    videos = sorted(str(p) for p in Path("/dev").glob("video*"))
    if ctx.cfg is None:
        return _skipped("camera")
    source = ctx.cfg.camera.source
    data: dict[str, Any] = {"source": source, "video_devices": videos}
    match parse_source(source):  # a valid config's source: within the grammar
        case PiCameraSource(index=index):
            return _picamera(source, index, data)
        case V4l2Source(device=node):
            return _v4l2(node, videos, ctx.who, data)
        case FileSource(path=path):
            return _file_camera(path, data)
        case unknown:
            assert_never(unknown)


def _picamera(source: str, index: int, data: dict[str, Any]) -> Check:
    from edge_pose.camera.picam import PICAMERA2_MISSING

    try:
        from picamera2 import Picamera2  # type: ignore[import-not-found]
    except ImportError:
        return Check("camera", "fail", "picamera2 is not importable", PICAMERA2_MISSING, data)
    cameras = [dict(c) for c in Picamera2.global_camera_info()]
    data["cameras"] = [{k: str(v) for k, v in c.items()} for c in cameras]
    found = ", ".join(f"{i}: {c.get('Model', '?')}" for i, c in enumerate(cameras)) or "none"
    if index >= len(cameras):
        return Check(
            "camera",
            "fail",
            f"{source}: no such camera (found: {found})",
            "check the ribbon cable and `rpicam-hello --list-cameras`",
            data,
        )
    return Check(
        "camera", "ok", f"{source}: {cameras[index].get('Model', '?')} (found: {found})", data=data
    )


def _v4l2(node: str, videos: list[str], who: edgetpu.Identity, data: dict[str, Any]) -> Check:
    data["node"] = node
    if not os.path.exists(node):
        found = ", ".join(videos) or "none"
        return Check(
            "camera",
            "fail",
            f"{node} does not exist (video devices: {found})",
            "plug the webcam in, or set camera.source to one of the video devices",
            data,
        )
    allowed, why = edgetpu.access(node, who)
    if not allowed:
        return Check("camera", "fail", why, f"add {who.name} to the video group", data)
    return Check("camera", "ok", f"{node} ({why})", data=data)


def _file_camera(path: str, data: dict[str, Any]) -> Check:
    from edge_pose.camera.file import open_file_camera

    try:
        camera = open_file_camera(path, realtime=False, loop=False)
    except EdgePoseError as exc:
        return Check("camera", "fail", str(exc), "set camera.source to an existing file", data)
    description = camera.description
    camera.close()
    return Check("camera", "ok", f"file source {description}", data=data)


# --------------------------------------------------------------------------- Edge TPU


def _edgetpu(ctx: Context) -> list[Check]:
    """Library, devices, access, versions. Required with backend edgetpu; with auto, a Coral
    that is present but unusable is a warning (auto runs on the CPU); otherwise context."""
    from edge_pose.inference.runtime import resolve_runtime

    try:
        runtime: Any = resolve_runtime()
    except EdgePoseError:
        runtime = None
    d = ctx.diagnose(runtime)
    backend = ctx.backend
    unbound = edgetpu.pci_without_driver(d.settings.sysfs_root)
    if backend == "edgetpu":
        bad: Status = "fail"
    elif backend == "auto" and (d.devices or unbound):
        bad = "warn"  # a Coral is there but auto cannot use it: it runs, on the CPU
    else:
        bad = "info"
    names = {
        "delegate library": "libedgetpu",
        "device": "edge tpu",
        "permission": "tpu access",
        "versions": "tpu versions",
    }
    checks = []
    for f in d.findings:
        status: Status = "ok" if f.ok else (bad if f.ok is False else "info")
        summary = f.detail
        if f.name == "device" and not d.devices and not unbound and backend != "edgetpu":
            looked = edgetpu.looked_for(d.settings)
            status, summary = "info", f"none found, so the CPU is used ({looked})"
        if f.name == "delegate library" and f.ok is False and status == "info":
            summary += " (only needed with a Coral)"
        checks.append(Check(names.get(f.name, f.name), status, summary, f.fix))
    checks[0].data = {
        "path": d.library.path,
        "package": d.library.package,
        "runtime_version": d.library.runtime_version,
        "looked_in": list(d.library.looked_in),
    }
    checks[1].data = {
        "devices": [asdict(dev) | {"name": dev.name} for dev in d.devices],
        "chosen": d.chosen.name if d.chosen else None,
        "requested": d.settings.device,
        "backend": backend,
        "pycoral": edgetpu.list_edge_tpus(),
    }
    checks[3].data = asdict(d.pairing)
    return checks


# --------------------------------------------------------------------------- users and groups


def _service_identity() -> tuple[edgetpu.Identity, str]:
    """The service user with the unit's SupplementaryGroups=, else whoever runs doctor."""
    try:
        user = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        me = edgetpu.Identity.current()
        return me, f"service user {SERVICE_USER} does not exist; checked as {me.name}"
    gids = {user.pw_gid}
    for group in grp.getgrall():
        if user.pw_name in group.gr_mem or group.gr_name in SERVICE_GROUPS:
            gids.add(group.gr_gid)
    return edgetpu.Identity(user.pw_name, user.pw_uid, frozenset(gids)), ""


def _groups(ctx: Context) -> Check:
    missing = []
    for name in SERVICE_GROUPS:
        try:
            grp.getgrnam(name)
        except KeyError:
            missing.append(name)
    data = {"user": ctx.who.name, "missing_groups": missing}
    if ctx.who_note:
        return Check(
            "service user",
            "warn" if missing else "info",
            ctx.who_note + (f"; groups missing: {', '.join(missing)}" if missing else ""),
            "sudo deploy/install.sh creates the user, the groups and the service",
            data,
        )
    if missing:
        uses = "; ".join(f"{g}: {SERVICE_GROUPS[g]}" for g in missing)
        return Check(
            "service user",
            "fail",
            f"group(s) {', '.join(missing)} do not exist, so systemd refuses to start "
            f"the unit ({uses})",
            f"sudo groupadd --system {' '.join(missing)}",
            data,
        )
    groups = ", ".join(SERVICE_GROUPS)
    return Check(
        "service user", "ok", f"{SERVICE_USER} with groups {groups} (from the unit)", data=data
    )


# --------------------------------------------------------------------------- MQTT


def _mqtt(ctx: Context) -> Check:
    if ctx.cfg is None:
        return _skipped("mqtt")
    from edge_pose.mqtt.client import CheckedConnection, Outcome, make_client

    m = ctx.cfg.mqtt
    broker = f"{m.host}:{m.port}"
    data = {"broker": broker, "tls": m.tls, "username": m.username}
    if not m.enabled:
        return Check("mqtt", "info", "disabled (mqtt.enabled = false)", data=data)
    try:
        password = read_password(m)
    except ConfigError as exc:
        return Check("mqtt", "fail", exc.problems[0], "fix mqtt.password_file", data)
    try:
        client = make_client(m, f"edge-pose-doctor-{os.getpid()}", password)
    except ConfigError as exc:
        return Check(
            "mqtt", "fail", exc.problems[0], "check mqtt.ca_file, certfile and keyfile", data
        )
    client.connect_timeout = ctx.timeout
    connection = CheckedConnection(client)
    try:
        answer = connection.open(m.host, m.port, keepalive=10, timeout=ctx.timeout)
    finally:
        connection.close()
    if answer.outcome is Outcome.UNREACHABLE:
        error = answer.error
        why = getattr(error, "strerror", None) or str(error) or type(error).__name__
        return Check(
            "mqtt",
            "fail",
            f"cannot connect to {broker}: {why}",
            "start the broker (sudo systemctl start mosquitto) or fix mqtt.host, "
            "mqtt.port and mqtt.tls",
            data,
        )
    if answer.outcome in (Outcome.SILENT, Outcome.CLOSED):
        return Check(
            "mqtt",
            "fail",
            f"{broker} took the connection but did not answer MQTT within {ctx.timeout:g} s",
            "check mqtt.port and whether it expects TLS (mqtt.tls)",
            data,
        )
    if answer.outcome is Outcome.REFUSED:
        return Check(
            "mqtt",
            "fail",
            f"{broker} refused the connection: {answer.reason}",
            "check mqtt.username and mqtt.password_file",
            data,
        )
    how = (" over TLS" if m.tls else "") + (f" as {m.username}" if m.username else "")
    return Check("mqtt", "ok", f"{broker} accepted a connection{how}", data=data)


# --------------------------------------------------------------------------- system


def _system(_ctx: Context) -> Check:
    from edge_pose.sysinfo import THROTTLED_NOW_MASK, cpu_temperature_c, decode_throttled, throttled

    temp = cpu_temperature_c()
    throttle = throttled()
    data: dict[str, Any] = {
        "cpu_temp_c": temp,
        "throttled": throttle[0] if throttle else None,
        "throttled_flags": throttle[1] if throttle else [],
    }
    parts = [f"CPU {temp:.1f} °C" if temp is not None else "CPU temperature not available"]
    now: list[str] = []
    if throttle is not None:
        value = int(throttle[0], 16)
        now = decode_throttled(value & THROTTLED_NOW_MASK)
        parts.append(
            f"throttled={throttle[0]}" + (f" ({', '.join(throttle[1])})" if throttle[1] else "")
        )
    summary = ", ".join(parts)
    if "under-voltage" in now:
        return Check(
            "system",
            "warn",
            summary,
            "use the official power supply (5 V 3 A for a Pi 4, 5 V 5 A for a Pi 5); "
            "a bus-powered Coral USB adds to the load",
            data,
        )
    if now or (temp is not None and temp >= HOT_C):
        return Check(
            "system", "warn", summary, "add a heatsink or fan; throttling slows inference", data
        )
    status: Status = "ok" if temp is not None or throttle is not None else "info"
    return Check("system", status, summary, data=data)


def _service(_ctx: Context) -> Check:
    from edge_pose.service.health import UNIT, systemd_state

    state = systemd_state()
    if state is None:
        return Check("service", "info", "systemd is not running here (no service to look at)")
    if state.get("load_state") == "not-found":
        return Check(
            "service",
            "info",
            f"{UNIT}.service is not installed (sudo deploy/install.sh)",
            data=state,
        )
    text = f"{UNIT}.service {state.get('active_state')} ({state.get('sub_state')})"
    if state.get("active_state") == "failed":
        return Check(
            "service",
            "warn",
            f"{text}, result {state.get('result')}",
            f"journalctl -u {UNIT} -n 50 says why",
            state,
        )
    return Check(
        "service", "ok" if state.get("active_state") == "active" else "info", text, data=state
    )


# --------------------------------------------------------------------------- helpers


def _skipped(name: str) -> Check:
    return Check(name, "info", "not checked: the config is invalid")


def _os_release() -> dict[str, str]:
    values = {}
    for line in _read(Path("/etc/os-release")).splitlines():
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip().strip('"')
    return values


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""


# --------------------------------------------------------------------------- command line


def _add_arguments(parser: argparse.ArgumentParser) -> None:
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
    parser.set_defaults(handler=doctor_command)


def add_doctor_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add `doctor` to the `edge-pose` subcommands; its handler is :func:`doctor_command`."""
    parser = subparsers.add_parser(
        "doctor",
        help="check the set-up: runtime, Edge TPU, camera, config, models, MQTT (exit 1 if broken)",
        description="Check everything edge-pose needs on this device and say how to fix what "
        "is broken. Exit code 0 when nothing required is broken, 1 otherwise.",
    )
    _add_arguments(parser)
    return parser


def doctor_command(args: argparse.Namespace) -> int:
    checks = run_checks(args.config, args.timeout)
    file = config_path(args.config)
    if args.json:
        print(json.dumps(to_json(checks, file), default=str))
    else:
        print(format_text(checks, file))
    return exit_code(checks)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m edge_pose.doctor`` (the same as ``edge-pose doctor``)."""
    parser = Parser(prog="edge-pose doctor")
    _add_arguments(parser)
    args = parser.parse_args(argv)
    return doctor_command(args)


if __name__ == "__main__":
    sys.exit(main())
