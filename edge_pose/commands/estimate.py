"""`edge-pose estimate IMAGE...`: the pose in still images, as text, JSON or annotated copies.

A bad image is reported and the others still run; the exit code is 1 when any failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_pose.errors import EX_FAILURE, EX_OK, EdgePoseError

if TYPE_CHECKING:
    from edge_pose.commands import Subparsers


def add_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("estimate", help="estimate the pose in still images")
    parser.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    parser.add_argument("--config", type=Path, help="config file for model settings")
    parser.add_argument("--model", metavar="NAME|PATH")
    parser.add_argument("--threads", type=int, metavar="N")
    parser.add_argument(
        "--fit",
        choices=("letterbox", "stretch"),
        default="letterbox",
        help="letterbox keeps the aspect ratio (default); stretch squeezes",
    )
    parser.add_argument(
        "--refine",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="look again at a crop around the person found (default on)",
    )
    parser.add_argument(
        "--annotate",
        type=Path,
        metavar="OUT",
        help="write the image with the skeleton drawn (a folder for several)",
    )
    parser.add_argument("--json", action="store_true", help="JSON output")
    return parser


def run(args: argparse.Namespace) -> int:
    from edge_pose.annotate import draw_people, save_rgb
    from edge_pose.camera.file import load_image
    from edge_pose.estimate import annotation_targets, estimate_people, people_list, pose_dict
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
            people = estimate_people(
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
        # The top-level fields describe the best person, as always; ``people`` lists everyone.
        result = {"image": str(path), **pose_dict(people[0]), "people": people_list(people)}
        if targets is not None:
            target = targets[index]
            shown = [p for p in people if p.person] or people[:1]  # nobody: the best guess
            if not save_rgb(str(target), draw_people(image, shown)):
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
    if len(result["people"]) > 1:
        print(f"  {len(result['people'])} people:")
        for person in result["people"]:
            box = person["box"]
            where = "no keypoint seen" if box is None else (
                f"box ({box[0]:.0f}, {box[1]:.0f})-({box[2]:.0f}, {box[3]:.0f})"
            )  # fmt: skip
            print(f"  #{person['id']} score {person['score']:.2f}, {where}")
    if "annotated" in result:
        print(f"  annotated: {result['annotated']}")
