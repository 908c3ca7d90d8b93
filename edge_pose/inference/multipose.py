"""MoveNet MultiPose Lightning on a TFLite interpreter (model kind ``movenet_multi``): the whole
frame in, up to six people out.

The model takes a fixed 256x256 int32 RGB input (a build of another W x H, both multiples of
32, from ``models/convert_multipose.py`` too: a frame of that aspect then fills it without black
bars) and returns ``[1, 6, 56]``: per candidate 17 x (y, x, score) normalized to the input, then
its box (ymin, xmin, ymax, xmax) and its score. The frame is letterboxed into the input with one
affine warp, as single-pose does
(:meth:`~edge_pose.inference.tflite_model.TfliteModel.load_input`), and the candidates are
mapped back to frame pixels in a few vector operations, best first.

It always looks at the whole frame: the crop around one person that single-pose uses would hide
the others, so ``region`` is not used. Whether a candidate is a person stays the caller's
decision (``model.min_pose_score``), as for every estimator. There is no Edge TPU build of this
model.
"""

from __future__ import annotations

import time

import numpy as np

from edge_pose.inference.crop import full_frame
from edge_pose.inference.estimator import Detection
from edge_pose.inference.tflite_model import TfliteModel
from edge_pose.pose import Region

PEOPLE = 6
OUTPUT_SHAPE = (1, PEOPLE, 56)


class MoveNetMulti(TfliteModel):
    """A loaded MoveNet MultiPose: a :class:`~edge_pose.inference.estimator.PoseEstimator`."""

    KIND = "movenet_multi"
    WHAT = "a MoveNet MultiPose"
    EXPECTED = (
        f"input [1, H, W, 3] and output {list(OUTPUT_SHAPE)} (a single-pose file is kind "
        "movenet_single)"
    )
    max_people = PEOPLE
    square_only = False

    @classmethod
    def accepts(cls, dtype: np.dtype, out_shapes: list[tuple[int, ...]]) -> bool:
        return out_shapes == [OUTPUT_SHAPE]

    def estimate(self, image: np.ndarray, region: Region | None = None) -> list[Detection]:
        """The candidates in the whole frame, best first (``region`` is not used: see the
        module docstring)."""
        height, width = image.shape[:2]
        whole = full_frame(width, height, self.input_width / self.input_height)
        t0 = time.perf_counter_ns()
        self.load_input(image, whole)
        t1 = time.perf_counter_ns()
        self.interpreter.invoke()
        t2 = time.perf_counter_ns()
        raw = self._output()[0]  # (6, 56)
        order = np.argsort(-raw[:, 55], kind="stable")
        people = raw[order, :51].reshape(PEOPLE, 17, 3)
        keypoints = np.empty((PEOPLE, 17, 3), np.float32)
        keypoints[..., 0] = people[..., 1] * whole.width + whole.x0
        keypoints[..., 1] = people[..., 0] * whole.height + whole.y0
        keypoints[..., 2] = people[..., 2]
        scores = raw[order, 55].tolist()
        found = [Detection(keypoints[i], scores[i], whole) for i in range(PEOPLE)]
        self.stage_ns[0], self.stage_ns[1] = t1 - t0, t2 - t1
        self.stage_ns[2] = time.perf_counter_ns() - t2
        return found
