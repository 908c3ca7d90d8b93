"""MoveNet single-pose on a TFLite interpreter (model kind ``movenet_single``): one affine warp
in, 17 keypoints out.

Per frame this does the least work it can: the frame region is warped straight into the
interpreter's input tensor (crop, scale and black padding in one OpenCV call, no intermediate
image), and the (1, 1, 17, 3) output is mapped back to frame pixels with a few vector operations.
The model sees one person, so :meth:`MoveNet.estimate` always returns one detection: its best
guess, scored; the single-person shapes stay in this file.
"""

from __future__ import annotations

import time

import numpy as np

from edge_pose.inference.crop import full_frame
from edge_pose.inference.estimator import Detection
from edge_pose.inference.tflite_model import TfliteModel
from edge_pose.pose import Region, pose_score

OUTPUT_SHAPE = (1, 1, 17, 3)
INPUT_DTYPES = (np.uint8, np.float32, np.int32)


class MoveNet(TfliteModel):
    """A loaded single-pose MoveNet (Lightning 192, Thunder 256; INT8 or float input): a
    :class:`~edge_pose.inference.estimator.PoseEstimator`."""

    KIND = "movenet_single"
    WHAT = "a single-pose MoveNet"
    EXPECTED = (
        "input [1, N, N, 3] uint8 or float32 and output [1, 1, 17, 3] (a MultiPose file is kind "
        "movenet_multi)"
    )
    max_people = 1
    _whole = ((0, 0), Region(0, 0, 1, 1))  # the whole-frame region of the last frame size

    @classmethod
    def accepts(cls, dtype: np.dtype, out_shapes: list[tuple[int, ...]]) -> bool:
        return out_shapes == [OUTPUT_SHAPE] and dtype in INPUT_DTYPES

    def estimate(self, image: np.ndarray, region: Region | None = None) -> list[Detection]:
        """The one person MoveNet sees in ``region`` (None: the whole frame, letterboxed)."""
        if region is None:
            region = self._whole_frame(image)
        keypoints = self.infer(image, region)
        t0 = time.perf_counter_ns()
        detection = Detection(keypoints, pose_score(keypoints[:, 2]), region)
        self.stage_ns[2] += time.perf_counter_ns() - t0
        return [detection]

    def _whole_frame(self, image: np.ndarray) -> Region:
        height, width = image.shape[:2]
        size, region = self._whole
        if size != (width, height):
            region = full_frame(width, height)
            self._whole = ((width, height), region)
        return region

    def infer(self, image: np.ndarray, region: Region) -> np.ndarray:
        """Keypoints (17, 3): x, y in frame pixels and score, looking at ``region`` of ``image``."""
        t0 = time.perf_counter_ns()
        self.load_input(image, region)
        t1 = time.perf_counter_ns()
        self.interpreter.invoke()
        t2 = time.perf_counter_ns()
        raw = self._output()[0, 0]  # (17, 3): y, x, score normalized to the input
        keypoints = np.empty((17, 3), np.float32)
        keypoints[:, 0] = raw[:, 1] * region.width + region.x0
        keypoints[:, 1] = raw[:, 0] * region.height + region.y0
        keypoints[:, 2] = raw[:, 2]
        self.stage_ns[0], self.stage_ns[1] = t1 - t0, t2 - t1
        self.stage_ns[2] = time.perf_counter_ns() - t2
        return keypoints
