"""The trainable k-NN pose classifier (the MediaPipe / ML Kit fitness-classification approach).

Per frame:

1. embed the pose and its left-right mirror (:mod:`edge_pose.classify.embedding`);
2. coarse pass: for every training sample the *largest* absolute coordinate difference between
   the embeddings, the smaller of the pose's and its mirror's; keep the 30 nearest
   (``top_n_by_max_distance``): this drops samples with one badly different joint;
3. fine pass: among those, the *mean* absolute difference (again the smaller of pose and
   mirror); keep the 10 nearest (``top_n_by_mean_distance``);
4. the score of a class is the fraction of those final neighbours that belong to it.

ML Kit weighs x, y, z by 1, 1, 0.2; MoveNet has no z, so x and y weigh 1. When a training set is
so small that the fine pass would keep every sample of a class, the fine pass keeps as many
neighbours as the smallest class has samples (otherwise every pose would score the class
proportions).

Keypoints at or below :data:`~edge_pose.pose.KEYPOINT_THRESHOLD` are left out: the embedding
rows that use them do not count in either distance. Without shoulders and hips nothing is
classified and every label scores 0 (:mod:`edge_pose.classify.base`).

The classifier file is JSON: ``{"format": "edge-pose-knn", "version": 1, "labels": [...],
"samples": [{"name", "label", "keypoints": [[x, y, score] x 17]}, ...], ...}``; it keeps the
keypoints rather than embeddings so it can be evaluated again and read by later versions.
"""

from __future__ import annotations

import datetime
import functools
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from edge_pose import __version__
from edge_pose.classify.base import TORSO, no_scores
from edge_pose.classify.embedding import (
    MIRROR,
    MIRROR_MATRIX,
    PAIR_MATRIX,
    ROWS,
    TORSO_MULTIPLIER,
    embed,
)
from edge_pose.classify.samples import Samples, require_classes
from edge_pose.errors import EdgePoseError
from edge_pose.pose import KEYPOINT_THRESHOLD

FORMAT = "edge-pose-knn"
VERSION = 1
TOP_N_BY_MAX_DISTANCE = 30
TOP_N_BY_MEAN_DISTANCE = 10

_USES = PAIR_MATRIX != 0  # (ROWS, 17): the keypoints each embedding row needs
_MIRROR = np.array(MIRROR)
_TORSO = TORSO.tolist()  # left shoulder, right shoulder, left hip, right hip


class KnnClassifier:
    """k-NN over embedded training samples; ``classify`` is not re-entrant (it reuses buffers)."""

    def __init__(
        self,
        samples: Samples,
        top_n_by_max_distance: int = TOP_N_BY_MAX_DISTANCE,
        top_n_by_mean_distance: int = TOP_N_BY_MEAN_DISTANCE,
    ) -> None:
        self.samples = samples
        self.labels: list[str] = samples.classes
        index = {label: i for i, label in enumerate(self.labels)}
        self._label_index = np.array([index[label] for label in samples.labels], np.intp)
        n = len(samples)
        # Feature-major (ROWS * 2, N): the per-sample reductions then run across contiguous
        # rows of N values, several times faster than reducing 44 values per sample.
        self._embeddings = np.ascontiguousarray(embed(samples.keypoints).reshape(n, -1).T)
        self.top_n_by_max_distance = min(top_n_by_max_distance, n)
        smallest = int(np.bincount(self._label_index).min())
        self.top_n_by_mean_distance = min(
            top_n_by_mean_distance, self.top_n_by_max_distance, smallest
        )
        self._query = np.empty((2, ROWS, 2), np.float32)
        self._diff = np.empty((2, ROWS * 2, n), np.float32)
        self._max = np.empty((2, n), np.float32)

    def neighbours(self, keypoints: np.ndarray) -> np.ndarray | None:
        """Indices of the final neighbours of ``keypoints`` (17, 3), nearest first; None when
        the pose cannot be classified (torso not seen)."""
        size = _pose_size(keypoints.tolist())
        if not size > 0.0:
            return None
        xy = np.asarray(keypoints[:, :2], np.float32)
        query = self._query
        np.matmul(PAIR_MATRIX, xy, out=query[0])
        np.matmul(MIRROR_MATRIX, xy, out=query[1])
        query[1, :, 0] *= -1.0
        query /= size
        diff = self._diff  # (2: pose and mirror, ROWS * 2, N)
        np.subtract(self._embeddings, query.reshape(2, ROWS * 2, 1), out=diff)
        np.abs(diff, out=diff)
        unseen = keypoints[:, 2] <= KEYPOINT_THRESHOLD
        if unseen.any():
            weights, counts = _row_weights(unseen.tobytes())
            diff *= weights
        else:
            counts = _ALL_ROWS
        max_distance = np.max(diff, axis=1, out=self._max).min(axis=0)
        n = len(max_distance)
        k = self.top_n_by_max_distance
        top = np.arange(n) if k >= n else np.sort(np.argpartition(max_distance, k - 1)[:k])
        mean_distance = (diff[:, :, top].sum(axis=1) / counts).min(axis=0)
        order = np.argsort(mean_distance, kind="stable")[: self.top_n_by_mean_distance]
        return top[order]

    def classify(self, keypoints: np.ndarray, width: int = 0, height: int = 0) -> dict[str, float]:
        """Fraction of the final neighbours in each class (width and height are not needed:
        the embedding is independent of position and scale)."""
        found = self.neighbours(keypoints)
        if found is None:
            return no_scores(self.labels)
        votes = np.bincount(self._label_index[found], minlength=len(self.labels))
        return dict(zip(self.labels, (votes / len(found)).tolist(), strict=True))

    def predict(self, keypoints: np.ndarray) -> str | None:
        """The class with the most final neighbours; a tie goes to the class of the nearest
        neighbour among the tied ones. None when the pose cannot be classified."""
        found = self.neighbours(keypoints)
        if found is None:
            return None
        classes = self._label_index[found]
        votes = np.bincount(classes, minlength=len(self.labels))
        tied = votes == votes.max()
        nearest = next(c for c in classes if tied[c])
        return self.labels[nearest]

    def save(self, path: Path, source: str = "") -> None:
        """Write the classifier file (atomically: a temporary file renamed over ``path``)."""
        write_atomic(path, json.dumps(classifier_json(self.samples, source), separators=(",", ":")))


# --------------------------------------------------------------------------- the file


# The count of coordinates for a pose and its mirror when every keypoint is seen.
_ALL_ROWS = np.full((2, 1), ROWS * 2, np.float32)


@functools.lru_cache(maxsize=256)
def _row_weights(unseen: bytes) -> tuple[np.ndarray, np.ndarray]:
    """For a pattern of unseen keypoints (17 bools as bytes): 0/1 weights (2, ROWS * 2, 1) of
    the embedding coordinates of the pose and its mirror, and how many count (2, 1). Cached:
    the same keypoints tend to stay hidden (feet out of the frame) for many frames."""
    hidden = np.frombuffer(unseen, np.bool_)
    rows = np.stack([~(_USES & hidden).any(axis=1), ~(_USES & hidden[_MIRROR]).any(axis=1)])
    weights = np.repeat(rows, 2, axis=1).astype(np.float32)  # x and y of each row
    return weights[:, :, None], weights.sum(axis=1)[:, None]


def _pose_size(rows: list[list[float]]) -> float:
    """:func:`~edge_pose.classify.embedding.pose_size` of one pose, 0.0 when its torso is not
    seen; in plain Python, which is three times faster than numpy on 17 points."""
    if not all(rows[i][2] > KEYPOINT_THRESHOLD for i in _TORSO):
        return 0.0
    (lsx, lsy, _), (rsx, rsy, _) = rows[_TORSO[0]], rows[_TORSO[1]]
    (lhx, lhy, _), (rhx, rhy, _) = rows[_TORSO[2]], rows[_TORSO[3]]
    hx, hy = (lhx + rhx) * 0.5, (lhy + rhy) * 0.5
    torso = math.hypot((lsx + rsx) * 0.5 - hx, (lsy + rsy) * 0.5 - hy)
    reach = max((x - hx) ** 2 + (y - hy) ** 2 for x, y, s in rows if s > KEYPOINT_THRESHOLD)
    return max(TORSO_MULTIPLIER * torso, math.sqrt(reach))


def classifier_json(samples: Samples, source: str = "") -> dict[str, Any]:
    """The version-1 classifier file content for ``samples``."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "labels": samples.classes,
        "keypoints": "COCO-17 [x, y, score], x and y in source pixels",
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "edge_pose": __version__,
        "source": source,
        "samples": [
            {
                "name": name,
                "label": label,
                "keypoints": [[round(x, 2), round(y, 2), round(s, 3)] for x, y, s in points],
            }
            for name, label, points in zip(
                samples.names, samples.labels, samples.keypoints.tolist(), strict=True
            )
        ],
    }


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, fsync it, rename it over ``path``."""
    path = Path(path)
    if not path.parent.is_dir():
        raise EdgePoseError(f"cannot write {path}: folder {path.parent} does not exist")
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise EdgePoseError(f"cannot write {path}: {exc.strerror or exc}") from None


def read_classifier(path: Path) -> Samples:
    """The training samples stored in a classifier file, with every check a user can act on."""
    path = Path(path)
    retrain = "train one with `edge-pose classifier train SOURCE -o FILE`"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EdgePoseError(f"classifier file not found: {path} ({retrain})") from None
    except IsADirectoryError:
        raise EdgePoseError(f"classifier path {path} is a folder, not a file") from None
    except UnicodeDecodeError:
        raise EdgePoseError(
            f"{path} is not a k-NN classifier file (binary, not JSON); for a .tflite model set "
            f'classifier.type = "tflite", else {retrain}'
        ) from None
    except OSError as exc:
        raise EdgePoseError(f"cannot read classifier file {path}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EdgePoseError(
            f"{path} is not a k-NN classifier file: not JSON ({exc.msg} at line {exc.lineno}); "
            f"{retrain}"
        ) from None
    except RecursionError:  # nesting no classifier file has
        raise EdgePoseError(f"{path} is not a k-NN classifier file: nested too deeply; "
                            f"{retrain}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else None
        raise EdgePoseError(
            f"{path} is not an edge-pose k-NN classifier (format {found!r}, expected "
            f"{FORMAT!r}); {retrain}"
        )
    if data.get("version") != VERSION:
        raise EdgePoseError(
            f"{path} is a version {data.get('version')!r} k-NN classifier; this edge-pose "
            f"{__version__} reads version {VERSION}: retrain it with `edge-pose classifier "
            "train` or use the edge-pose release that wrote it"
        )
    return _samples_from_json(path, data)


def _samples_from_json(path: Path, data: dict[str, Any]) -> Samples:
    labels = data.get("labels")
    raw = data.get("samples")
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise EdgePoseError(f"{path}: corrupt classifier file: 'labels' is not a list of names")
    if not isinstance(raw, list) or not raw:
        raise EdgePoseError(f"{path}: corrupt classifier file: 'samples' is missing or empty")
    names: list[str] = []
    sample_labels: list[str] = []
    keypoints = np.empty((len(raw), 17, 3), np.float32)
    for i, sample in enumerate(raw):
        try:
            label = sample["label"]
            points = np.asarray(sample["keypoints"], np.float32)
        except (TypeError, KeyError, ValueError):
            points, label = None, None
        if (
            points is None
            or points.shape != (17, 3)
            or not np.isfinite(points).all()
            or label not in labels
        ):
            raise EdgePoseError(
                f"{path}: corrupt classifier file: sample {i + 1} needs a label from 'labels' "
                "and 17 [x, y, score] keypoints; retrain it with `edge-pose classifier train`"
            )
        names.append(str(sample.get("name", f"sample {i + 1}")))
        sample_labels.append(label)
        keypoints[i] = points
    samples = Samples(names, sample_labels, keypoints)
    require_classes(samples, path)
    return samples


def load_knn(path: Path) -> KnnClassifier:
    """Load a classifier file written by :meth:`KnnClassifier.save`."""
    return KnnClassifier(read_classifier(path))
