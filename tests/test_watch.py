"""`edge-pose watch` as a real subprocess against a real Mosquitto and real publishers."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from mqtt_broker import MosquittoBroker, free_port, mqtt_settings

from edge_pose.config import MqttConfig
from edge_pose.mqtt import MqttPublisher
from edge_pose.watch import HEADER, DeviceView, Watch, format_line

WATCH = [sys.executable, "-m", "edge_pose.cli", "watch"]
RUN = [sys.executable, "-m", "edge_pose.cli", "run"]


def test_edge_pose_has_a_watch_subcommand() -> None:
    result = subprocess.run([sys.executable, "-m", "edge_pose.cli", "watch", "--help"],
                            capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    assert result.returncode == 0 and "--device" in result.stdout


class Watcher:
    """``edge-pose watch ...`` in the background; stdout lines collected as they come."""

    def __init__(self, *args: str, cwd: Path | None = None) -> None:
        self.proc = subprocess.Popen(
            [*WATCH, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def updates(self) -> list[dict]:
        return [json.loads(line) for line in list(self.lines)]

    def wait_for(self, predicate: Callable[[], object], timeout: float = 15) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        return bool(predicate())

    def interrupt(self, timeout: float = 10) -> tuple[int, str]:
        """Ctrl-C; returns (exit code, stderr)."""
        self.proc.send_signal(signal.SIGINT)
        try:
            _, stderr = self.proc.communicate(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        self._reader.join(5)
        return self.proc.returncode, stderr


@pytest.fixture
def watchers() -> Iterator[list[Watcher]]:
    made: list[Watcher] = []
    yield made
    for w in made:
        if w.proc.poll() is None:
            w.proc.kill()
            w.proc.communicate(timeout=5)


def publisher(broker: MosquittoBroker, device: str, prefix: str = "edge-pose") -> MqttPublisher:
    pub = MqttPublisher(mqtt_settings(broker, topic_prefix=prefix), device)
    pub.start()
    assert pub.wait_connected(5)
    return pub


def keypoints(person: bool, frame: int = 0) -> bytes:
    return json.dumps({"v": 1, "device": "d", "frame": frame, "ts": time.time(),
                       "latency_ms": 9.0, "width": 640, "height": 480,
                       "score": 0.7 if person else 0.1, "person": person,
                       "keypoints": [], "pose": None}).encode()  # fmt: skip


def test_json_updates_follow_a_device(mosquitto: MosquittoBroker, watchers: list) -> None:
    pub = publisher(mosquitto, "pi-lab")
    pub.publish("pose", json.dumps({"v": 1, "label": "standing", "confidence": 0.9,
                                    "person": True, "since": 1.0}), retain=True)  # fmt: skip
    watch = Watcher("--host", mosquitto.host, "--port", str(mosquitto.port), "--json")
    watchers.append(watch)
    # Retained messages arrive at once: the device's current state without waiting.
    assert watch.wait_for(lambda: any(u["label"] == "standing" for u in watch.updates()))
    assert watch.wait_for(lambda: any(u["online"] is True for u in watch.updates()))
    now = time.time()
    pub.publish("event", json.dumps({"v": 1, "device": "pi-lab", "ts": now, "type": "rep",
                                     "exercise": "squat", "count": 4}))  # fmt: skip
    pub.publish("stats", json.dumps({"v": 1, "fps": {"capture": 30.0, "processed": 29.5},
                                     "inference_ms": {"p50": 11.5, "p95": 14.0},
                                     "backend": {"kind": "edgetpu"},
                                     "model": {"name": "m"}}), qos=1)  # fmt: skip
    pub.publish("state", json.dumps({"v": 1, "paused": True, "keypoints_rate": 5.0, "reps": 4,
                                     "command": "pause", "ts": now}), retain=True)  # fmt: skip
    pub.publish("event", b"not json")  # ignored, never a crash
    # A device without a classifier: presence from its keypoints, a line only when it changes.
    bare = publisher(mosquitto, "no-classifier")
    for frame in range(20):
        bare.publish_keypoints(keypoints(frame < 10, frame), time.monotonic())
    assert watch.wait_for(lambda: any(u["topic"] == "state" for u in watch.updates()))
    assert watch.wait_for(lambda: [u["person"] for u in watch.updates()
                                   if u["topic"] == "keypoints"] == [True, False])
    pub.stop()
    bare.stop()
    assert watch.wait_for(lambda: [u["online"] for u in watch.updates()][-2:] == [False, False])
    code, stderr = watch.interrupt()
    assert code == 0, stderr
    updates = watch.updates()
    assert {u["device"] for u in updates} == {"pi-lab", "no-classifier"}
    kp = [u for u in updates if u["topic"] == "keypoints"]
    assert len(kp) == 2 and all(u["message"] is None and u["label"] is None for u in kp)
    last = [u for u in updates if u["device"] == "pi-lab"][-1]
    assert last["reps"] == 4 and last["exercise"] == "squat"
    assert last["fps"] == 29.5 and last["inference_ms"] == 11.5 and last["backend"] == "edgetpu"
    assert last["paused"] is True and last["last_event"]["type"] == "rep"
    assert last["label"] == "standing" and last["message"] == "offline"
    assert "Traceback" not in stderr


def test_a_real_run_seen_through_watch(
    mosquitto: MosquittoBroker, watchers: list, data_dir: Path
) -> None:
    """`edge-pose run` on the squat video, watched with --device; another device is ignored."""
    other = publisher(mosquitto, "other")
    watch = Watcher("--host", mosquitto.host, "--port", str(mosquitto.port), "--device", "gym",
                    "--json")  # fmt: skip
    watchers.append(watch)
    time.sleep(0.5)  # subscribed before the run starts
    result = subprocess.run(
        [*RUN, "--camera", str(data_dir / "tfjs" / "pose_squats.mp4"), "--no-realtime",
         "--device-id", "gym", "--mqtt-host", mosquitto.host, "--mqtt-port",
         str(mosquitto.port)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert watch.wait_for(lambda: any(u["online"] is False for u in watch.updates()))
    other.publish("pose", b'{"v": 1, "label": "lying", "confidence": 1, "person": true}')
    time.sleep(0.3)
    other.stop()
    code, stderr = watch.interrupt()
    assert code == 0, stderr
    updates = watch.updates()
    assert {u["device"] for u in updates} == {"gym"}
    assert any(u["online"] for u in updates) and updates[-1]["online"] is False
    labels = [u["label"] for u in updates if u["topic"] == "pose"]
    assert "standing" in labels and "squat_down" in labels
    reps = [u["reps"] for u in updates if u["topic"] == "event" and u["message"]["type"] == "rep"]
    assert reps in ([1, 2], [1, 2, 3])
    assert updates[-1]["reps"] == reps[-1]
    assert {"person_enter", "pose_change", "rep"} <= {
        u["message"]["type"] for u in updates if u["topic"] == "event"
    }


class TerminalWatch:
    """`edge-pose watch` on a pseudo-terminal (so it redraws in place), its output collected."""

    def __init__(self, broker: MosquittoBroker) -> None:
        self.controller, terminal = pty.openpty()
        self.proc = subprocess.Popen(
            [*WATCH, "--host", broker.host, "--port", str(broker.port)],
            stdin=terminal, stdout=terminal, stderr=subprocess.PIPE, close_fds=True,
        )  # fmt: skip
        os.close(terminal)
        self.output = b""

    def read_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.controller], [], [], 0.1)
            if ready:
                try:
                    self.output += os.read(self.controller, 1 << 20)
                except OSError:
                    return

    def stop(self) -> str:
        """Ctrl-C; returns stderr."""
        self.proc.send_signal(signal.SIGINT)
        _, stderr = self.proc.communicate(timeout=10)
        self.read_for(0.3)
        os.close(self.controller)
        return stderr

    @property
    def text(self) -> str:
        return self.output.decode("utf-8", "replace")


def test_terminal_lines_are_redrawn_in_place(mosquitto: MosquittoBroker) -> None:
    pub = publisher(mosquitto, "tty-dev")
    watch = TerminalWatch(mosquitto)
    try:
        watch.read_for(1.5)
        pub.publish("pose", b'{"v": 1, "label": "sitting", "confidence": 0.8, "person": true}')
        watch.read_for(1.5)
        pub.publish("pose", b'{"v": 1, "label": "lying", "confidence": 0.7, "person": true}')
        watch.read_for(1.5)
    finally:
        stderr = watch.stop()
        pub.stop()
    assert watch.proc.returncode == 0, stderr
    text = watch.text
    assert HEADER.split()[0] in text and "tty-dev" in text
    assert "sitting 0.80" in text and "lying 0.70" in text
    assert "\x1b[F" in text and "\x1b[2K" in text  # cursor up + clear line: redrawn in place
    assert text.count("tty-dev") >= 3  # redrawn, not appended once


def test_plain_lines_when_piped(mosquitto: MosquittoBroker, watchers: list) -> None:
    pub = publisher(mosquitto, "plain-dev")
    watch = Watcher("--host", mosquitto.host, "--port", str(mosquitto.port))
    watchers.append(watch)
    assert watch.wait_for(lambda: any("plain-dev" in line for line in watch.lines))
    pub.publish("pose", b'{"v": 1, "label": "arms_raised", "confidence": 0.66, "person": true}')
    assert watch.wait_for(lambda: any("arms_raised 0.66" in line for line in watch.lines))
    pub.stop()
    code, stderr = watch.interrupt()
    assert code == 0
    assert "watching" in stderr and "\x1b" not in "".join(watch.lines)


def test_broker_unreachable_is_one_line_and_exit_1() -> None:
    port = free_port()
    result = subprocess.run([*WATCH, "--host", "127.0.0.1", "--port", str(port)],
                            capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"edge-pose: error: connection refused by 127.0.0.1:{port} "
        "(is the broker running? check --host/--port)"
    ]


def test_unknown_host_and_bad_arguments(tmp_path: Path) -> None:
    result = subprocess.run([*WATCH, "--host", "no-such-host.invalid"], capture_output=True,
                            text=True, timeout=60, check=False)  # fmt: skip
    assert result.returncode == 1
    assert "cannot resolve host 'no-such-host.invalid'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    bad = subprocess.run([*WATCH, "--device", "a/b"], capture_output=True, text=True,
                         timeout=30, check=False)  # fmt: skip
    assert bad.returncode == 2 and "device id" in bad.stderr
    config = tmp_path / "config.toml"
    config.write_text("[mqtt]\nport = 0\n")
    invalid = subprocess.run([*WATCH, "--config", str(config)], capture_output=True, text=True,
                             timeout=30, check=False)  # fmt: skip
    assert invalid.returncode == 78 and "mqtt.port = 0" in invalid.stderr


def test_login_from_the_config_file(tmp_path: Path, watchers: list) -> None:
    with MosquittoBroker(tmp_path / "broker", users={"edge": "s3cret"}) as broker:
        good, bad = tmp_path / "good", tmp_path / "bad"
        good.write_text("s3cret\n")
        bad.write_text("wrong\n")
        for name, password in (("good.toml", good), ("bad.toml", bad)):
            (tmp_path / name).write_text(
                f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\nusername = "edge"\n'
                f'password_file = "{password}"\n'
            )
        refused = subprocess.run([*WATCH, "--config", str(tmp_path / "bad.toml")],
                                 capture_output=True, text=True, timeout=30, check=False)
        assert refused.returncode == 1
        assert "refused the connection: not authorised" in refused.stderr
        assert "wrong" not in refused.stderr and "s3cret" not in refused.stderr
        watch = Watcher("--config", str(tmp_path / "good.toml"), "--json")
        watchers.append(watch)
        time.sleep(1.0)
        assert watch.proc.poll() is None, watch.proc.stderr.read()  # connected, watching
        code, stderr = watch.interrupt()
        assert code == 0, stderr


@pytest.mark.skipif("protocol" not in MqttConfig.model_fields, reason="lead: mqtt.protocol")
def test_mqtt_5(mosquitto: MosquittoBroker, watchers: list, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[mqtt]\nhost = "{mosquitto.host}"\nport = {mosquitto.port}\n'
                      'protocol = "5"\n')  # fmt: skip
    pub = publisher(mosquitto, "v5-dev")
    watch = Watcher("--config", str(config), "--json")
    watchers.append(watch)
    assert watch.wait_for(lambda: any(u["device"] == "v5-dev" for u in watch.updates()))
    pub.stop()
    code, _ = watch.interrupt()
    assert code == 0
    assert "edge-pose-watch-" in mosquitto.log.read_text()


# --------------------------------------------------------------------------- the view itself


def test_malformed_messages_never_break_the_view() -> None:
    watch = Watch("edge-pose")
    for topic, payload in [
        ("edge-pose/d/pose", b"\xff\xfe"), ("edge-pose/d/pose", b"[1]"),
        ("edge-pose/d/event", b'{"type": "rep", "count": "many"}'),
        ("edge-pose/d/stats", b'{"fps": "fast", "backend": 3, "inference_ms": [1]}'),
        ("edge-pose/d/availability", b"maybe"), ("edge-pose/d/state", b'{"reps": true}'),
        ("edge-pose/d/keypoints", b'{"person": "yes"}'), ("other/d/pose", b"{}"),
        ("edge-pose/d/unknown", b"{}"), ("edge-pose//pose", b"{}"),
    ]:  # fmt: skip
        watch.handle(topic, payload)
    view = watch.views["d"]
    assert view.online is None and view.reps is None and view.fps is None
    line = format_line(view)
    assert line.startswith("d ") and "?" in line


def test_line_format() -> None:
    view = DeviceView("pi-lab", online=True, label="squat_down", confidence=0.834, person=True,
                      reps=3, fps=29.61, inference_ms=11.24,
                      last_event={"type": "rep", "exercise": "squat", "count": 3, "ts": 100.0})
    line = format_line(view, now=104.0)
    assert line.split() == ["pi-lab", "online", "squat_down", "0.83", "yes", "3", "29.6",
                            "11.2ms", "rep", "squat", "#3", "(4s", "ago)"]  # fmt: skip
    view.paused = True
    assert " paused " in format_line(view, now=104.0)
    view.online = False
    assert " offline " in format_line(view, now=104.0)
    assert len(HEADER.split()) == 9


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_connection_speaks_both_protocols(mosquitto: MosquittoBroker, protocol: str) -> None:
    from edge_pose.watch import Connection

    connection = Connection(mqtt_settings(mosquitto, protocol=protocol), None, Watch("edge-pose"))
    connection.start()
    try:
        pub = publisher(mosquitto, f"proto-{protocol.replace('.', '')}")
        item = connection.inbox.get(timeout=5)
        assert item == (f"{pub.base_topic}/availability", b"online")
        pub.stop()
    finally:
        connection.stop()
    assert connection.v5 == (protocol == "5")


def test_several_people_show_their_ids_and_whose_event_it_is() -> None:
    """A device that follows several people: the PERSON column lists the ids seen (primary
    first), a change of who is seen is worth a line, and the last event says whose it is; a
    single-pose device (always id 1) looks as before."""
    watch = Watch("edge-pose")

    def keypoints(*ids: int) -> bytes:
        people = [{"id": i, "score": 0.5, "box": None, "keypoints": [], "pose": None} for i in ids]
        return json.dumps({"person": bool(ids), "score": 0.5, "people": people}).encode()

    single = watch.handle("edge-pose/one/keypoints", keypoints(1))
    assert single is not None and single.worth  # presence seen
    assert not watch.handle("edge-pose/one/keypoints", keypoints(1)).worth
    watch.handle("edge-pose/one/event", b'{"type": "person_enter", "person_id": 1, "ts": 1.0}')
    assert format_line(watch.views["one"], now=2.0).split()[2:4] == ["-", "yes"]
    assert "person_enter (1s ago)" in format_line(watch.views["one"], now=2.0)

    assert watch.handle("edge-pose/gym/keypoints", keypoints(1, 4)).worth
    assert not watch.handle("edge-pose/gym/keypoints", keypoints(1, 4)).worth
    assert watch.handle("edge-pose/gym/keypoints", keypoints(4)).worth  # 1 left
    watch.handle("edge-pose/gym/pose", b'{"label": "standing", "person": true, "people": 2}')
    watch.handle("edge-pose/gym/keypoints", keypoints(4, 1, 12, 13))
    watch.handle("edge-pose/gym/event", b'{"type": "person_enter", "person_id": 13, "ts": 1.0}')
    view = watch.views["gym"]
    assert view.people == 2 and view.ids == (4, 1, 12, 13)
    line = format_line(view, now=2.0)
    assert line.split()[3] == "4,1,1…" and "#13 person_enter (1s ago)" in line
    assert view.as_dict()["ids"] == [4, 1, 12, 13]
    hostile = b'{"person": true, "people": [{"id": true}, {"id": -3}, {"id": 2.5}, 7, {"id": 9}, ' \
        b'{"id": ' + b"9" * 4000 + b"}]}"
    watch.handle("edge-pose/gym/keypoints", hostile)
    assert view.ids == (9,)  # no booleans, negatives, fractions or 4000-digit numbers
