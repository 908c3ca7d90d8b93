"""What every MoveNet kind shares: loading a TFLite file on an interpreter, checking its shapes
against the kind, and warping a frame region into its input.

A model kind (:mod:`edge_pose.inference.movenet`, :mod:`edge_pose.inference.multipose`) is a
subclass that says what it expects of the tensors (:meth:`TfliteModel.accepts`) and decodes the
output; loading, the error a user can act on, and the one-warp preprocessing are written once
here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np

from edge_pose.errors import ModelError
from edge_pose.inference.runtime import make_interpreter
from edge_pose.pose import Region

EDGETPU_OP = "edgetpu-custom-op"


class NotThisKind(ModelError):
    """The file loads, but its tensors are not those of the kind asked for."""


class TfliteModel:
    """A loaded pose model of one kind; see :class:`~edge_pose.inference.estimator.PoseEstimator`
    for what the pipeline reads of it."""

    KIND: ClassVar[str]  # the manifest's kind
    WHAT: ClassVar[str]  # the model in words, for errors ("a single-pose MoveNet")
    EXPECTED: ClassVar[str]  # the tensors it takes, for errors
    max_people: ClassVar[int]  # how many people one call can find
    square_only: ClassVar[bool] = True  # a kind whose input may be W x H sets this False

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
        self.interpreter, inp, outputs = load_interpreter(
            model_path, threads, delegates, cpu_twin, runtime
        )
        shape, dtype, out_shapes = tensors(inp, outputs)
        if not self.takes(shape, dtype, out_shapes):
            raise NotThisKind(
                f"{model_path} is not {self.WHAT} (kind {self.KIND}): input {list(shape)} "
                f"{dtype.name}, outputs {[list(s) for s in out_shapes]}; expected {self.EXPECTED}"
            )
        self.input_height, self.input_width = shape[1], shape[2]
        self.input_size = shape[2]  # the width: a square input's side
        self.input_dtype = dtype
        # Hold the accessor functions, not the arrays: the interpreter refuses to run while
        # numpy views of its buffers are alive.
        self._input = self.interpreter.tensor(inp["index"])
        self._output = self.interpreter.tensor(outputs[0]["index"])
        # Inputs other than uint8 (float 0..255, int32) get the warp in a uint8 scratch first.
        self._scratch = None if dtype == np.uint8 else np.empty(shape[1:], np.uint8)
        self._matrix = np.zeros((2, 3), np.float64)
        self.stage_ns = [0, 0, 0]  # preprocess, invoke, postprocess of the last call

    @classmethod
    def takes(
        cls, shape: tuple[int, ...], dtype: np.dtype, out_shapes: list[tuple[int, ...]]
    ) -> bool:
        """Whether a model of these tensors is this kind's: one RGB image in (square unless the
        kind says otherwise) and the kind's outputs (:meth:`accepts`)."""
        rgb = len(shape) == 4 and shape[0] == 1 and shape[3] == 3
        return rgb and (shape[1] == shape[2] or not cls.square_only) and cls.accepts(
            dtype, out_shapes
        )

    @classmethod
    def accepts(cls, dtype: np.dtype, out_shapes: list[tuple[int, ...]]) -> bool:
        """Whether an RGB input of ``dtype`` and these outputs are this kind's."""
        raise NotImplementedError

    def load_input(self, image: np.ndarray, region: Region) -> None:
        """``region`` of ``image`` into the input tensor, in one warp."""
        size = (self.input_width, self.input_height)
        if self._scratch is None:
            warp(image, region, size, self._matrix, self._input()[0])
        else:
            warp(image, region, size, self._matrix, self._scratch)
            np.copyto(self._input()[0], self._scratch, casting="unsafe")


def warp(
    image: np.ndarray, region: Region, size: tuple[int, int], m: np.ndarray, out: np.ndarray
) -> None:
    """``region`` of ``image`` scaled into the uint8 image ``out`` of ``size`` (width, height),
    black outside the frame: crop, scale and padding in one OpenCV call. ``m`` is a (2, 3)
    float64 scratch matrix the caller keeps (no allocation per frame)."""
    sx, sy = size[0] / region.width, size[1] / region.height
    # Pixel edges align: input pixel centre u + 0.5 samples frame x0 + (u + 0.5) / sx, the
    # convention the output's normalized coordinates are mapped back with.
    m[0, 0], m[0, 2] = sx, (0.5 - region.x0) * sx - 0.5
    m[1, 1], m[1, 2] = sy, (0.5 - region.y0) * sy - 0.5
    cv2.warpAffine(
        image, m, size, dst=out, flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT, borderValue=0,
    )  # fmt: skip


def tensors(
    inp: dict[str, Any], outputs: list[dict[str, Any]]
) -> tuple[tuple[int, ...], np.dtype, list[tuple[int, ...]]]:
    """An interpreter's input shape, input dtype and output shapes, as plain values."""
    return (
        tuple(dims(inp["shape"])), np.dtype(inp["dtype"]),
        [tuple(dims(o["shape"])) for o in outputs],
    )  # fmt: skip


def peek(model_path: Path, runtime: str) -> tuple[tuple[int, ...], np.dtype, list[tuple[int, ...]]]:
    """A model file's tensors without loading it to run (no tensors allocated: a few MB, not the
    tens a loaded model takes), to choose the kind that will load it."""
    interpreter = make_interpreter(str(model_path), 1, None, runtime, allocate=False)
    return tensors(interpreter.get_input_details()[0], interpreter.get_output_details())


def dims(shape: Any) -> list[int]:
    """A tensor shape as plain ints, for error messages."""
    return [int(d) for d in shape]


def load_interpreter(
    model_path: Path,
    threads: int,
    delegates: list[object] | None,
    cpu_twin: str | None,
    runtime: str,
) -> tuple[Any, dict[str, Any], list[dict[str, Any]]]:
    """The interpreter with its one input's and its outputs' details, the runtime's errors
    turned into ones a user can act on (each model kind then checks the shapes)."""
    try:
        interpreter = make_interpreter(str(model_path), threads, delegates, runtime)
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
    inputs = interpreter.get_input_details()
    if len(inputs) != 1:
        raise ModelError(
            f"{model_path} is not a MoveNet: it takes {len(inputs)} inputs, not one image"
        )
    return interpreter, inputs[0], interpreter.get_output_details()
