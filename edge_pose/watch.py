"""`edge-pose watch`: live poses, reps and fps of every device on a broker, from any machine.

It subscribes to ``<prefix>/<device>/{availability,pose,event,stats,state,keypoints}`` (one
device or ``+`` for all) and keeps one :class:`DeviceView` per device. On a terminal it draws one
line per device and redraws them in place; otherwise (a pipe, a file) it prints a line per
update, and ``--json`` prints one JSON object per update for jq and friends. Keypoints arrive up
to 30 times a second per device, so they update the view (presence, pose score) but print a
line only when the presence they show changes.

Broker, TLS and login come from the config file (``--config``, else /etc/edge-pose/config.toml
when present, else the defaults), with ``--host``, ``--port`` and ``--prefix`` on top. The client
id is random (``edge-pose-watch-<hex>``), so a watcher never takes a device's session.

Exit codes: 0 after Ctrl-C (or when the output pipe closes), 1 when the broker cannot be reached
or refuses the login, 78 for an invalid config.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import shutil
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from edge_pose.argtypes import Parser
from edge_pose.errors import EX_OK, EdgePoseError

if TYPE_CHECKING:  # paho is imported when watching starts: `edge-pose status` builds this parser
    import paho.mqtt.client as mqtt

SUFFIXES = ("availability", "pose", "event", "stats", "state", "keypoints")
QOS = {"keypoints": 0, "stats": 0}  # the rest: 1, as published
CONNECT_TIMEOUT_S = 10.0
REDRAW_INTERVAL_S = 0.2  # at most 5 redraws a second on a terminal
TICK_S = 1.0  # ...and at least one a second, so "3s ago" stays true
_DEVICE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_AUTH_REFUSED = {"Not authorized", "Bad user name or password"}


# --------------------------------------------------------------------------- the view


@dataclass
class DeviceView:
    """What is known about one device, from the messages seen so far."""

    device: str
    online: bool | None = None
    label: str | None = None
    confidence: float | None = None
    person: bool | None = None
    since: float | None = None
    reps: int | None = None
    exercise: str | None = None
    fps: float | None = None
    inference_ms: float | None = None
    backend: str | None = None
    model: str | None = None
    paused: bool | None = None
    score: float | None = None  # pose score of the last keypoints message
    last_event: dict[str, Any] | None = None
    updated: float = field(default_factory=time.time)
    _pose_seen: bool = False

    def apply(self, suffix: str, payload: bytes) -> bool:
        """Take one message; whether it is worth a line of output (see the module docstring)."""
        self.updated = time.time()
        if suffix == "availability":
            text = payload.decode("utf-8", "replace").strip()
            self.online = {"online": True, "offline": False}.get(text)
            return True
        data = _json_object(payload)
        if data is None:
            return False
        if suffix == "keypoints":
            self.score = _number(data.get("score"))
            if self._pose_seen or not isinstance(data.get("person"), bool):
                return False
            changed = data["person"] != self.person
            self.person = data["person"]  # no classifier: presence from the keypoints
            return changed
        if suffix == "pose":
            self._pose_seen = True
            self.label = _text(data.get("label"))
            self.confidence = _number(data.get("confidence"))
            self.person = data.get("person") if isinstance(data.get("person"), bool) else None
            self.since = _number(data.get("since"))
        elif suffix == "event":
            self.last_event = data
            if data.get("type") == "rep":
                self.reps = _integer(data.get("count"))
                self.exercise = _text(data.get("exercise")) or self.exercise
        elif suffix == "state":
            if isinstance(data.get("paused"), bool):
                self.paused = data["paused"]
            if "reps" in data:
                self.reps = _integer(data.get("reps"))
        elif suffix == "stats":
            self._apply_stats(data)
        return True

    def _apply_stats(self, data: dict[str, Any]) -> None:
        fps = data.get("fps")
        self.fps = _number(fps.get("processed") if isinstance(fps, dict) else fps)
        inference = data.get("inference_ms")
        self.inference_ms = _number(
            inference.get("p50") if isinstance(inference, dict) else inference
        )
        backend = data.get("backend")
        self.backend = _text(backend.get("kind") if isinstance(backend, dict) else backend)
        model = data.get("model")
        self.model = _text(model.get("name") if isinstance(model, dict) else model)
        reps = data.get("reps")
        if isinstance(reps, dict):
            self.reps = _integer(reps.get("count"))
            self.exercise = _text(reps.get("exercise")) or self.exercise
        if isinstance(data.get("paused"), bool):
            self.paused = data["paused"]
        if not self._pose_seen and isinstance(data.get("pose"), dict):
            pose = data["pose"]
            self.label = _text(pose.get("label"))
            self.person = pose.get("person") if isinstance(pose.get("person"), bool) else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "online": self.online,
            "label": self.label,
            "confidence": self.confidence,
            "person": self.person,
            "since": self.since,
            "reps": self.reps,
            "exercise": self.exercise,
            "fps": self.fps,
            "inference_ms": self.inference_ms,
            "backend": self.backend,
            "model": self.model,
            "paused": self.paused,
            "score": self.score,
            "last_event": self.last_event,
        }


def _json_object(payload: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    return value[:80] if isinstance(value, str) else None


class Watch:
    """The devices seen under ``prefix`` (all of them, or the one named ``device``)."""

    def __init__(self, prefix: str, device: str | None = None) -> None:
        self.prefix = prefix
        self.device = device
        self.views: dict[str, DeviceView] = {}

    def subscriptions(self) -> list[tuple[str, int]]:
        level = self.device or "+"
        return [(f"{self.prefix}/{level}/{suffix}", QOS.get(suffix, 1)) for suffix in SUFFIXES]

    def handle(self, topic: str, payload: bytes) -> tuple[DeviceView, str, bool] | None:
        """``(view, suffix, worth a line)`` for a message on one of our topics, else None."""
        head = f"{self.prefix}/"
        if not topic.startswith(head):
            return None
        device, _, suffix = topic[len(head) :].partition("/")
        if suffix not in SUFFIXES or not device or (self.device and device != self.device):
            return None
        view = self.views.get(device)
        if view is None:
            view = self.views[device] = DeviceView(device)
        return view, suffix, view.apply(suffix, payload)


# --------------------------------------------------------------------------- output


HEADER = (
    f"{'DEVICE':<16} {'STATUS':<8} {'POSE':<22} {'PERSON':<6} {'REPS':>5} {'FPS':>6} "
    f"{'INFER':>8}  LAST EVENT"
)


def format_line(view: DeviceView, now: float | None = None) -> str:
    """One line per device (HEADER gives the columns)."""
    now = time.time() if now is None else now
    status = {True: "online", False: "offline", None: "?"}[view.online]
    if view.online and view.paused:
        status = "paused"
    pose = "-"
    if view.label is not None:
        pose = view.label if view.confidence is None else f"{view.label} {view.confidence:.2f}"
    person = {True: "yes", False: "no", None: "-"}[view.person]
    reps = "-" if view.reps is None else str(view.reps)
    fps = "-" if view.fps is None else f"{view.fps:.1f}"
    infer = "-" if view.inference_ms is None else f"{view.inference_ms:.1f}ms"
    return (
        f"{view.device:<16} {status:<8} {pose:<22} {person:<6} {reps:>5} {fps:>6} {infer:>8}  "
        f"{describe_event(view.last_event, now)}"
    ).rstrip()


def describe_event(event: dict[str, Any] | None, now: float) -> str:
    if event is None:
        return "-"
    kind = _text(event.get("type")) or "?"
    if kind == "pose_change":
        text = f"{_text(event.get('previous')) or '?'} -> {_text(event.get('label')) or '?'}"
    elif kind == "rep":
        text = f"rep {_text(event.get('exercise')) or ''} #{event.get('count')}".replace("  ", " ")
    elif kind == "error":
        text = f"error: {_text(event.get('error')) or '?'}"
    else:
        text = kind
    ts = _number(event.get("ts"))
    if ts is not None:
        text += f" ({_age(now - ts)} ago)"
    return text


def _age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}min"
    return f"{seconds / 3600:.0f}h"


class Screen:
    """Redraws the table in place on a terminal (ANSI: cursor up, clear line)."""

    def __init__(self, out: TextIO, where: str) -> None:
        self.out = out
        self.where = where
        self.lines = 0
        self.notice = ""

    def draw(self, watch: Watch) -> None:
        width = max(40, shutil.get_terminal_size((120, 24)).columns - 1)
        now = time.time()
        rows = [HEADER, *(format_line(v, now) for _, v in sorted(watch.views.items()))]
        if not watch.views:
            rows.append(f"waiting for devices on {self.where} (Ctrl-C to stop)")
        if self.notice:
            rows.append(self.notice)
        text = "\x1b[F" * self.lines if self.lines else ""
        text += "".join(f"\x1b[2K{row[:width]}\n" for row in rows)
        if len(rows) < self.lines:  # a notice went away: clear what is left below
            text += "\x1b[2K\n" * (self.lines - len(rows)) + "\x1b[F" * (self.lines - len(rows))
        self.out.write(text)
        self.out.flush()
        self.lines = len(rows)


# --------------------------------------------------------------------------- broker


class Connection:
    """A paho client subscribed to the watch topics; messages go to ``inbox`` (main thread)."""

    def __init__(self, settings: Any, password: str | None, watch: Watch) -> None:
        self.settings = settings
        self.broker = f"{settings.host}:{settings.port}"
        self.inbox: queue.SimpleQueue[tuple[str, bytes] | str] = queue.SimpleQueue()
        self._subscriptions = watch.subscriptions()
        self._answered = threading.Event()
        self._refusal: str | None = None
        self.connected = False
        self._stopping = False
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        from edge_pose.mqtt import apply_credentials

        version = mqtt.MQTTv5 if settings.protocol == "5" else mqtt.MQTTv311
        self.v5 = version == mqtt.MQTTv5
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"edge-pose-watch-{uuid.uuid4().hex[:12]}",
            protocol=version,
            **({} if self.v5 else {"clean_session": True}),
        )
        apply_credentials(self.client, settings, password)
        self.client.reconnect_delay_set(1, 30)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    def start(self, timeout: float = CONNECT_TIMEOUT_S) -> None:
        """Connect and subscribe, or raise EdgePoseError saying why not (one line)."""
        s = self.settings
        try:
            self.client.connect(s.host, s.port, keepalive=30)
        except (OSError, ValueError) as exc:
            raise EdgePoseError(self._describe(exc)) from None
        self.client.loop_start()
        if not self._answered.wait(timeout):
            self.stop()
            raise EdgePoseError(f"no answer from the broker at {self.broker} within {timeout:g} s")
        if self._refusal is not None:
            self.stop()
            raise EdgePoseError(self._refusal)

    def stop(self) -> None:
        self._stopping = True
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            why = str(reason).lower()
            if str(reason) in _AUTH_REFUSED:
                why = f"not authorised ({why}): check mqtt.username and mqtt.password_file"
            self._refusal = f"the broker at {self.broker} refused the connection: {why}"
            client.disconnect()
            self._answered.set()
            return
        self.connected = True
        client.subscribe(self._subscriptions)
        if self._answered.is_set():
            self.inbox.put("")  # reconnected: clear the notice
        self._answered.set()

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, _reason: Any, _p: Any) -> None:
        if not self.connected and self._refusal is None and not self._answered.is_set():
            self._refusal = (
                f"the broker at {self.broker} closed the connection before accepting it "
                "(does it expect TLS? check mqtt.tls and the port)"
            )
            self._answered.set()
            return
        was_connected, self.connected = self.connected, False
        if was_connected and not self._stopping:
            self.inbox.put(f"connection to {self.broker} lost; reconnecting...")

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        self.inbox.put((message.topic, message.payload))

    def _describe(self, exc: BaseException) -> str:
        from edge_pose.mqtt import describe_connect_error

        why = describe_connect_error(exc, self.settings.host, self.broker)
        if isinstance(exc, ConnectionRefusedError):
            why += " (is the broker running? check --host/--port)"
        return why


# --------------------------------------------------------------------------- command


def load_settings(args: argparse.Namespace) -> tuple[Any, str | None]:
    """``(mqtt settings, password)`` from the config file and the flags on top of it."""
    from edge_pose.config import load_config, read_password

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
    return settings, read_password(settings)


def command(args: argparse.Namespace) -> int:
    """`edge-pose watch`: runs until Ctrl-C."""
    settings, password = load_settings(args)
    device = None if args.device == "all" else args.device
    watch = Watch(settings.topic_prefix, device)
    connection = Connection(settings, password, watch)
    try:
        connection.start()
    except KeyboardInterrupt:
        connection.stop()
        return EX_OK
    out = sys.stdout
    tty = not args.json and out.isatty()
    where = f"{connection.broker} ({settings.topic_prefix}/{device or '+'}/...)"
    screen = Screen(out, where) if tty else None
    try:
        if not tty:
            print(f"watching {where}", file=sys.stderr, flush=True)
        _loop(connection, watch, out, screen, args.json)
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:  # `edge-pose watch --json | head`: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())
    finally:
        connection.stop()
    return EX_OK


def _loop(
    connection: Connection, watch: Watch, out: TextIO, screen: Screen | None, as_json: bool
) -> None:
    dirty, last_draw = True, 0.0
    while True:
        try:
            item = connection.inbox.get(timeout=REDRAW_INTERVAL_S)
        except queue.Empty:
            item = None
        if isinstance(item, str):  # a notice about the connection
            if screen is not None:
                screen.notice, dirty = item, True
            elif item:
                print(f"edge-pose: {item}", file=sys.stderr, flush=True)
        elif item is not None:
            handled = watch.handle(*item)
            if handled is not None:
                view, suffix, worth = handled
                dirty = dirty or worth or suffix == "keypoints"
                if screen is None and worth:
                    out.write(_update_line(view, suffix, item[1], as_json) + "\n")
                    out.flush()
        now = time.monotonic()
        if screen is not None and (
            (dirty and now - last_draw >= REDRAW_INTERVAL_S) or now - last_draw >= TICK_S
        ):
            screen.draw(watch)
            dirty, last_draw = False, now


def _update_line(view: DeviceView, suffix: str, payload: bytes, as_json: bool) -> str:
    if not as_json:
        return format_line(view)
    message: Any = _json_object(payload)
    if message is None:
        message = payload.decode("utf-8", "replace")[:200]
    if suffix == "keypoints":
        message = None  # 17 keypoints per line would drown the updates; the view has `person`
    return json.dumps(
        {"ts": round(time.time(), 3), "topic": suffix, **view.as_dict(), "message": message}
    )


def _device_arg(value: str) -> str:
    if value != "all" and not _DEVICE.fullmatch(value):
        raise argparse.ArgumentTypeError(
            f"{value!r}: a device id is 1-64 letters, digits, '_' or '-' (or 'all')"
        )
    return value


def add_watch_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `edge-pose watch` on the CLI's subparsers (cli.build_parser)."""
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
    parser.set_defaults(handler=command)
    return parser


def main(argv: list[str] | None = None) -> int:
    """``python -m edge_pose.watch ...``: the same command without the rest of the CLI."""
    parser = Parser(prog="edge-pose")
    add_watch_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["watch", *(sys.argv[1:] if argv is None else argv)])
    try:
        return args.handler(args)
    except EdgePoseError as exc:
        for line in str(exc).splitlines():
            print(f"edge-pose: error: {line}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
