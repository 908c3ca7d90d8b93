"""What `classifier train` and `classifier eval` read and write, apart from the command line.

Samples come from a landmarks CSV, a folder of class subfolders whose poses MoveNet finds (the
model is loaded only when a folder needs it, as `run` would load it), or, for an evaluation,
the samples kept in a classifier file. A trained classifier never overwrites its sources.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy is loaded by the commands that need it, not by `edge-pose status`
    import numpy as np

    from edge_pose.classify.knn import KnnClassifier
    from edge_pose.classify.samples import Samples
    from edge_pose.pose import Pose

PoseFinder = Callable[["np.ndarray"], "Pose"]


def pose_finder(
    config: Path | None, model: str | None, threads: int | None
) -> Callable[[], PoseFinder]:
    """Makes the configured MoveNet's pose finder (``model`` and ``threads`` on top of the
    config), called only when an image folder needs it."""

    def make() -> PoseFinder:
        from edge_pose.estimate import estimate_pose
        from edge_pose.inference.backend import load_configured_model

        cfg, estimator, _backend, _name = load_configured_model(config, name=model, threads=threads)
        min_score = cfg.model.min_pose_score
        return lambda image: estimate_pose(estimator, image, min_pose_score=min_score)

    return make


def refuse_overwriting_sources(output: Path, source: Path, flag: str) -> None:
    """A UsageError when ``output`` is the source file or lies inside the source folder."""
    from edge_pose.outputs import refuse_input_as_output, refuse_output_inside

    if source.is_dir():
        refuse_output_inside(output, source, flag)
    else:
        refuse_input_as_output(output, [source], flag)


def train_knn(samples: Samples, output: Path, source: Path) -> KnnClassifier:
    """The k-NN classifier of ``samples``, saved to ``output`` (naming its ``source``)."""
    from edge_pose.classify.knn import KnnClassifier

    classifier = KnnClassifier(samples)
    classifier.save(output, source=str(source))
    return classifier


def samples_to_evaluate(source: Path, find_poses: Callable[[], PoseFinder]) -> Samples:
    """The samples of a classifier file, or those loaded from a CSV or an image folder."""
    from edge_pose.classify.knn import read_classifier
    from edge_pose.classify.samples import load_samples

    if source.is_file() and is_classifier_file(source):
        return read_classifier(source)
    return load_samples(source, find_poses)


def is_classifier_file(path: Path) -> bool:
    """A ``.json`` name, or a file that starts like a JSON object (a CSV never does)."""
    if path.suffix.lower() == ".json":
        return True
    try:
        with open(path, "rb") as f:
            return f.read(64).lstrip().startswith(b"{")
    except OSError:
        return False
