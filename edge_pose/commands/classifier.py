"""`edge-pose classifier train | eval`: build a k-NN classifier file and measure it.

The samples and the file are the business of edge_pose.classify.training; this module prints
what was done: a summary (text or ``--json``) on stdout, the samples left out on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from edge_pose.argtypes import whole_number_at_least
from edge_pose.errors import EX_OK

if TYPE_CHECKING:
    from edge_pose.classify.samples import Samples
    from edge_pose.commands import Subparsers

# How many skipped images are named before "... and N more".
_SHOWN_SKIPS = 10


def add_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
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
    return parser


def _model_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", metavar="NAME|PATH", help="pose model for image folders (default: config)"
    )
    parser.add_argument("--threads", type=int, metavar="N", help="CPU inference threads")
    parser.add_argument("--config", type=Path, help="config file for model settings")


def run(args: argparse.Namespace) -> int:
    return _train(args) if args.classifier_command == "train" else _evaluate(args)


def _train(args: argparse.Namespace) -> int:
    """`classifier train SOURCE -o FILE [--model NAME|PATH]`."""
    from edge_pose.classify.samples import load_samples
    from edge_pose.classify.training import pose_finder, refuse_overwriting_sources, train_knn

    refuse_overwriting_sources(args.output, args.source, "--output")
    samples = load_samples(args.source, pose_finder(args.config, args.model, args.threads))
    _report_skipped(samples)
    classifier = train_knn(samples, args.output, args.source)
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


def _evaluate(args: argparse.Namespace) -> int:
    """`classifier eval [--json] [--folds K] CLASSIFIER_OR_SAMPLES`."""
    from edge_pose.classify.evaluate import evaluate, format_report
    from edge_pose.classify.training import pose_finder, samples_to_evaluate

    samples = samples_to_evaluate(args.source, pose_finder(args.config, args.model, args.threads))
    _report_skipped(samples)
    result = evaluate(samples, folds=args.folds, seed=args.seed)
    if args.json:
        print(json.dumps(result))
    else:
        print(format_report(result))
    return EX_OK


def _report_skipped(samples: Samples) -> None:
    """The samples left out, on stderr: the first few by name, then how many more."""
    skipped = samples.skipped
    if not skipped:
        return
    total = len(samples) + len(skipped)
    print(f"edge-pose: skipped {len(skipped)} of {total} samples:", file=sys.stderr)
    for line in skipped[:_SHOWN_SKIPS]:
        print(f"  {line}", file=sys.stderr)
    if len(skipped) > _SHOWN_SKIPS:
        print(f"  ... and {len(skipped) - _SHOWN_SKIPS} more", file=sys.stderr)
