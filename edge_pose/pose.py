"""Keypoint names, skeleton edges, and the Pose type: one person as seen in one frame.

A pose is kept as one (17, 3) float32 array of (x, y, score) in frame pixels: it is what the
model decodes into, what the crop logic and smoothing read, and what the payload formats
(:mod:`edge_pose.wire`), so no per-keypoint objects are created on the per-frame path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KEYPOINT_NAMES: tuple[str, ...] = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
KP = {name: i for i, name in enumerate(KEYPOINT_NAMES)}

# Limbs drawn on annotated images, as index pairs into KEYPOINT_NAMES.
SKELETON_EDGES: tuple[tuple[int, int], ...] = (
    (0, 1), (0, 2), (1, 3), (2, 4), (0, 5), (0, 6), (5, 7), (7, 9), (6, 8), (8, 10),
    (5, 6), (5, 11), (6, 12), (11, 12), (11, 13), (13, 15), (12, 14), (14, 16),
)  # fmt: skip

# A keypoint counts as seen above this score (MoveNet's own threshold for crops and pose score).
KEYPOINT_THRESHOLD = 0.2


@dataclass(frozen=True, slots=True)
class Region:
    """The rectangle of the frame (pixels, may reach past its edges) mapped onto the input."""

    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    def as_list(self) -> list[float]:
        return [round(self.x0, 1), round(self.y0, 1), round(self.x1, 1), round(self.y1, 1)]


@dataclass(slots=True)
class Pose:
    """One person in one frame: keypoints (17, 3) as x, y in frame pixels and score.

    It carries the frame's index, capture time and size too, so a pose is a whole keypoints
    message on its own. ``person`` is False when the model's best guess scored below
    ``model.min_pose_score``: its keypoints still go out, saying nobody is there.
    """

    keypoints: np.ndarray
    score: float
    person: bool
    region: Region
    frame_index: int
    capture_ns: int  # monotonic clock of capture
    capture_wall: float  # wall-clock seconds of capture
    width: int
    height: int
    label: str | None = None  # the steady pose label, when a classifier runs
    confidence: float = 0.0
    person_id: int | None = None  # the track id (1 for a single-pose model); None: nobody


def pose_score(scores: np.ndarray) -> float:
    """Mean of the keypoint scores above KEYPOINT_THRESHOLD (0 when none is).

    Plain floats: on 17 values this is several times faster than numpy's masked mean.
    """
    seen = [s for s in scores.tolist() if s > KEYPOINT_THRESHOLD]
    return sum(seen) / len(seen) if seen else 0.0


def seen_box(keypoints: np.ndarray) -> Region | None:
    """The box around the keypoints seen (score above KEYPOINT_THRESHOLD); None if none is."""
    seen = keypoints[keypoints[:, 2] > KEYPOINT_THRESHOLD]
    if not len(seen):
        return None
    (x0, y0), (x1, y1) = seen[:, :2].min(axis=0), seen[:, :2].max(axis=0)
    return Region(float(x0), float(y0), float(x1), float(y1))
