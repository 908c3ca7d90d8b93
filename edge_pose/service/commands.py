"""Commands sent to a device over MQTT on ``<base>/set``, and their acknowledgement.

A command is a JSON object: ``{"command": "pause"}``, ``{"command": "resume"}``,
``{"command": "reset_reps"}`` or ``{"command": "keypoints_rate", "value": 10}``. Anything else is
answered with an ``error`` event naming the problem; a command never crashes the service. The
device's resulting state is published retained on ``<base>/state``.
"""

from __future__ import annotations

import json
import logging
import math
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edge_pose.pose import PAYLOAD_VERSION

log = logging.getLogger(__name__)

NAMES = ("pause", "resume", "reset_reps", "keypoints_rate")


@dataclass(frozen=True)
class Command:
    name: str
    value: float | None = None


def parse_command(payload: bytes) -> Command:
    """The command in a ``<base>/set`` payload; ValueError with a message for the error event."""
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("command"), str):
        raise ValueError('expected an object like {"command": "pause"}')
    name = data["command"]
    if name not in NAMES:
        raise ValueError(f"unknown command {name[:40]!r} (known: {', '.join(NAMES)})")
    unknown = set(data) - {"command", "value"}
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(sorted(unknown))} for {name!r}")
    if name != "keypoints_rate":
        if "value" in data:
            raise ValueError(f"{name!r} takes no value")
        return Command(name)
    value = data.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or value < 0:
        raise ValueError("keypoints_rate needs a value: messages per second >= 0 (0 = every frame)")
    return Command(name, float(value))


class RemoteControl:
    """The MQTT side of a running pipeline: commands in on ``<base>/set``, state out on
    ``<base>/state`` (retained), stats out on ``<base>/stats`` every ``stats_interval`` s.

    paho delivers commands on its own thread; they wait in a queue until ``tick`` runs on the
    pipeline's thread, so they never race with frame processing.
    """

    def __init__(
        self, publisher: Any, pipeline: Any, device_id: str, stats_interval: float
    ) -> None:
        self.publisher = publisher
        self.pipeline = pipeline
        self.device_id = device_id
        self.stats_interval = stats_interval
        self._inbox: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        self._next_stats = time.monotonic() + stats_interval
        publisher.subscribe("set", self._inbox.put)
        self.publish_state(None)

    def tick(self, status: Callable[[], dict[str, Any] | None]) -> None:
        """Apply waiting commands; publish stats when due (``status``: the latest status doc)."""
        while not self._inbox.empty():
            self.apply(self._inbox.get())
        now = time.monotonic()
        if now >= self._next_stats:
            self._next_stats = now + self.stats_interval
            doc = status()
            if doc is not None:
                self.publisher.publish("stats", json.dumps(stats_payload(doc)), qos=0)

    def apply(self, payload: bytes) -> None:
        try:
            command = parse_command(payload)
        except ValueError as exc:
            log.warning("MQTT command rejected: %s", exc)
            self._event({"type": "error", "error": f"command rejected: {exc}"})
            return
        pipeline = self.pipeline
        if command.name in ("pause", "resume"):
            pipeline.paused = command.name == "pause"
        elif command.name == "reset_reps" and pipeline.temporal.tracker is not None:
            pipeline.temporal.tracker.reset_reps()
        elif command.name == "keypoints_rate":
            self.publisher.set_keypoints_rate(command.value)
        log.info("MQTT command: %s%s", command.name,
                 "" if command.value is None else f" {command.value:g}")
        self.publish_state(command.name)

    def publish_state(self, last_command: str | None) -> None:
        tracker = self.pipeline.temporal.tracker
        state = {
            "v": PAYLOAD_VERSION, "paused": self.pipeline.paused,
            "keypoints_rate": self.publisher.keypoints_rate,
            "reps": None if tracker is None else tracker.state.reps,
            "command": last_command, "ts": round(time.time(), 3),
        }
        self.publisher.publish("state", json.dumps(state), qos=1, retain=True)

    def _event(self, event: dict[str, Any]) -> None:
        payload = {"v": PAYLOAD_VERSION, "device": self.device_id, "ts": round(time.time(), 3)}
        self.publisher.publish("event", json.dumps({**payload, **event}), qos=1)


# The status document's keys that go into <base>/stats (the same numbers, smaller message).
STATS_KEYS = ("device", "version", "uptime_s", "fps", "frames", "inference_ms", "latency_ms",
              "backend", "model", "pose", "reps")


def stats_payload(doc: dict[str, Any]) -> dict[str, Any]:
    """The ``<base>/stats`` message from a status document."""
    mqtt = doc.get("mqtt") or {}
    system = doc.get("system") or {}
    return {
        "v": PAYLOAD_VERSION, "ts": round(doc.get("updated") or time.time(), 3),
        **{key: doc.get(key) for key in STATS_KEYS},
        "mqtt": {key: mqtt.get(key) for key in ("sent", "dropped", "rate_limited", "reconnects")},
        "cpu_temp_c": system.get("cpu_temp_c"), "throttled": system.get("throttled"),
        "paused": doc.get("paused", False),
    }
