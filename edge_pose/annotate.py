"""Drawing the skeleton on a copy of an image, for people who would rather look than read."""

from __future__ import annotations

import cv2
import numpy as np

from edge_pose.pose import KEYPOINT_THRESHOLD, SKELETON_EDGES, Pose, seen_box

LEFT, RIGHT, CENTRE = (255, 140, 0), (0, 170, 255), (255, 255, 255)  # RGB


def _side_colour(a: int, b: int) -> tuple[int, int, int]:
    # COCO order: odd indices are left, even (but nose) right.
    if a % 2 and b % 2:
        return LEFT
    if a and b and a % 2 == 0 and b % 2 == 0:
        return RIGHT
    return CENTRE


def draw_pose(
    image: np.ndarray,
    pose: Pose,
    *,
    show_region: bool = True,
    out: np.ndarray | None = None,
    caption: bool = True,
) -> np.ndarray:
    """An RGB copy of ``image`` with the keypoints and limbs seen above threshold drawn.

    ``out``, an array of ``image``'s shape and type, receives the copy instead of a new one: a
    long-running stream draws every picture into the same memory rather than making the
    allocator find 2.7 MB (a 720p frame) per picture. ``out`` may be ``image`` itself, a copy
    the caller made (a resized frame): it is drawn on in place."""
    canvas = draw_nothing(image, out)
    scale = max(canvas.shape[:2]) / 640
    thickness = max(1, round(2 * scale))
    points = pose.keypoints
    seen = points[:, 2] > KEYPOINT_THRESHOLD
    for a, b in SKELETON_EDGES:
        if seen[a] and seen[b]:
            pa = (round(float(points[a, 0])), round(float(points[a, 1])))
            pb = (round(float(points[b, 0])), round(float(points[b, 1])))
            cv2.line(canvas, pa, pb, _side_colour(a, b), thickness, cv2.LINE_AA)
    for x, y, _ in points[seen]:
        cv2.circle(
            canvas,
            (round(float(x)), round(float(y))),
            thickness + 2,
            (255, 40, 40),
            -1,
            cv2.LINE_AA,
        )
    if show_region:
        r = pose.region
        cv2.rectangle(
            canvas, (round(r.x0), round(r.y0)), (round(r.x1), round(r.y1)), (80, 220, 80), 1
        )
    if caption:
        label = f"score {pose.score:.2f}" + ("" if pose.person else " (no person)")
        if pose.label:
            label += f"  {pose.label}"
        _text(canvas, label, (8, round(24 * scale)), scale)
    return canvas


def draw_people(
    image: np.ndarray, people: list[Pose], *, out: np.ndarray | None = None
) -> np.ndarray:
    """A copy of ``image`` with every person drawn (into ``out`` as :func:`draw_pose` does):
    one person as :func:`draw_pose` draws them; several each with their id (their number as
    listed when they have none) and steady label or score above the box of their keypoints,
    and the count at the top."""
    if len(people) <= 1:
        return draw_pose(image, people[0], out=out) if people else draw_nothing(image, out)
    canvas = draw_nothing(image, out)
    scale = max(canvas.shape[:2]) / 640
    for number, pose in enumerate(people, 1):
        draw_pose(canvas, pose, show_region=False, out=canvas, caption=False)
        if (box := seen_box(pose.keypoints)) is not None:
            cv2.rectangle(
                canvas, (round(box.x0), round(box.y0)), (round(box.x1), round(box.y1)),
                (80, 220, 80), 1,
            )  # fmt: skip
            top = max(round(box.y0) - 6, round(16 * scale))
            what = pose.label if pose.label is not None else f"{pose.score:.2f}"
            _text(canvas, f"{pose.person_id or number}  {what}", (round(box.x0), top), scale)
    _text(canvas, f"{len(people)} people", (8, round(24 * scale)), scale)
    return canvas


def draw_nothing(image: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The canvas :func:`draw_pose` would draw on: ``out`` holding ``image``, or a copy."""
    if out is image:
        return out
    if out is not None and out.shape == image.shape and out.dtype == image.dtype:
        np.copyto(out, image)
        return out
    return image.copy()


def _text(canvas: np.ndarray, text: str, where: tuple[int, int], scale: float) -> None:
    cv2.putText(
        canvas, text, where, cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, (255, 255, 0),
        max(1, round(2 * scale)), cv2.LINE_AA,
    )  # fmt: skip


def save_rgb(path: str, image: np.ndarray) -> bool:
    """Write an RGB image with OpenCV (which expects BGR); False when it cannot."""
    try:
        return bool(cv2.imwrite(path, cv2.cvtColor(image, cv2.COLOR_RGB2BGR)))
    except cv2.error:  # no writer for the extension (callers check it first; this is the net)
        return False
