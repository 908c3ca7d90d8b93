"""Pose classification: keypoints -> class scores.

Every classifier has ``labels`` and ``classify(keypoints, width, height) -> dict[str, float]``
(:class:`~edge_pose.classify.base.Classifier`). The trained ones live here: the k-NN classifier
(:mod:`~edge_pose.classify.knn`, trained with ``edge-pose classifier train``) and TFLite models in
the TensorFlow pose-classification tutorial's format (:mod:`~edge_pose.classify.tflite`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # base imports numpy; the CLI imports this package to build its parser
    from edge_pose.classify.base import Classifier
    from edge_pose.config import ClassifierConfig


def load_trained_classifier(cfg: ClassifierConfig, threads: int = 1) -> Classifier:
    """The classifier of a ``[classifier]`` config whose type is "knn" or "tflite" (``path``:
    the classifier file or .tflite model; ``labels``: labels.txt, default beside the model)."""
    path = Path(cfg.path).expanduser()
    if cfg.type == "knn":
        from edge_pose.classify.knn import load_knn

        return load_knn(path)
    if cfg.type == "tflite":
        from edge_pose.classify.tflite import TfliteClassifier

        labels = Path(cfg.labels).expanduser() if cfg.labels else None
        return TfliteClassifier(path, labels, threads=threads)
    raise ValueError(f"classifier type {cfg.type!r} is not a trained classifier")
