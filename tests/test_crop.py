"""Smart cropping: the rule itself, and proof on a real video that it helps."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from edge_pose.camera.file import VideoFileCamera
from edge_pose.camera.grabber import FrameGrabber
from edge_pose.inference.crop import full_frame, next_region
from edge_pose.inference.movenet import MoveNet
from edge_pose.pipeline import Pipeline
from edge_pose.pose import KP, Region


def standing_person(cx: float = 300, top: float = 100, height: float = 200) -> np.ndarray:
    """An upright figure: shoulders at top + 0.25 h, hips at + 0.55 h, ankles at + h."""
    kp = np.zeros((17, 3), np.float32)
    kp[:, 2] = 0.9
    rows = {
        "nose": 0.0,
        "left_eye": 0.0,
        "right_eye": 0.0,
        "left_ear": 0.02,
        "right_ear": 0.02,
        "left_shoulder": 0.25,
        "right_shoulder": 0.25,
        "left_elbow": 0.4,
        "right_elbow": 0.4,
        "left_wrist": 0.5,
        "right_wrist": 0.5,
        "left_hip": 0.55,
        "right_hip": 0.55,
        "left_knee": 0.78,
        "right_knee": 0.78,
        "left_ankle": 1.0,
        "right_ankle": 1.0,
    }
    for name, frac in rows.items():
        side = -1 if name.startswith("left") else 1 if name.startswith("right") else 0
        kp[KP[name], 0] = cx + side * 20
        kp[KP[name], 1] = top + frac * height
    return kp


def test_crop_centres_on_hips_and_sizes_from_body() -> None:
    kp = standing_person()
    region = next_region(kp, 640, 480)
    hip_y = 100 + 0.55 * 200
    assert (region.x0 + region.x1) / 2 == pytest.approx(300)
    assert (region.y0 + region.y1) / 2 == pytest.approx(hip_y)
    # Body extent from the hips is the nose, 0.55 * 200 = 110 px above: 1.2 x 110 = 132 beats
    # the torso (1.9 x max(|dy| 60, |dx| 20) = 114).
    assert region.width / 2 == pytest.approx(132)
    assert region.width == region.height


def test_torso_not_visible_falls_back_to_full_frame() -> None:
    kp = standing_person()
    kp[[KP["left_hip"], KP["right_hip"]], 2] = 0.1
    assert next_region(kp, 640, 480) == full_frame(640, 480)


def test_crop_larger_than_frame_falls_back() -> None:
    kp = standing_person(cx=320, top=-400, height=1400)
    assert next_region(kp, 640, 480) == full_frame(640, 480)


def test_full_frame_letterboxes_to_a_square() -> None:
    assert full_frame(640, 480) == Region(0, -80, 640, 560)


def mean_scores(model: MoveNet, video: Path, crop: bool) -> float:
    pipeline = Pipeline(model, device_id="t", crop=crop)
    grabber = FrameGrabber(VideoFileCamera(video, realtime=False, loop=False)).start()
    scores = []
    while (frame := grabber.get(5)) is not None:
        scores.append(pipeline.process(frame).keypoints[:, 2].mean())
    grabber.stop()
    assert len(scores) == 120
    return float(np.mean(scores))


def test_cropping_helps_on_a_small_subject(lightning_path: Path, data_dir: Path) -> None:
    model = MoveNet(lightning_path, threads=2)
    video = data_dir / "tfjs" / "pose_1.mp4"
    without = mean_scores(model, video, crop=False)
    with_crop = mean_scores(model, video, crop=True)
    assert with_crop > without + 0.05, (with_crop, without)


def test_grabber_handles_stop_while_waiting(data_dir: Path) -> None:
    camera = VideoFileCamera(data_dir / "tfjs" / "pose_1.mp4", realtime=False, loop=True)
    grabber = FrameGrabber(camera).start()
    assert grabber.get(5) is not None
    stopper = threading.Timer(0.1, grabber.stop)
    stopper.start()
    stopper.join()
    assert grabber.error is None
