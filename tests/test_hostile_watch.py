"""`edge-pose watch` against hostile device payloads: seeded fuzzing of whole classes of input.

Anyone who can publish under the watched prefix decides what the watch reads. Whatever arrives
(not JSON, the wrong shape, huge, deeply nested, NaN and 400-digit numbers, broken unicode,
terminal escape sequences, bidi overrides), the watch keeps going, says in a short note that a
message was unreadable, and never lets a control character from a device reach the terminal.
"""

from __future__ import annotations

import io
import json
import random
import time
import unicodedata
import uuid
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from mqtt_broker import MosquittoBroker
from paho.mqtt.enums import CallbackAPIVersion
from test_watch import TerminalWatch, Watcher

from edge_pose.watch import MAX_DEVICES, SUFFIXES, Screen, Watch, format_line, update_line

PREFIX = "edge-pose"
# What a device could use to take over a terminal: C0 (ESC, BEL, CR, BS), DEL, C1 (CSI, OSC as
# one code point), bidi overrides and isolates, zero-width and line separators.
HOSTILE_TEXT = [
    "\x1b[2J\x1b[H", "\x1b]0;pwned\x07", "\x1b[31mred\x1b[0m", "a\rb", "x\x08\x08y", "\x07",
    "\x7f", "\x9b2J", "\x9d0;t\x9c", "\u202eevil", "\u2066iso\u2069", "\u200bzw", "l\u2028l",
    "\ufeff", "\x00nul", "ok\nnewline", "\ud800", "\udfff\ud800", "e\u0301" * 50, "😀" * 30,
]  # fmt: skip
HUGE_NUMBERS = [
    "9" * 401, "-" + "9" * 401, "1e400", "-1e400", "1e-400", "NaN", "Infinity", "-Infinity",
    "9" * 4400, "1" + "0" * 308, "123456789012345678901234567890.5e300", "-0",
]  # fmt: skip
FIELDS = {
    "pose": ["label", "confidence", "person", "since"],
    "event": ["type", "count", "exercise", "previous", "label", "error", "ts"],
    "state": ["paused", "reps", "command"],
    "stats": ["fps", "inference_ms", "backend", "model", "reps", "paused", "pose"],
    "keypoints": ["score", "person", "keypoints", "width"],
    "availability": [],
}
EVENT_TYPES = ["rep", "pose_change", "error", "person_enter", "x"]


# --------------------------------------------------------------------------- fuzzed payloads


def _raw(rng: random.Random, tokens: dict[str, str], text: str) -> str:
    """A placeholder string that `_encode` turns into ``text`` verbatim (1e400, NaN, ...)."""
    key = f"@@raw{len(tokens)}-{rng.getrandbits(32)}@@"
    tokens[key] = text
    return key


def _encode(value: Any, tokens: dict[str, str]) -> bytes:
    text = json.dumps(value)
    for key, raw in tokens.items():
        text = text.replace(f'"{key}"', raw)
    return text.encode("utf-8", "surrogatepass")


def hostile_value(rng: random.Random, tokens: dict[str, str], depth: int = 0) -> Any:
    """One value of a random hostile class (wrong type, number, text, nesting, size)."""
    kind = rng.choice(["text", "number", "nested", "container", "scalar", "deep", "big"])
    if kind == "text":
        return "".join(rng.choice(HOSTILE_TEXT) for _ in range(rng.randint(1, 4)))
    if kind == "number":
        return _raw(rng, tokens, rng.choice(HUGE_NUMBERS))
    if kind == "nested" and depth < 3:
        return {rng.choice(HOSTILE_TEXT): hostile_value(rng, tokens, depth + 1) for _ in range(2)}
    if kind == "container" and depth < 3:
        return [hostile_value(rng, tokens, depth + 1) for _ in range(rng.randint(0, 3))]
    if kind == "deep":
        n = rng.randint(50, 3000)
        return _raw(rng, tokens, "[" * n + "]" * n if rng.random() < 0.5 else '{"a":' * n + "1"
                    + "}" * n)  # fmt: skip
    if kind == "big":
        return rng.choice(["A" * rng.randint(10_000, 300_000), list(range(rng.randint(1, 5000)))])
    return rng.choice([None, True, False, 0, -1, 1.5, "", [], {}, "standing"])


def hostile_payload(rng: random.Random, suffix: str) -> bytes:
    """A payload for ``suffix``: garbage, the wrong JSON shape, or an object with hostile fields."""
    tokens: dict[str, str] = {}
    kind = rng.choice(["bytes", "text", "shape", "object", "object", "object", "deep", "huge"])
    if kind == "bytes":
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 300)))
    if kind == "text":
        return "".join(rng.choice(HOSTILE_TEXT) for _ in range(5)).encode("utf-8", "surrogatepass")
    if kind == "shape":
        return _encode(rng.choice([[1, 2], "pose", 3, None, True, [{"label": "x"}]]), tokens)
    if kind == "deep":
        n = rng.randint(500, 100_000)
        return ("[" * n + "]" * n).encode() if rng.random() < 0.5 else ('{"a":' * n).encode()
    if kind == "huge":
        return json.dumps({"label": "x" * rng.randint(100_000, 1_000_000), "v": 1}).encode()
    data: dict[str, Any] = {"v": 1}
    for name in FIELDS[suffix]:
        data[name] = hostile_value(rng, tokens) if rng.random() < 0.7 else _plausible(rng, name)
    if suffix == "event" and rng.random() < 0.7:
        data["type"] = rng.choice(EVENT_TYPES)
    if suffix == "keypoints" and rng.random() < 0.5:
        data["keypoints"] = [[rng.random()] * rng.randint(0, 5)] * rng.choice([0, 1, 16, 18, 500])
    if rng.random() < 0.3:  # unknown fields, with hostile names
        data[rng.choice(HOSTILE_TEXT) * rng.randint(1, 2000)] = hostile_value(rng, tokens)
    return _encode(data, tokens)


def _plausible(rng: random.Random, name: str) -> Any:
    return {
        "label": "squat_down", "confidence": 0.5, "person": True, "since": time.time(),
        "count": 3, "ts": time.time(), "paused": False, "reps": 2, "score": 0.5,
        "fps": {"processed": 29.5}, "inference_ms": {"p50": 11.0}, "backend": {"kind": "cpu"},
        "model": {"name": "m"}, "pose": {"label": "standing", "person": True},
    }.get(name, rng.choice(["squat", "standing", 1]))  # fmt: skip


def fuzz_messages(seed: int, count: int) -> list[tuple[str, bytes]]:
    """``count`` (suffix, payload) pairs on every topic the watch subscribes to."""
    rng = random.Random(seed)
    return [(s, hostile_payload(rng, s)) for s in (rng.choice(SUFFIXES) for _ in range(count))]


# --------------------------------------------------------------------------- what is printable


def unsafe(text: str) -> list[str]:
    """Characters that a terminal could act on: control, format (bidi, zero-width), separators,
    lone surrogates. A newline ends a line of output and is allowed."""
    return [
        ch
        for ch in text
        if ch != "\n" and unicodedata.category(ch) in {"Cc", "Cf", "Cs", "Zl", "Zp"}
    ]


def strict_json(line: str) -> dict:
    """Parse like jq does: NaN and Infinity are not JSON."""

    def refuse(token: str) -> None:
        raise AssertionError(f"non-standard JSON token {token} in {line[:200]!r}")

    return json.loads(line, parse_constant=refuse)


# --------------------------------------------------------------------------- the view itself


HOSTILE_DEVICES = ["\x1b[2Jdev", "dev\x07", "\x9b31m", "\u202eved", "d\x00", "\ud800", "x" * 5000]


@pytest.mark.parametrize("seed", range(8))
def test_fuzzed_messages_leave_the_view_printable(seed: int) -> None:
    """Any message on any watched topic, from any device id: handled, every output printable."""
    rng = random.Random(1000 + seed)
    watch = Watch(PREFIX)
    screen_out = io.StringIO()
    screen = Screen(screen_out, "broker")
    for suffix, payload in fuzz_messages(seed, 150):
        device = rng.choice(["fuzz", *HOSTILE_DEVICES])
        update = watch.handle(f"{PREFIX}/{device}/{suffix}", payload)
        assert update is not None
        for as_json in (False, True):
            line = update_line(update, as_json)
            assert not unsafe(line), (suffix, payload[:200], line[:300])
            assert len(line) <= (16384 if as_json else 400), (suffix, payload[:200])
            if as_json:
                strict_json(line)
    screen.draw(watch)
    drawn = screen_out.getvalue().replace("\x1b[F", "").replace("\x1b[2K", "")
    assert not unsafe(drawn)
    assert all(len(line) <= 400 for line in drawn.splitlines())


def test_device_ids_and_fields_are_escaped_not_dropped() -> None:
    """Escaped, a hostile value stays visible (what was sent is still recognisable)."""
    watch = Watch(PREFIX)
    update = watch.handle(f"{PREFIX}/\x1b[2Jdev/pose",
                          b'{"label": "\\u001b]0;t\\u0007sit\\u202e", "confidence": 0.5}')
    assert update is not None
    line = format_line(update.view, now=0.0)
    assert "\\x1b[2Jdev" in line and "\\x1b]0;t\\x07sit\\u202e" in line
    assert not unsafe(line)


@pytest.mark.parametrize(
    "payload",
    [b"[" * 100_000, b"9" * 401, b'{"confidence": ' + b"9" * 401 + b"}", b'{"since": 1e400}',
     b'{"confidence": NaN}', b"\xff" * 10, b'"\\ud800"', b"{" * 3000],
)  # fmt: skip
def test_numbers_and_nesting_from_the_issue(payload: bytes) -> None:
    """The two payloads that crashed the daemon (nested array, 401 digits) and their relatives."""
    watch = Watch(PREFIX)
    for suffix in SUFFIXES:
        update = watch.handle(f"{PREFIX}/d/{suffix}", payload)
        assert update is not None
        strict_json(update_line(update, as_json=True))
        assert not unsafe(format_line(update.view))


def test_a_flood_of_made_up_device_ids_is_bounded() -> None:
    """Thousands of device ids (random, hostile) cannot grow the table without end; the devices
    already shown keep being updated and the rest are noted, not shown."""
    rng = random.Random(42)
    watch = Watch(PREFIX)
    watch.handle(f"{PREFIX}/pi-lab/pose", b'{"label": "sitting", "confidence": 0.5}')
    problems = 0
    for i in range(5000):
        device = f"{rng.choice([*HOSTILE_TEXT, 'dev'])}{i}"
        update = watch.handle(f"{PREFIX}/{device}/{rng.choice(SUFFIXES)}", b'{"v": 1}')
        assert update is not None
        problems += update.problem is not None
    update = watch.handle(f"{PREFIX}/pi-lab/pose", b'{"label": "lying", "confidence": 0.5}')
    assert update is not None and update.problem is None and update.view.label == "lying"
    assert len(watch.views) == MAX_DEVICES and problems == 5001 - MAX_DEVICES
    out = io.StringIO()
    Screen(out, "broker").draw(watch)
    assert len(out.getvalue().splitlines()) <= MAX_DEVICES + 3


# --------------------------------------------------------------------------- a real broker


class RawPublisher:
    """A plain paho client: publishes any bytes on any topic, as a hostile client would."""

    def __init__(self, broker: MosquittoBroker) -> None:
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"hostile-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv311,
        )
        self.client.connect(broker.host, broker.port, keepalive=30)
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(10)
        assert info.is_published(), f"broker did not take a message on {topic!r}"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def hostile(mosquitto: MosquittoBroker) -> Iterator[RawPublisher]:
    pub = RawPublisher(mosquitto)
    yield pub
    pub.close()


# Device ids a broker accepts in a topic level (Mosquitto refuses C0 and C1 in topics).
BROKER_DEVICES = ["fuzz", "\u202eved", "d\u2066x", "ünï", "y" * 300, "😀"]


def good_pose(label: str) -> bytes:
    return json.dumps({"v": 1, "label": label, "confidence": 0.75, "person": True}).encode()


@pytest.mark.parametrize(("mode", "seed"), [("plain", 1), ("json", 2)])
def test_watch_survives_hostile_publishers(
    mosquitto: MosquittoBroker, hostile: RawPublisher, mode: str, seed: int
) -> None:
    """Retained and live hostile messages on every topic, then a good one: still watching,
    the good one printed, nothing unprintable on stdout or stderr, notes bounded and few."""
    hostile.publish(f"{PREFIX}/fuzz/pose", b"[" * 2048, retain=True)  # crashed every start
    hostile.publish(f"{PREFIX}/fuzz/stats", b'{"fps": ' + b"9" * 401 + b"}", retain=True)
    hostile.publish(f"{PREFIX}/ready/pose", good_pose("ready_now"), retain=True)
    flags = ["--json"] if mode == "json" else []
    watch = Watcher("--host", mosquitto.host, "--port", str(mosquitto.port), *flags)
    try:
        assert watch.wait_for(lambda: any("ready_now" in line for line in watch.lines))
        rng = random.Random(seed)
        started = time.monotonic()
        for suffix, payload in fuzz_messages(seed, 250):
            hostile.publish(f"{PREFIX}/{rng.choice(BROKER_DEVICES)}/{suffix}", payload)
        hostile.publish(f"{PREFIX}/good-dev/pose", good_pose("still_alive"))
        assert watch.wait_for(lambda: any("still_alive" in line for line in watch.lines), 30)
        assert watch.proc.poll() is None
        elapsed = time.monotonic() - started
    finally:
        code, stderr = watch.interrupt()
    assert code == 0, stderr[-2000:]
    assert "Traceback" not in stderr
    out = "\n".join(watch.lines)
    assert not unsafe(out), sorted(set(unsafe(out)))
    assert not unsafe(stderr), sorted(set(unsafe(stderr)))
    assert all(len(line) <= (16384 if mode == "json" else 400) for line in watch.lines)
    if mode == "json":
        for line in watch.lines:
            strict_json(line)
    notes = [line for line in stderr.splitlines() if "unreadable" in line]
    assert notes, stderr[-2000:]  # said, not silently swallowed
    assert all(len(line) <= 300 for line in notes)
    assert len(notes) <= elapsed + 3  # at most one a second: a flood cannot flood the terminal


def test_terminal_gets_only_the_watchs_own_escape_sequences(
    mosquitto: MosquittoBroker, hostile: RawPublisher
) -> None:
    """On a terminal (pty) the watch draws with ESC itself; none may come from a device."""
    watch = TerminalWatch(mosquitto)
    try:
        watch.read_for(1.5)
        rng = random.Random(7)
        for suffix, payload in fuzz_messages(7, 120):
            hostile.publish(f"{PREFIX}/{rng.choice(BROKER_DEVICES)}/{suffix}", payload)
        hostile.publish(f"{PREFIX}/tty-dev/pose", good_pose("\x1b[2J\x9b2J\u202eafter_all"))
        watch.read_for(3.0)
        alive = watch.proc.poll() is None
    finally:
        stderr = watch.stop()
    assert alive and watch.proc.returncode == 0, stderr
    text = watch.text
    assert "after_all" in text and "unreadable" in text
    own = text.replace("\x1b[F", "").replace("\x1b[2K", "").replace("\r\n", "\n")
    assert not unsafe(own), sorted(set(unsafe(own)))


def test_a_flood_faster_than_shown_is_dropped_and_counted_not_kept(mosquitto) -> None:
    """The queue from paho's thread to the screen is bounded: a flood beyond it is counted as
    dropped (and shown as a note), while a notice about the connection still gets in."""
    from mqtt_broker import mqtt_settings

    from edge_pose.watch import MAX_WAITING, Connection

    connection = Connection(mqtt_settings(mosquitto), None, Watch(PREFIX))
    message = mqtt.MQTTMessage(topic=f"{PREFIX}/d/stats".encode())
    message.payload = b"{}"
    for _ in range(MAX_WAITING + 500):
        connection._on_message(None, None, message)  # as paho's thread delivers them
    assert connection.inbox.qsize() == MAX_WAITING and connection.overflow == 500
    connection._notice("connection lost")
    assert connection.overflow == 501  # the oldest message made room for it
    items = [connection.inbox.get_nowait() for _ in range(connection.inbox.qsize())]
    assert items[-1] == "connection lost"
