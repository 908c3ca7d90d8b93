"""TFLite pose classifiers in the format of the TensorFlow pose-classification tutorial.

The model takes one float32 tensor ``[1, 51]``: the 17 COCO keypoints in COCO order, each as
``x, y, score`` with x and y in pixels of the frame (x to the right, y down, origin top left)
and score 0..1, exactly what the tutorial writes to its training CSV and what a
:class:`~edge_pose.pose.Pose` holds. (The tutorial's model normalises the pose itself, centring
on the hips and scaling by the pose size, so the frame size does not matter.) It returns one
float32 tensor ``[1, N]``, a softmax over N classes, whose names are the N non-blank lines of
``labels.txt`` in output order.

Note: the tutorial's Raspberry Pi sample (``classifier.py``) fills the tensor as ``y, x, score``,
which does not match the ``x, y, score`` the notebook trains on; edge-pose follows the training
layout.

As for every classifier here, a frame whose shoulders or hips are not seen scores 0 for every
label (:mod:`edge_pose.classify.base`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_pose.classify.base import no_scores, torso_seen
from edge_pose.config import LABELS_FILE
from edge_pose.errors import EdgePoseError
from edge_pose.inference.runtime import make_interpreter

INPUT_SHAPE = (1, 51)


def read_labels(path: Path) -> list[str]:
    """Labels, one per line (surrounding spaces and blank lines ignored), in output order."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EdgePoseError(
            f"labels file not found: {path}; a TFLite classifier needs its labels.txt (one "
            "label per line, in the model's output order): set classifier.labels"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EdgePoseError(f"cannot read labels file {path}: {exc}") from None
    labels = [line.strip() for line in text.splitlines() if line.strip()]
    if not labels:
        raise EdgePoseError(f"labels file {path} is empty: write one label per line")
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise EdgePoseError(
            f"labels file {path} repeats {', '.join(duplicates)}: every label must differ"
        )
    return labels


class TfliteClassifier:
    """A pose-classification .tflite model and its labels; ``classify`` is not re-entrant."""

    def __init__(self, model_path: Path, labels_path: Path | None = None, threads: int = 1):
        model_path = Path(model_path)
        self.path = model_path
        self.labels_path = Path(labels_path) if labels_path else model_path.with_name(LABELS_FILE)
        if not model_path.is_file():
            raise EdgePoseError(
                f"TFLite classifier not found: {model_path} (check classifier.path)"
            )
        self.labels = read_labels(self.labels_path)
        try:
            self.interpreter = make_interpreter(str(model_path), threads)
        except (ValueError, RuntimeError) as exc:
            raise EdgePoseError(
                f"cannot load TFLite classifier {model_path}: {str(exc).splitlines()[0]} "
                "(not a valid .tflite file?)"
            ) from None
        inputs = self.interpreter.get_input_details()
        outputs = self.interpreter.get_output_details()
        in_shape = [int(d) for d in inputs[0]["shape"]] if len(inputs) == 1 else None
        if in_shape != list(INPUT_SHAPE) or inputs[0]["dtype"] != np.float32:
            found = (
                f"input {in_shape} {np.dtype(inputs[0]['dtype']).name}"
                if len(inputs) == 1
                else f"{len(inputs)} inputs"
            )
            raise EdgePoseError(
                f"{model_path} does not take pose keypoints: {found}, expected one float32 "
                "input [1, 51] (17 keypoints x (x, y, score)); export the classifier as in the "
                "TensorFlow pose-classification tutorial"
            )
        out_shape = [int(d) for d in outputs[0]["shape"]] if len(outputs) == 1 else None
        if out_shape is None or len(out_shape) != 2 or out_shape[0] != 1:
            raise EdgePoseError(
                f"{model_path} has output {out_shape or f'{len(outputs)} outputs'}; expected one "
                "softmax output [1, N] with N = the number of labels"
            )
        if outputs[0]["dtype"] != np.float32:
            raise EdgePoseError(
                f"{model_path} output is {np.dtype(outputs[0]['dtype']).name}; expected float32 "
                "class probabilities (softmax)"
            )
        if out_shape[1] != len(self.labels):
            raise EdgePoseError(
                f"{model_path} outputs {out_shape[1]} classes but {self.labels_path} lists "
                f"{len(self.labels)} labels; use the labels.txt the model was trained with "
                "(one label per line, in output order)"
            )
        # Accessors, not arrays: the interpreter refuses to run while views of its buffers live.
        self._input = self.interpreter.tensor(inputs[0]["index"])
        self._output = self.interpreter.tensor(outputs[0]["index"])

    def classify(self, keypoints: np.ndarray, width: int = 0, height: int = 0) -> dict[str, float]:
        """The model's probability for each label (x, y stay in frame pixels, as trained)."""
        if not torso_seen(keypoints):
            return no_scores(self.labels)
        self._input()[0] = np.asarray(keypoints, np.float32).reshape(51)
        self.interpreter.invoke()
        scores = np.clip(self._output()[0], 0.0, 1.0).tolist()
        return dict(zip(self.labels, scores, strict=True))
