"""Where to look in the next frame: MoveNet's smart cropping.

A person far from the camera covers few pixels of a letterboxed 192x192 input. MoveNet's own video
pipeline therefore crops a square around the person found in the previous frame, centred on the
hip midpoint and sized from the torso and body extents, and falls back to the whole frame when the
torso is not visible. This module holds that rule and nothing else.
"""

from __future__ import annotations

import numpy as np

from edge_pose.pose import KEYPOINT_THRESHOLD, KP, Region

LEFT_SHOULDER, RIGHT_SHOULDER = KP["left_shoulder"], KP["right_shoulder"]
LEFT_HIP, RIGHT_HIP = KP["left_hip"], KP["right_hip"]
TORSO = (LEFT_SHOULDER, RIGHT_SHOULDER, LEFT_HIP, RIGHT_HIP)
TORSO_SCALE = 1.9
BODY_SCALE = 1.2


def full_frame(width: int, height: int, aspect: float = 1.0) -> Region:
    """The whole frame in a region of ``aspect`` (width / height: the model input's) centred on
    it: a square by default (letterbox: black bars on the short side); a frame of the input's
    own aspect exactly, without bars."""
    half_w = max(width, height * aspect) / 2
    half_h = half_w / aspect
    cx, cy = width / 2, height / 2
    return Region(cx - half_w, cy - half_h, cx + half_w, cy + half_h)


def stretched_frame(width: int, height: int) -> Region:
    """The whole frame squeezed into the input without bars (how pycoral's example resizes)."""
    return Region(0.0, 0.0, float(width), float(height))


def torso_visible(keypoints: np.ndarray) -> bool:
    """A shoulder and a hip are seen: enough to anchor a crop on the person."""
    s = keypoints[:, 2]
    shoulder = max(s[KP["left_shoulder"]], s[KP["right_shoulder"]])
    hip = max(s[KP["left_hip"]], s[KP["right_hip"]])
    return bool(shoulder > KEYPOINT_THRESHOLD and hip > KEYPOINT_THRESHOLD)


def next_region(keypoints: np.ndarray, width: int, height: int) -> Region:
    """The square to feed the model in the next frame, from this frame's keypoints (pixels)."""
    points = keypoints.tolist()
    shoulder = max(points[LEFT_SHOULDER][2], points[RIGHT_SHOULDER][2])
    hip = max(points[LEFT_HIP][2], points[RIGHT_HIP][2])
    if not (shoulder > KEYPOINT_THRESHOLD and hip > KEYPOINT_THRESHOLD):
        return full_frame(width, height)
    cx = (points[LEFT_HIP][0] + points[RIGHT_HIP][0]) / 2
    cy = (points[LEFT_HIP][1] + points[RIGHT_HIP][1]) / 2
    torso_extent = max(max(abs(points[i][0] - cx), abs(points[i][1] - cy)) for i in TORSO)
    body_extent = max(
        (max(abs(x - cx), abs(y - cy)) for x, y, s in points if s > KEYPOINT_THRESHOLD),
        default=0.0,
    )
    half = max(TORSO_SCALE * torso_extent, BODY_SCALE * body_extent)
    # Keep the square anchored on the frame: no larger than the farthest frame edge from the centre.
    half = min(half, max(cx, width - cx, cy, height - cy))
    if half > max(width, height) / 2 or half <= 0:
        return full_frame(width, height)
    return Region(cx - half, cy - half, cx + half, cy + half)
