"""A real Mosquitto on 127.0.0.1 with a random port, and a subscriber that records messages.

Loaded as a pytest plugin from conftest.py (``pytest_plugins = ["mqtt_broker"]``). Under CI=true a
missing mosquitto binary fails the test; elsewhere it is skipped with the command that installs it.

The broker keeps state like the Debian default config does (``persistence true``): retained
messages and persistent sessions survive ``stop()``/``start()``, so a test can restart the broker
and still expect QoS 1 messages for a persistent subscriber. ``max_queued_messages 0`` lifts the
broker's per-client queue limit (default 1000) so a test never loses messages to it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType

import paho.mqtt.client as mqtt
import pytest
from conftest import need_tool
from paho.mqtt.enums import CallbackAPIVersion

from edge_pose.config import MqttConfig


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate: Callable[[], object], timeout: float = 10) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds passed; its last value as bool."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())


class MosquittoBroker:
    """A mosquitto process that can be stopped and started again on the same port.

    ``users`` ({name: password}) switches anonymous access off and writes a hashed password file
    with mosquitto_passwd. ``extra_config`` is appended to the generated mosquitto.conf.
    """

    def __init__(
        self,
        workdir: Path,
        extra_config: str = "",
        *,
        users: dict[str, str] | None = None,
        persistence: bool = True,
    ) -> None:
        self.binary = need_tool("mosquitto", "mosquitto")
        self.host = "127.0.0.1"
        self.port = free_port()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.config = workdir / "mosquitto.conf"
        self.log = workdir / "mosquitto.log"
        lines = [
            f"listener {self.port} {self.host}",
            f"allow_anonymous {'false' if users else 'true'}",
            "max_queued_messages 0",
            f"persistence {'true' if persistence else 'false'}",
            f"persistence_location {workdir}/",
            "log_dest stderr",
        ]
        if users:
            lines.append(f"password_file {self._password_file(users)}")
        if os.geteuid() == 0:
            # As root mosquitto would switch to its own user, who cannot use pytest's tmp dirs.
            lines.append("user root")
        self.config.write_text("\n".join(lines) + "\n" + extra_config)
        self.process: subprocess.Popen[bytes] | None = None

    def _password_file(self, users: dict[str, str]) -> Path:
        path = self.workdir / "passwd"
        path.write_text("".join(f"{name}:{password}\n" for name, password in users.items()))
        path.chmod(0o600)
        hasher = need_tool("mosquitto_passwd", "mosquitto")
        subprocess.run([hasher, "-U", str(path)], check=True)  # hashes the passwords in place
        return path

    def start(self, timeout: float = 10) -> MosquittoBroker:
        """Start (again, on the same port) and return once the port accepts connections."""
        if self.process is not None and self.process.poll() is None:
            return self
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [self.binary, "-c", str(self.config)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
                return self
            except OSError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.02)
        self.stop()
        tail = self.log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"mosquitto did not start on {self.host}:{self.port}:\n{tail}")

    def stop(self) -> None:
        """SIGTERM: clients see the connection close; persistent state is saved."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    def __enter__(self) -> MosquittoBroker:
        return self.start()

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.stop()


def mqtt_settings(broker: MosquittoBroker, **changes: object) -> MqttConfig:
    """The real ``[mqtt]`` config for ``broker``: short keepalive, every keypoint sent."""
    settings: dict[str, object] = {"keepalive": 5, "keypoints_max_rate": 0.0, **changes}
    return MqttConfig(host=broker.host, port=broker.port, **settings)


def start_run(broker: MosquittoBroker, video: Path, device: str, *extra: str) -> subprocess.Popen:
    """`edge-pose run` looping ``video`` against ``broker`` as device ``device``, in the
    background (stderr captured); ``extra`` adds flags such as ``--config`` or ``--no-realtime``.
    Its status goes to a folder of its own (as systemd's RUNTIME_DIRECTORY) in the broker's
    work folder, as one status folder serves one run at a time."""
    status_dir = tempfile.mkdtemp(prefix="status-", dir=broker.workdir)
    return subprocess.Popen(
        [sys.executable, "-m", "edge_pose.cli", "run", "--camera", str(video), "--loop",
         "--device-id", device, "--mqtt-host", broker.host, "--mqtt-port", str(broker.port),
         *extra],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "RUNTIME_DIRECTORY": status_dir},
    )  # fmt: skip


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A fresh anonymous broker for one test, stopped afterwards."""
    with MosquittoBroker(tmp_path / "mosquitto") as broker:
        yield broker


class Subscriber:
    """Subscribes to a topic filter and records ``(topic, payload, retain)`` in arrival order.

    It re-subscribes after every reconnect, so it survives a broker restart (retained messages
    then arrive again, with ``retain`` True). ``persistent=True`` uses a persistent session
    (clean_session False): the broker queues QoS 1 messages for it while it is away.
    """

    def __init__(
        self,
        host: str,
        port: int,
        topic: str = "#",
        qos: int = 1,
        *,
        persistent: bool = False,
        client_id: str = "",
        timeout: float = 10,
    ) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self._changed = threading.Condition()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id or f"test-sub-{uuid.uuid4().hex[:12]}",
            clean_session=not persistent,
            protocol=mqtt.MQTTv311,
        )
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos)
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 2)
        self.client.connect(host, port, keepalive=10)
        self.client.loop_start()
        if not self._subscribed.wait(timeout):
            self.close()
            raise RuntimeError(f"could not subscribe to {topic} on {host}:{port}")

    def _on_message(self, _client: mqtt.Client, _userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self._changed:
            self.messages.append((msg.topic, msg.payload, bool(msg.retain)))
            self._changed.notify_all()

    def payloads(self, suffix: str = "", *, retained: bool | None = None) -> list[bytes]:
        """Payloads of topics ending in ``suffix``; ``retained`` filters on the retain flag."""
        with self._changed:
            return [
                p
                for t, p, r in self.messages
                if t.endswith(suffix) and (retained is None or r == retained)
            ]

    def wait_for(self, predicate: Callable[[], object], timeout: float = 10) -> bool:
        """Wait until ``predicate()`` is true (re-checked on every message, and every 0.1 s)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(min(remaining, 0.1))
        return True

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
