"""Checks on the files a command is asked to write, made before any work is done.

An annotated picture or video, or a trained classifier, written over the very file it was made
from destroys the user's data; an output format OpenCV cannot write would only fail after the
model has run. Both are refused up front with the flag to change.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from edge_pose.errors import UsageError

VIDEO_SUFFIXES = (".mp4", ".avi")


def same_file(a: Path, b: Path) -> bool:
    """``a`` and ``b`` name the same file (symbolic and hard links included)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return a.resolve() == b.resolve()


def refuse_input_as_output(output: Path, inputs: Iterable[Path], flag: str) -> None:
    """A UsageError when ``output`` is one of ``inputs``."""
    for source in inputs:
        if same_file(output, source):
            raise UsageError(
                f"{flag} {output} is the input {source}: it would be overwritten; "
                "give another file name"
            )


def refuse_output_inside(output: Path, folder: Path, flag: str) -> None:
    """A UsageError when ``output`` would be written anywhere inside ``folder`` (an input
    folder: over one of its files, or as a new file the next run would read as input)."""
    target = output.resolve()
    if target.is_relative_to(folder.resolve()):
        raise UsageError(
            f"{flag} {output} is inside the input folder {folder}: it could overwrite or add to "
            "its files; write it outside that folder"
        )


def is_image_name(path: Path) -> bool:
    """The name ends in an image extension OpenCV writes (``x.png``; not ``x`` or ``x.d``)."""
    import cv2

    return cv2.haveImageWriter(str(path))


def check_image_output(path: Path, flag: str) -> None:
    """A UsageError when OpenCV has no writer for the file name's extension."""
    if not is_image_name(path):
        raise UsageError(f"{flag} {path}: cannot write that image format (use .png or .jpg)")


def check_video_output(path: Path, flag: str) -> None:
    """A UsageError for a video name that is not .mp4/.avi or whose folder does not exist."""
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise UsageError(f"{flag} {path}: the annotated video must end in .mp4 or .avi")
    if not path.absolute().parent.is_dir():
        raise UsageError(f"{flag} {path}: the folder {path.absolute().parent} does not exist")
