"""Falls, zones and inactivity (edge_pose/safety), end to end through the real pipeline.

The movements are made from a real person: the keypoints the real Lightning model finds in a
still of someone standing (ambianic's fall_img_11.png) are moved frame by frame, as a body
moves (a fall turns it over about the ankles in a fraction of a second, going to bed lowers
and turns it over seconds), and played through :class:`~edge_pose.pipeline.Pipeline` with
smoothing, tracking and labelling as a device runs them. The real stills and clips go through
the real model: a fall sequence of stills gives one ``fall``, the partial-body stills and the
shared clips looped for ten minutes give none.
"""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from movements import (
    EVERYDAY,
    FPS,
    HEIGHT,
    WIDTH,
    Events,
    Moving,
    configured,
    falling,
    feet,
    play,
    still,
    walking_out,
)

from edge_pose.camera.base import Frame
from edge_pose.camera.file import load_image, name_order
from edge_pose.config import load_config
from edge_pose.errors import ConfigError
from edge_pose.estimate import estimate_pose
from edge_pose.inference.estimator import Detection
from edge_pose.inference.movenet import MoveNet
from edge_pose.pipeline import Pipeline
from edge_pose.pose import KP, Region
from edge_pose.safety.body import measure
from edge_pose.safety.geometry import contains, polygon_problem
from edge_pose.safety.watch import zones_of
from edge_pose.track import Temporal

# --------------------------------------------------------------------------- a real body


@pytest.fixture(scope="module")
def model(lightning_path: Path) -> MoveNet:
    return MoveNet(lightning_path, threads=2)


@pytest.fixture(scope="module")
def standing(model: MoveNet, data_dir: Path) -> np.ndarray:
    """The real keypoints of a person standing (640x480 still)."""
    pose = estimate_pose(model, load_image(data_dir / "ambianic" / "fall_img_11.png"))
    assert pose.person and measure(pose.keypoints) is not None
    return pose.keypoints.copy()


# --------------------------------------------------------------------------- falls


def test_a_fall_is_one_event_confirmed_on_the_floor_and_recovered(standing: np.ndarray) -> None:
    """Standing 2 s, over in 0.6 s, on the floor 10 s, up again: one `fall` within
    confirm_s + 1 s of reaching the floor, then `fall_recovered` after recover_s standing."""
    fall = falling(standing, at=2.0)

    def path(t: float) -> np.ndarray:
        return standing if t >= 13.0 else fall(t)

    pipeline, events = play(path, 18.0)
    (when, event), = events.of("fall")
    floor = 2.6
    assert floor < when <= floor + 3.0 + 1.0  # confirm_s + 1 s
    assert 0.5 <= event["confidence"] <= 1.0 and 0 < event["descent_s"] <= 1.5
    assert event["person_id"] == 1 and "zone" not in event
    (back, recovered), = events.of("fall_recovered")
    assert 13.0 + 2.0 <= back <= 13.0 + 3.0 and recovered["down_s"] > 5
    assert not pipeline.temporal.fall()


def test_the_pose_message_says_fall_until_reset(standing: np.ndarray) -> None:
    pipeline, events = play(falling(standing, at=1.0), 8.0)
    assert pipeline.temporal.fall() and len(events.of("fall")) == 1
    state = pipeline.temporal.changed_state()
    assert state is None or state.fall  # published with the fall's frame already
    assert pipeline.temporal.reset_fall() == [
        {"type": "fall_recovered", "reset": True, "person_id": 1}
    ]
    assert not pipeline.temporal.fall()
    state = pipeline.temporal.changed_state()
    assert state is not None and not state.fall


@pytest.mark.parametrize("movement", EVERYDAY)
def test_everyday_movements_are_not_falls(standing: np.ndarray, movement: Callable) -> None:
    _, events = play(movement(standing), 35.0)
    assert events.of("fall") == []


def test_a_stumble_caught_before_confirm_is_no_fall(standing: np.ndarray) -> None:
    """Over in 0.6 s, up again 1.5 s later: shorter than confirm_s on the floor."""
    fall = falling(standing, at=2.0)
    _, events = play(lambda t: standing if t > 4.1 else fall(t), 12.0)
    assert events.of("fall", "fall_recovered") == []


def test_a_fall_at_any_distance(standing: np.ndarray) -> None:
    """Half the size, further back in the picture: the same fall, the same one event."""
    small = standing.copy()
    small[:, :2] = small[:, :2] * 0.5 + (100, 150)
    _, events = play(falling(small, at=2.0), 10.0)
    assert len(events.of("fall")) == 1


BED = [[0.0, 0.8], [0.6, 0.8], [0.6, 1.0], [0.0, 1.0]]


def test_lying_in_a_lying_ok_zone_is_never_a_fall(standing: np.ndarray) -> None:
    """The same fall, ending in a zone marked lying_ok (a bed): nothing; in a zone without
    the flag: a fall that names the zone."""
    # The fall to the left puts the hips at about x = 0.52, y = 0.99 of the picture.
    fall = falling(standing, at=2.0)
    _, events = play(fall, 12.0, [{"name": "bed", "polygon": BED, "lying_ok": True}])
    assert events.of("fall") == [] and [e["zone"] for _, e in events.of("zone_enter")] == ["bed"]
    _, events = play(fall, 12.0, [{"name": "rug", "polygon": BED}])
    (_, event), = events.of("fall")
    assert event["zone"] == "rug"


def test_several_people_each_fall_on_their_own(standing: np.ndarray) -> None:
    """Two people with a multi-person model: the one who falls is named in the event."""

    class Two(Moving):
        max_people = 6

        def estimate(self, image: np.ndarray, region: Region | None = None) -> list[Detection]:
            left = standing.copy()
            left[:, 0] -= 300
            right = falling(standing, at=2.0)(self.t)
            return [Detection(p, 0.8, Region(0, 0, WIDTH, HEIGHT)) for p in (left, right)]

    cfg = configured()
    model = Two(lambda t: None)
    pipeline = Pipeline(model, device_id="t", temporal=Temporal.from_config(cfg))  # type: ignore[arg-type]
    events = Events()
    pipeline.sinks.append(events)
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    for i in range(10 * FPS):
        model.t = i / FPS
        pipeline.process(Frame(image, time.monotonic_ns(), 1e9 + model.t, i,
                               scene_ns=round(model.t * 1e9)))  # fmt: skip
    falls = [e for _, e in events.of("fall")]
    assert len(falls) == 1
    fallen = falls[0]["person_id"]
    others = [pid for pid in pipeline.temporal.people if pid != fallen]
    assert others and pipeline.temporal.people[fallen].safety.fallen
    assert not pipeline.temporal.people[others[0]].safety.fallen


# --------------------------------------------------------------------------- zones


def test_polygons_that_cannot_be_zones_are_named() -> None:
    assert polygon_problem([[0.1, 0.1], [0.2, 0.2]]).startswith("has 2 corner(s)")
    assert "outside the picture" in polygon_problem([[0.1, 0.1], [1.5, 0.2], [0.3, 0.9]])
    assert "crosses itself" in polygon_problem([[0, 0], [1, 1], [1, 0], [0, 1]])
    assert "no area" in polygon_problem([[0, 0], [0.5, 0.5], [1, 1]])
    assert polygon_problem([[0, 0], [1, 0], [1, 1], [0, 1]]) is None
    assert polygon_problem([[0.2, 0.2], [0.8, 0.2], [0.5, 0.5], [0.8, 0.8], [0.2, 0.8]]) is None


def test_points_in_and_out_of_a_zone() -> None:
    square = [(0.2, 0.2), (0.6, 0.2), (0.6, 0.6), (0.2, 0.6)]
    assert contains(square, 0.4, 0.4) and not contains(square, 0.7, 0.4)
    notch = [(0.2, 0.2), (0.8, 0.2), (0.5, 0.5), (0.8, 0.8), (0.2, 0.8)]  # a concave zone
    assert contains(notch, 0.3, 0.5) and not contains(notch, 0.7, 0.5)
    rng = np.random.default_rng(7)
    for x, y in rng.random((500, 2)):  # the square as cv2 sees it
        inside = cv2.pointPolygonTest(np.array(square, np.float32), (x, y), False) > 0
        if abs(x - 0.2) > 1e-6 and abs(x - 0.6) > 1e-6:
            assert contains(square, x, y) == inside


@pytest.mark.parametrize("seed", range(3))
def test_bad_zones_are_one_line_each_naming_the_zone(seed: int, tmp_path: Path) -> None:
    """Classes of bad polygons (seeded): too few corners, outside 0..1, crossing, not pairs,
    not numbers, too many: each a ConfigError line with the zone's index and name."""
    rng = random.Random(seed)
    classes = [
        lambda: [[rng.random(), rng.random()] for _ in range(rng.randint(0, 2))],
        lambda: [[rng.random(), rng.random()], [rng.uniform(1.01, 9), rng.random()], [0.5, 0.5]],
        lambda: [[0.1, 0.1], [0.9, 0.9], [0.9, 0.1], [0.1, 0.9]],
        lambda: [[rng.random()], [rng.random(), rng.random(), rng.random()], [0.1, 0.2]],
        lambda: [["a", "b"], [0.1, 0.2], [0.3, 0.4]],
        lambda: [[rng.random(), rng.random()] for _ in range(rng.randint(65, 300))],
        lambda: [[-rng.random(), 0.1], [0.5, 0.5], [0.1, 0.9]],
    ]
    for number, bad in enumerate(classes):
        polygon = bad()
        path = tmp_path / f"bad{number}.toml"
        path.write_text(
            '[[zones]]\nname = "ok"\npolygon = [[0, 0], [1, 0], [1, 1]]\n'
            f'[[zones]]\nname = "hall {number}"\npolygon = {json.dumps(polygon)}\n'
        )
        with pytest.raises(ConfigError) as caught:
            load_config(path)
        (line,) = caught.value.problems
        assert "zones[1].polygon" in line and "\n" not in line, line
        assert len(line) < 400, line


def test_a_bad_zone_stops_the_service_with_exit_78(tmp_path: Path) -> None:
    path = tmp_path / "edge-pose.toml"
    path.write_text('[[zones]]\nname = "bed"\npolygon = [[0.1, 0.1], [0.5, 0.1]]\n')
    run = subprocess.run(
        [sys.executable, "-m", "edge_pose.cli", "validate", "--config", str(path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 78
    assert run.stderr.strip().splitlines() == [
        f"edge-pose: error: {path}: zones[0].polygon = [[0.1, 0.1], [0.5, 0.1]]: zone 'bed' "
        "has 2 corner(s): a zone needs at least 3 [x, y] pairs"
    ]


def test_crossing_a_zone_border_is_one_enter_and_one_leave(standing: np.ndarray) -> None:
    """Walking left to right through a zone across the middle of the picture; then standing
    on its border, swaying across it every frame: no more events."""
    start = standing.copy()
    start[:, 0] -= 400  # the feet at about x = 60 px

    def walk(t: float) -> np.ndarray:
        moved = start.copy()
        if t < 10.0:
            moved[:, 0] += 60 * t  # feet from 60 to 660 px over 10 s
        else:  # on the border at x = 0.6 * 640 = 384 px, swaying 20 px either side
            moved[:, 0] += 384 - feet(start)[0] + (20 if int(t * FPS) % 2 else -20)
        return moved

    hall = [{"name": "hall", "polygon": [[0.3, 0.5], [0.6, 0.5], [0.6, 1], [0.3, 1]]}]
    _, events = play(walk, 16.0, hall)
    kinds = [(e["type"], e["zone"]) for _, e in events.of("zone_enter", "zone_leave")]
    assert kinds == [("zone_enter", "hall"), ("zone_leave", "hall")]  # the swaying: nothing
    (entered, _), (left, _) = events.of("zone_enter", "zone_leave")
    # The feet cross x = 0.3 at 2.2 s and x = 0.6 at 5.4 s; then the dwell (0.5 s) and the
    # smoothing's lag (under 0.5 s at this speed).
    assert 2.7 <= entered <= 3.2 and 5.9 <= left <= 6.4


# --------------------------------------------------------------------------- inactivity


def test_inactive_after_a_while_still_and_active_on_moving(standing: np.ndarray) -> None:
    keep_still = still(standing)

    def path(t: float) -> np.ndarray:
        points = keep_still(t)
        if t >= 12.0:  # raises the arm the model sees well
            points[KP["left_wrist"], 1] -= 120
            points[KP["left_elbow"], 1] -= 60
        return points

    _, events = play(path, 15.0, **{"events.inactivity.after_s": 5.0})
    (when, inactive), = events.of("inactive")
    assert 5.0 <= when <= 6.0 and inactive["after_s"] >= 5.0
    (moved, active), = events.of("active")
    assert 12.0 <= moved <= 12.5 and active["inactive_s"] >= 6.5


def test_a_zone_changes_the_inactivity_time(standing: np.ndarray) -> None:
    room = [[0, 0], [1, 0], [1, 1], [0, 1]]
    everywhere = [{"name": "room", "polygon": room, "inactive_after_s": 2.0}]
    _, events = play(still(standing), 6.0, everywhere, **{"events.inactivity.after_s": 30.0})
    (when, event), = events.of("inactive")
    assert 2.0 <= when <= 3.5 and event["zone"] == "room"
    never = [{"name": "bed", "polygon": room, "inactive_after_s": 0}]
    _, events = play(still(standing), 8.0, never, **{"events.inactivity.after_s": 3.0})
    assert events.of("inactive") == []


def test_walking_about_is_never_inactive(standing: np.ndarray) -> None:
    def path(t: float) -> np.ndarray:
        moved = standing.copy()
        moved[:, 0] += 100 * math.sin(t)  # to and fro, 1 m or so
        return moved

    _, events = play(path, 20.0, **{"events.inactivity.after_s": 3.0})
    assert events.of("inactive") == []


# --------------------------------------------------------------------------- real stills and clips


def stills(folder: Path, first: Path, then: Path, fps: int, first_s: float, then_s: float) -> None:
    """A folder of stills as a sequence: ``first`` for ``first_s``, then ``then``."""
    folder.mkdir()
    count = round(first_s * fps)
    for i in range(count + round(then_s * fps)):
        (folder / f"frame_{i}.png").symlink_to(first if i < count else then)


def run_print(folder: Path, tmp_path: Path, fps: int) -> list[dict]:
    config = tmp_path / "edge-pose.toml"
    config.write_text(
        f"[camera]\nfps = {fps}\nrealtime = false\n[mqtt]\nenabled = false\n"
        "[http]\nenabled = false\n"
    )
    env = {**os.environ, "EDGE_POSE_STATUS_DIR": str(tmp_path / "status")}
    run = subprocess.run(
        [sys.executable, "-m", "edge_pose.cli", "run", "--config", str(config), "--camera",
         str(folder), "--print"], capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    return [json.loads(line) for line in run.stdout.splitlines()]


def test_a_fall_in_stills_is_one_fall(data_dir: Path, tmp_path: Path) -> None:
    """Standing 2 s, then on the floor 10 s, as a folder of stills at 10 fps: one `fall`,
    at most confirm_s + 1 s of scene time after the first frame on the floor."""
    ambianic = data_dir / "ambianic"
    stills(tmp_path / "fall", ambianic / "fall_img_11.png", ambianic / "fall_img_12.png", 10, 2, 10)
    lines = run_print(tmp_path / "fall", tmp_path, 10)
    falls = [i for i, line in enumerate(lines) if line.get("type") == "fall"]
    assert len(falls) == 1
    frame = next(line["frame"] for line in lines[falls[0]:] if "keypoints" in line)
    assert 20 < frame <= 20 + (3.0 + 1.0) * 10  # the floor from frame 20; confirm_s 3
    assert [line["type"] for line in lines if line.get("type", "").startswith("fall")] == ["fall"]


def test_partial_bodies_in_stills_are_no_fall(data_dir: Path, tmp_path: Path) -> None:
    ambianic = data_dir / "ambianic"
    first, then = ambianic / "fall_img_5.png", ambianic / "fall_img_6.png"
    stills(tmp_path / "partial", first, then, 10, 2, 10)
    lines = run_print(tmp_path / "partial", tmp_path, 10)
    assert len([line for line in lines if "keypoints" in line]) == 120
    assert [line for line in lines if line.get("type", "").startswith("fall")] == []


def test_image_sequences_play_in_name_order() -> None:
    names = ["frame_10.png", "frame_2.png", "frame_1.png", "a/frame_3.png", "frame_002b.png"]
    ordered = sorted((Path(n) for n in names), key=name_order)
    assert [str(p) for p in ordered] == [
        "a/frame_3.png", "frame_1.png", "frame_2.png", "frame_002b.png", "frame_10.png",
    ]


class Replay:
    """The detections a real model made of a clip, played again frame by frame: the model
    is deterministic and every pass over a looped clip starts afresh (a cut), so each pass
    sees exactly these."""

    def __init__(self, model: object) -> None:
        self.model = model
        self.max_people = model.max_people  # type: ignore[attr-defined]
        self.stage_ns = [0, 0, 0]
        self.recorded: list[list[Detection]] = []
        self.index: int | None = None  # None: recording

    def estimate(self, image: np.ndarray, region: Region | None = None) -> list[Detection]:
        if self.index is None:
            found = self.model.estimate(image, region)  # type: ignore[attr-defined]
            self.recorded.append([Detection(d.keypoints.copy(), d.score, d.region) for d in found])
            return found
        found = self.recorded[self.index % len(self.recorded)]
        return [Detection(d.keypoints.copy(), d.score, d.region) for d in found]


@pytest.mark.parametrize(
    "clip", ["tfjs/pose_squats.mp4", "tfjs/pose_1.mp4", "mmpose/street_walk.mp4"]
)
def test_the_shared_clips_looped_ten_minutes_give_no_fall(
    clip: str, model: MoveNet, data_dir: Path
) -> None:
    """Squats, dancing and a street, each looped for 10 minutes of scene time: no `fall`.
    The first pass runs the real model; the loops replay its detections (the same pipeline,
    smoothing, crops and detectors run on every frame)."""
    capture = cv2.VideoCapture(str(data_dir / clip))
    fps = capture.get(cv2.CAP_PROP_FPS)
    frames = []
    while (ok_image := capture.read())[0]:
        frames.append(cv2.cvtColor(ok_image[1], cv2.COLOR_BGR2RGB))
    assert frames
    replay = Replay(model)
    cfg = configured()
    pipeline = Pipeline(replay, device_id="t", temporal=Temporal.from_config(cfg))  # type: ignore[arg-type]
    events = Events()
    pipeline.sinks.append(events)
    total = round(600 * fps)
    for i in range(total):
        passes, at = divmod(i, len(frames))
        if passes:
            replay.index = at
        scene_s = i / fps
        cut = passes > 0 and at == 0
        scene_ns = round(scene_s * 1e9)
        pipeline.process(
            Frame(frames[at], time.monotonic_ns(), 1e9 + scene_s, i, scene_ns=scene_ns, cut=cut)
        )
    assert pipeline.stats.processed == total
    assert events.of("fall") == []
    assert events.of("person_enter")  # someone was there to fall


def test_leaving_the_picture_leaves_the_zone(standing: np.ndarray) -> None:
    """A single-pose person who walks out of a zone and out of the picture: `zone_leave`
    before their `person_leave` (their track never ends: leaving is their presence ending)."""
    room = [{"name": "room", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]}]
    _, events = play(walking_out(standing), 10.0, room)
    kinds = [e["type"] for _, e in events.of("zone_enter", "zone_leave", "person_leave")]
    assert kinds == ["zone_enter", "zone_leave", "person_leave"]


def test_new_zones_at_a_reload_keep_the_people_and_their_fall(standing: np.ndarray) -> None:
    """A reload that changes only [[zones]]: the person keeps their id, label and fall;
    they leave the old zone and enter the new one."""
    everywhere = [[0, 0], [1, 0], [1, 1], [0, 1]]
    pipeline, _ = play(falling(standing, at=1.0), 8.0, [{"name": "old", "polygon": everywhere}])
    temporal = pipeline.temporal
    assert temporal.fall() and temporal.occupied_zones() == ["old"]
    reps_state = temporal.people[1].labels
    new = configured([{"name": "new", "polygon": everywhere}])
    temporal.rewatch(new.events, zones_of(new.zones))
    assert temporal.pending == [{"type": "zone_leave", "zone": "old", "person_id": 1}]
    assert temporal.fall() and temporal.people[1].labels is reps_state
    assert temporal.occupied_zones() == []
