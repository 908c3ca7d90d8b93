"""Drawing the skeleton and the zones on a copy of an image, for people who would rather look
than read."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

import cv2
import numpy as np

from edge_pose.pose import KEYPOINT_THRESHOLD, SKELETON_EDGES, Pose, seen_box

LEFT, RIGHT, CENTRE = (255, 140, 0), (0, 170, 255), (255, 255, 255)  # RGB
# Zones: violet while empty, magenta with a light wash while someone is in them; colours the
# skeleton does not use, so a zone's edge is never taken for a limb.
ZONE, ZONE_OCCUPIED = (170, 110, 255), (255, 40, 200)  # RGB
ZONE_WASH = 0.2  # how much of the occupied colour is blended into an occupied zone


class ZoneOutline(NamedTuple):
    """A zone as drawn: its name and corners as fractions of the picture (the config's
    ``[[zones]]``), and whether someone is in it."""

    name: str
    corners: Sequence[tuple[float, float]]
    occupied: bool = False


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


class Zoned(Protocol):
    """The zones and who is in them (edge_pose.track.Temporal), read on the pipeline's thread
    right after the frame."""

    @property
    def zones(self) -> Sequence[_Zone]: ...

    def occupied_zones(self) -> list[str]: ...


class _Zone(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def corners(self) -> Sequence[tuple[float, float]]: ...


def zone_outlines(zoned: Zoned | None) -> list[ZoneOutline]:
    """The zones of ``zoned`` as drawn, those someone is in now highlighted."""
    if zoned is None or not zoned.zones:
        return []
    occupied = set(zoned.occupied_zones())
    return [ZoneOutline(z.name, z.corners, z.name in occupied) for z in zoned.zones]


def draw_people(
    image: np.ndarray,
    people: list[Pose],
    *,
    out: np.ndarray | None = None,
    zones: Sequence[ZoneOutline] = (),
) -> np.ndarray:
    """A copy of ``image`` with every person drawn (into ``out`` as :func:`draw_pose` does):
    one person as :func:`draw_pose` draws them; several each with their id (their number as
    listed when they have none) and steady label or score above the box of their keypoints,
    and the count at the top. ``zones`` are drawn first, under the people."""
    if zones:
        image = draw_zones(image, zones, out=out)
        out = image  # drawn on in place from here on
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


def draw_zones(
    image: np.ndarray, zones: Sequence[ZoneOutline], *, out: np.ndarray | None = None
) -> np.ndarray:
    """A copy of ``image`` (into ``out`` as :func:`draw_pose` does) with each zone's outline
    and name; an occupied zone thicker, in another colour, over a light wash of it. Corners
    are fractions of the picture, so the zones fit a picture of any size (a scaled stream)."""
    canvas = draw_nothing(image, out)
    height, width = canvas.shape[:2]
    scale = max(height, width) / 640
    for zone in zones:
        if len(zone.corners) < 3:
            continue
        points = np.array(
            [(round(x * (width - 1)), round(y * (height - 1))) for x, y in zone.corners],
            np.int32,
        )
        colour = ZONE_OCCUPIED if zone.occupied else ZONE
        if zone.occupied:
            _wash(canvas, points, colour)
        thickness = max(2, round((3 if zone.occupied else 2) * scale))
        cv2.polylines(canvas, [points], True, colour, thickness, cv2.LINE_AA)
        # The name inside the zone, under its top corner (the leftmost of the top ones).
        top = min(points.tolist(), key=lambda p: (p[1], p[0]))
        size = 0.5 * scale
        (text_w, text_h), _ = cv2.getTextSize(zone.name, cv2.FONT_HERSHEY_SIMPLEX, size, 1)
        x = min(max(top[0] + thickness + 5, 5), max(5, width - text_w - 5))
        y = min(max(top[1] + text_h + thickness + 6, text_h + 5), height - 5)
        _label(canvas, zone.name, (x, y), size, colour)
    return canvas


def _wash(canvas: np.ndarray, points: np.ndarray, colour: tuple[int, int, int]) -> None:
    """Blend ``colour`` into the polygon ``points``, within its bounding box only."""
    height, width = canvas.shape[:2]
    x0, y0 = np.clip(points.min(axis=0), 0, (width - 1, height - 1))
    x1, y1 = np.clip(points.max(axis=0) + 1, 1, (width, height))
    if x1 <= x0 or y1 <= y0:
        return
    box = canvas[y0:y1, x0:x1]
    mask = np.zeros(box.shape[:2], np.uint8)
    cv2.fillPoly(mask, [points - (x0, y0)], 1)
    tint = np.empty_like(box)
    tint[:] = colour
    blended = cv2.addWeighted(box, 1 - ZONE_WASH, tint, ZONE_WASH, 0)
    np.copyto(box, blended, where=mask.view(bool)[..., None])


def _label(
    canvas: np.ndarray, text: str, where: tuple[int, int], size: float,
    colour: tuple[int, int, int],
) -> None:  # fmt: skip
    """Text in ``colour`` on a dark box, readable on a light or a dark picture."""
    thickness = max(1, round(size * 2))
    (text_w, text_h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, size, thickness)
    x, y = where
    cv2.rectangle(canvas, (x - 3, y - text_h - 3), (x + text_w + 3, y + base), (20, 20, 20), -1)
    cv2.putText(canvas, text, where, cv2.FONT_HERSHEY_SIMPLEX, size, colour, thickness,
                cv2.LINE_AA)  # fmt: skip


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
