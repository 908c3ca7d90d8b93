"""What every pose model offers the pipeline: ``estimate(image, region) -> [Detection, ...]``.

One interface for every model kind (single-pose MoveNet today; several people next), as
tfjs-models keeps one ``estimatePoses() -> Pose[]`` over its models: the result is always a
list, so the code after it is written once for any number of people. A model kind is one class
implementing :class:`PoseEstimator`, listed in the kind table of
:mod:`edge_pose.inference.backend` and named by ``kind`` in ``models/manifest.toml``.

The contract:

- ``estimate`` looks at ``region`` of the frame (a square in frame pixels, from the crop rule of
  :mod:`edge_pose.inference.crop`), or at the whole frame when it is None, and returns the people
  it decoded, best first, keypoints in frame pixels. It returns candidates as the model scores
  them: whether one counts as a person (``model.min_pose_score``) is the pipeline's decision, so
  a single-pose model returns exactly one, its best guess, even in an empty room.
- ``stage_ns`` holds the preprocess, invoke and postprocess nanoseconds of the last call (the
  pipeline's stage timings); ``interpreter`` is the TFLite interpreter, for benchmarks that time
  ``invoke()`` alone.
- A failure of the device a model runs on propagates from ``estimate``; the Edge TPU wrapper of
  the backend turns it into :class:`~edge_pose.inference.edgetpu.EdgeTpuLost`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edge_pose.pose import Region, seen_box


@dataclass(slots=True)
class Detection:
    """One person as a model sees them: keypoints (17, 3) in frame pixels, score, and the
    region of the frame the model looked at."""

    keypoints: np.ndarray
    score: float
    region: Region

    @property
    def box(self) -> Region | None:
        """The box around the keypoints seen (score above KEYPOINT_THRESHOLD); None if none is.

        Computed when asked: the per-frame path does not need it."""
        return seen_box(self.keypoints)


def nobody(region: Region) -> Detection:
    """What a look at ``region`` that found no one amounts to: no keypoint seen, score 0. The
    callers keep going with it (a keypoints message with ``person`` false, a reset track)."""
    return Detection(np.zeros((17, 3), np.float32), 0.0, region)


class Interpreter(Protocol):
    """The part of a TFLite interpreter (LiteRT, tflite_runtime, tensorflow.lite) used here."""

    def invoke(self) -> None: ...

    def get_input_details(self) -> list[dict[str, Any]]: ...

    def get_output_details(self) -> list[dict[str, Any]]: ...

    def set_tensor(self, index: int, value: np.ndarray) -> None: ...

    def get_tensor(self, index: int) -> np.ndarray: ...


class PoseEstimator(Protocol):
    """A loaded pose model: image region in, people out (see the module docstring)."""

    # Read-only to the pipeline (a plain attribute satisfies these, as does a wrapper's property).
    @property
    def input_size(self) -> int:
        """The model input's width, pixels (its side: every single-pose input is square)."""

    @property
    def input_dtype(self) -> np.dtype: ...

    @property
    def threads(self) -> int: ...

    @property
    def stage_ns(self) -> list[int]:
        """Preprocess, invoke, postprocess nanoseconds of the last call."""

    @property
    def interpreter(self) -> Interpreter: ...

    @property
    def max_people(self) -> int:
        """How many people one call can find: 1 for a single-pose model, which follows one
        person through its crop; more, and the pipeline tracks them (edge_pose.tracking)."""

    def estimate(self, image: np.ndarray, region: Region | None = None) -> list[Detection]:
        """The people in ``region`` of ``image`` (RGB uint8 HxWx3), best first."""
        ...


class LoadsModel(Protocol):
    """How the backend loads a model: the file, the CPU threads, the delegates (the Edge
    TPU's), the CPU twin named in errors, and the TFLite runtime."""

    def __call__(
        self,
        model_path: Path,
        *,
        threads: int,
        delegates: list[object] | None,
        cpu_twin: str | None,
        runtime: str,
    ) -> PoseEstimator: ...


class Wrapped:
    """Base of an estimator around another (``inner``): what the pipeline reads of it is read
    through, never copied, since an estimator may rebind what it reports after each call. A
    subclass adds what it does around ``estimate`` (the Edge TPU's loss, a second look)."""

    def __init__(self, inner: PoseEstimator) -> None:
        self.inner = inner

    @property
    def input_size(self) -> int:
        return self.inner.input_size

    @property
    def input_dtype(self) -> np.dtype:
        return self.inner.input_dtype

    @property
    def threads(self) -> int:
        return self.inner.threads

    @property
    def stage_ns(self) -> list[int]:
        return self.inner.stage_ns

    @property
    def interpreter(self) -> Interpreter:
        return self.inner.interpreter

    @property
    def max_people(self) -> int:
        return self.inner.max_people


class EstimatorClass(LoadsModel, Protocol):
    """A model kind's class: it loads a file (:class:`LoadsModel`) and tells its files apart."""

    def takes(
        self, shape: tuple[int, ...], dtype: np.dtype, out_shapes: list[tuple[int, ...]]
    ) -> bool:
        """Whether a file of these tensors (read without loading it) is this kind's."""
        ...


def input_dims(model: PoseEstimator) -> tuple[int, int]:
    """The model input's width and height, pixels (``input_size`` is the width alone)."""
    height, width = model.interpreter.get_input_details()[0]["shape"][1:3]
    return int(width), int(height)
