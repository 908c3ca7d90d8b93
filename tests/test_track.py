"""Per-person temporal state as one object: smoother, crop filter and label stabiliser start,
reset and forget together; the pipeline's state is a list of such tracks (one for one person)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from edge_pose.camera.file import load_image
from edge_pose.classify.rules import RuleClassifier
from edge_pose.config import load_config
from edge_pose.inference.crop import next_region
from edge_pose.inference.movenet import MoveNet
from edge_pose.pose import Pose, Region
from edge_pose.track import PersonTrack, Temporal


def squat(lightning_path: Path, data_dir: Path) -> np.ndarray:
    image = load_image(data_dir / "coral" / "squat.bmp")
    return MoveNet(lightning_path, threads=1).estimate(image)[0].keypoints


def test_a_track_follows_smooths_and_loses(lightning_path: Path, data_dir: Path) -> None:
    cfg = load_config(None, {})
    track = PersonTrack.start(cfg.smoothing, cfg.classifier)
    assert track.smoother and track.region_filter and track.labels and track.region is None
    keypoints = squat(lightning_path, data_dir)
    track.follow(keypoints.copy(), True, 0, 500, 610, crop=True)
    assert track.region == next_region(keypoints, 500, 610) and track.smoother.active
    track.follow(keypoints.copy(), True, 33_000_000, 500, 610, crop=False)
    assert track.region == next_region(keypoints, 500, 610)  # kept: no crop asked for
    track.follow(keypoints.copy(), False, 66_000_000, 500, 610, crop=True)
    assert track.region is None and not track.smoother.active


def test_labels_change_state_only_with_events(lightning_path: Path, data_dir: Path) -> None:
    cfg = load_config(None, {"classifier.person_enter_s": 0.0})
    track, rules = PersonTrack.start(None, cfg.classifier), RuleClassifier()
    keypoints = squat(lightning_path, data_dir)
    pose = Pose(keypoints, 0.7, True, Region(0, 0, 500, 610), 0, 0, 1000.0, 500, 610)
    events, state = track.label(pose, rules, 0.0, 1000.0)
    assert [e["type"] for e in events] == ["person_enter", "pose_change"] and state is not None
    assert state is not track.labels.state and (state.person, state.label) == (True, "squat_down")
    assert pose.label == "squat_down" and pose.confidence > 0.6
    steady = [track.label(pose, rules, i / 30, 1000.0 + i / 30) for i in range(1, 30)]
    assert all(not e and s is None for e, s in steady)  # no change, no event, no message
    away = dataclasses.replace(pose, person=False)
    events, state = track.label(away, rules, 3.0, 1003.0)  # person_leave_s (1 s) later
    assert [e["type"] for e in events] == ["person_leave"] and state is not None
    assert (state.person, state.label, away.label) == (False, "none", "none")
    assert PersonTrack().label(pose, rules, 2.0, 1002.0) == ((), None)  # no label tracker


def test_temporal_is_one_track_with_the_settings(tmp_path: Path) -> None:
    plain = Temporal()
    assert len(plain.tracks) == 1 and plain.tracker is None and plain.classifier is None
    assert plain.tracks[0] == PersonTrack()
    temporal = Temporal.from_config(load_config(None, {"smoothing.enabled": False}))
    (track,) = temporal.tracks
    assert temporal.tracker is track.labels is not None
    assert track.smoother is None and isinstance(temporal.classifier, RuleClassifier)
    another = temporal.new_track()
    assert another.labels is not None and another.labels is not track.labels
    none = Temporal.from_config(load_config(None, {"classifier.type": "none"}))
    assert none.tracker is None and none.tracks[0].smoother is not None


def test_a_cut_forgets_the_footage_but_keeps_the_reps(lightning_path: Path,
                                                      data_dir: Path) -> None:
    temporal = Temporal.from_config(load_config(None, {}))
    (track,) = temporal.tracks
    track.labels.state.reps = 3
    track.follow(squat(lightning_path, data_dir), True, 0, 500, 610, crop=True)
    track.cut()
    assert track.region is None and not track.smoother.active and temporal.tracker.state.reps == 3
