"""A person's body as the safety events read it: where the hips are, how the torso leans, how
big the person is, and where they stand.

Everything is measured in the frame's pixels from the smoothed keypoints and turned into
*body-size units* (the torso's length while standing) by the detectors, so the same thresholds
hold for someone near the camera and someone across the room. Plain floats: this runs once per
person per frame, and 17 keypoints are faster as a Python list than as numpy slices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edge_pose.pose import KP

# A keypoint counts for the safety events above this score: higher than the crop's 0.2, as a
# wrong hip or shoulder would move the torso, and a fall alarm must not rest on a guess.
SEEN = 0.3

_SHOULDERS = (KP["left_shoulder"], KP["right_shoulder"])
_HIPS = (KP["left_hip"], KP["right_hip"])
_ANKLES = (KP["left_ankle"], KP["right_ankle"])


@dataclass(frozen=True, slots=True)
class Body:
    """One person in one frame, in pixels (y grows downwards)."""

    hip_x: float
    hip_y: float  # the midpoint of the hips seen
    rise: float  # how far the shoulders are above the hips (negative: below)
    torso: float  # the torso's length in the picture
    lean_deg: float  # the torso's angle from vertical in the picture: 0 upright, 90 level
    legs: float | None  # how far the ankles are below the hips; None: no ankle seen
    wide: bool  # the keypoints seen spread wider than tall (a body lying across the picture)
    foot_x: float  # where the person stands: the ankles' midpoint, else the hips'
    foot_y: float
    points: tuple[tuple[float, float, float], ...]  # every keypoint as (x, y, score)

    def standing(self, max_lean_deg: float) -> bool:
        """Torso upright and, when an ankle is seen, the legs stretched below it (at least one
        torso length: sitting or squatting folds them)."""
        if self.lean_deg >= max_lean_deg:
            return False
        return self.legs is None or self.legs >= self.torso

    def tilt_deg(self, upright_torso: float) -> float:
        """How far the torso has turned from vertical, the turn away from the camera included:
        a torso that lies towards the camera keeps its angle in the picture but shortens, so
        its rise is compared with its length while standing (``upright_torso``)."""
        ratio = max(-1.0, min(1.0, self.rise / upright_torso)) if upright_torso > 0 else 1.0
        return max(self.lean_deg, math.degrees(math.acos(ratio)))


def measure(keypoints: np.ndarray) -> Body | None:
    """The body in these keypoints; None unless a shoulder and a hip are seen (a partial body,
    or a person leaving the picture, gives no measure rather than a wrong one)."""
    points = [tuple(point) for point in keypoints.tolist()]
    shoulders = [points[i] for i in _SHOULDERS if points[i][2] > SEEN]
    hips = [points[i] for i in _HIPS if points[i][2] > SEEN]
    if not shoulders or not hips:
        return None
    sx, sy = _mid(shoulders)
    hx, hy = _mid(hips)
    dx, rise = sx - hx, hy - sy
    torso = math.hypot(dx, rise)
    if torso < 1.0:
        return None
    lean = math.degrees(math.atan2(abs(dx), rise))
    ankles = [points[i] for i in _ANKLES if points[i][2] > SEEN]
    legs = _mid(ankles)[1] - hy if ankles else None
    seen = [(x, y) for x, y, score in points if score > SEEN]
    xs, ys = [x for x, _ in seen], [y for _, y in seen]
    wide = max(xs) - min(xs) > max(ys) - min(ys)
    foot_x, foot_y = _mid(ankles) if len(ankles) == 2 else (hx, hy)
    return Body(hx, hy, rise, torso, lean, legs, wide, foot_x, foot_y, tuple(points))  # type: ignore[arg-type]


def moved(before: Body, after: Body) -> float:
    """How far the body moved, in pixels: the second-largest step of a keypoint seen in both.
    A raised hand moves two keypoints (wrist and elbow) by a lot and the rest not at all, so a
    mean would hide it; one keypoint alone may be the model's glitch, so the largest is not
    trusted."""
    steps = sorted(
        (
            math.hypot(x1 - x0, y1 - y0)
            for (x0, y0, s0), (x1, y1, s1) in zip(before.points, after.points, strict=True)
            if s0 > SEEN and s1 > SEEN
        ),
        reverse=True,
    )
    return steps[1] if len(steps) > 1 else 0.0


def _mid(points: list[tuple[float, float, float]]) -> tuple[float, float]:
    n = len(points)
    return sum(p[0] for p in points) / n, sum(p[1] for p in points) / n
