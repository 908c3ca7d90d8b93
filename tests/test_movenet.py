"""MoveNet on the real INT8 model: reference keypoints, coordinate mapping, bad model files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import reference_xy

from edge_pose.camera.file import load_image
from edge_pose.errors import ModelError
from edge_pose.estimate import estimate_pose
from edge_pose.inference.crop import full_frame, stretched_frame
from edge_pose.inference.movenet import MoveNet
from edge_pose.pose import KEYPOINT_NAMES, Region, pose_score
from edge_pose.wire import keypoints_payload


@pytest.fixture(scope="module")
def lightning(lightning_path: Path) -> MoveNet:
    return MoveNet(lightning_path, threads=2)


def test_squat_matches_pycoral_reference(lightning: MoveNet, data_dir: Path) -> None:
    image = load_image(data_dir / "coral" / "squat.bmp")
    height, width = image.shape[:2]
    keypoints = lightning.infer(image, stretched_frame(width, height))
    error = np.abs(keypoints[:, :2] / (width, height) - reference_xy(data_dir))
    assert error.max() <= 0.05, error
    assert error.mean() <= 0.025
    assert keypoints.dtype == np.float32 and keypoints.shape == (17, 3)


def test_letterbox_maps_back_to_frame_pixels(lightning: MoveNet, data_dir: Path) -> None:
    """The same person found letterboxed and stretched lands on the same frame pixels."""
    image = load_image(data_dir / "coral" / "squat.bmp")
    height, width = image.shape[:2]
    letterboxed = lightning.infer(image, full_frame(width, height))
    stretched = lightning.infer(image, stretched_frame(width, height))
    confident = (letterboxed[:, 2] > 0.3) & (stretched[:, 2] > 0.3)
    assert confident.sum() >= 10
    distance = np.linalg.norm(letterboxed[confident, :2] - stretched[confident, :2], axis=1)
    assert np.median(distance) < 0.02 * max(width, height)


def test_pose_score_and_payload(lightning: MoveNet, data_dir: Path) -> None:
    image = load_image(data_dir / "coral" / "squat.bmp")
    pose = estimate_pose(lightning, image, refine=False)
    scores = pose.keypoints[:, 2]
    assert pose.score == pytest.approx(scores[scores > 0.2].mean())
    assert pose.person
    import json

    payload = json.loads(keypoints_payload([pose], "pi-lab", 11.84))
    assert payload["v"] == 1 and payload["device"] == "pi-lab" and payload["latency_ms"] == 11.8
    assert [k["name"] for k in payload["keypoints"]] == list(KEYPOINT_NAMES)
    assert payload["width"] == 500 and payload["height"] == 610 and payload["person"] is True
    assert payload["person_id"] == 1 and "people" not in payload  # one person: no list


def test_pose_score_ignores_unseen_keypoints() -> None:
    assert pose_score(np.array([0.1, 0.15, 0.2])) == 0.0
    assert pose_score(np.array([0.1, 0.5, 0.7])) == pytest.approx(0.6)


def test_edgetpu_build_on_cpu_names_the_twin(model_dir: Path, data_dir: Path) -> None:
    from conftest import require

    shared = require(
        data_dir.parent / "models" / "movenet_single_pose_lightning_ptq_edgetpu.tflite"
    )
    with pytest.raises(ModelError, match=r"Edge TPU.*movenet_lightning_int8"):
        MoveNet(shared, threads=1, cpu_twin="movenet_lightning_int8")


@pytest.mark.parametrize("content", [b"", b"not a model at all\n", b"TFL3" + b"\0" * 64])
def test_corrupt_model_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.tflite"
    path.write_bytes(content)
    with pytest.raises(ModelError, match=r"not a valid TFLite file.*models verify"):
        MoveNet(path)


def test_truncated_model(tmp_path: Path, lightning_path: Path) -> None:
    path = tmp_path / "truncated.tflite"
    path.write_bytes(lightning_path.read_bytes()[:200_000])
    with pytest.raises(ModelError, match="not a valid TFLite file"):
        MoveNet(path)


def test_float_input_model_maps_outputs_to_pixels(tmp_path: Path) -> None:
    """A float-input stand-in whose 'keypoints' are the input's channel means: proves the warp
    fills the tensor as 0..255 RGB and (y, x) outputs land on frame pixels of the region."""
    from tflite_builder import write_channel_mean_model

    model = MoveNet(
        write_channel_mean_model(tmp_path / "mean.tflite", size=128, input_dtype="float32")
    )
    assert model.input_size == 128 and model.input_dtype == np.float32
    image = np.empty((60, 80, 3), np.uint8)
    image[:] = (51, 204, 102)  # R -> y 0.2, G -> x 0.8, B -> score 0.4
    keypoints = model.infer(image, stretched_frame(80, 60))
    # Within 1%: the outermost input pixels blend with the black border, as crops must.
    assert np.allclose(keypoints, (0.8 * 80, 0.2 * 60, 0.4), rtol=0.01)
    # A region reaching past the frame: 62.5% of it is image, the rest black padding, so the
    # means shrink by that fraction and map back through the region's origin and size.
    keypoints = model.infer(image, Region(-20, -10, 60, 50))
    assert np.allclose(keypoints[:, :2], (-20 + 0.8 * 0.625 * 80, -10 + 0.2 * 0.625 * 60), atol=1)


def test_model_that_is_not_movenet(tmp_path: Path) -> None:
    from tflite_builder import write_shape_model

    path = write_shape_model(tmp_path / "detector.tflite", [1, 300, 300, 3], [1, 6, 56])
    with pytest.raises(
        ModelError,
        match=r"not a single-pose MoveNet \(kind movenet_single\): input \[1, 300, 300, 3\].*"
        r"outputs \[\[1, 6, 56\]\]",
    ):
        MoveNet(path)
