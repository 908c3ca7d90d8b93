"""Opening a camera from its source string: the one place that maps a kind of source to its camera.

The string is parsed by :mod:`edge_pose.camera.source` (the grammar config validation and
`doctor` use too) and the match below picks the camera class. Live cameras (the Pi camera, V4L2)
are wrapped in :class:`~edge_pose.camera.recover.RecoveringCamera`, which reopens them after a
read error; file sources end instead, or fail visibly.

Adding a kind of camera takes three files: its :class:`~edge_pose.camera.base.Camera` subclass
in a module of its own, its syntax in source.py, and its case here (mypy reports a kind of
source without one).
"""

from __future__ import annotations

from typing import assert_never

from edge_pose.camera.base import Camera
from edge_pose.camera.file import open_file_camera
from edge_pose.camera.picam import PiCamera
from edge_pose.camera.recover import RecoveringCamera
from edge_pose.camera.source import (
    FileSource,
    PiCameraSource,
    SourceError,
    V4l2Source,
    parse_source,
)
from edge_pose.camera.v4l2 import V4l2Camera
from edge_pose.errors import CameraError


def open_camera(
    source: str,
    *,
    width: int = 640,
    height: int = 480,
    fps: float = 30,
    realtime: bool = True,
    loop: bool = False,
) -> Camera:
    """Open ``source``: ``picamera2[:N]``, ``v4l2:/dev/videoN``, ``file:PATH`` or a plain path."""
    try:
        parsed = parse_source(source)
    except SourceError as exc:
        raise CameraError(f"camera source {source!r}: {exc}") from None
    match parsed:
        case PiCameraSource(index=index):
            return RecoveringCamera(lambda: PiCamera(index, width=width, height=height, fps=fps))
        case V4l2Source(device=device):
            return RecoveringCamera(
                lambda: V4l2Camera(device, width=width, height=height, fps=fps)
            )
        case FileSource(path=path):
            return open_file_camera(path, realtime=realtime, loop=loop, fps=fps)
        case unknown:
            assert_never(unknown)
