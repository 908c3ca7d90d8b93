"""The wire format: byte for byte what the device sent before it had one home, plus what
version 1 has gained since (additively).

The reference formatters below are the code that built each message before `edge_pose.wire`
existed (pose.py, payload_compact.py, pipeline.py, service/commands.py), kept verbatim so any
byte the new module changes shows here, on the real model's poses of the shared stills and on
odd inputs. The keypoints message has since gained ``person_id`` and ``people`` (several
people): :func:`without_additions` takes them out again, and the rest must not have changed.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from pathlib import Path

import numpy as np
import pytest

from edge_pose import wire
from edge_pose.camera.file import load_image
from edge_pose.classify.events import PoseState
from edge_pose.estimate import estimate_pose
from edge_pose.inference.movenet import MoveNet
from edge_pose.pose import KEYPOINT_NAMES, Pose, Region

# --------------------------------------------------------------------------- the old code

_OLD_TEMPLATE = (
    "["
    + ",".join(f'{{"name":"{name}","x":%.1f,"y":%.1f,"score":%.3f}}' for name in KEYPOINT_NAMES)
    + "]"
)


def old_keypoints_payload(pose: Pose, device: str, latency_ms: float) -> str:
    label_json = (
        "null" if pose.label is None
        else f'{{"label":"{pose.label}","confidence":{pose.confidence:.3f}}}'
    )  # fmt: skip
    return (
        f'{{"v":1,"device":"{device}","frame":{pose.frame_index},'
        f'"ts":{pose.capture_wall:.3f},"latency_ms":{latency_ms:.1f},'
        f'"width":{pose.width},"height":{pose.height},"score":{pose.score:.3f},'
        f'"person":{"true" if pose.person else "false"},'
        f'"keypoints":{_OLD_TEMPLATE % tuple(pose.keypoints.ravel().tolist())},'
        f'"pose":{label_json}}}'
    )


def old_compact_keypoints_payload(pose: Pose, device: str, latency_ms: float) -> str:
    label_json = (
        "null" if pose.label is None
        else f'{{"label":{json.dumps(pose.label)},"confidence":{pose.confidence:.3f}}}'
    )  # fmt: skip
    points = "[" + ",".join(
        f"[{x:.1f},{y:.1f},{s:.3f}]" for x, y, s in pose.keypoints.tolist()
    ) + "]"  # fmt: skip
    return (
        f'{{"v":1,"format":"compact","device":{json.dumps(device)},'
        f'"frame":{pose.frame_index},"ts":{pose.capture_wall:.3f},"latency_ms":{latency_ms:.1f},'
        f'"width":{pose.width},"height":{pose.height},"score":{pose.score:.3f},'
        f'"person":{"true" if pose.person else "false"},'
        f'"keypoints":{points},"pose":{label_json}}}'
    )


def old_pose_state_json(state: PoseState) -> str:
    return json.dumps({"v": 1, "label": state.label, "confidence": round(state.confidence, 3),
                       "person": state.person, "since": round(state.since, 3)})


def old_event_json(device: str, ts: float, event: dict) -> str:
    return json.dumps({"v": 1, "device": device, "ts": round(ts, 3), **event})


def old_state_json(paused: bool, rate: float, reps: int | None, command: str | None,
                   ts: float) -> str:
    return json.dumps({"v": 1, "paused": paused, "keypoints_rate": rate, "reps": reps,
                       "command": command, "ts": round(ts, 3)})


def without_additions(text: str) -> str:
    """A keypoints message without ``person_id`` and ``people``: the message as it was."""
    text = re.sub(r',"person_id":(null|\d+)', "", text, count=1)
    return text[: text.rindex(',"people":[')] + "}" if ',"people":[' in text else text


# --------------------------------------------------------------------------- poses


STILLS = ("coral/squat.bmp", "coral/two_people.bmp", "coral/grace_hopper.bmp",
          "coral/cat_720p.jpg", "tfjs/pose.jpg", "tf_examples/image3.jpeg")


@pytest.fixture(scope="module")
def real_poses(lightning_path: Path, data_dir: Path) -> list[Pose]:
    """The real model's poses of the shared stills (a cat among them: no person), each also
    with a steady label as the pipeline would set it."""
    model = MoveNet(lightning_path, threads=2)
    poses = [estimate_pose(model, load_image(data_dir / still)) for still in STILLS]
    return poses + [dataclasses.replace(p, label="squat_down", confidence=0.9) for p in poses]


def odd_poses(real: list[Pose]) -> list[Pose]:
    """Labels, no labels and numbers at the edges of their formats."""
    base = real[-1]
    rng = np.random.default_rng(7)
    wild = (rng.random((17, 3)) * (-5000, 99999, 1)).astype(np.float32)
    return [
        dataclasses.replace(base, label=None, confidence=0.0, person=False),
        dataclasses.replace(base, label="standing", confidence=0.99951),
        dataclasses.replace(base, label="sentadilla_ñ", confidence=1.0),
        dataclasses.replace(base, keypoints=wild, score=0.0, frame_index=2**40,
                            capture_wall=1.7e9 + 0.0005, width=1, height=99999),
        Pose(np.zeros((17, 3), np.float32), 0.0, False, Region(0, 0, 1, 1), 0, 0, 0.0, 0, 0),
    ]


DEVICES = ["pi-lab", "d", "Küche_2", "a" * 64, "x.y-z"]


@pytest.mark.parametrize("device", DEVICES)
def test_keypoints_messages_are_byte_identical(real_poses: list[Pose], device: str) -> None:
    poses = real_poses + odd_poses(real_poses)
    assert any(p.label is not None for p in poses) and any(p.label is None for p in poses)
    assert any(p.person for p in poses) and not all(p.person for p in poses)
    for pose in poses:
        for latency in (0.0, 12.34, 99999.96):
            full = wire.keypoints_payload([pose], device, latency)
            old = old_keypoints_payload(pose, device, latency)
            if pose.label is None or pose.label.isascii():
                assert without_additions(full) == old
            else:  # the label is now escaped as JSON, as the compact form always did
                assert json.loads(without_additions(full)) == json.loads(old)
            compact = wire.compact_keypoints_payload([pose], device, latency)
            assert without_additions(compact) == old_compact_keypoints_payload(
                pose, device, latency
            )


def test_labels_with_quotes_make_valid_json(real_poses: list[Pose]) -> None:
    pose = dataclasses.replace(real_poses[0], label='say "hi"\\\n', confidence=0.5)
    assert json.loads(wire.keypoints_payload([pose], "d", 1.0))["pose"]["label"] == pose.label


def test_people_list_every_person_seen_primary_first(real_poses: list[Pose]) -> None:
    """``people`` holds each person seen with its id, box, keypoints and label; the top-level
    fields stay the primary's; a pose that is no person is not listed."""
    people = [p for p in real_poses if p.person][:3]
    assert len(people) == 3
    poses = [dataclasses.replace(p, person_id=i) for i, p in zip((7, 3, 12), people, strict=True)]
    nobody = dataclasses.replace(real_poses[3], person=False)  # the cat
    for form in (wire.keypoints_payload, wire.compact_keypoints_payload):
        assert "people" not in json.loads(form(poses, "d", 1.0))  # one person followed
        message = json.loads(form([*poses, nobody], "d", 1.0, True))
        assert message["person_id"] == 7
        assert [p["id"] for p in message["people"]] == [7, 3, 12]
        for entry, pose in zip(message["people"], poses, strict=True):
            alone = json.loads(form([pose], "d", 1.0, True))
            assert entry["keypoints"] == alone["keypoints"] and entry["pose"] == alone["pose"]
            assert entry["score"] == alone["score"]
            seen = pose.keypoints[pose.keypoints[:, 2] > 0.2, :2]
            assert entry["box"] == pytest.approx(
                [*seen.min(axis=0), *seen.max(axis=0)], abs=0.051
            )
        empty = json.loads(form([nobody], "d", 1.0, True))
        assert empty["people"] == [] and empty["person_id"] is None and not empty["person"]


def test_compact_quoting_of_odd_labels_and_devices_is_unchanged(real_poses: list[Pose]) -> None:
    pose = dataclasses.replace(real_poses[-1], label='say "hi"\\\n', confidence=0.5)
    for device in ('dev"ice', "tab\there"):
        text = wire.compact_keypoints_payload([pose], device, 1.0)
        assert without_additions(text) == old_compact_keypoints_payload(pose, device, 1.0)
        assert json.loads(text)["device"] == device


def test_device_wire_picks_the_form(real_poses: list[Pose]) -> None:
    pose = real_poses[-1]
    assert without_additions(wire.DeviceWire("d").keypoints([pose], 5.0)) == (
        old_keypoints_payload(pose, "d", 5.0)
    )
    assert without_additions(wire.DeviceWire("d", compact=True).keypoints([pose], 5.0)) == (
        old_compact_keypoints_payload(pose, "d", 5.0)
    )


def test_rare_messages_are_byte_identical() -> None:
    now = time.time()
    for state in (
        PoseState(), PoseState("squat_down", 0.91234, True, now, 3, 2),
        PoseState("lying", 0.8, True, now, 0, 1, ("bed", "door"), True, True),
    ):  # fmt: skip
        # ... and then how many people are present, the zones occupied, whether someone fell
        # or is inactive (added within version 1)
        added = (
            f', "people": {state.people}, "zones": {json.dumps(list(state.zones))}, '
            f'"fall": {str(state.fall).lower()}, "inactive": {str(state.inactive).lower()}}}'
        )
        assert wire.pose_state_json(state) == old_pose_state_json(state)[:-1] + added
    events = [{"type": "pose_change", "label": "squat_down", "previous": "standing",
               "confidence": 0.91}, {"type": "rep", "exercise": "squat", "count": 3},
              {"type": "person_enter"}, {"type": "error", "error": 'bad "x"'}]
    for event in events:
        for device in DEVICES:
            assert wire.event_json(device, now, event) == old_event_json(device, now, event)
    for args in ((False, 30.0, None, None, now), (True, 0.0, 7, "pause", 1.0005)):
        paused, rate, reps, command, ts = args
        assert wire.state_json(
            paused=paused, keypoints_rate=rate, reps=reps, command=command, ts=ts
        ) == old_state_json(*args)


def test_suffixes_are_the_documented_topics() -> None:
    assert (wire.AVAILABILITY, wire.KEYPOINTS, wire.POSE, wire.EVENT, wire.STATE, wire.STATS,
            wire.SET) == ("availability", "keypoints", "pose", "event", "state", "stats", "set")
