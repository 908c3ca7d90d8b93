"""Bodies that move: a real person's keypoints turned, lowered and carried, frame by frame, as a
body moves, and played through the real pipeline (tests/test_safety.py, and
benchmarks/fall_margins.py which measures how far each movement stays from the fall thresholds).

A fall turns the body over about the ankles in a fraction of a second; going to bed lowers and
turns it over seconds; sitting, squatting, bending and crouching move the hips and the torso as
those do. The estimator the pipeline gets (:class:`Moving`) finds the scripted keypoints, with
nothing seen past the picture's edge, as a real model finds nothing there.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edge_pose.camera.base import Frame
from edge_pose.config import Config, load_config
from edge_pose.inference.estimator import Detection, nobody
from edge_pose.pipeline import Pipeline
from edge_pose.pose import KP, Region
from edge_pose.sinks.base import FrameResult, Sink
from edge_pose.track import Temporal

FPS = 15
WIDTH, HEIGHT = 640, 480
ANKLES = [KP["left_ankle"], KP["right_ankle"]]
UPPER = list(range(0, 11))  # head, shoulders, arms: what bends at the hips


def turned(
    points: np.ndarray, degrees: float, centre: np.ndarray, which: object = None
) -> np.ndarray:
    """``points`` (or the rows ``which``) turned clockwise on the picture about ``centre``."""
    out = points.copy()
    rows = slice(None) if which is None else which
    a = math.radians(degrees)
    d = out[rows, :2] - centre
    out[rows, 0] = centre[0] + d[:, 0] * math.cos(a) - d[:, 1] * math.sin(a)
    out[rows, 1] = centre[1] + d[:, 0] * math.sin(a) + d[:, 1] * math.cos(a)
    return out


def feet(points: np.ndarray) -> np.ndarray:
    return points[ANKLES, :2].mean(axis=0)


def hips(points: np.ndarray) -> np.ndarray:
    return points[[KP["left_hip"], KP["right_hip"]], :2].mean(axis=0)


def torso(points: np.ndarray) -> float:
    shoulders = points[[KP["left_shoulder"], KP["right_shoulder"]], :2].mean(axis=0)
    return float(np.linalg.norm(shoulders - hips(points)))


def ramp(t: float, start: float, seconds: float) -> float:
    """0 before ``start``, 1 after ``start + seconds``, linear between."""
    return min(1.0, max(0.0, (t - start) / seconds)) if seconds > 0 else float(t >= start)


Path_ = Callable[[float], "np.ndarray | None"]


def falling(body: np.ndarray, at: float, seconds: float = 0.6, degrees: float = -90) -> Path_:
    """Standing until ``at``, then turned over about the ankles (a fall sideways, to the left:
    the person stands at the right of the picture)."""
    return lambda t: turned(body, degrees * ramp(t, at, seconds), feet(body))


def lowered(points: np.ndarray, by: float, which: object = None) -> np.ndarray:
    out = points.copy()
    out[slice(None) if which is None else which, 1] += by
    return out


class Moving:
    """A single-pose estimator whose person follows a scripted path of keypoints."""

    max_people = 1
    input_size = 192

    def __init__(self, path: Path_) -> None:
        self.path = path
        self.t = 0.0
        self.stage_ns = [0, 0, 0]

    def estimate(self, image: np.ndarray, region: Region | None = None) -> list[Detection]:
        points = self.path(self.t)
        if points is None:
            return [nobody(Region(0, 0, WIDTH, HEIGHT))]
        points = points.copy()
        outside = (points[:, 0] < 0) | (points[:, 0] >= WIDTH) | (points[:, 1] >= HEIGHT)
        points[outside, 2] = 0.0  # the model sees nothing past the picture's edge
        score = float(points[points[:, 2] > 0.2, 2].mean()) if (points[:, 2] > 0.2).any() else 0
        return [Detection(points, score, Region(0, 0, WIDTH, HEIGHT))]


class Events(Sink):
    """Every event with the scene time of its frame."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, dict]] = []

    def deliver(self, result: FrameResult) -> None:
        t = result.frame.scene_ns / 1e9
        self.seen += [(t, json.loads(text)) for text in result.event_texts()]

    def of(self, *kinds: str) -> list[tuple[float, dict]]:
        return [(t, e) for t, e in self.seen if e["type"] in kinds]


def configured(zones: list[dict] | None = None, **overrides: object) -> Config:
    """The default config with ``overrides`` and ``zones`` (written as [[zones]] in a file:
    an array of tables is no command-line override)."""
    if not zones:
        return load_config(None, {"mqtt.enabled": False, **overrides})
    text = "".join(
        f'[[zones]]\nname = "{zone["name"]}"\npolygon = {json.dumps(zone["polygon"])}\n'
        + "".join(f"{key} = {json.dumps(value)}\n" for key, value in zone.items()
                  if key not in ("name", "polygon"))
        for zone in zones
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "edge-pose.toml"
        path.write_text(text)
        return load_config(path, {"mqtt.enabled": False, **overrides})


def play(
    path: Path_, seconds: float, zones: list[dict] | None = None, **overrides: object
) -> tuple[Pipeline, Events]:
    """Play ``path`` at FPS through the real pipeline (default config, ``zones`` and
    ``overrides`` applied)."""
    cfg = configured(zones, **overrides)
    model = Moving(path)
    pipeline = Pipeline(model, device_id="t", temporal=Temporal.from_config(cfg))  # type: ignore[arg-type]
    events = Events()
    pipeline.sinks.append(events)
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    for i in range(round(seconds * FPS)):
        model.t = i / FPS
        scene_ns = round(model.t * 1e9)
        pipeline.process(Frame(image, time.monotonic_ns(), 1e9 + model.t, i, scene_ns=scene_ns))
    return pipeline, events


def lying_down_slowly(body: np.ndarray) -> Path_:
    """Going to bed: turned over like a fall, but over five seconds."""
    return falling(body, at=2.0, seconds=5.0)


def sitting_then_lying(body: np.ndarray) -> Path_:
    """Sitting down on a bed's edge (0.8 s), then lying back over 3 s."""
    drop = 0.9 * torso(body)

    def path(t: float) -> np.ndarray:
        sat = lowered(body, drop * ramp(t, 2.0, 0.8), slice(0, 13))
        sat[13:15, 0] += 0.5 * drop * ramp(t, 2.0, 0.8)  # knees forward
        return turned(sat, -85 * ramp(t, 4.0, 3.0), hips(sat), slice(0, 11))

    return path


def sitting_down(body: np.ndarray) -> Path_:
    """Sitting down on a chair in 0.8 s and staying there: the hips drop, the torso stays up."""
    drop = 0.9 * torso(body)

    def path(t: float) -> np.ndarray:
        sat = lowered(body, drop * ramp(t, 2.0, 0.8), slice(0, 13))
        sat[13:15, 0] += 0.5 * drop * ramp(t, 2.0, 0.8)
        return sat

    return path


def squatting(body: np.ndarray) -> Path_:
    """Ten deep squats: hips down a torso length in 0.7 s, leaning forward 35 degrees."""

    def path(t: float) -> np.ndarray:
        phase = (t - 2.0) % 3.0 if t > 2.0 else 0.0
        depth = ramp(phase, 0, 0.7) - ramp(phase, 1.2, 0.7)
        down = lowered(body, depth * torso(body), slice(0, 13))
        return turned(down, -35 * depth, hips(down), UPPER)

    return path


def bending(body: np.ndarray) -> Path_:
    """Bending at the hips to pick something up (0.6 s), staying bent 5 s, coming up."""

    def path(t: float) -> np.ndarray:
        depth = ramp(t, 2.0, 0.6) - ramp(t, 7.6, 0.6)
        bent = lowered(body, 0.15 * torso(body) * depth, slice(0, 13))
        return turned(bent, -90 * depth, hips(bent), UPPER)

    return path


def crouching(body: np.ndarray) -> Path_:
    """Crouching to tie a shoe: hips down 0.7 torso, torso forward 60 degrees, for 6 s."""

    def path(t: float) -> np.ndarray:
        depth = ramp(t, 2.0, 0.6) - ramp(t, 8.6, 0.6)
        down = lowered(body, 0.7 * torso(body) * depth, slice(0, 13))
        return turned(down, -60 * depth, hips(down), UPPER)

    return path


def walking_out(body: np.ndarray) -> Path_:
    """Walking out of the picture to the right at 150 px/s, then nobody."""

    def path(t: float) -> np.ndarray | None:
        moved = body.copy()
        moved[:, 0] += 150 * max(0.0, t - 1.0)
        return None if moved[:, 0].min() > WIDTH else moved

    return path


def partial_fall(body: np.ndarray) -> Path_:
    """Only the head and arms are in the picture (the hips hidden) while the body falls."""

    def path(t: float) -> np.ndarray:
        points = falling(body, at=2.0)(t)
        points[11:, 2] = 0.0
        return points

    return path


def still(body: np.ndarray, seed: int = 0) -> Path_:
    """Standing still, each keypoint wobbling by a pixel as a real model's do."""
    rng = np.random.default_rng(seed)

    def path(t: float) -> np.ndarray:
        out = body.copy()
        out[:, :2] += rng.normal(0, 1.0, (17, 2))
        return out

    return path


EVERYDAY = (
    lying_down_slowly, sitting_then_lying, sitting_down, squatting, bending, crouching,
    walking_out, partial_fall,
)
