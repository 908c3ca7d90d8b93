"""The pose in a still image: the best look (whole image, then a crop around the person found),
its plain-data form, and where annotated copies go. `edge-pose estimate` (commands/estimate.py)
and `classifier train` on image folders use it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edge_pose.errors import UsageError
from edge_pose.inference.crop import full_frame, next_region, stretched_frame, torso_visible
from edge_pose.inference.estimator import Detection, PoseEstimator, nobody
from edge_pose.outputs import check_image_output, is_image_name, refuse_input_as_output
from edge_pose.pose import KEYPOINT_NAMES, Pose, seen_box


def estimate_pose(
    model: PoseEstimator,
    image: np.ndarray,
    *,
    fit: str = "letterbox",
    refine: bool = True,
    min_pose_score: float = 0.25,
) -> Pose:
    """The best pose in one image; with ``refine`` a second look at a crop around the person
    found, kept when it scores higher (what the video pipeline does from the second frame on)."""
    pose = _estimate(model, image, fit, refine, min_pose_score)[0]
    if pose.person:
        pose.person_id = 1
    return pose


def estimate_people(
    model: PoseEstimator,
    image: np.ndarray,
    *,
    fit: str = "letterbox",
    refine: bool = True,
    min_pose_score: float = 0.25,
) -> list[Pose]:
    """Everyone in one image, best first: the best as :func:`estimate_pose` finds them, then
    the others the model saw (a MultiPose model sees several) that count as people. The best is
    always there, a person or not, as ``estimate`` has always reported it."""
    best, found = _estimate(model, image, fit, refine, min_pose_score)
    height, width = image.shape[:2]
    others = [
        _pose(d, min_pose_score, width, height) for d in found[1:] if d.score >= min_pose_score
    ]
    people = [best, *others]
    for number, pose in enumerate((pose for pose in people if pose.person), 1):
        pose.person_id = number
    return people


def _estimate(
    model: PoseEstimator, image: np.ndarray, fit: str, refine: bool, min_pose_score: float
) -> tuple[Pose, list[Detection]]:
    """The best pose (refined), and the model's first look at the whole image."""
    height, width = image.shape[:2]
    whole = stretched_frame(width, height) if fit == "stretch" else full_frame(width, height)
    found = model.estimate(image, whole)
    best = found[0] if found else nobody(whole)
    # A second look at a crop is single-pose's way; a multi-person model looks at the whole
    # frame whatever it is given, so a second call would only repeat the first.
    if refine and model.max_people == 1 and torso_visible(best.keypoints):
        crop = next_region(best.keypoints, width, height)
        if crop != full_frame(width, height):
            refined = model.estimate(image, crop)
            if refined and refined[0].score > best.score:
                best = refined[0]
    return _pose(best, min_pose_score, width, height), found


def _pose(detection: Detection, min_pose_score: float, width: int, height: int) -> Pose:
    return Pose(
        detection.keypoints, detection.score, detection.score >= min_pose_score,
        detection.region, 0, 0, 0.0, width, height,
    )  # fmt: skip


def people_list(people: list[Pose]) -> list[dict[str, Any]]:
    """The people of an image as plain data: a number (as listed, best first), the score, the
    box of the keypoints seen and the keypoints."""
    return [
        {
            "id": pose.person_id,
            "score": round(pose.score, 4),
            "box": None if (box := seen_box(pose.keypoints)) is None else box.as_list(),
            "keypoints": _keypoints(pose),
        }
        for pose in people
        if pose.person
    ]


def pose_dict(pose: Pose) -> dict[str, Any]:
    """A pose as plain data for JSON output."""
    return {
        "width": pose.width,
        "height": pose.height,
        "score": round(pose.score, 4),
        "person": pose.person,
        "region": pose.region.as_list(),
        "keypoints": _keypoints(pose),
    }


def _keypoints(pose: Pose) -> list[dict[str, Any]]:
    return [
        {"name": name, "x": round(x, 2), "y": round(y, 2), "score": round(s, 4)}
        for name, (x, y, s) in zip(KEYPOINT_NAMES, pose.keypoints.tolist(), strict=True)
    ]


def annotation_targets(out: Path, images: list[Path]) -> list[Path]:
    """Where each image's annotated copy goes: ``out`` itself for one image (unless it is a
    folder), else ``out/<name>_pose.png``, numbered when two images share a name. Checked
    before any image is read: an output that is one of the inputs, or a format OpenCV cannot
    write, is a UsageError."""
    if len(images) == 1 and not out.is_dir():
        targets = [out]
        check_image_output(out, "--annotate")
    else:
        if out.exists() and not out.is_dir():
            raise UsageError(f"--annotate {out}: a file; several images need a folder to go in")
        if not out.exists() and is_image_name(out):
            raise UsageError(
                f"--annotate {out}: an image file name, but {len(images)} images need a folder "
                "to go in; give a folder name, or one image"
            )
        out.mkdir(parents=True, exist_ok=True)
        targets, taken = [], set()
        for image in images:
            name, n = f"{image.stem}_pose.png", 2
            while name in taken:
                name, n = f"{image.stem}_pose_{n}.png", n + 1
            taken.add(name)
            targets.append(out / name)
    for target in targets:
        refuse_input_as_output(target, images, "--annotate")
    return targets
