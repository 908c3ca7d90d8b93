"""Per-person temporal state as one object: smoother, crop filter and label stabiliser start,
reset and forget together; the pipeline's state is such tracks by person id (id 1 for one
person)."""

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
from edge_pose.track import SINGLE_ID, PersonTrack, Temporal


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
    temporal = Temporal.from_config(cfg)
    track, rules = temporal.people[SINGLE_ID], temporal.classifier
    keypoints = squat(lightning_path, data_dir)
    pose = Pose(keypoints, 0.7, True, Region(0, 0, 500, 610), 0, 0, 1000.0, 500, 610)
    events = track.label(pose, rules, 0.0, 1000.0)
    state = temporal.changed_state()
    assert [e["type"] for e in events] == ["person_enter", "pose_change"] and state is not None
    assert state is not track.labels.state and (state.person, state.label) == (True, "squat_down")
    assert state.people == 1
    assert pose.label == "squat_down" and pose.confidence > 0.6
    for i in range(1, 30):
        assert not track.label(pose, rules, i / 30, 1000.0 + i / 30)  # no change, no event
        assert temporal.changed_state() is None  # ... no message
    away = dataclasses.replace(pose, person=False)
    events = track.label(away, rules, 3.0, 1003.0)  # person_leave_s (1 s) later
    state = temporal.changed_state()
    assert [e["type"] for e in events] == ["person_leave"] and state is not None
    assert (state.person, state.label, away.label, state.people) == (False, "none", "none", 0)
    assert PersonTrack().label(pose, rules, 2.0, 1002.0) == []  # no label tracker


def test_temporal_is_one_track_with_the_settings(tmp_path: Path) -> None:
    plain = Temporal()
    assert list(plain.people) == [SINGLE_ID] and plain.primary_id == SINGLE_ID
    assert plain.spoken_of() is None and plain.classifier is None
    assert plain.people[SINGLE_ID] == PersonTrack() and plain.changed_state() is None
    temporal = Temporal.from_config(load_config(None, {"smoothing.enabled": False}))
    (track,) = temporal.people.values()
    assert temporal.spoken_of() is track.labels.state
    assert track.smoother is None and isinstance(temporal.classifier, RuleClassifier)
    another = temporal.new_track()
    assert another.labels is not None and another.labels is not track.labels
    none = Temporal.from_config(load_config(None, {"classifier.type": "none"}))
    assert none.people[SINGLE_ID].smoother is not None and none.classifier is None
    # Without a classifier presence, zones and falls are still followed: the pose message
    # speaks of them, with the label "unknown" while someone is there.
    assert none.spoken_of() is none.people[SINGLE_ID].labels.state


def test_several_people_have_a_track_each_dropped_when_it_ends() -> None:
    temporal = Temporal.from_config(load_config(None, {}))
    temporal.follow_many(True)
    assert temporal.people == {} and temporal.primary_id is None
    state = temporal.spoken_of()  # nobody yet: the pose message says so, not "no classifier"
    assert state is not None and (state.label, state.person, state.reps) == ("none", False, 0)
    first, second = temporal.person(4), temporal.person(9)
    assert temporal.person(4) is first and first is not second and first.labels is not None
    second.labels.state.person, second.labels.state.label = True, "standing"
    temporal.primary_id = 4  # seen, not yet announced: the one who is present is spoken of
    assert temporal.present() == 1 and temporal.spoken_of() is second.labels.state
    assert temporal.present_people() == [(9, second.labels.state)]
    first.labels.state.person, first.labels.state.reps = True, 2
    assert temporal.present() == 2 and temporal.spoken_of() is first.labels.state
    assert [person_id for person_id, _ in temporal.present_people()] == [4, 9]
    temporal.total_reps = 5
    temporal.reset_reps()
    assert first.labels.state.reps == 0 and temporal.total_reps == 0
    assert temporal.end([4, 77], 1234.5) == [{"type": "person_leave", "person_id": 4}]
    assert list(temporal.people) == [9] and temporal.primary_id is None
    state = temporal.changed_state()  # the one still present is spoken of now
    assert state is not None and (state.label, state.person, state.people) == ("standing", True, 1)
    temporal.end([9], 1240.0)
    state = temporal.changed_state()
    assert state is not None and (state.label, state.person, state.people) == ("none", False, 0)
    assert state.since == 1240.0


def test_a_change_of_model_kind_or_settings_loses_no_leave_and_reuses_no_id() -> None:
    cfg = load_config(None, {})
    temporal = Temporal.from_config(cfg)
    temporal.people[SINGLE_ID].labels.state.person = True
    temporal.follow_many(True)  # the single-pose person leaves, with the next frame
    assert temporal.pending == [{"type": "person_leave", "person_id": SINGLE_ID}]
    assert temporal.people == {} and temporal.next_id() == 1
    temporal.pending = []
    temporal.tracker.assign([np.zeros((17, 3), np.float32)], 0.0)
    temporal.person(1).labels.state.person = True
    assert temporal.changed_state() is not None  # published: one person present
    newer = Temporal.from_config(cfg, temporal)  # a reload with other settings
    assert newer.many and newer.next_id() == 2 and newer.people == {}
    assert newer.pending == [{"type": "person_leave", "person_id": 1}]
    assert temporal.people[1].labels.state.person  # the running state is only read
    state = newer.changed_state()  # the broker holds "1 present": the new state says 0
    assert state is not None and (state.person, state.people) == (False, 0)


def test_a_cut_forgets_the_footage_but_keeps_the_reps(lightning_path: Path,
                                                      data_dir: Path) -> None:
    temporal = Temporal.from_config(load_config(None, {}))
    (track,) = temporal.people.values()
    track.labels.state.reps = 3
    track.follow(squat(lightning_path, data_dir), True, 0, 500, 610, crop=True)
    temporal.cut(0.0)
    assert track.region is None and not track.smoother.active
    assert temporal.spoken_of().reps == 3


def test_ids_are_not_reused_across_switches_of_model_kind() -> None:
    """single -> multi -> single on one state: the single-pose person's id is not given to a
    MultiPose person, nor the MultiPose ids to the next single-pose person."""
    temporal = Temporal.from_config(load_config(None, {}))
    temporal.single()  # frames went through the single-pose person (id 1)
    temporal.follow_many(True)
    ids, _ = temporal.tracker.assign([np.zeros((17, 3), np.float32) + 0.5], 0.0)
    assert ids == [2]
    temporal.follow_many(False)
    assert temporal.single_id == 3 and list(temporal.people) == [3]
    fresh = Temporal.from_config(load_config(None, {}))
    fresh.follow_many(True)  # a MultiPose run from the start: ids from 1
    assert fresh.tracker.assign([np.zeros((17, 3), np.float32) + 0.5], 0.0)[0] == [1]


def test_refine_settings_keep_the_people() -> None:
    from edge_pose.service.daemon import same_people_state

    base = load_config(None, {})
    assert same_people_state(base, load_config(None, {"tracking.refine": True}))
    assert same_people_state(base, load_config(None, {"tracking.refine_model": "x.tflite"}))
    assert not same_people_state(base, load_config(None, {"tracking.max_age_s": 2.0}))
    assert not same_people_state(base, load_config(None, {"smoothing.beta": 40.0}))
