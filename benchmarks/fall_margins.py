#!/usr/bin/env python3
"""How far everyday movements stay from a fall, and how clearly falls cross the thresholds.

Every scene goes through the real pipeline (smoothing, tracking, labelling, the detectors)
with the default config: the movements of tests/movements.py (a real person's keypoints moved
as a body moves), the ambianic stills as a sequence through the real Lightning model, and the
shared clips through the real model. For each scene it reports the closest the fall detector
came to a descent (``FallDetector.reach``: the drop in body-size units and the turn in degrees
from a standing moment within ``window_s``, and the smaller of drop / min_drop and turn /
min_turn_deg, where 1.0 is a descent), how many descents it saw, the `fall` events, and for
scenes with a known moment on the floor, the delay to the `fall` event. docs/events.md shows
the table.

    .venv/bin/python benchmarks/fall_margins.py [--data ../shared/data] [--model PATH]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import movements  # noqa: E402

from edge_pose.camera.base import Frame  # noqa: E402
from edge_pose.camera.file import load_image  # noqa: E402
from edge_pose.estimate import estimate_pose  # noqa: E402
from edge_pose.inference.movenet import MoveNet  # noqa: E402
from edge_pose.pipeline import Pipeline  # noqa: E402
from edge_pose.safety.falls import Phase  # noqa: E402
from edge_pose.track import Temporal  # noqa: E402

Scene = tuple[str, Callable[[], Iterator[tuple[np.ndarray, float, bool]]], object, float | None]


def measure_scene(model: object, frames: Iterator[tuple[np.ndarray, float, bool]],
                  floor_s: float | None) -> dict[str, object]:  # fmt: skip
    """Play ``frames`` (image, scene seconds, cut) through a default pipeline."""
    pipeline = Pipeline(model, device_id="b", temporal=Temporal.from_config(movements.configured()))  # type: ignore[arg-type]
    events = movements.Events()
    pipeline.sinks.append(events)
    closest, descents = (0.0, 0.0, 0.0), 0
    phases: dict[int, Phase] = {}
    for i, (image, t, cut) in enumerate(frames):
        pipeline.process(Frame(image, time.monotonic_ns(), 1e9 + t, i,
                               scene_ns=round(t * 1e9), cut=cut))  # fmt: skip
        for person_id, track in pipeline.temporal.people.items():
            falls = track.safety.falls if track.safety is not None else None
            if falls is None:
                continue
            reach = falls.reach()
            if reach[2] > closest[2]:
                closest = reach
            if falls.phase is Phase.FALLING and phases.get(person_id) is Phase.WATCHING:
                descents += 1
            phases[person_id] = falls.phase
    falls_seen = events.of("fall")
    delay = falls_seen[0][0] - floor_s if falls_seen and floor_s is not None else None
    return {"drop": closest[0], "turn": closest[1], "closeness": closest[2],
            "descents": descents, "falls": len(falls_seen), "delay": delay}  # fmt: skip


def scripted(path: movements.Path_, seconds: float) -> Iterator[tuple[np.ndarray, float, bool]]:
    """Frames for a :class:`movements.Moving` estimator (it ignores the picture)."""
    image = np.zeros((movements.HEIGHT, movements.WIDTH, 3), np.uint8)
    for i in range(round(seconds * movements.FPS)):
        yield image, i / movements.FPS, False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    lightning = REPO / "models" / "movenet_single_pose_lightning_ptq.tflite"
    parser.add_argument("--model", type=Path, default=lightning)
    args = parser.parse_args()
    model = MoveNet(args.model, threads=2)
    ambianic = args.data / "ambianic"
    standing = estimate_pose(model, load_image(ambianic / "fall_img_11.png")).keypoints.copy()

    rows: list[tuple[str, dict[str, object]]] = []
    for name, path, floor in (
        ("fall sideways, 0.6 s", movements.falling(standing, at=2.0), 2.6),
        ("fall sideways, 1.0 s", movements.falling(standing, at=2.0, seconds=1.0), 3.0),
        ("fall, half the size", movements.falling(_smaller(standing), at=2.0), 2.6),
    ):
        moving = movements.Moving(path)
        rows.append((name, _scripted_scene(moving, 15.0, floor)))
    for movement in movements.EVERYDAY:
        moving = movements.Moving(movement(standing))
        rows.append((movement.__name__.replace("_", " "), _scripted_scene(moving, 35.0, None)))
    for name, first, then, floor in (
        ("stills: fall_img_11 -> 12", "fall_img_11.png", "fall_img_12.png", 2.0),
        ("stills: fall_img_5 -> 6 (partial)", "fall_img_5.png", "fall_img_6.png", None),
    ):
        a, b = load_image(ambianic / first), load_image(ambianic / then)
        frames = ((a if i < 20 else b, i / 10, False) for i in range(120))
        rows.append((name, measure_scene(model, frames, floor)))
    for clip in ("tfjs/pose_squats.mp4", "tfjs/pose_1.mp4", "mmpose/street_walk.mp4"):
        rows.append((clip.split("/")[1], measure_scene(model, _video(args.data / clip), None)))

    print("| scene | drop | turn | closeness | descents | falls | delay to `fall` |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, r in rows:
        delay = "" if r["delay"] is None else f"{r['delay']:.1f} s"
        print(f"| {name} | {r['drop']:.2f} | {r['turn']:.0f} | {r['closeness']:.2f} | "
              f"{r['descents']} | {r['falls']} | {delay} |")  # fmt: skip
    return 0


def _scripted_scene(moving: movements.Moving, seconds: float, floor: float | None) -> dict:
    def frames() -> Iterator[tuple[np.ndarray, float, bool]]:
        for image, t, cut in scripted(moving.path, seconds):
            moving.t = t
            yield image, t, cut

    return measure_scene(moving, frames(), floor)


def _smaller(body: np.ndarray) -> np.ndarray:
    small = body.copy()
    small[:, :2] = small[:, :2] * 0.5 + (100, 150)
    return small


def _video(path: Path) -> Iterator[tuple[np.ndarray, float, bool]]:
    capture = cv2.VideoCapture(str(path))
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    i = 0
    while (read := capture.read())[0]:
        yield cv2.cvtColor(read[1], cv2.COLOR_BGR2RGB), i / fps, False
        i += 1


if __name__ == "__main__":
    sys.exit(main())
