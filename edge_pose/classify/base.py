"""What every pose classifier offers the pipeline, and the rule for frames it cannot judge.

A classifier has ``labels`` (its classes, in a fixed order) and
``classify(keypoints, width, height) -> dict[str, float]``: ``keypoints`` is the (17, 3) float
array of a :class:`~edge_pose.pose.Pose` (x, y in frame pixels, score, COCO order), ``width`` and
``height`` the frame size. The result always holds every label, each scored 0..1. It runs once
per frame on the Pi, so implementations do vectorised numpy work and no per-call allocation of
anything large.

When the torso is not seen (either shoulder or either hip at or below
:data:`~edge_pose.pose.KEYPOINT_THRESHOLD`) there is nothing to measure a pose against:
``classify`` then returns 0.0 for every label (see :func:`no_scores`), so consumers that smooth
scores over time see the label fade instead of a guess.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from edge_pose.pose import KEYPOINT_THRESHOLD, KP

# Shoulders and hips: the frame of reference of every trained classifier here.
TORSO = np.array(
    [KP["left_shoulder"], KP["right_shoulder"], KP["left_hip"], KP["right_hip"]], np.intp
)


@runtime_checkable
class Classifier(Protocol):
    """A pose classifier: class -> score (0..1) for one frame's keypoints."""

    labels: list[str]

    def classify(self, keypoints: np.ndarray, width: int, height: int) -> dict[str, float]:
        """Scores of every label for ``keypoints`` (17, 3): x, y in frame pixels, score."""
        ...


def torso_seen(keypoints: np.ndarray, threshold: float = KEYPOINT_THRESHOLD) -> bool:
    """Whether both shoulders and both hips score above ``threshold``."""
    return bool((keypoints[TORSO, 2] > threshold).all())


def no_scores(labels: list[str]) -> dict[str, float]:
    """The result for a frame that cannot be classified: every label at 0.0."""
    return dict.fromkeys(labels, 0.0)


def best_label(scores: dict[str, float]) -> tuple[str | None, float]:
    """The highest-scoring label and its score; (None, 0.0) when every score is 0."""
    if not scores:
        return None, 0.0
    label = max(scores, key=scores.__getitem__)
    score = scores[label]
    return (label, score) if score > 0.0 else (None, 0.0)
