"""Training samples for the k-NN classifier: from a landmarks CSV or a folder of images.

A landmarks CSV has one pose per row, ``name, class, coordinates...`` and no header (a first
row whose coordinates are not numbers is taken as a header and skipped). The number of
coordinate columns says what they are:

- 34: COCO-17 as 17 x (x, y)               (every keypoint counts as seen, score 1)
- 51: COCO-17 as 17 x (x, y, score)        (the TensorFlow pose-classification tutorial's CSV)
- 99: BlazePose-33 as 33 x (x, y, z)       (ML Kit's fitness_pose_samples.csv; z is dropped,
  COCO[0..16] = BlazePose[0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28])

Coordinates are pixels (any unit works: the embedding removes position and scale), y down.

An image folder has one subfolder per class, named after the class, holding its images; the
keypoints come from MoveNet (:func:`~edge_pose.estimate.estimate_pose`). Images without a person
(or whose shoulders and hips are not seen) are skipped and counted.
"""

from __future__ import annotations

import csv
import math
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_pose.camera.file import IMAGE_SUFFIXES, load_image
from edge_pose.classify.base import torso_seen
from edge_pose.classify.embedding import BLAZEPOSE_TO_COCO, pose_size
from edge_pose.errors import EdgePoseError

# coordinate columns -> (keypoints, values per keypoint, description)
CSV_LAYOUTS: dict[int, tuple[int, int, str]] = {
    34: (17, 2, "COCO-17 x, y"),
    51: (17, 3, "COCO-17 x, y, score"),
    99: (33, 3, "BlazePose-33 x, y, z"),
}


@dataclass
class Samples:
    """Labelled poses: ``keypoints`` (N, 17, 3) x, y, score; ``labels`` the class of each."""

    names: list[str]
    labels: list[str]
    keypoints: np.ndarray
    skipped: list[str] = field(default_factory=list)  # "<name>: <why>" for samples left out

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def classes(self) -> list[str]:
        """The distinct labels, sorted."""
        return sorted(set(self.labels))

    def counts(self) -> dict[str, int]:
        counter = Counter(self.labels)
        return {label: counter[label] for label in self.classes}

    def subset(self, index: np.ndarray) -> Samples:
        return Samples(
            [self.names[i] for i in index],
            [self.labels[i] for i in index],
            self.keypoints[index],
        )


def require_classes(samples: Samples, source: Path | str) -> None:
    """A classifier needs at least two classes to tell apart."""
    classes = samples.classes
    if len(classes) < 2:
        found = f"only {classes[0]!r}" if classes else "none"
        raise EdgePoseError(
            f"{source}: a classifier needs at least 2 classes, found {found}; "
            "add samples of the other poses (CSV: their class column; folder: one subfolder "
            "of images per class)"
        )


def usable(keypoints: np.ndarray) -> bool:
    """A sample can be embedded: shoulders and hips seen and a pose size above zero."""
    return torso_seen(keypoints) and bool(pose_size(keypoints) > 0)


# --------------------------------------------------------------------------- CSV


def load_csv(path: Path) -> Samples:
    """Samples from a landmarks CSV (see the module docstring for the layouts)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(enumerate(csv.reader(f), start=1))
    except FileNotFoundError:
        raise EdgePoseError(f"samples file not found: {path}") from None
    except IsADirectoryError:
        raise EdgePoseError(f"{path} is a folder, not a CSV file") from None
    except UnicodeDecodeError as exc:
        raise EdgePoseError(
            f"{path} is not a text CSV file (byte {exc.start} is not UTF-8); give a landmarks "
            "CSV (name, class, coordinates...) or a folder of class subfolders"
        ) from None
    except csv.Error as exc:
        raise EdgePoseError(f"{path}: not a readable CSV file: {exc}") from None
    except OSError as exc:
        raise EdgePoseError(f"cannot read {path}: {exc.strerror}") from None
    rows = [(n, row) for n, row in rows if any(cell.strip() for cell in row)]
    if rows and _is_header(rows[0][1]):
        rows = rows[1:]
    if not rows:
        raise EdgePoseError(
            f"{path} holds no samples: expected one row per pose, "
            "`name, class, coordinates...` (34, 51 or 99 coordinate columns)"
        )
    first_line, first = rows[0]
    columns = len(first)
    layout = CSV_LAYOUTS.get(columns - 2)
    if layout is None:
        raise EdgePoseError(
            f"{path} line {first_line}: {max(columns - 2, 0)} coordinate columns after name and "
            "class; expected 34 (COCO-17 x, y), 51 (COCO-17 x, y, score) or "
            "99 (BlazePose-33 x, y, z)"
        )
    n_points, per_point, _ = layout
    values = np.empty((len(rows), columns - 2), np.float64)
    names: list[str] = []
    labels: list[str] = []
    for i, (line, row) in enumerate(rows):
        if len(row) != columns:
            raise EdgePoseError(
                f"{path} line {line}: {len(row)} columns, expected {columns} like line "
                f"{first_line}; fix or remove the row"
            )
        name, label = row[0].strip(), row[1].strip()
        if not label:
            raise EdgePoseError(f"{path} line {line}: the class (column 2) is empty")
        for j, cell in enumerate(row[2:]):
            try:
                value = float(cell)
            except ValueError:
                value = math.nan
            if not math.isfinite(value):
                raise EdgePoseError(
                    f"{path} line {line}: column {j + 3} is {cell.strip()!r}, not a finite "
                    "number; fix or remove the row"
                )
            values[i, j] = value
        names.append(name or f"line {line}")
        labels.append(label)
    points = values.reshape(len(rows), n_points, per_point)
    if n_points == 33:
        points = points[:, BLAZEPOSE_TO_COCO, :2]
    keypoints = np.ones((len(rows), 17, 3), np.float32)
    keypoints[..., : points.shape[-1]] = points
    return _keep_usable(names, labels, keypoints, "shoulders or hips missing or on one spot")


def _is_header(row: list[str]) -> bool:
    def number(cell: str) -> bool:
        try:
            float(cell)
        except ValueError:
            return False
        return True

    return len(row) > 2 and not any(number(cell) for cell in row[2:])


def _keep_usable(names: list[str], labels: list[str], keypoints: np.ndarray, why: str) -> Samples:
    keep = [i for i in range(len(labels)) if usable(keypoints[i])]
    kept = set(keep)
    skipped = [f"{names[i]}: {why}" for i in range(len(labels)) if i not in kept]
    return Samples([names[i] for i in keep], [labels[i] for i in keep], keypoints[keep], skipped)


# --------------------------------------------------------------------------- image folders


def class_folders(folder: Path) -> dict[str, list[Path]]:
    """The class subfolders of ``folder`` and their image files (sorted); checked before any
    model is loaded, so layout mistakes fail fast."""
    if not folder.is_dir():
        raise EdgePoseError(f"training folder not found: {folder}")
    classes: dict[str, list[Path]] = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        images = sorted(
            p for p in sub.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        if not images:
            raise EdgePoseError(
                f"class folder {sub} holds no images ({' '.join(sorted(IMAGE_SUFFIXES))}); "
                "add images of that pose or remove the folder"
            )
        classes[sub.name] = images
    if len(classes) < 2:
        raise EdgePoseError(
            f"{folder}: a classifier needs at least 2 classes, found {len(classes)} class "
            "folder(s); put the images of each pose in a subfolder named after the pose"
        )
    return classes


def load_image_folder(
    folder: Path,
    estimate: Callable[[np.ndarray], Any],
    *,
    progress: bool | None = None,
) -> Samples:
    """Samples from a folder of class subfolders; ``estimate(image) -> Pose`` finds the pose
    (the real MoveNet through :func:`~edge_pose.estimate.estimate_pose`).

    A progress bar goes to stderr (``progress=None``: only on a terminal). Images that cannot be
    decoded or show no person are skipped and listed in ``Samples.skipped``; a class left with
    no usable image is an error.
    """
    from tqdm import tqdm

    classes = class_folders(folder)
    total = sum(len(images) for images in classes.values())
    names: list[str] = []
    labels: list[str] = []
    keypoints: list[np.ndarray] = []
    skipped: list[str] = []
    disable = None if progress is None else not progress
    with tqdm(total=total, unit="image", desc="poses", disable=disable, file=sys.stderr) as bar:
        for label, images in classes.items():
            found = unreadable = 0
            for path in images:
                bar.set_postfix_str(f"{label}/{path.name}", refresh=False)
                name = f"{label}/{path.name}"
                try:
                    image = load_image(path)
                except EdgePoseError as exc:
                    skipped.append(f"{name}: {exc}")
                    unreadable += 1
                    bar.update()
                    continue
                pose = estimate(image)
                bar.update()
                if not pose.person or not usable(pose.keypoints):
                    skipped.append(f"{name}: no person found (shoulders and hips must be seen)")
                    continue
                names.append(name)
                labels.append(label)
                keypoints.append(np.asarray(pose.keypoints, np.float32))
                found += 1
            if not found:
                raise EdgePoseError(
                    f"class folder {folder / label} has no usable images: of its {len(images)}, "
                    f"{unreadable} cannot be read and {len(images) - unreadable} show no person "
                    "with shoulders and hips visible; add clear, readable images of that pose"
                )
    return Samples(names, labels, np.stack(keypoints), skipped)


def load_samples(
    source: Path, estimate_factory: Callable[[], Callable[[np.ndarray], Any]] | None = None
) -> Samples:
    """Samples from a CSV file or an image folder (``estimate_factory`` makes the pose
    estimator, only when a folder needs one)."""
    if source.is_dir():
        class_folders(source)  # layout errors before loading a model
        if estimate_factory is None:
            raise EdgePoseError(f"{source}: training from images needs a pose model")
        samples = load_image_folder(source, estimate_factory())
    else:
        samples = load_csv(source)
    require_classes(samples, source)
    return samples
