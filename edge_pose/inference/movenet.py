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
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge_pose.errors import ModelError
from edge_pose.inference.crop import full_frame
from edge_pose.inference.estimator import Detection
from edge_pose.inference.runtime import make_interpreter
from edge_pose.pose import Region, pose_score

OUTPUT_SHAPE = (1, 1, 17, 3)
INPUT_DTYPES = (np.uint8, np.float32, np.int32)
EDGETPU_OP = "edgetpu-custom-op"


class MoveNet:
    """A loaded single-pose MoveNet (Lightning 192, Thunder 256; INT8 or float input): a
    :class:`~edge_pose.inference.estimator.PoseEstimator`."""

    def __init__(
        self,
        model_path: Path,
        *,
        threads: int = 4,
        delegates: list[object] | None = None,
        cpu_twin: str | None = None,
        runtime: str = "auto",
    ) -> None:
        self.path = model_path
        self.threads = threads
        self.interpreter = _load(model_path, threads, delegates, cpu_twin, runtime)
        (inp,) = self.interpreter.get_input_details()
        outputs = self.interpreter.get_output_details()
        shape = tuple(int(d) for d in inp["shape"])
        out_shape = tuple(int(d) for d in outputs[0]["shape"]) if len(outputs) == 1 else None
        if (
            len(shape) != 4
            or shape[0] != 1
            or shape[1] != shape[2]
            or shape[3] != 3
            or out_shape != OUTPUT_SHAPE
            or inp["dtype"] not in INPUT_DTYPES
        ):
            raise ModelError(
                f"{model_path} is not a single-pose MoveNet: input {list(shape)} "
                f"{np.dtype(inp['dtype']).name}, outputs {[_dims(o['shape']) for o in outputs]}; "
                "expected input [1, N, N, 3] uint8 or float32 and output [1, 1, 17, 3]"
            )
        self.input_size = shape[1]
        self.input_dtype = np.dtype(inp["dtype"])
        # Hold the accessor functions, not the arrays: the interpreter refuses to run while
        # numpy views of its buffers are alive.
        self._input = self.interpreter.tensor(inp["index"])
        self._output = self.interpreter.tensor(outputs[0]["index"])
        # Float models take 0..255 floats; they get the warp in a uint8 scratch image first.
        self._scratch = None if self.input_dtype == np.uint8 else np.empty(shape[1:], np.uint8)
        self._matrix = np.zeros((2, 3), np.float64)
        self.stage_ns = [0, 0, 0]  # preprocess, invoke, postprocess of the last call
        self._whole = ((0, 0), Region(0, 0, 1, 1))  # the whole-frame region of the last size

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
        size = self.input_size
        sx, sy = size / region.width, size / region.height
        m = self._matrix
        # Pixel edges align: input pixel centre u + 0.5 samples frame x0 + (u + 0.5) / sx, the
        # convention the output's normalized coordinates are mapped back with.
        m[0, 0], m[0, 2] = sx, (0.5 - region.x0) * sx - 0.5
        m[1, 1], m[1, 2] = sy, (0.5 - region.y0) * sy - 0.5
        if self._scratch is None:
            cv2.warpAffine(
                image,
                m,
                (size, size),
                dst=self._input()[0],
                flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=0,
            )
        else:
            cv2.warpAffine(
                image,
                m,
                (size, size),
                dst=self._scratch,
                flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=0,
            )
            np.copyto(self._input()[0], self._scratch, casting="unsafe")
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


def _dims(shape: Any) -> list[int]:
    return [int(d) for d in shape]


def _load(
    model_path: Path,
    threads: int,
    delegates: list[object] | None,
    cpu_twin: str | None,
    runtime: str,
) -> Any:
    """Create the interpreter, turning the runtime's errors into ones a user can act on."""
    try:
        return make_interpreter(str(model_path), threads, delegates, runtime)
    except ValueError as exc:
        raise ModelError(
            f"cannot load model {model_path}: not a valid TFLite file (truncated download? "
            f"run `edge-pose models verify`): {str(exc).splitlines()[0]}"
        ) from exc
    except RuntimeError as exc:
        if EDGETPU_OP in str(exc):
            hint = (
                f"use its CPU build `{cpu_twin}`" if cpu_twin else "use the CPU build of the model"
            )
            raise ModelError(
                f"{model_path} is compiled for the Coral Edge TPU and needs the edgetpu backend; "
                f"on the CPU {hint}"
            ) from exc
        raise ModelError(f"cannot load model {model_path}: {str(exc).splitlines()[0]}") from exc
