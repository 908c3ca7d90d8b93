"""Several people: track ids from the tracker (edge_pose.tracking), and the pipeline following
each person on their own track with the real MultiPose model.

The videos are made here from the shared clips (tests/scenes.py): the squatter of
pose_squats.mp4 and the dancer of pose_1.mp4 side by side, crossing each other (one in front,
then the other), and one leaving the picture for a while. Who is who is known from where each
clip was pasted, so an id that passes from one person to the other (a swap) is counted, not
guessed.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import jsonschema
import numpy as np
import pytest
from mqtt_broker import Subscriber
from scenes import (
    SCENE_FPS,
    STRIP,
    WIDTH,
    Clips,
    Scene,
    compose,
    load_clips,
    side_by_side,
    write_video,
)

from edge_pose.camera.base import Frame
from edge_pose.config import TrackingConfig, load_config
from edge_pose.inference.estimator import Detection
from edge_pose.inference.multipose import MoveNetMulti
from edge_pose.pipeline import Pipeline
from edge_pose.pose import Region
from edge_pose.schemas import load_schema
from edge_pose.sinks.base import FrameResult, Sink
from edge_pose.track import Temporal
from edge_pose.tracking import COCO_FALLOFFS, Tracker, iou

# --------------------------------------------------------------------------- the tracker alone


def person_at(x: float, y: float = 100.0, size: float = 100.0, score: float = 0.9) -> np.ndarray:
    """17 keypoints spread over a ``size`` box whose top-left corner is (x, y)."""
    rng = np.random.default_rng(0)  # the same body every time, moved
    points = np.empty((17, 3), np.float32)
    points[:, :2] = rng.random((17, 2)) * size + (x, y)
    points[0, :2], points[16, :2] = (x, y), (x + size, y + size)  # the box is exactly size
    points[:, 2] = score
    return points


def test_iou_of_boxes() -> None:
    a = np.array([0.0, 0.0, 10.0, 10.0])
    assert iou(a, np.array([5.0, 0.0, 15.0, 10.0])) == pytest.approx(1 / 3)
    assert iou(a, a) == 1.0
    assert iou(a, np.array([10.0, 0.0, 20.0, 10.0])) == 0.0  # touching
    assert iou(a, None) == iou(None, a) == 0.0
    assert iou(a, np.array([0.0, 0.0, 0.0, 10.0])) == 0.0  # a box without area


def test_oks_is_cocos_keypoint_similarity() -> None:
    tracker = Tracker(TrackingConfig(method="keypoints"))
    track_points = person_at(0.0)
    (first,), _ = tracker.assign([track_points], 0.0)
    moved = track_points.copy()
    moved[:, 0] += 4.0  # every keypoint 4 px to the right
    track = tracker.tracks[first]
    area = 100.0 * 100.0
    expected = np.mean([math.exp(-16.0 / (2 * area * (2 * s) ** 2)) for s in COCO_FALLOFFS])
    assert tracker._oks(moved[None], [track])[0, 0] == pytest.approx(expected, rel=1e-4)
    assert tracker._oks(track_points[None], [track])[0, 0] == pytest.approx(1.0)
    few = moved.copy()
    few[3:, 2] = 0.1  # three keypoints seen: fewer than min_keypoints (4)
    assert tracker._oks(few[None], [track])[0, 0] == 0.0


@pytest.mark.parametrize("method", ["boxes", "keypoints"])
def test_people_keep_their_ids_while_they_move(method: str) -> None:
    tracker = Tracker(TrackingConfig(method=method))
    ids, ended = tracker.assign([person_at(0), person_at(400)], 0.0)
    assert ids == [1, 2] and ended == []
    for step in range(1, 30):  # 5 px a frame each, towards each other; order of finding varies
        people = [person_at(5 * step), person_at(400 - 5 * step)]
        if step % 2:
            people.reverse()
        ids, ended = tracker.assign(people, step / 30)
        assert ids == ([2, 1] if step % 2 else [1, 2]) and ended == []


def test_gone_for_longer_than_max_age_is_a_new_person_and_ids_are_never_reused() -> None:
    tracker = Tracker(TrackingConfig(max_age_s=1.0))
    assert tracker.assign([person_at(0)], 0.0) == ([1], [])
    assert tracker.assign([], 0.9) == ([], [])
    assert tracker.assign([person_at(0)], 1.0) == ([1], [])  # back within max_age: same id
    assert tracker.assign([], 2.0) == ([], [])
    assert tracker.assign([person_at(0)], 2.01) == ([2], [1])  # 1.01 s away: new id, 1 ended
    tracker.clear()
    assert tracker.assign([person_at(0)], 2.1) == ([3], [])  # never 1 or 2 again


def test_max_tracks_keeps_the_most_recently_seen() -> None:
    tracker = Tracker(TrackingConfig(max_tracks=2))
    assert tracker.assign([person_at(0), person_at(300)], 0.0) == ([1, 2], [])
    assert tracker.assign([person_at(300), person_at(600)], 0.1) == ([2, 3], [1])
    # two newcomers beside the two followed: the followed are kept, the newcomers are not
    # followed (id 0) and their ids are spent
    people = [person_at(0), person_at(300), person_at(600), person_at(900)]
    assert tracker.assign(people, 0.2) == ([0, 2, 3, 0], [])
    assert sorted(tracker.tracks) == [2, 3]
    assert tracker.assign([person_at(900)], 1.5) == ([6], [2, 3])


def test_a_person_hidden_for_a_moment_does_not_take_the_id_of_who_hid_them() -> None:
    """A (id 1) walks behind B (id 2) and is hidden; B, still seen, now stands where A was last
    seen, and A comes out further on. The track seen in the last frame chooses first, so B
    keeps 2 and A, too far from where they vanished, is new; plain greedy matching by score
    would give B's detection to track 1 (a better overlap with A's old box than with B's)."""
    tracker = Tracker(TrackingConfig(max_age_s=1.0))
    assert tracker.assign([person_at(100), person_at(300)], 0.0) == ([1, 2], [])
    for step, b in enumerate(range(280, 100, -20), 1):  # B walks left, 20 px a frame
        a_seen = b >= 200  # A is hidden once B is in front of them
        people = [person_at(b), person_at(100)] if a_seen else [person_at(b)]
        assert tracker.assign(people, step / 10)[0] == ([2, 1] if a_seen else [2])
    # B (last at 120) now at 105, right where A was last seen (100); A comes out at 200
    b_box, a_last, b_last = (tracker._box(person_at(x)) for x in (105, 100, 120))
    assert iou(b_box, a_last) > iou(b_box, b_last)  # the trap for a plain greedy match
    before = [(t.id, t.last_seen_s) for t in tracker.tracks.values()]
    paused = Tracker(TrackingConfig(max_age_s=1.0), 1)  # the same, across a 30 s pause
    paused.tracks = {tid: replace(t) for tid, t in tracker.tracks.items()}
    paused.skip_to(tracker.next_id)
    ids, ended = tracker.assign([person_at(105), person_at(200)], 1.0)
    assert ids == [2, 3] and ended == []
    paused.rebase(31.0)  # the gap is no one's absence: the last seen still choose first
    assert [(t.id, t.last_seen_s) for t in paused.tracks.values()] == [
        (tid, seen + 31.0 - 0.9) for tid, seen in before
    ]
    assert paused.assign([person_at(105), person_at(200)], 31.0) == ([2, 3], [])


# --------------------------------------------------------------------------- scenes from the clips

@pytest.fixture(scope="module")
def clips(data_dir: Path) -> Clips:
    return load_clips(data_dir)


@pytest.fixture(scope="module")
def multi(multipose_path: Path) -> MoveNetMulti:
    return MoveNetMulti(multipose_path, threads=2)


class Recorder(Sink):
    """What subscribers get: every keypoints message and event, parsed."""

    def __init__(self) -> None:
        self.messages: list[dict] = []
        self.events: list[dict] = []

    def deliver(self, result: FrameResult) -> None:
        self.messages.append(json.loads(result.keypoints_text()))
        self.events += [json.loads(text) for text in result.event_texts()]


@dataclass
class Run:
    messages: list[dict]
    events: list[dict]
    ids: dict[str, list[int]]  # the ids each person had, in order of first use
    swaps: int  # ids that went from one person to the other
    pipeline: Pipeline


def play(
    multi: MoveNetMulti, scene: Scene, steps: int, fps: float = SCENE_FPS, **overrides: object
) -> Run:
    cfg = load_config(None, {"classifier.person_enter_s": 0.0, **overrides})
    pipeline = Pipeline(multi, device_id="t", temporal=Temporal.from_config(cfg))
    recorder = Recorder()
    pipeline.sinks.append(recorder)
    owner: dict[int, str] = {}
    ids: dict[str, list[int]] = {"squatter": [], "dancer": []}
    swaps = 0
    for step in range(steps):
        image, where = scene(step)
        scene_ns = round(step * 1e9 / fps)
        pipeline.process(Frame(image, time.monotonic_ns(), 1e9 + scene_ns / 1e9, step,
                               scene_ns=scene_ns))  # fmt: skip
        centres = {name: x + STRIP / 2 for name, x in where.items() if x is not None}
        if len(centres) == 2 and abs(centres["squatter"] - centres["dancer"]) < 120:
            continue  # too close to say who is who from where they were pasted
        for person in recorder.messages[-1]["people"]:
            x0, _, x1, _ = person["box"]
            who = min(centres, key=lambda name: abs(centres[name] - (x0 + x1) / 2))
            if owner.setdefault(person["id"], who) != who:
                swaps += 1
                owner[person["id"]] = who
            if person["id"] not in ids[who]:
                ids[who].append(person["id"])
    return Run(recorder.messages, recorder.events, ids, swaps, pipeline)


def test_two_people_side_by_side_keep_two_ids(clips: Clips, multi: MoveNetMulti) -> None:
    run = play(multi, side_by_side(clips), 40)
    assert run.ids == {"squatter": [1], "dancer": [2]} and run.swaps == 0
    for message in run.messages:
        assert [p["id"] for p in message["people"]] in ([1, 2], [2, 1])
        assert message["person_id"] == 1  # the primary stays the one who was primary
        (top,) = [p for p in message["people"] if p["id"] == message["person_id"]]
        assert top["keypoints"] == message["keypoints"] and top["score"] == message["score"]
        for person in message["people"]:
            x0, y0, x1, y1 = person["box"]
            inside = [k for k in person["keypoints"] if k["score"] > 0.2]
            assert len(inside) >= 8
            assert all(x0 <= k["x"] <= x1 and y0 <= k["y"] <= y1 for k in inside)
    squatter = [p for m in run.messages for p in m["people"] if p["id"] == 1]
    assert all(p["box"][2] < 480 for p in squatter)  # always on the left


def crossing(clips: Clips, steps: int, dancer_in_front: bool, fps: float) -> Scene:
    def scene(step: int) -> tuple[np.ndarray, dict[str, int | None]]:
        x = round(step * (WIDTH - STRIP) / (steps - 1))
        return compose(clips, step, x, WIDTH - STRIP - x, dancer_in_front, fps)

    return scene


@pytest.mark.parametrize("method", ["boxes", "keypoints"])
@pytest.mark.parametrize("dancer_in_front", [False, True], ids=["squatter-front", "dancer-front"])
def test_crossing_people_never_swap_ids(
    clips: Clips, multi: MoveNetMulti, method: str, dancer_in_front: bool
) -> None:
    """They walk past each other in 4 s, one hiding the other for about half a second: no id
    ever passes from one to the other. The one in front keeps their id throughout; the one
    hidden may come back with a new one (counted, not a swap)."""
    steps = 40
    scene = crossing(clips, steps, dancer_in_front, 10.0)
    run = play(multi, scene, steps, fps=10.0, **{"tracking.method": method})
    assert run.swaps == 0, run.ids
    front, back = ("dancer", "squatter") if dancer_in_front else ("squatter", "dancer")
    assert len(run.ids[front]) == 1
    assert 1 <= len(run.ids[back]) <= 2
    assert not set(run.ids[front]) & set(run.ids[back])


def test_gone_longer_than_max_age_comes_back_as_someone_new(
    clips: Clips, multi: MoveNetMulti
) -> None:
    """The dancer leaves the picture for 2 s (longer than max_age, 1 s) and comes back: a new
    id, and the end of the old track is a person_leave with the old id; away for 0.6 s, the same
    id."""

    def away(start: int, stop: int) -> Scene:
        return lambda step: compose(clips, step, 40, None if start <= step < stop else 700)

    run = play(multi, away(10, 20), 30)
    assert run.ids == {"squatter": [1], "dancer": [2, 3]} and run.swaps == 0
    leaves = [e for e in run.events if e["type"] == "person_leave"]
    assert [e["person_id"] for e in leaves] == [2]
    short = play(multi, away(10, 13), 30)
    assert short.ids == {"squatter": [1], "dancer": [2]}


def test_each_person_has_their_own_labels_reps_and_events(
    clips: Clips, multi: MoveNetMulti
) -> None:
    """The squatter's squats count as their repetitions (rep events with their id); the pose
    message says how many people are present; the primary's label is the top-level one."""
    run = play(multi, side_by_side(clips), len(clips.squatter))
    by_person: dict[int, list[str]] = {}
    for event in run.events:
        assert event["person_id"] in (1, 2), event
        by_person.setdefault(event["person_id"], []).append(event["type"])
    assert by_person[1].count("person_enter") == by_person[2].count("person_enter") == 1
    reps = [e for e in run.events if e["type"] == "rep"]
    assert reps and {e["person_id"] for e in reps} == {1}
    assert [e["count"] for e in reps] == list(range(1, len(reps) + 1))
    squats = [e for e in run.events if e.get("label") == "squat_down"]
    assert {e["person_id"] for e in squats} == {1}
    temporal = run.pipeline.temporal
    assert temporal.present() == 2 and temporal.primary_id == 1
    assert temporal.people[1].labels.state.reps == len(reps)
    assert temporal.people[2].labels.state.reps == 0
    for message in run.messages:
        (top,) = [p for p in message["people"] if p["id"] == 1]
        assert message["pose"] == top["pose"]


def test_nobody_in_view_is_an_empty_list(multi: MoveNetMulti, data_dir: Path) -> None:
    cat = cv2.cvtColor(cv2.imread(str(data_dir / "coral" / "cat_720p.jpg")), cv2.COLOR_BGR2RGB)
    run = play(multi, lambda step: (cat, {}), 3)
    for message in run.messages:
        assert message["people"] == [] and message["person_id"] is None
        assert message["person"] is False and len(message["keypoints"]) == 17



# --------------------------------------------------------------------------- a real run


def validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(load_schema(name))


def test_a_run_publishes_everyone_and_draws_them_with_their_ids(
    mosquitto, clips: Clips, multipose_path: Path, tmp_path: Path
) -> None:
    """`edge-pose run` with MultiPose on a two-person video (made here), as a user runs it:
    the keypoints messages list both people with their ids, the retained pose message counts
    them, events say whose they are, `--print` has them too, and the annotated video shows
    each skeleton on its own side of the picture."""
    video = write_video(tmp_path / "two.avi", side_by_side(clips), len(clips.squatter))
    annotated = tmp_path / "annotated.avi"
    sub = Subscriber(mosquitto.host, mosquitto.port, "edge-pose/gym/#")
    result = subprocess.run(
        [sys.executable, "-m", "edge_pose.cli", "run", "--camera", str(video), "--no-realtime",
         "--model", str(multipose_path), "--threads", "2", "--device-id", "gym", "--no-http",
         "--mqtt-host", mosquitto.host, "--mqtt-port", str(mosquitto.port), "--print",
         "--annotate", str(annotated)],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert sub.wait_for(lambda: b"offline" in sub.payloads("/availability"))
    printed = [json.loads(line) for line in result.stdout.splitlines()]
    frames = [line for line in printed if "keypoints" in line]  # --print: every frame
    assert len(frames) == len(clips.squatter)
    both = [m for m in frames if len(m["people"]) == 2]
    assert len(both) >= 0.9 * len(frames)
    assert {tuple(sorted(p["id"] for p in m["people"])) for m in both} == {(1, 2)}
    keypoints = [json.loads(p) for p in sub.payloads("/keypoints")]  # at most 30 a second
    assert keypoints and all(validator("keypoints").is_valid(m) for m in keypoints)
    assert {m["frame"]: m["people"] for m in keypoints} == {
        m["frame"]: m["people"] for m in frames if m["frame"] in {k["frame"] for k in keypoints}
    }
    poses = [json.loads(p) for p in sub.payloads("/pose")]
    assert poses[-1]["people"] == 2 and poses[-1]["person"] is True
    assert all(validator("pose").is_valid(p) for p in poses)
    events = [json.loads(p) for p in sub.payloads("/event")]
    enters = sorted(e["person_id"] for e in events if e["type"] == "person_enter")
    assert enters == [1, 2]
    assert all(validator("event").is_valid(e) for e in events)
    who = [(e["type"], e.get("person_id")) for e in printed if "type" in e]
    assert who == [(e["type"], e.get("person_id")) for e in events]

    # the annotated video: each person's skeleton drawn on their side
    capture = cv2.VideoCapture(str(annotated))
    drawn = 0
    for step in range(len(clips.squatter)):
        ok, bgr = capture.read()
        assert ok, f"annotated video ends at frame {step}"
        raw = side_by_side(clips)(step)[0]
        changed = np.abs(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(int) - raw).sum(axis=2) > 60
        left, right = changed[:, 40:240].mean(), changed[:, 700:900].mean()
        drawn += left > 0.005 and right > 0.005
    assert drawn >= 0.9 * len(clips.squatter)


# --------------------------------------------------------------------------- scripted people


class Scripted:
    """A multi-person estimator that finds, each frame, the people a test scripts (boxes of
    17 keypoints), so the pipeline's rules can be played exactly."""

    max_people = 6
    input_size = 256

    def __init__(self) -> None:
        self.next: list[np.ndarray] = []
        self.stage_ns = [0, 0, 0]

    def estimate(self, image: np.ndarray, region: object = None) -> list[Detection]:
        height, width = image.shape[:2]
        found = [Detection(k.copy(), 0.8, Region(0, 0, width, height)) for k in self.next]
        return found or [Detection(np.zeros((17, 3), np.float32), 0.0, Region(0, 0, 1, 1))]


def scripted_run(script: list[list[float]], cuts: dict[int, float] | None = None,
                 **overrides: object) -> tuple[Pipeline, list[dict], list[dict]]:
    """Play ``script`` (per frame: the x of each person seen, best first) at 10 fps; ``cuts``:
    frames that follow a jump in the footage, with the seconds skipped."""
    model = Scripted()
    cfg = load_config(None, {"classifier.person_enter_s": 0.0, **overrides})
    pipeline = Pipeline(model, device_id="t", temporal=Temporal.from_config(cfg))  # type: ignore[arg-type]
    recorder = Recorder()
    pipeline.sinks.append(recorder)
    image = np.zeros((480, 960, 3), np.uint8)
    skipped = 0.0
    for step, xs in enumerate(script):
        skipped += (cuts or {}).get(step, 0.0)
        model.next = [person_at(x, size=150) for x in xs]
        scene_ns = round((step / 10 + skipped) * 1e9)
        pipeline.process(Frame(image, time.monotonic_ns(), 1e9 + scene_ns / 1e9, step,
                               scene_ns=scene_ns, cut=step in (cuts or {})))  # fmt: skip
    return pipeline, recorder.messages, recorder.events


def test_the_primary_stays_while_missed_for_a_frame() -> None:
    """A (first seen) and B in view; A is missed for one frame: B stands in for that frame,
    then A is the primary again; when A's track ends, B becomes the primary."""
    script = [[100, 600]] * 5 + [[600]] + [[100, 600]] * 5 + [[600]] * 15
    pipeline, messages, _ = scripted_run(script)
    assert [m["person_id"] for m in messages[:11]] == [1] * 5 + [2] + [1] * 5
    assert [m["person_id"] for m in messages[-5:]] == [2] * 5
    assert pipeline.temporal.primary_id == 2


def test_someone_present_keeps_person_true_in_the_pose_message() -> None:
    """The primary is re-found under a new id far away while another person is present: the
    retained pose message never says nobody is there."""
    script = [[100, 600]] * 10 + [[800, 600]] * 20
    pipeline, _, events = scripted_run(script)
    temporal = pipeline.temporal
    assert temporal.spoken_of() is not None and temporal.spoken_of().person
    leaves = [e for e in events if e["type"] == "person_leave"]
    assert [e["person_id"] for e in leaves] == [1]  # the old track, after max_age_s
    assert temporal.present() == 2  # 2 (still there) and 3 (the one re-found)


def test_a_pause_keeps_everyone_and_their_reps() -> None:
    """The footage jumps 5 s (a pause, a reload, a loop): nobody leaves, ids and reps stay."""
    script = [[100, 600]] * 10 + [[105, 600]] * 10
    pipeline, messages, events = scripted_run(script, cuts={10: 5.0})
    assert {tuple(sorted(p["id"] for p in m["people"])) for m in messages} == {(1, 2)}
    assert not [e for e in events if e["type"] == "person_leave"]
    assert pipeline.temporal.present() == 2
