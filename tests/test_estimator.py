"""The pose-estimator interface on the real model: a list of detections in frame pixels, the
manifest's model kinds and the table that maps them to classes, the Edge TPU wrapper."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from edge_pose.camera.file import load_image
from edge_pose.errors import ModelError
from edge_pose.inference import models
from edge_pose.inference.backend import ESTIMATORS, EdgeTpuEstimator, estimator_class
from edge_pose.inference.crop import full_frame
from edge_pose.inference.estimator import Detection
from edge_pose.inference.movenet import MoveNet
from edge_pose.pose import KEYPOINT_THRESHOLD, Region, pose_score


@pytest.fixture(scope="module")
def lightning(lightning_path: Path) -> MoveNet:
    return MoveNet(lightning_path, threads=2)


def test_single_pose_returns_one_detection_in_frame_pixels(
    lightning: MoveNet, data_dir: Path
) -> None:
    image = load_image(data_dir / "coral" / "squat.bmp")
    height, width = image.shape[:2]
    (detection,) = lightning.estimate(image)
    assert detection.region == full_frame(width, height)  # None: the whole frame, letterboxed
    assert np.array_equal(detection.keypoints, lightning.infer(image, full_frame(width, height)))
    assert detection.score == pose_score(detection.keypoints[:, 2]) > 0.5
    assert all(n > 0 for n in lightning.stage_ns)
    box = detection.box
    seen = detection.keypoints[detection.keypoints[:, 2] > KEYPOINT_THRESHOLD]
    assert box is not None and 0 <= box.x0 < box.x1 <= width and 0 <= box.y0 < box.y1 <= height
    assert (seen[:, 0] >= box.x0).all() and (seen[:, 1] <= box.y1).all()
    crop = Region(100, 150, 400, 450)
    assert lightning.estimate(image, crop)[0].region == crop


def test_an_empty_scene_still_gives_the_best_guess(lightning: MoveNet, data_dir: Path) -> None:
    """Whether a candidate is a person is the pipeline's call (model.min_pose_score)."""
    (detection,) = lightning.estimate(load_image(data_dir / "coral" / "cat_720p.jpg"))
    assert detection.keypoints.shape == (17, 3) and detection.score < 0.25


def test_a_box_needs_a_keypoint_seen() -> None:
    unseen = Detection(np.zeros((17, 3), np.float32), 0.0, Region(0, 0, 1, 1))
    assert unseen.box is None


def test_every_manifest_kind_has_an_estimator() -> None:
    kinds = {info.kind for info in models.catalog().values()}
    assert kinds == {"movenet_single", "movenet_multi"} and kinds <= set(ESTIMATORS)
    assert estimator_class(None) not in ESTIMATORS.values()  # outside the catalog: by tensors


def test_an_unknown_kind_is_refused_by_name() -> None:
    info = dataclasses.replace(models.catalog()["movenet_lightning_int8"], name="centernet",
                               kind="centernet")
    with pytest.raises(ModelError, match=r"model 'centernet' is of kind 'centernet', which this "
                       r"edge-pose cannot run \(it runs movenet_single, movenet_multi\)"):
        estimator_class(info)


def test_manifest_kind_is_optional_and_checked(tmp_path: Path) -> None:
    entry = (
        '[[model]]\nname = "m"\nfile = "m.tflite"\nsha256 = ""\ninput_size = 192\n'
        'backend = "cpu"\ntwin = ""\nurl = ""\nlicense = ""\ndescription = ""\n'
    )
    older = tmp_path / "older.toml"
    older.write_text(entry)
    assert models._load_manifest(older)["m"].kind == "movenet_single"
    bad = tmp_path / "bad.toml"
    bad.write_text(entry + 'kind = "Multi Pose"\n')
    with pytest.raises(ModelError, match=r"model 'm': kind 'Multi Pose' must be a lowercase name"):
        models._load_manifest(bad)
    wrong = tmp_path / "wrong.toml"
    wrong.write_text(entry + "kind = 1\n")
    with pytest.raises(ModelError, match="wrong type for kind"):
        models._load_manifest(wrong)


def test_edgetpu_wrapper_is_the_estimator_it_wraps(lightning: MoveNet, data_dir: Path) -> None:
    wrapped = EdgeTpuEstimator(lightning, "usb:0")
    assert (wrapped.input_size, wrapped.input_dtype, wrapped.threads) == (192, np.uint8, 2)
    assert wrapped.interpreter is lightning.interpreter and wrapped.stage_ns is lightning.stage_ns
    image = load_image(data_dir / "coral" / "squat.bmp")
    (detection,) = wrapped.estimate(image)
    assert np.array_equal(detection.keypoints, lightning.estimate(image)[0].keypoints)
