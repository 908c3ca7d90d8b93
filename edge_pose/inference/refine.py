"""A second look at each person a multi-person model finds: ``tracking.refine``.

MultiPose sees the whole frame at 256x256, so a person far from the camera covers few of its
input pixels. Single-pose MoveNet on a crop around that person (the crop rule of
:mod:`edge_pose.inference.crop`, as the single-pose pipeline uses from its second frame) sees
them at its full input size. :class:`Refined` runs the multi-person model, then single-pose
Lightning INT8 on each person's crop, and keeps the second look's keypoints when they score
higher on the same measure: the mean of the keypoint scores above threshold
(:func:`~edge_pose.pose.pose_score`, single-pose's own score; MultiPose's per-person score is
another quantity). Every person it returns (a MultiPose score of at least ``min_pose_score``)
is scored that way, best first, the other candidates after them as MultiPose scored them. It
costs one
single-pose invoke per person per frame (docs/performance.md measures it), so it is off by
default.
"""

from __future__ import annotations

import numpy as np

from edge_pose.config import Config
from edge_pose.errors import ModelError
from edge_pose.inference.crop import full_frame, next_region, torso_visible
from edge_pose.inference.estimator import Detection, PoseEstimator, Wrapped
from edge_pose.pose import Region, pose_score


class Refined(Wrapped):
    """A :class:`~edge_pose.inference.estimator.PoseEstimator`: ``people`` finds everyone,
    ``single`` looks again at each one's crop. It reads as ``people`` (input, interpreter,
    ``max_people``); ``stage_ns`` adds both models' times."""

    def __init__(self, people: PoseEstimator, single: PoseEstimator, min_pose_score: float):
        super().__init__(people)
        self.single = single
        self.min_pose_score = min_pose_score
        self._stage_ns = [0, 0, 0]

    @property
    def stage_ns(self) -> list[int]:
        return self._stage_ns

    def estimate(self, image: np.ndarray, region: Region | None = None) -> list[Detection]:
        found = self.inner.estimate(image, region)
        stages = list(self.inner.stage_ns)
        height, width = image.shape[:2]
        whole = full_frame(width, height)
        people: list[Detection] = []
        others: list[Detection] = []  # not people: as the model scored them, after the people
        for detection in found:
            if detection.score < self.min_pose_score:
                others.append(detection)
                continue
            first = Detection(detection.keypoints, pose_score(detection.keypoints[:, 2]),
                              detection.region)  # fmt: skip
            people.append(first)
            crop = next_region(detection.keypoints, width, height)
            if not torso_visible(detection.keypoints) or crop == whole:
                continue  # the crop rule has nothing better to look at
            better = self.single.estimate(image, crop)
            stages = [a + b for a, b in zip(stages, self.single.stage_ns, strict=True)]
            if better and better[0].score > first.score:
                people[-1] = better[0]
        people.sort(key=lambda detection: -detection.score)
        self._stage_ns = stages
        return people + others


def refined(model: PoseEstimator, cfg: Config) -> PoseEstimator:
    """``model`` with the second look when ``tracking.refine`` asks for it and ``model`` finds
    several people (a single-pose model already looks at a crop); the refining model is loaded
    on the CPU with ``model.threads``."""
    if not cfg.tracking.refine or model.max_people <= 1:
        return model
    from edge_pose.inference.backend import load_estimator

    single_cfg = cfg.model.model_copy(update={"name": cfg.tracking.refine_model, "backend": "cpu"})
    try:
        single, _, _ = load_estimator(single_cfg)
    except ModelError as exc:
        raise ModelError(f"tracking.refine_model = {cfg.tracking.refine_model!r}: {exc}") from exc
    if single.max_people != 1:
        raise ModelError(
            f"tracking.refine_model = {cfg.tracking.refine_model!r} finds several people: the "
            "second look needs a single-pose model (e.g. movenet_lightning_int8)"
        )
    return Refined(model, single, cfg.model.min_pose_score)
