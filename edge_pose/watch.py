"""`edge-pose watch`: live poses, reps and fps of every device on a broker, from any machine.

It subscribes to ``<prefix>/<device>/{availability,pose,event,stats,state,keypoints}`` (one
device or ``+`` for all) and keeps one :class:`DeviceView` per device. On a terminal it draws one
line per device and redraws them in place; otherwise (a pipe, a file) it prints a line per
update, and ``--json`` prints one JSON object per update for jq and friends. Keypoints arrive up
to 30 times a second per device, so they update the view (presence, pose score, the track ids
of the people seen) but print a line only when the presence they show, or the people seen by a
device that follows several, changes. With several people the PERSON column lists their track
ids (primary first) and the last event says whose it is (``#4 person_enter``).

Broker, TLS and login are the config's ``[mqtt]`` section with the command's flags on top
(edge_pose/commands/watch.py). The client id is random (``edge-pose-watch-<hex>``), so a watcher
never takes a device's session.

Whoever may publish under the prefix decides what arrives, so each message is handled on its own:
one that cannot be read (not JSON, not an object, over MAX_PAYLOAD, nested too deeply, from a
device beyond MAX_DEVICES) earns a note (at most one a second, on stderr or below the table) and
the watch goes on. Everything shown from a device is cut (MAX_TEXT, MAX_EVENT_TEXT, MAX_SHOWN) and
has its control, bidi and other format characters escaped (``\\x1b``), so a device cannot drive
the terminal; numbers that are not finite or absurdly large show as unknown, which also keeps
``--json`` strict JSON.

Exit codes: 0 after Ctrl-C (or when the output pipe closes), 1 when the broker cannot be reached
or refuses the login, 78 for an invalid config.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import queue
import shutil
import sys
import time
import unicodedata
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from edge_pose import wire
from edge_pose.errors import EX_OK, EdgePoseError

if TYPE_CHECKING:  # paho is imported when watching starts
    import paho.mqtt.client as mqtt

    from edge_pose.config import MqttConfig

SUFFIXES = (wire.AVAILABILITY, wire.POSE, wire.EVENT, wire.STATS, wire.STATE, wire.KEYPOINTS)
QOS = {wire.KEYPOINTS: 0, wire.STATS: 0}  # the rest: 1, as published
CONNECT_TIMEOUT_S = 10.0
REDRAW_INTERVAL_S = 0.2  # at most 5 redraws a second on a terminal
TICK_S = 1.0  # ...and at least one a second, so "3s ago" stays true
NOTE_INTERVAL_S = 1.0  # at most one note a second about unreadable messages

# Anyone allowed to publish under the prefix decides what arrives, so every message is bounded
# before it is read and again before anything of it is printed.
MAX_PAYLOAD = 64 * 1024  # a device's messages are a few KB; a bigger one is not read
MAX_WAITING = 2000  # messages received and not yet shown (at most MAX_PAYLOAD each)
MAX_TEXT = 64  # characters shown of a device id, label, event field...
MAX_EVENT_TEXT = 120  # characters shown of the last-event column
MAX_NUMBER = 1e15  # beyond any fps, count or timestamp: not a reading, shown as unknown
MAX_DEVICES = 256  # device ids shown; messages of more (a flood of made-up ids) get a note
MAX_IDS = 16  # track ids read from a keypoints message (a device sends at most 6 people)
MAX_SHOWN = 4000  # characters of a message (or last event) shown by --json
_SHOWN_DEPTH = 6  # nesting kept of a shown message (device messages are 3 deep)
_SHOWN_NODES = 200  # values kept of a shown message (a stats message has about 60)
# Characters a terminal may act on: C0, DEL and C1 controls (Cc), bidi overrides, zero-width and
# other format characters (Cf), lone surrogates (Cs, unencodable), line/paragraph separators.
_UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def clean(text: str, limit: int = MAX_TEXT) -> str:
    """``text`` from a device made safe to print: unprintable characters escaped (``\\x1b``,
    ``\\u202e``), so what was sent stays recognisable, and at most ``limit`` characters."""
    head = text[: limit + 1]
    if head.isascii() and head.isprintable():  # the usual case: nothing to escape
        return head if len(head) <= limit else head[: limit - 1] + "…"
    shown = "".join(_escape(ch) if unicodedata.category(ch) in _UNPRINTABLE else ch for ch in head)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def read_message(payload: bytes) -> dict[str, Any] | str:
    """The JSON object in ``payload``, or a short reason why there is none."""
    if len(payload) > MAX_PAYLOAD:
        return f"{len(payload)} bytes, more than the {MAX_PAYLOAD // 1024} KiB read"
    try:
        data = json.loads(payload)
    except RecursionError:
        return "JSON nested too deeply"
    except (UnicodeDecodeError, ValueError):  # ValueError: also ints of more than 4300 digits
        return "not JSON"
    return data if isinstance(data, dict) else f"JSON {type(data).__name__}, not an object"


def shown(message: Any) -> Any:
    """A copy of a parsed message that is safe and small to print as JSON: text cleaned, NaN,
    infinities and absurd numbers as null, nesting and size cut; too big as a whole, a note."""
    budget = [_SHOWN_NODES]
    copy = _shown(message, _SHOWN_DEPTH, budget)
    if budget[0] < 0 or len(json.dumps(copy)) > MAX_SHOWN:
        return "(too large to show)"
    return copy


def _shown(value: Any, depth: int, budget: list[int]) -> Any:
    budget[0] -= 1
    if budget[0] < 0:
        return None
    if isinstance(value, str):
        return clean(value, MAX_TEXT * 2)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return None if _number(value) is None else value
    if depth <= 0:
        return "…"
    if isinstance(value, dict):
        return {clean(str(k)): _shown(v, depth - 1, budget) for k, v in value.items()
                if budget[0] > 0}  # fmt: skip
    return [_shown(v, depth - 1, budget) for v in value if budget[0] > 0]


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
    people: int | None = None  # how many are present (the pose message)
    ids: tuple[int, ...] = ()  # the track ids of the last keypoints message, primary first
    several: bool = False  # the device has shown a person other than the one person, id 1
    last_event: dict[str, Any] | None = None
    updated: float = field(default_factory=time.time)
    _pose_seen: bool = False

    def apply(self, suffix: str, message: dict[str, Any] | str) -> bool:
        """Take one message (the text of an availability message, else the JSON object read);
        whether it is worth a line of output (see the module docstring)."""
        self.updated = time.time()
        if suffix == wire.AVAILABILITY:
            self.online = {wire.ONLINE: True, wire.OFFLINE: False}.get(str(message).strip())
            return True
        if not isinstance(message, dict):
            return False
        data = message
        if suffix == wire.KEYPOINTS:
            self.score = _number(data.get("score"))
            ids = _ids(data.get("people"))
            changed = ids != self.ids
            self.ids = ids
            self.several = self.several or len(ids) > 1 or ids not in ((), (1,))
            if self._pose_seen or not isinstance(data.get("person"), bool):
                return changed and self.several
            changed = (changed and self.several) or data["person"] != self.person
            self.person = data["person"]  # no classifier: presence from the keypoints
            return changed
        if suffix == wire.POSE:
            self._pose_seen = True
            self.label = _text(data.get("label"))
            self.confidence = _number(data.get("confidence"))
            self.person = data.get("person") if isinstance(data.get("person"), bool) else None
            self.since = _number(data.get("since"))
            self.people = _integer(data.get("people"))
        elif suffix == wire.EVENT:
            self.last_event = _event(data)
            if data.get("type") == "rep":
                self.reps = _integer(data.get("count"))
                self.exercise = _text(data.get("exercise")) or self.exercise
        elif suffix == wire.STATE:
            if isinstance(data.get("paused"), bool):
                self.paused = data["paused"]
            if "reps" in data:
                self.reps = _integer(data.get("reps"))
        elif suffix == wire.STATS:
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
            "people": self.people,
            "ids": list(self.ids),
            "last_event": self.last_event,
        }


def _ids(people: Any) -> tuple[int, ...]:
    """The track ids of a keypoints message's ``people`` (at most :data:`MAX_IDS`)."""
    if not isinstance(people, list):
        return ()
    ids = (_integer(person.get("id")) for person in people[:MAX_IDS] if isinstance(person, dict))
    return tuple(i for i in ids if i is not None and i > 0)


def _event(data: dict[str, Any]) -> dict[str, Any]:
    """The event kept for the view: a shown copy, or (too big as a whole) its main fields."""
    event = shown(data)
    if isinstance(event, dict):
        return event
    return {key: shown(data.get(key)) for key in _EVENT_FIELDS}


_EVENT_FIELDS = ("type", "ts", "count", "exercise", "previous", "label", "error", "person_id")


def _number(value: Any) -> float | None:
    """A plausible reading: NaN, infinities, booleans and 400-digit integers are not."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if abs(value) < MAX_NUMBER else None  # compared exactly, no overflow


def _integer(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if abs(value) < MAX_NUMBER else None


def _text(value: Any, limit: int = MAX_TEXT) -> str | None:
    return clean(value, limit) if isinstance(value, str) else None


@dataclass(frozen=True)
class Update:
    """What one message did: whether it is worth a line of output, the message read (the JSON
    object, or the text of an availability message), or why it could not be read."""

    view: DeviceView
    suffix: str
    worth: bool
    message: dict[str, Any] | str | None
    problem: str | None = None


class Watch:
    """The devices seen under ``prefix`` (all of them, or the one named ``device``)."""

    def __init__(self, prefix: str, device: str | None = None) -> None:
        self.prefix = prefix
        self.device = device
        self.views: dict[str, DeviceView] = {}

    def subscriptions(self) -> list[tuple[str, int]]:
        level = self.device or "+"
        return [(f"{self.prefix}/{level}/{suffix}", QOS.get(suffix, 1)) for suffix in SUFFIXES]

    def handle(self, topic: str, payload: bytes) -> Update | None:
        """What a message on one of our topics did, else None (not ours)."""
        head = f"{self.prefix}/"
        if not topic.startswith(head):
            return None
        device, _, suffix = topic[len(head) :].partition("/")
        if suffix not in SUFFIXES or not device or (self.device and device != self.device):
            return None
        view = self.views.get(device)
        if view is None:
            view = DeviceView(clean(device))
            if len(self.views) >= MAX_DEVICES:  # kept out of the view: it would grow without end
                return Update(view, suffix, False, None, problem=f"over {MAX_DEVICES} devices")
            self.views[device] = view
        if suffix == wire.AVAILABILITY:
            text = payload[:MAX_TEXT].decode("utf-8", "replace").strip()
            message: dict[str, Any] | str = clean(text)
        else:
            message = read_message(payload)
            if isinstance(message, str):
                return Update(view, suffix, False, None, problem=message)
        return Update(view, suffix, view.apply(suffix, message), message)


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
    if view.several and view.ids:  # several people: who (track ids, primary first)
        person = ",".join(map(str, view.ids))
        person = person if len(person) <= 6 else person[:5] + "…"
    reps = "-" if view.reps is None else str(view.reps)
    fps = "-" if view.fps is None else f"{view.fps:.1f}"
    infer = "-" if view.inference_ms is None else f"{view.inference_ms:.1f}ms"
    return (
        f"{view.device:<16} {status:<8} {pose:<22} {person:<6} {reps:>5} {fps:>6} {infer:>8}  "
        f"{describe_event(view.last_event, now, view.several)}"
    ).rstrip()


def describe_event(event: dict[str, Any] | None, now: float, several: bool = False) -> str:
    """The last-event column: at most MAX_EVENT_TEXT characters and the age; with ``several``
    people, whose it is (``#4 person_enter``)."""
    if event is None:
        return "-"
    kind = _text(event.get("type")) or "?"
    person_id = _integer(event.get("person_id"))
    who = f"#{person_id} " if several and person_id is not None else ""
    if kind == "pose_change":
        text = f"{_text(event.get('previous')) or '?'} -> {_text(event.get('label')) or '?'}"
    elif kind == "rep":
        count = _integer(event.get("count"))
        text = f"rep {_text(event.get('exercise')) or ''} #{'?' if count is None else count}"
        text = text.replace("  ", " ")
    elif kind == "error":
        text = f"error: {_text(event.get('error')) or '?'}"
    else:
        text = kind
    text = who + text
    text = text if len(text) <= MAX_EVENT_TEXT else text[: MAX_EVENT_TEXT - 1] + "…"
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
    if seconds < 172800:
        return f"{seconds / 3600:.0f}h"
    return f"{seconds / 86400:.0f}d" if seconds < 999 * 86400 else ">999d"


class Screen:
    """Redraws the table in place on a terminal (ANSI: cursor up, clear line)."""

    def __init__(self, out: TextIO, where: str) -> None:
        self.out = out
        self.where = where
        self.lines = 0
        self.notice = ""  # about the connection
        self.note = ""  # about unreadable messages

    def draw(self, watch: Watch) -> None:
        width = max(40, shutil.get_terminal_size((120, 24)).columns - 1)
        now = time.time()
        rows = [HEADER, *(format_line(v, now) for _, v in sorted(watch.views.items()))]
        if not watch.views:
            rows.append(f"waiting for devices on {self.where} (Ctrl-C to stop)")
        rows += [line for line in (self.notice, self.note) if line]
        text = "\x1b[F" * self.lines if self.lines else ""
        text += "".join(f"\x1b[2K{row[:width]}\n" for row in rows)
        if len(rows) < self.lines:  # a notice went away: clear what is left below
            text += "\x1b[2K\n" * (self.lines - len(rows)) + "\x1b[F" * (self.lines - len(rows))
        self.out.write(text)
        self.out.flush()
        self.lines = len(rows)


class Notes:
    """Notes about unreadable messages, at most one per NOTE_INTERVAL_S: whoever floods the broker
    with junk must not flood the terminal (or a log the output goes to) as well."""

    def __init__(self) -> None:
        self.count = 0
        self._pending: str | None = None
        self._last = -NOTE_INTERVAL_S

    def add(self, topic: str, why: str) -> None:
        self.count += 1
        self._pending = f"unreadable message on {clean(topic, 2 * MAX_TEXT)}: {clean(why)}"

    def due(self, now: float) -> str | None:
        """The latest note, with how many so far, when one is pending and the interval is over."""
        if self._pending is None or now - self._last < NOTE_INTERVAL_S:
            return None
        note, self._pending, self._last = f"{self._pending} ({self.count} so far)", None, now
        return note


# --------------------------------------------------------------------------- broker


class Connection:
    """A client subscribed to the watch topics; messages go to ``inbox`` (main thread)."""

    def __init__(self, settings: MqttConfig, password: str | None, watch: Watch) -> None:
        from edge_pose.mqtt.client import CheckedConnection, make_client

        self.settings = settings
        self.broker = f"{settings.host}:{settings.port}"
        self.v5 = settings.protocol == "5"
        # Bounded: a flood faster than the terminal shows it costs dropped messages (counted in
        # ``overflow``, reported as a note), not memory. Connection notices are never dropped.
        self.inbox: queue.Queue[tuple[str, bytes] | str] = queue.Queue(MAX_WAITING)
        self.overflow = 0
        self._subscriptions = watch.subscriptions()
        client = make_client(settings, f"edge-pose-watch-{uuid.uuid4().hex[:12]}", password)
        client.on_message = self._on_message
        self._link = CheckedConnection(client, self._on_connected, self._on_lost)

    def start(self, timeout: float = CONNECT_TIMEOUT_S) -> None:
        """Connect and subscribe, or raise EdgePoseError saying why not (one line)."""
        from edge_pose.mqtt.client import Outcome, describe_connect_error, describe_refusal

        s = self.settings
        answer = self._link.open(s.host, s.port, keepalive=30, timeout=timeout)
        if answer.outcome is Outcome.UNREACHABLE:
            why = describe_connect_error(answer.error, s.host, self.broker)
            if isinstance(answer.error, ConnectionRefusedError):
                why += " (is the broker running? check --host/--port)"
            raise EdgePoseError(why)
        if answer.outcome is Outcome.ACCEPTED:
            return
        self.stop()
        if answer.outcome is Outcome.SILENT:
            raise EdgePoseError(f"no answer from the broker at {self.broker} within {timeout:g} s")
        if answer.outcome is Outcome.REFUSED and answer.reason is not None:
            raise EdgePoseError(
                f"the broker at {self.broker} refused the connection: "
                f"{describe_refusal(answer.reason)}"
            )
        raise EdgePoseError(
            f"the broker at {self.broker} closed the connection before accepting it "
            "(does it expect TLS? check mqtt.tls and the port)"
        )

    def stop(self) -> None:
        self._link.close()

    def _on_connected(self, reconnect: bool) -> None:
        self._link.client.subscribe(self._subscriptions)
        if reconnect:
            self._notice("")  # clear the notice

    def _on_lost(self) -> None:
        self._notice(f"connection to {self.broker} lost; reconnecting...")

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:  # not MQTT (topics are UTF-8); raising would stop paho's loop
            topic = "(a topic that is not UTF-8)"
        try:
            self.inbox.put_nowait((topic, bytes(message.payload)))
        except queue.Full:
            self.overflow += 1

    def _notice(self, text: str) -> None:
        """A connection notice: it makes room by dropping the oldest message if it must."""
        while True:
            try:
                self.inbox.put_nowait(text)
                return
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    self.inbox.get_nowait()
                    self.overflow += 1


# --------------------------------------------------------------------------- command


def watch_devices(
    settings: MqttConfig, password: str | None, device: str | None, as_json: bool
) -> int:
    """Watch the devices under ``settings.topic_prefix`` (all, or the one named ``device``)
    until Ctrl-C; EdgePoseError when the broker cannot be reached or refuses the login."""
    watch = Watch(settings.topic_prefix, device)
    connection = Connection(settings, password, watch)
    try:
        connection.start()
    except KeyboardInterrupt:
        connection.stop()
        return EX_OK
    out = sys.stdout
    for stream in (out, sys.stderr):  # a device's text never fails to encode (LANG=C, latin-1)
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    tty = not as_json and out.isatty()
    where = f"{connection.broker} ({settings.topic_prefix}/{device or '+'}/...)"
    screen = Screen(out, where) if tty else None
    try:
        if not tty:
            print(f"watching {where}", file=sys.stderr, flush=True)
        _loop(connection, watch, out, screen, as_json)
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
    notes = Notes()
    while True:
        try:
            item = connection.inbox.get(timeout=REDRAW_INTERVAL_S)
        except queue.Empty:
            item = None
        if connection.overflow:
            dropped, connection.overflow = connection.overflow, 0
            notes.add("(all topics)", f"{dropped} messages dropped: they came faster than shown")
        if isinstance(item, str):  # a notice about the connection
            if screen is not None:
                screen.notice, dirty = item, True
            elif item:
                print(f"edge-pose: {item}", file=sys.stderr, flush=True)
        elif item is not None:
            update, line = _take(watch, notes, *item, as_json=as_json, tty=screen is not None)
            if update is not None:
                dirty = dirty or update.worth or update.suffix == wire.KEYPOINTS
            if line is not None:
                out.write(line + "\n")
                out.flush()
        now = time.monotonic()
        note = notes.due(now)
        if note is not None:
            if screen is not None:
                screen.note, dirty = note, True
            else:
                print(f"edge-pose: {note}", file=sys.stderr, flush=True)
        if screen is not None and (
            (dirty and now - last_draw >= REDRAW_INTERVAL_S) or now - last_draw >= TICK_S
        ):
            screen.draw(watch)
            dirty, last_draw = False, now


def _take(
    watch: Watch, notes: Notes, topic: str, payload: bytes, *, as_json: bool, tty: bool
) -> tuple[Update | None, str | None]:
    """One message: what it did and the line to print for it (off a terminal). Each message is
    handled on its own: whatever one holds, it cannot end the watch, only earn a note."""
    try:
        update = watch.handle(topic, payload)
        if update is None:
            return None, None
        if update.problem is not None:
            notes.add(topic, update.problem)
        return update, (update_line(update, as_json) if update.worth and not tty else None)
    except Exception as exc:  # a defect shown for one message, not a dead watch
        notes.add(topic, f"could not be shown ({type(exc).__name__})")
        return None, None


def update_line(update: Update, as_json: bool) -> str:
    """The line printed for an update off a terminal: the device's line, or with ``--json`` its
    whole view, the topic and the message (a shown copy: bounded, printable, strict JSON)."""
    if not as_json:
        return format_line(update.view)
    message = None if update.suffix == wire.KEYPOINTS else shown(update.message)
    # keypoints: 17 per line would drown the updates; the view has `person`
    return json.dumps(
        {"ts": round(time.time(), 3), "topic": update.suffix, **update.view.as_dict(),
         "message": message},
        allow_nan=False,
    )  # fmt: skip
