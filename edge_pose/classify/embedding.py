"""The pose embedding of the k-NN classifier (the MediaPipe / ML Kit fitness approach on COCO-17).

A pose is made independent of where the person stands and how large they appear:

- centre: the hip midpoint;
- size: ``max(2.5 x torso size, largest distance of a seen keypoint from the centre)``, where
  torso size is the distance from the shoulder midpoint to the hip midpoint (2.5 is ML Kit's
  multiplier, chosen there by experiment);
- description: the difference vectors between the pairs of :data:`PAIRS` (x and y of each),
  divided by the size. A difference vector does not change when the pose is moved, so only the
  size needs the centre.

:data:`PAIRS` is ML Kit's set adapted to the 17 COCO keypoints (BlazePose's extra hand, foot and
face points do not exist in COCO), plus the head direction that COCO's nose gives.

Each pair is a row of one (rows, 17) matrix, so embedding N poses is one matrix product; the
left-right mirror of a pose (left and right keypoints swapped, x negated) is a column
permutation of the same matrix.
"""

from __future__ import annotations

import numpy as np

from edge_pose.pose import KEYPOINT_NAMES, KEYPOINT_THRESHOLD, KP

TORSO_MULTIPLIER = 2.5

# BlazePose-33 landmark index of each COCO-17 keypoint, in COCO order.
BLAZEPOSE_TO_COCO = (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)

# COCO index of each keypoint's left-right counterpart (the nose is its own).
MIRROR = tuple(
    KP[name.replace("left_", "right_")]
    if name.startswith("left_")
    else KP[name.replace("right_", "left_")]
    if name.startswith("right_")
    else KP[name]
    for name in KEYPOINT_NAMES
)

# A point is a keypoint name or the midpoint of both hips / both shoulders.
_MIDPOINTS = {
    "hips": ("left_hip", "right_hip"),
    "shoulders": ("left_shoulder", "right_shoulder"),
}

# (from, to): each row of the embedding is ``to - from``.
PAIRS: tuple[tuple[str, str], ...] = (
    # the torso and the head direction
    ("hips", "shoulders"),
    ("shoulders", "nose"),
    # one joint: upper and lower arms and legs
    ("left_shoulder", "left_elbow"),
    ("right_shoulder", "right_elbow"),
    ("left_elbow", "left_wrist"),
    ("right_elbow", "right_wrist"),
    ("left_hip", "left_knee"),
    ("right_hip", "right_knee"),
    ("left_knee", "left_ankle"),
    ("right_knee", "right_ankle"),
    # two joints: whole arms and legs
    ("left_shoulder", "left_wrist"),
    ("right_shoulder", "right_wrist"),
    ("left_hip", "left_ankle"),
    ("right_hip", "right_ankle"),
    # four joints: hip to wrist
    ("left_hip", "left_wrist"),
    ("right_hip", "right_wrist"),
    # five joints: shoulder to ankle
    ("left_shoulder", "left_ankle"),
    ("right_shoulder", "right_ankle"),
    # across the body
    ("left_elbow", "right_elbow"),
    ("left_knee", "right_knee"),
    ("left_wrist", "right_wrist"),
    ("left_ankle", "right_ankle"),
)

ROWS = len(PAIRS)


def _point(name: str) -> np.ndarray:
    weights = np.zeros(len(KEYPOINT_NAMES))
    for part in _MIDPOINTS.get(name, (name,)):
        weights[KP[part]] += 1.0 / len(_MIDPOINTS.get(name, (name,)))
    return weights


# (ROWS, 17): embedding rows = PAIR_MATRIX @ keypoints_xy.
PAIR_MATRIX = np.stack([_point(b) - _point(a) for a, b in PAIRS]).astype(np.float32)
# The same rows for the mirrored pose (keypoints swapped left-right; x is negated separately).
MIRROR_MATRIX = np.ascontiguousarray(PAIR_MATRIX[:, np.argsort(MIRROR)])

_HIPS = np.array([KP["left_hip"], KP["right_hip"]])
_SHOULDERS = np.array([KP["left_shoulder"], KP["right_shoulder"]])


def pose_size(keypoints: np.ndarray, threshold: float = KEYPOINT_THRESHOLD) -> np.ndarray:
    """The normalising size of each pose in ``keypoints`` (N, 17, 3) (or one (17, 3) pose):
    ``max(2.5 x torso size, largest distance of a seen keypoint from the hip centre)``."""
    xy = keypoints[..., :2]
    hips = (xy[..., _HIPS[0], :] + xy[..., _HIPS[1], :]) * 0.5
    shoulders = (xy[..., _SHOULDERS[0], :] + xy[..., _SHOULDERS[1], :]) * 0.5
    torso = shoulders - hips
    torso = np.sqrt((torso * torso).sum(axis=-1))
    offsets = xy - hips[..., None, :]
    reach = (offsets * offsets).sum(axis=-1)
    reach = np.sqrt(np.where(keypoints[..., 2] > threshold, reach, 0.0).max(axis=-1))
    return np.maximum(TORSO_MULTIPLIER * torso, reach)


def embed(keypoints: np.ndarray, mirrored: bool = False) -> np.ndarray:
    """Embeddings (N, ROWS, 2) of poses (N, 17, 3); x, y in any unit (pixels, normalised).

    With ``mirrored`` the embedding of each pose's left-right mirror image. A pose of size 0
    (every keypoint on one spot) embeds as NaN.
    """
    keypoints = np.asarray(keypoints, np.float32)
    matrix = MIRROR_MATRIX if mirrored else PAIR_MATRIX
    rows = np.matmul(matrix, keypoints[..., :2])
    if mirrored:
        rows[..., 0] *= -1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        return rows / pose_size(keypoints)[..., None, None].astype(np.float32)


def mirror_keypoints(keypoints: np.ndarray, width: float) -> np.ndarray:
    """The keypoints (17, 3) of the horizontally flipped frame of ``width`` pixels: x -> width
    - x, and left and right keypoints swapped (the person's left arm appears as a right arm)."""
    flipped = np.array(keypoints, dtype=np.float32)[list(MIRROR)]
    flipped[:, 0] = width - flipped[:, 0]
    return flipped
