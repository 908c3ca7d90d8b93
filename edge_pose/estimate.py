"""`edge-pose estimate`: poses in still images, as text, JSON or annotated pictures."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from edge_pose.annotate import draw_pose, save_rgb
from edge_pose.camera.file import load_image
from edge_pose.errors import EX_FAILURE, EX_OK, EdgePoseError, UsageError
from edge_pose.inference.crop import full_frame, next_region, stretched_frame, torso_visible
from edge_pose.inference.estimator import PoseEstimator
from edge_pose.outputs import check_image_output, is_image_name, refuse_input_as_output
from edge_pose.pose import KEYPOINT_NAMES, Pose


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
    height, width = image.shape[:2]
    whole = stretched_frame(width, height) if fit == "stretch" else full_frame(width, height)
    best = model.estimate(image, whole)[0]
    if refine and torso_visible(best.keypoints):
        crop = next_region(best.keypoints, width, height)
        if crop != full_frame(width, height):
            refined = model.estimate(image, crop)[0]
            if refined.score > best.score:
                best = refined
    return Pose(
        best.keypoints, best.score, best.score >= min_pose_score, best.region,
        0, 0, 0.0, width, height,
    )  # fmt: skip


def pose_dict(pose: Pose) -> dict[str, Any]:
    """A pose as plain data for JSON output."""
    return {
        "width": pose.width,
        "height": pose.height,
        "score": round(pose.score, 4),
        "person": pose.person,
        "region": pose.region.as_list(),
        "keypoints": [
            {"name": name, "x": round(x, 2), "y": round(y, 2), "score": round(s, 4)}
            for name, (x, y, s) in zip(KEYPOINT_NAMES, pose.keypoints.tolist(), strict=True)
        ],
    }


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


def estimate_images(args: argparse.Namespace) -> int:
    """Run `estimate` over the images given; a bad image is reported and the others still run."""
    from edge_pose.inference.backend import load_configured_model

    targets = annotation_targets(args.annotate, args.images) if args.annotate else None
    cfg, model, _backend, _name = load_configured_model(
        args.config, name=args.model, threads=args.threads
    )
    results: list[dict[str, Any]] = []
    failed = 0
    several = len(args.images) > 1
    for index, path in enumerate(args.images):
        try:
            image = load_image(path)
            pose = estimate_pose(
                model,
                image,
                fit=args.fit,
                refine=args.refine,
                min_pose_score=cfg.model.min_pose_score,
            )
        except EdgePoseError as exc:
            print(f"edge-pose: error: {exc}", file=sys.stderr)
            failed += 1
            continue
        result = {"image": str(path), **pose_dict(pose)}
        if targets is not None:
            target = targets[index]
            if not save_rgb(str(target), draw_pose(image, pose)):
                print(
                    f"edge-pose: error: cannot write {target} (check the folder exists and "
                    "the file name ends in .png or .jpg)",
                    file=sys.stderr,
                )
                failed += 1
            else:
                result["annotated"] = str(target)
        results.append(result)
        if not args.json:
            _print_text(result)
    if args.json:
        print(json.dumps(results if several else (results[0] if results else None), indent=1))
    return EX_FAILURE if failed else EX_OK


def _print_text(result: dict[str, Any]) -> None:
    person = "person" if result["person"] else "no person"
    print(
        f"{result['image']}: {result['width']}x{result['height']}, pose score "
        f"{result['score']:.2f} ({person})"
    )
    for kp in result["keypoints"]:
        print(f"  {kp['name']:<15} x {kp['x']:8.1f}  y {kp['y']:8.1f}  score {kp['score']:.2f}")
    if "annotated" in result:
        print(f"  annotated: {result['annotated']}")
