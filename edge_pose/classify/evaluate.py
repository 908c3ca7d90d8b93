"""Stratified k-fold evaluation of the k-NN classifier: accuracy, precision/recall, confusion.

Folds are stratified and deterministic: the samples of each class are shuffled with
``numpy.random.default_rng(seed)`` and dealt round-robin to the folds, so every fold holds about
the same share of each class and the same data and seed always give the same numbers. Each fold
is classified by a classifier built from the other folds; the mirror comparison stays on.

The confusion matrix has one row per true label and one column per predicted label, both in the
order of ``labels``: ``confusion[i][j]`` counts samples of ``labels[i]`` predicted as
``labels[j]``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edge_pose.classify.knn import KnnClassifier
from edge_pose.classify.samples import Samples
from edge_pose.errors import EdgePoseError


def stratified_folds(labels: list[str], folds: int, seed: int = 0) -> np.ndarray:
    """The fold (0..folds-1) of each sample."""
    rng = np.random.default_rng(seed)
    assignment = np.empty(len(labels), np.intp)
    array = np.array(labels)
    offset = 0
    for label in sorted(set(labels)):
        members = rng.permutation(np.flatnonzero(array == label))
        # Continue the round-robin where the previous class stopped, so fold sizes stay even.
        assignment[members] = (np.arange(len(members)) + offset) % folds
        offset += len(members)
    return assignment


def evaluate(samples: Samples, folds: int = 5, seed: int = 0) -> dict[str, Any]:
    """k-fold results: accuracy, per-class precision/recall/support, confusion, labels."""
    labels = samples.classes
    if folds < 2:
        raise EdgePoseError(f"--folds must be at least 2, not {folds}")
    if folds > len(samples):
        raise EdgePoseError(
            f"--folds {folds} is more than the {len(samples)} samples; use fewer folds"
        )
    fold_of = stratified_folds(samples.labels, folds, seed)
    index = {label: i for i, label in enumerate(labels)}
    confusion = np.zeros((len(labels), len(labels)), np.int64)
    unclassified = 0
    for fold in range(folds):
        train = np.flatnonzero(fold_of != fold)
        test = np.flatnonzero(fold_of == fold)
        train_samples = samples.subset(train)
        if len(train_samples.classes) < 2:
            raise EdgePoseError(
                f"fold {fold + 1} of {folds} leaves fewer than 2 classes to train on; "
                "use fewer folds or add samples"
            )
        classifier = KnnClassifier(train_samples)
        for sample in test:
            predicted = classifier.predict(samples.keypoints[sample])
            if predicted is None:
                unclassified += 1
                continue
            confusion[index[samples.labels[sample]], index[predicted]] += 1
    correct = int(np.trace(confusion))
    support = confusion.sum(axis=1)
    predicted_count = confusion.sum(axis=0)
    per_class = {}
    for i, label in enumerate(labels):
        tp = int(confusion[i, i])
        precision = tp / predicted_count[i] if predicted_count[i] else 0.0
        recall = tp / support[i] if support[i] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {
            "precision": round(float(precision), 4),
            "recall": round(float(recall), 4),
            "f1": round(float(f1), 4),
            "support": int(np.sum(np.array(samples.labels) == label)),
        }
    return {
        "accuracy": round(correct / len(samples), 4),
        "correct": correct,
        "samples": len(samples),
        "unclassified": unclassified,
        "folds": folds,
        "seed": seed,
        "labels": labels,
        "per_class": per_class,
        "confusion": confusion.tolist(),
        "confusion_layout": "rows: true label, columns: predicted label, in the order of labels",
    }


def format_report(result: dict[str, Any]) -> str:
    """The evaluation as text: per-class table, confusion matrix, accuracy."""
    labels = result["labels"]
    width = max(12, *(len(label) for label in labels))
    lines = [
        f"{result['folds']}-fold cross-validation (stratified, seed {result['seed']}) of "
        f"{result['samples']} samples, {len(labels)} classes",
        "",
        f"{'class':<{width}}  precision  recall  support",
    ]
    for label in labels:
        m = result["per_class"][label]
        lines.append(
            f"{label:<{width}}  {m['precision']:9.3f}  {m['recall']:6.3f}  {m['support']:7d}"
        )
    cell = max(6, *(len(label) for label in labels))
    lines += [
        "",
        "confusion matrix (rows: true label, columns: predicted label)",
        f"{'':<{width}}  " + "  ".join(f"{label:>{cell}}" for label in labels),
    ]
    for label, row in zip(labels, result["confusion"], strict=True):
        lines.append(f"{label:<{width}}  " + "  ".join(f"{n:>{cell}d}" for n in row))
    lines += ["", f"accuracy {result['accuracy']:.4f} ({result['correct']}/{result['samples']})"]
    if result["unclassified"]:
        lines.append(f"unclassified (shoulders or hips not seen): {result['unclassified']}")
    return "\n".join(lines)
