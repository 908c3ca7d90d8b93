"""`edge-pose classifier train | eval`: build a k-NN classifier file and measure it.

``add_classifier_parser(subparsers)`` adds both subcommands to the CLI; each sets
``handler=`` to a function taking the parsed ``args`` and returning the exit code.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_pose.argtypes import whole_number_at_least
from edge_pose.errors import EX_OK

if TYPE_CHECKING:  # numpy is loaded by the commands that need it, not by `edge-pose status`
    import numpy as np

# How many skipped images are named before "... and N more".
_SHOWN_SKIPS = 10


def add_classifier_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add `classifier train` and `classifier eval` to the CLI's subparsers."""
    parser = subparsers.add_parser(
        "classifier",
        help="train and evaluate the k-NN pose classifier",
        description="Train a k-NN pose classifier from labelled poses, and measure it.",
    )
    actions = parser.add_subparsers(dest="classifier_command", metavar="ACTION", required=True)

    train = actions.add_parser(
        "train",
        help="build a classifier file from a landmarks CSV or a folder of images",
        description=(
            "SOURCE is a landmarks CSV (rows `name, class, coordinates`: 17 x (x, y), "
            "17 x (x, y, score) or BlazePose 33 x (x, y, z)) or a folder with one subfolder of "
            "images per class, whose poses MoveNet finds."
        ),
    )
    train.add_argument("source", type=Path, metavar="SOURCE", help="landmarks CSV or folder")
    train.add_argument(
        "-o", "--output", type=Path, required=True, metavar="FILE", help="classifier file to write"
    )
    _model_flags(train)
    train.add_argument("--json", action="store_true", help="JSON summary on stdout")
    train.set_defaults(handler=train_command)

    evaluate = actions.add_parser(
        "eval",
        help="k-fold cross-validation: precision, recall, confusion matrix, accuracy",
        description=(
            "Stratified k-fold cross-validation of the k-NN classifier on the samples of a "
            "classifier file, a landmarks CSV or an image folder. The confusion matrix has one "
            "row per true label and one column per predicted label."
        ),
    )
    evaluate.add_argument(
        "source",
        type=Path,
        metavar="CLASSIFIER_OR_SAMPLES",
        help="classifier file, landmarks CSV or image folder",
    )
    evaluate.add_argument(
        "--folds",
        type=whole_number_at_least(2),
        default=5,
        metavar="K",
        help="number of folds (default 5)",
    )
    evaluate.add_argument(
        "--seed",
        type=whole_number_at_least(0),
        default=0,
        help="seed of the fold shuffle (default 0)",
    )
    _model_flags(evaluate)
    evaluate.add_argument("--json", action="store_true", help="JSON output")
    evaluate.set_defaults(handler=eval_command)
    return parser


def _model_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", metavar="NAME|PATH", help="pose model for image folders (default: config)"
    )
    parser.add_argument("--threads", type=int, metavar="N", help="CPU inference threads")
    parser.add_argument("--config", type=Path, help="config file for model settings")


def _estimator_factory(args: argparse.Namespace) -> Callable[[], Callable[[np.ndarray], Any]]:
    """Loads the configured MoveNet only when an image folder needs it."""

    def make() -> Callable[[np.ndarray], Any]:
        from edge_pose.estimate import estimate_pose
        from edge_pose.inference.backend import load_configured_model

        cfg, model, _backend, _name = load_configured_model(
            args.config, name=args.model, threads=args.threads
        )
        min_score = cfg.model.min_pose_score
        return lambda image: estimate_pose(model, image, min_pose_score=min_score)

    return make


def _report_skipped(skipped: list[str], total: int) -> None:
    if not skipped:
        return
    print(f"edge-pose: skipped {len(skipped)} of {total} samples:", file=sys.stderr)
    for line in skipped[:_SHOWN_SKIPS]:
        print(f"  {line}", file=sys.stderr)
    if len(skipped) > _SHOWN_SKIPS:
        print(f"  ... and {len(skipped) - _SHOWN_SKIPS} more", file=sys.stderr)


def train_command(args: argparse.Namespace) -> int:
    """`edge-pose classifier train SOURCE -o FILE [--model NAME|PATH]`."""
    from edge_pose.classify.knn import KnnClassifier
    from edge_pose.classify.samples import load_samples
    from edge_pose.outputs import refuse_input_as_output, refuse_output_inside

    if args.source.is_dir():
        refuse_output_inside(args.output, args.source, "--output")
    else:
        refuse_input_as_output(args.output, [args.source], "--output")
    samples = load_samples(args.source, _estimator_factory(args))
    _report_skipped(samples.skipped, len(samples) + len(samples.skipped))
    classifier = KnnClassifier(samples)
    classifier.save(args.output, source=str(args.source))
    counts = samples.counts()
    if args.json:
        print(
            json.dumps(
                {
                    "output": str(args.output),
                    "labels": classifier.labels,
                    "samples": len(samples),
                    "per_class": counts,
                    "skipped": len(samples.skipped),
                }
            )
        )
    else:
        per_class = ", ".join(f"{label} {n}" for label, n in counts.items())
        print(
            f"trained k-NN classifier on {len(samples)} samples, {len(counts)} classes "
            f"({per_class}) -> {args.output}"
        )
        print(f"check it with: edge-pose classifier eval {args.output}")
    return EX_OK


def _is_classifier_file(path: Path) -> bool:
    if path.suffix.lower() == ".json":
        return True
    try:
        with open(path, "rb") as f:
            return f.read(64).lstrip().startswith(b"{")
    except OSError:
        return False


def eval_command(args: argparse.Namespace) -> int:
    """`edge-pose classifier eval [--json] [--folds K] CLASSIFIER_OR_SAMPLES`."""
    from edge_pose.classify.evaluate import evaluate, format_report
    from edge_pose.classify.knn import read_classifier
    from edge_pose.classify.samples import load_samples

    source: Path = args.source
    if source.is_file() and _is_classifier_file(source):
        samples = read_classifier(source)
    else:
        samples = load_samples(source, _estimator_factory(args))
        _report_skipped(samples.skipped, len(samples) + len(samples.skipped))
    result = evaluate(samples, folds=args.folds, seed=args.seed)
    if args.json:
        print(json.dumps(result))
    else:
        print(format_report(result))
    return EX_OK
