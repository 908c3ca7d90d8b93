"""The MQTT wire format, in one place: payload version, topic suffixes and every message body.

What a device sends is a contract with everyone who subscribes (Home Assistant, Node-RED,
scripts, `edge-pose watch`) and is pinned by the JSON Schemas in ``edge_pose/schemas/``
(docs/mqtt.md describes them). Keeping all of it here means a change of the contract is a change
of this file, and the code that sends (the MQTT sink, remote control, discovery) never spells a
message out itself.

Every message carries ``"v": PAYLOAD_VERSION``; those a device sends on its own account also carry
the envelope ``device`` and ``ts`` (wall-clock seconds). Version 1 grows only additively.

The keypoints message goes out up to 30 times a second, so it is formatted directly from the
keypoint array with one template (no per-keypoint dicts, no ``json.dumps``); the rare messages
(pose, event, state, stats) use ``json.dumps``. Its top-level fields describe the primary
person; a device that follows several people (a multi-person model) adds ``people``, everyone
seen, the primary too, so a consumer of several people reads one list (the primary's keypoints
are formatted once for both). A single-pose device leaves ``people`` out: it would repeat the
top level and double the message. The compact form (``mqtt.compact_keypoints``) has ``"format":
"compact"`` and each keypoint as ``[x, y, score]`` in COCO order instead of ``{"name", "x",
"y", "score"}``: the names are the same 17 every time, so leaving them out halves the message
(about 0.55 KB instead of 1.15 KB), which matters for a fleet at 30 messages per second per
device.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_pose.classify.events import Event, PoseState
from edge_pose.pose import KEYPOINT_NAMES, Pose, seen_box

PAYLOAD_VERSION = 1

# Topic suffixes under <topic_prefix>/<device_id>.
AVAILABILITY = "availability"  # retained: ONLINE / OFFLINE (the last will)
KEYPOINTS = "keypoints"  # QoS 0, rate-limited: keypoints_payload / compact_keypoints_payload
POSE = "pose"  # retained: pose_state_json
EVENT = "event"  # QoS 1: event_json
STATE = "state"  # retained: state_json, the remote-control state
STATS = "stats"  # QoS 0, periodic: stats_payload
SET = "set"  # subscribed: remote-control commands
SNAPSHOT = "snapshot"  # QoS 1, never retained: a JPEG of a confirmed fall (sinks/snapshot.py)

# The retained <base>/availability payloads: after every connect, and as the last will.
ONLINE = "online"
OFFLINE = "offline"

COMPACT = "compact"  # the "format" of the compact keypoints message

# The keypoints array of the full payload as one %-format template: a single formatting call
# per frame instead of 17 f-strings and a join.
_KEYPOINTS_TEMPLATE = (
    "["
    + ",".join(f'{{"name":"{name}","x":%.1f,"y":%.1f,"score":%.3f}}' for name in KEYPOINT_NAMES)
    + "]"
)

# The status document's keys that go into <base>/stats (the same numbers, smaller message).
STATS_KEYS = ("device", "version", "uptime_s", "fps", "frames", "inference_ms", "latency_ms",
              "backend", "model", "pose", "reps")
MQTT_STATS_KEYS = ("sent", "dropped", "rate_limited", "reconnects", "events_dropped")


# --------------------------------------------------------------------------- keypoints


def keypoints_json(keypoints: np.ndarray) -> str:
    """The keypoints as the JSON array of the full payload, in COCO order."""
    return _KEYPOINTS_TEMPLATE % tuple(keypoints.ravel().tolist())


def compact_keypoints_json(keypoints: np.ndarray) -> str:
    """``[[x, y, score], ...]``: pixels to 0.1, score to 0.001, as in the full payload."""
    return "[" + ",".join(f"[{x:.1f},{y:.1f},{s:.3f}]" for x, y, s in keypoints.tolist()) + "]"


def keypoints_payload(
    poses: list[Pose], device: str, latency_ms: float, people: bool = False
) -> str:
    """The version-1 keypoints message (schema ``keypoints.schema.json``): the top-level fields
    describe ``poses[0]``, the primary person; with ``people`` (several are followed) the
    ``people`` list has everyone seen."""
    return _keypoints_message(poses, "", f'"{device}"', keypoints_json, latency_ms, people)


def compact_keypoints_payload(
    poses: list[Pose], device: str, latency_ms: float, people: bool = False
) -> str:
    """The version-1 keypoints message in compact form (``keypoints-compact.schema.json``)."""
    return _keypoints_message(
        poses, f'"format":"{COMPACT}",', json.dumps(device), compact_keypoints_json, latency_ms,
        people,
    )  # fmt: skip


def _keypoints_message(
    poses: list[Pose],
    format_field: str,
    device_json: str,
    points: Callable[[np.ndarray], str],
    latency_ms: float,
    people: bool,
) -> str:
    """The fields both keypoints forms share, around their own keypoints and quoting."""
    pose = poses[0]
    primary_points = points(pose.keypoints)  # formatted once, also for its entry in people
    listed = ""
    if people:
        entries = ",".join(
            _person_json(person, primary_points if person is pose else points(person.keypoints))
            for person in poses
            if person.person and person.person_id is not None
        )
        listed = f',"people":[{entries}]'
    person_id = "null" if pose.person_id is None else pose.person_id
    return (
        f'{{"v":{PAYLOAD_VERSION},{format_field}"device":{device_json},'
        f'"frame":{pose.frame_index},"ts":{pose.capture_wall:.3f},"latency_ms":{latency_ms:.1f},'
        f'"width":{pose.width},"height":{pose.height},"score":{pose.score:.3f},'
        f'"person":{"true" if pose.person else "false"},"person_id":{person_id},'
        f'"keypoints":{primary_points},"pose":{_steady_json(pose)}{listed}}}'
    )


def _steady_json(pose: Pose) -> str:
    """A pose's steady label and confidence; null without a classifier."""
    if pose.label is None:
        return "null"
    return f'{{"label":{json.dumps(pose.label)},"confidence":{pose.confidence:.3f}}}'


def _person_json(pose: Pose, points_json: str) -> str:
    """One entry of ``people``: id, score, the box of the keypoints seen, keypoints, label."""
    box = seen_box(pose.keypoints)
    box_json = (
        "null" if box is None else f"[{box.x0:.1f},{box.y0:.1f},{box.x1:.1f},{box.y1:.1f}]"
    )
    return (
        f'{{"id":{pose.person_id},"score":{pose.score:.3f},"box":{box_json},'
        f'"keypoints":{points_json},"pose":{_steady_json(pose)}}}'
    )


# --------------------------------------------------------------------------- the rare messages


def envelope(device: str, ts: float) -> dict[str, Any]:
    """The fields that open a message a device sends on its own account."""
    return {"v": PAYLOAD_VERSION, "device": device, "ts": round(ts, 3)}


def event_json(device: str, ts: float, event: Event) -> str:
    """A ``<base>/event`` message: the envelope, then the event's own fields."""
    return json.dumps({**envelope(device, ts), **event})


def pose_state_json(state: PoseState) -> str:
    """The retained ``<base>/pose`` message: the current label, presence and since when."""
    return json.dumps(
        {
            "v": PAYLOAD_VERSION,
            "label": state.label,
            "confidence": round(state.confidence, 3),
            "person": state.person,
            "since": round(state.since, 3),
            "people": state.people,
            "zones": list(state.zones),
            "fall": state.fall,
            "inactive": state.inactive,
        }
    )


def state_json(
    *, paused: bool, keypoints_rate: float, reps: int | None, command: str | None, ts: float
) -> str:
    """The retained ``<base>/state`` message: what remote control has made of the device."""
    return json.dumps(
        {
            "v": PAYLOAD_VERSION, "paused": paused, "keypoints_rate": keypoints_rate,
            "reps": reps, "command": command, "ts": round(ts, 3),
        }
    )  # fmt: skip


def stats_payload(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The ``<base>/stats`` message (to ``json.dumps``) from a status document (docs/status.md)."""
    mqtt = doc.get("mqtt") or {}
    system = doc.get("system") or {}
    return {
        "v": PAYLOAD_VERSION, "ts": round(doc.get("updated") or time.time(), 3),
        **{key: doc.get(key) for key in STATS_KEYS},
        "mqtt": {key: mqtt.get(key) for key in MQTT_STATS_KEYS},
        "cpu_temp_c": system.get("cpu_temp_c"), "throttled": system.get("throttled"),
        "paused": doc.get("paused", False),
    }  # fmt: skip


# --------------------------------------------------------------------------- one device


@dataclass(frozen=True, slots=True)
class DeviceWire:
    """The messages of one device: its id in every message, and its keypoints form."""

    device_id: str
    compact: bool = False
    people: bool = False  # several people are followed: the message lists them (``people``)

    def keypoints(self, poses: list[Pose], latency_ms: float) -> str:
        form = compact_keypoints_payload if self.compact else keypoints_payload
        return form(poses, self.device_id, latency_ms, self.people)

    def event(self, ts: float, event: Event) -> str:
        return event_json(self.device_id, ts, event)
