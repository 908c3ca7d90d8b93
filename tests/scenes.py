"""Two-person scenes made from the shared clips, for the several-people tests.

The squatter of pose_squats.mp4 and the dancer of pose_1.mp4, each in a 200 px strip around
them, pasted into a 960x540 picture wherever a test wants them (side by side, crossing, one of
them away). Where each strip was pasted is known, so a test can tell who is who without the
model. Nothing here is committed media: the pictures are made from ../shared at test time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

WIDTH, HEIGHT, STRIP = 960, 540, 200
SCENE_FPS = 5.0  # pose_squats.mp4's own rate
DANCER_FPS = 30.0  # pose_1.mp4's

# Where each person's strip starts in one picture (None: not in it).
Places = dict[str, int | None]
# A scene: step -> (picture, places).
Scene = Callable[[int], tuple[np.ndarray, Places]]


@dataclass
class Clips:
    squatter: list[np.ndarray]  # RGB strips, STRIP wide, HEIGHT high
    dancer: list[np.ndarray]


def read_rgb(path: Path, size: tuple[int, int]) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(cv2.resize(bgr, size, interpolation=cv2.INTER_AREA),
                                   cv2.COLOR_BGR2RGB))  # fmt: skip
    capture.release()
    assert frames, f"cannot read {path}"
    return frames


def load_clips(data_dir: Path) -> Clips:
    squats = read_rgb(data_dir / "tfjs" / "pose_squats.mp4", (304, HEIGHT))
    dance = read_rgb(data_dir / "tfjs" / "pose_1.mp4", (HEIGHT, HEIGHT))
    return Clips([f[:, 52:252] for f in squats], [f[:, 168:368] for f in dance])


def compose(clips: Clips, step: int, squatter_x: int | None, dancer_x: int | None,
            dancer_in_front: bool = False, fps: float = SCENE_FPS,
            ) -> tuple[np.ndarray, Places]:  # fmt: skip
    """Step ``step`` of a scene at ``fps``: each clip at its own pace (the squatter's frames
    one a step, the dancer's ``DANCER_FPS / fps`` a step), pasted at x (None: not there)."""
    canvas = np.full((HEIGHT, WIDTH, 3), 90, np.uint8)
    dancer = round(step * DANCER_FPS / fps) % len(clips.dancer)
    layers = [("squatter", squatter_x, clips.squatter[step % len(clips.squatter)]),
              ("dancer", dancer_x, clips.dancer[dancer])]  # fmt: skip
    if not dancer_in_front:
        layers.reverse()
    for _, x, strip in layers:
        if x is not None:
            canvas[:, x : x + STRIP] = strip
    return canvas, {name: x for name, x, _ in layers}


def side_by_side(clips: Clips) -> Scene:
    """The squatter on the left, the dancer on the right, for as long as the squats last."""
    return lambda step: compose(clips, step, 40, 700)


def write_video(path: Path, scene: Scene, steps: int, fps: float = SCENE_FPS) -> Path:
    """``steps`` pictures of ``scene`` as a video file (MJPG .avi: lossless enough, fast)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (WIDTH, HEIGHT))
    assert writer.isOpened(), f"cannot write {path}"
    for step in range(steps):
        writer.write(cv2.cvtColor(scene(step)[0], cv2.COLOR_RGB2BGR))
    writer.release()
    return path
