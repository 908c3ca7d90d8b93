"""Hostile MQTT: commands of every shape, size, depth, number and script; floods; retained
commands; a broker that restarts without its retained messages; a broker that hangs.

The parser is fuzzed in process (thousands of seeded messages); the daemon is attacked through a
real Mosquitto, where it must keep running, answer within its rate limit and still obey a good
command afterwards.
"""

from __future__ import annotations

import json
import random
import signal
import time
from pathlib import Path
from typing import ClassVar

import pytest
from mqtt_broker import MosquittoBroker, Subscriber, mqtt_settings, start_run, wait_for

from edge_pose.mqtt import MqttPublisher
from edge_pose.mqtt import acks as edge_mqtt
from edge_pose.mqtt.remote import (
    COMMAND_BURST,
    ERROR_BURST,
    MAX_COMMAND_BYTES,
    NAMES,
    Command,
    RemoteControl,
    parse_command,
)

NASTY_TEXT = ["\x1b[2J", "\n", "\r\nfake log line", "\u202e", "\x00", "\ud800", "é", "🙂", "\x9b"]


def nested(rng: random.Random, depth: int) -> str:
    opener, closer = rng.choice([("[", "]"), ('{"a":', "}")])
    return opener * depth + "1" + closer * depth


def random_json(rng: random.Random, depth: int = 0) -> object:
    kind = rng.randrange(8 if depth < 4 else 5)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.choice([0, -1, 5, 2**70, -(10**400), 1e308, -0.0, 0.5])
    if kind == 2:
        parts = [*NASTY_TEXT, "pause", "x" * 50]
        return "".join(rng.choice(parts) for _ in range(rng.randrange(4)))
    if kind == 3:
        return rng.choice(NAMES)
    if kind == 4:
        return rng.uniform(-1e6, 1e6)
    if kind == 5:
        return [random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    keys = ["command", "value", *NASTY_TEXT, "x" * 5000]
    return {rng.choice(keys): random_json(rng, depth + 1) for _ in range(rng.randrange(5))}


def hostile_payloads(seed: int, count: int) -> list[bytes]:
    """``count`` messages of the classes an attacker has: structure, size, depth, numbers,
    unicode (valid and not), and plain garbage."""
    rng = random.Random(seed)
    out: list[bytes] = []
    for i in range(count):
        kind = i % 8
        if kind == 0:
            text = json.dumps(random_json(rng), ensure_ascii=rng.random() < 0.5)
            out.append(text.encode("utf-8", "surrogatepass"))
        elif kind == 1:
            out.append(nested(rng, rng.choice([50, 199, 201, 1000, 2000])).encode())
        elif kind == 2:
            digits = "9" * rng.choice([17, 309, 401, 4301, 5000])
            out.append(f'{{"command": "keypoints_rate", "value": {digits}}}'.encode())
        elif kind == 3:
            value = rng.choice(["1e999", "-1e999", "NaN", "Infinity", "-0", "1e-400", '"5"', "[]"])
            out.append(f'{{"command": "keypoints_rate", "value": {value}}}'.encode())
        elif kind == 4:
            count = rng.randrange(1, 200)
            fields = ",".join(f'"{rng.choice(NASTY_TEXT)}{n}": {n}' for n in range(count))
            out.append(f'{{"command": "pause", {fields}}}'.encode("utf-8", "surrogatepass"))
        elif kind == 5:
            out.append(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))))
        elif kind == 6:
            size = rng.choice([MAX_COMMAND_BYTES + 1, 100_000, 1_000_000])
            out.append(b'{"command": "pause", "pad": "' + b"x" * size + b'"}')
        else:
            name = rng.choice(NASTY_TEXT) * rng.randrange(1, 500)
            out.append(json.dumps({"command": name}).encode("utf-8", "surrogatepass"))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_parse_command_answers_every_hostile_payload_with_a_short_clean_error(seed: int) -> None:
    for payload in hostile_payloads(seed, 800):
        try:
            command = parse_command(payload)
        except ValueError as exc:
            message = str(exc)
            assert len(message) < 300, message[:400]
            assert message.isprintable(), repr(message[:200])  # no newline, escape, bidi
            continue
        assert isinstance(command, Command)  # the rare random valid command
        assert command.name in NAMES


def test_the_issue_samples_are_errors_not_crashes() -> None:
    deep = b"[" * 1000 + b"]" * 1000  # 2 KB: a RecursionError in json.loads
    with pytest.raises(ValueError, match="not JSON"):
        parse_command(deep)
    with pytest.raises(ValueError, match="needs a value"):
        parse_command(b'{"command": "keypoints_rate", "value": ' + b"9" * 401 + b"}")
    with pytest.raises(ValueError, match="too long"):
        parse_command(b'{"command": "pause", "' + b"a" * 1_000_000 + b'": 1}')
    with pytest.raises(ValueError) as err:
        parse_command(b'{"command": "pause", "evil\\nWARNING fake": 1}')
    assert "\n" not in str(err.value) and "\\n" in str(err.value)


class _Recorder:
    """The two things RemoteControl asks of a publisher, recorded (a unit test of the rate
    limit; the same code runs against a real broker below)."""

    def __init__(self) -> None:
        self.published: list[tuple[str, str]] = []
        self.handler = None
        self.keypoints_rate = 30.0

    def subscribe(self, _suffix: str, handler, *, retained: bool) -> None:
        assert retained is False  # commands left on the broker must not run at every start
        self.handler = handler

    def publish(self, suffix: str, payload: str, qos: int = 1, retain: bool = False) -> bool:
        self.published.append((suffix, payload))
        return True

    def set_keypoints_rate(self, rate: float) -> None:
        self.keypoints_rate = rate


class _Pipeline:
    paused = False

    class temporal:
        pending: ClassVar[list] = []

        @staticmethod
        def spoken_of() -> None:
            return None

        @staticmethod
        def reset_reps() -> None:
            pass

        @staticmethod
        def reset_fall() -> list:
            return []


def test_a_flood_is_bounded_and_errors_are_rate_limited() -> None:
    publisher = _Recorder()
    pipeline = _Pipeline()
    remote = RemoteControl(publisher, pipeline, "d", stats_interval=3600)
    for payload in hostile_payloads(7, 10_000):
        publisher.handler(payload)  # paho's thread: only queued, the queue is bounded
    remote.tick(lambda: None)
    errors = [p for s, p in publisher.published if s == "event"]
    assert 1 <= len(errors) <= ERROR_BURST
    assert all(len(e) < 600 for e in errors)
    assert "dropped: more than 32 waiting" in "".join(errors) or len(errors) == ERROR_BURST
    for _ in range(COMMAND_BURST):  # the flood used up its share of the command bucket...
        remote.handle(b'{"command": "pause"}')
    states = [p for s, p in publisher.published if s == "state"]
    assert len(states) < COMMAND_BURST  # ...so not every one of these was applied
    time.sleep(1.0)  # the bucket refills at 5 a second
    pipeline.paused = False
    remote.handle(b'{"command": "pause"}')
    assert pipeline.paused is True and publisher.published[-1][0] == "state"


def test_an_exception_while_applying_a_command_does_not_escape() -> None:
    publisher = _Recorder()

    def broken(_rate: float) -> None:
        raise OverflowError("boom")

    publisher.set_keypoints_rate = broken  # type: ignore[method-assign]
    remote = RemoteControl(publisher, _Pipeline(), "d", stats_interval=3600)
    remote.handle(b'{"command": "keypoints_rate", "value": 5}')  # must not raise
    assert "keypoints_rate failed: OverflowError" in publisher.published[-1][1]


# --------------------------------------------------------------------------- a real daemon


def test_a_running_daemon_survives_hostile_commands(mosquitto, data_dir: Path) -> None:
    """The issue's attack: a retained deep array and a 401-digit value on <base>/set, then a
    flood of every class. The daemon keeps running, ignores the retained ones, answers within
    its rate limit, and a good command afterwards is applied exactly once."""
    base = "edge-pose/hostile"
    attacker = Subscriber(mosquitto.host, mosquitto.port, f"{base}/#")
    attacker.client.publish(f"{base}/set", b"[" * 1000 + b"]" * 1000, qos=1, retain=True)
    attacker.client.publish(f"{base}/set", b'{"command": "keypoints_rate", "value": '
                            + b"9" * 401 + b"}", qos=1, retain=True)
    time.sleep(0.3)
    proc = start_run(mosquitto, data_dir / "tfjs" / "pose_1.mp4", "hostile")

    def events() -> list[dict]:
        return [json.loads(p) for p in attacker.payloads("/event")]

    def states() -> list[dict]:
        return [json.loads(p) for p in attacker.payloads("/state")]

    try:
        assert attacker.wait_for(lambda: len(attacker.payloads("/keypoints")) > 5, 30)
        assert [e for e in events() if e["type"] == "error"] == []  # retained: ignored
        started = time.monotonic()
        for payload in hostile_payloads(11, 600):
            attacker.client.publish(f"{base}/set", payload, qos=0)
        time.sleep(3)
        assert proc.poll() is None
        errors = [e for e in events() if e["type"] == "error"]
        elapsed = time.monotonic() - started
        assert 1 <= len(errors) <= ERROR_BURST + elapsed + 1, len(errors)
        assert all(e["error"].isprintable() and len(e["error"]) < 600 for e in errors)
        time.sleep(5)  # the error bucket refills; the command bucket too
        before = len(states())
        attacker.client.publish(f"{base}/set", '{"command": "pause"}', qos=1)
        assert attacker.wait_for(lambda: states()[-1]["command"] == "pause", 10)
        time.sleep(1)
        assert len(states()) == before + 1  # applied once
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=10)
        attacker.client.publish(f"{base}/set", b"", qos=1, retain=True)
        attacker.close()
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert "ignored a retained message" in stderr
    assert max(len(line) for line in stderr.splitlines()) < 1000


def test_retained_state_comes_back_after_a_broker_restart_without_persistence(
    tmp_path: Path,
) -> None:
    """A broker restarted without persistence has forgotten every retained message; the
    publisher sends the latest of each again. While offline, several values of one retained
    topic coalesce to the latest: one message, not a queue of them."""
    with MosquittoBroker(tmp_path / "broker", persistence=False) as broker:
        publisher = MqttPublisher(mqtt_settings(broker), "amnesia")
        publisher.start()
        try:
            assert publisher.wait_connected(10)
            publisher.publish("state", '{"n": 1}', qos=1, retain=True)
            publisher.publish("pose", '{"label": "standing"}', qos=1, retain=True)
            broker.stop()
            assert wait_for(lambda: not publisher.connected, 10)
            for n in range(50):
                publisher.publish("pose", json.dumps({"label": f"l{n}"}), qos=1, retain=True)
            broker.start()
            assert publisher.wait_connected(15)
            time.sleep(0.5)
            publisher.check_link()  # as the daemon does every tick
            newest = [b'{"label": "l49"}']
            watcher = Subscriber(broker.host, broker.port, "edge-pose/amnesia/pose")
            assert watcher.wait_for(lambda: watcher.payloads("/pose")[-1:] == newest, 10)
            watcher.close()
            late = Subscriber(broker.host, broker.port, "edge-pose/amnesia/#")  # the retained
            assert late.wait_for(lambda: late.payloads("/pose") and late.payloads("/state"), 10)
            assert late.payloads("/pose") == newest  # one value: the latest, not the queue
            assert late.payloads("/state") == [b'{"n": 1}']
            assert late.payloads("/availability") == [b"online"]
            late.close()
        finally:
            publisher.stop()


def test_a_hung_broker_is_noticed_and_left(tmp_path: Path, monkeypatch) -> None:
    """A broker that keeps the connection open but answers nothing (SIGSTOP) is not shown as
    connected once a QoS 1 message has waited ACK_TIMEOUT_S; the link is dropped and made
    again when the broker answers once more. Keypoints yield while QoS 1 messages back up."""
    monkeypatch.setattr(edge_mqtt, "ACK_TIMEOUT_S", 1.0)
    with MosquittoBroker(tmp_path / "broker") as broker:
        publisher = MqttPublisher(mqtt_settings(broker, keepalive=60), "hung")
        publisher.start()
        try:
            assert publisher.wait_connected(10)
            assert broker.process is not None
            broker.process.send_signal(signal.SIGSTOP)
            for n in range(edge_mqtt.KEYPOINTS_YIELD_BACKLOG):
                publisher.publish("event", json.dumps({"n": n}), qos=1)
            assert not publisher.keypoints_due(time.monotonic() + 100)  # events go first
            assert publisher.connected and publisher.responsive  # nothing overdue yet
            time.sleep(1.2)
            assert not publisher.responsive
            publisher.check_link()
            assert wait_for(lambda: not publisher.connected, 5)
            assert "has not acknowledged" in (publisher.last_error or "")
            broker.process.send_signal(signal.SIGCONT)
            assert publisher.wait_connected(15)
            assert wait_for(lambda: publisher.unacked == 0, 10)
            assert publisher.responsive
        finally:
            if broker.process is not None:
                broker.process.send_signal(signal.SIGCONT)
            publisher.stop()


def test_a_hung_broker_is_noticed_while_only_keypoints_flow(tmp_path: Path, monkeypatch) -> None:
    """With nothing to acknowledge (no classifier: keypoints and stats are QoS 0) the publisher
    probes the broker now and then (an UNSUBSCRIBE nobody else sees). A broker that answers stays
    connected; one that hangs is left within ACK_TIMEOUT_S + PROBE_INTERVAL_S."""
    monkeypatch.setattr(edge_mqtt, "ACK_TIMEOUT_S", 1.0)
    monkeypatch.setattr(edge_mqtt, "PROBE_INTERVAL_S", 0.2)
    with MosquittoBroker(tmp_path / "broker") as broker:
        publisher = MqttPublisher(mqtt_settings(broker, keepalive=60), "quiet")
        publisher.start()

        def tick_for(seconds: float) -> None:  # what the daemon does every frame
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                publisher.check_link()
                publisher.publish_keypoints(b"{}", time.monotonic())
                time.sleep(0.05)

        try:
            assert publisher.wait_connected(10)
            tick_for(2.0)
            assert publisher.responsive  # probes answered: a quiet broker is no hung broker
            assert broker.process is not None
            broker.process.send_signal(signal.SIGSTOP)
            tick_for(2.0)
            assert not publisher.responsive
            assert wait_for(lambda: not publisher.connected, 5)
            assert "has not acknowledged" in (publisher.last_error or "")
        finally:
            if broker.process is not None:
                broker.process.send_signal(signal.SIGCONT)
            publisher.stop()
