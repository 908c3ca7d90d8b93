"""Pose rules, steady labels, repetitions and presence: units and the real squat video."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mqtt_broker import Subscriber

from edge_pose.camera.file import VideoFileCamera, load_image
from edge_pose.classify.events import LabelTracker
from edge_pose.classify.rules import LABELS, RuleClassifier
from edge_pose.config import load_config
from edge_pose.estimate import estimate_pose
from edge_pose.inference.movenet import MoveNet
from edge_pose.pipeline import Pipeline
from edge_pose.track import Temporal


@pytest.fixture(scope="module")
def model(lightning_path: Path) -> MoveNet:
    return MoveNet(lightning_path, threads=2)


def label_of(scores: dict[str, float]) -> str:
    return max(scores, key=scores.__getitem__)


def test_squat_image_is_squat_down(model: MoveNet, data_dir: Path) -> None:
    pose = estimate_pose(model, load_image(data_dir / "coral" / "squat.bmp"))
    scores = RuleClassifier().classify(pose.keypoints, pose.width, pose.height)
    assert set(scores) == set(LABELS)
    assert label_of(scores) == "squat_down" and scores["squat_down"] > 0.9


def test_portrait_without_legs_is_not_a_posture(model: MoveNet, data_dir: Path) -> None:
    pose = estimate_pose(model, load_image(data_dir / "coral" / "grace_hopper.bmp"))
    scores = RuleClassifier().classify(pose.keypoints, pose.width, pose.height)
    assert scores["standing"] == scores["squat_down"] == scores["sitting"] == 0.0


def synthetic(kind: str) -> np.ndarray:
    """Keypoints of simple figures (x, y px, score), y down."""
    kp = np.zeros((17, 3), np.float32)
    kp[:, 2] = 0.9
    points = {
        "standing": {
            "nose": (0, 0),
            "shoulder": (0, 40),
            "hip": (0, 100),
            "knee": (0, 150),
            "ankle": (0, 200),
            "wrist": (0, 110),
        },
        "arms_raised": {
            "nose": (0, 0),
            "shoulder": (0, 40),
            "hip": (0, 100),
            "knee": (0, 150),
            "ankle": (0, 200),
            "wrist": (0, -20),
        },
        "lying": {
            "nose": (0, 0),
            "shoulder": (40, 0),
            "hip": (100, 5),
            "knee": (150, 5),
            "ankle": (200, 5),
            "wrist": (100, 0),
        },
        "sitting": {
            "nose": (0, 0),
            "shoulder": (0, 40),
            "hip": (0, 100),
            "knee": (50, 100),
            "ankle": (50, 150),
            "wrist": (30, 90),
        },
    }[kind]
    for name, (x, y) in points.items():
        for side, dx in (("left", 5), ("right", -5)):
            index = {"nose": 0}.get(name)
            if index is None:
                from edge_pose.pose import KP

                index = KP[f"{side}_{name}"]
            kp[index, :2] = (x + dx + 300, y + 100)
    return kp


@pytest.mark.parametrize("kind", ["standing", "arms_raised", "lying", "sitting"])
def test_rules_on_simple_figures(kind: str) -> None:
    scores = RuleClassifier().classify(synthetic(kind), 640, 480)
    assert label_of(scores) == kind and scores[kind] > 0.8


def test_rules_without_torso_say_unknown() -> None:
    kp = synthetic("standing")
    kp[:, 2] = 0.1
    scores = RuleClassifier().classify(kp, 640, 480)
    assert scores["unknown"] == 1.0


def tracker(**changes) -> LabelTracker:
    return LabelTracker(
        load_config(None, {f"classifier.{k}": v for k, v in changes.items()}).classifier
    )


def feed(t: LabelTracker, sequence: list[tuple[str, int]], fps: float) -> list[dict]:
    """Feed label runs (label, frames) as confident scores at ``fps``; return all events."""
    events, frame = [], 0
    for label, frames in sequence:
        for _ in range(frames):
            scores = dict.fromkeys(LABELS, 0.0)
            scores[label] = 1.0
            events += t.update(scores, True, frame / fps, 1000.0 + frame / fps)
            frame += 1
    return events


@pytest.mark.parametrize("fps", [5.0, 30.0])
def test_reps_and_hysteresis_at_any_frame_rate(fps: float) -> None:
    seconds = [
        ("standing", 2),
        ("unknown", 0.4),
        ("squat_down", 1),
        ("unknown", 0.4),
        ("standing", 1),
        ("squat_down", 1),
        ("standing", 1),
    ]
    sequence = [(label, max(1, round(s * fps))) for label, s in seconds]
    events = feed(tracker(), sequence, fps)
    changes = [(e["previous"], e["label"]) for e in events if e["type"] == "pose_change"]
    assert changes == [
        ("unknown", "standing"),
        ("standing", "squat_down"),
        ("squat_down", "standing"),
        ("standing", "squat_down"),
        ("squat_down", "standing"),
    ]
    assert [e["count"] for e in events if e["type"] == "rep"] == [1, 2]
    assert events[0] == {"type": "person_enter"}


def test_long_unclassifiable_stretch_becomes_unknown() -> None:
    events = feed(tracker(unknown_after_s=1.0), [("standing", 30), ("unknown", 45)], 30.0)
    assert [e["label"] for e in events if e["type"] == "pose_change"] == ["standing", "unknown"]


def test_one_bad_frame_does_not_flap_presence() -> None:
    t = tracker(person_enter_s=0.3, person_leave_s=1.0)
    scores = dict.fromkeys(LABELS, 0.0)
    scores["standing"] = 1.0
    pattern = [True] * 30 + [False] + [True] * 30 + [False] * 40 + [True] * 3
    events = []
    for i, seen in enumerate(pattern):
        events += t.update(scores if seen else None, seen, i / 30, float(i))
    presence = [e["type"] for e in events if e["type"].startswith("person")]
    assert presence == ["person_enter", "person_leave"]
    assert t.state.label == "none" and not t.state.person


def test_ema_needs_several_frames_at_30fps_but_fewer_at_5fps() -> None:
    """The window is time, not frames: at 5 fps a label is entered after fewer frames."""

    def frames_to_enter(fps: float) -> int:
        t = tracker(person_enter_s=0.0)
        feed(t, [("standing", round(2 * fps))], fps)
        n = 0
        while t.state.label != "squat_down":
            scores = dict.fromkeys(LABELS, 0.0)
            scores["squat_down"] = 1.0
            n += 1
            t.update(scores, True, 2 + n / fps, 0.0)
        return n

    assert frames_to_enter(30.0) > frames_to_enter(5.0) >= 1


def test_squat_video_three_descents(model: MoveNet, data_dir: Path) -> None:
    cfg = load_config(None, {})
    pipeline = Pipeline(model, device_id="t", temporal=Temporal.from_config(cfg))
    camera = VideoFileCamera(data_dir / "tfjs" / "pose_squats.mp4", realtime=False, loop=False)
    labels = []
    while (frame := camera.read()) is not None:
        labels.append(pipeline.process(frame).label)
    runs = [label for i, label in enumerate(labels) if i == 0 or label != labels[i - 1]]
    assert runs[-6:] == [
        "standing",
        "squat_down",
        "standing",
        "squat_down",
        "standing",
        "squat_down",
    ]
    assert pipeline.temporal.spoken_of().reps == 2
    first_standing = labels.index("standing")
    assert all(label == "standing" for label in labels[first_standing : first_standing + 4])


def test_reps_over_mqtt_end_to_end(mosquitto, data_dir: Path) -> None:
    sub = Subscriber(mosquitto.host, mosquitto.port, "edge-pose/gym/#")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge_pose.cli",
            "run",
            "--camera",
            str(data_dir / "tfjs" / "pose_squats.mp4"),
            "--no-realtime",
            "--device-id",
            "gym",
            "--mqtt-host",
            mosquitto.host,
            "--mqtt-port",
            str(mosquitto.port),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert sub.wait_for(lambda: b"offline" in sub.payloads("/availability"))
    events = [json.loads(p) for p in sub.payloads("/event")]
    assert all(e["v"] == 1 and e["device"] == "gym" and "ts" in e for e in events)
    entries = [e for e in events if e["type"] == "pose_change" and e["label"] == "squat_down"]
    reps = [e["count"] for e in events if e["type"] == "rep"]
    assert len(entries) == 3 and reps in ([1, 2], [1, 2, 3])
    changes = [(e["previous"], e["label"]) for e in events if e["type"] == "pose_change"]
    assert all(
        pair in {("unknown", "standing"), ("standing", "squat_down"), ("squat_down", "standing")}
        for pair in changes
    ), changes
    assert events[0]["type"] == "person_enter"
    poses = [json.loads(p) for p in sub.payloads("/pose")]
    assert poses[-1]["label"] == "squat_down" and poses[-1]["person"] is True
    retained = Subscriber(mosquitto.host, mosquitto.port, "edge-pose/gym/pose")
    assert retained.wait_for(lambda: retained.messages)
    assert retained.messages[0][2] is True  # retained
    keypoints = [json.loads(p) for p in sub.payloads("/keypoints")]
    assert {k["pose"]["label"] for k in keypoints if k["pose"]} >= {"standing", "squat_down"}
    sub.close()
    retained.close()
