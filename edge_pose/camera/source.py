"""The camera source grammar: a ``camera.source`` string parsed once into a small typed value.

Config validation, :func:`edge_pose.camera.open.open_camera`, the config's run-time warnings and
`edge-pose doctor` all need to know what a source string names. They used to parse it each in
their own way, so a string one of them accepted another could read differently. Here is the one
grammar; everyone else matches on the value it returns:

- ``picamera2`` or ``picamera2:N``: the Nth CSI camera (:class:`PiCameraSource`);
- ``v4l2:/dev/...``: a V4L2 device node or one of its udev links (:class:`V4l2Source`);
- ``file:PATH`` or a plain path: a video, an image, a folder or glob of images, or a named pipe
  (:class:`FileSource`); what the path holds is the file camera's business, not the grammar's.

Code that only needs to know whether a source is footage, and where (``--annotate``, bench, the
config's ``~user`` and file checks), asks :func:`file_path` or ``isinstance(..., FileSource)``;
code that only needs the device node a live camera opens asks its ``device_node``. Neither
matches on every kind, so a new kind of live camera is added here, in its camera module and in
``open.py``, and nowhere else.

Refused: an empty string, ``file:`` without a path, a ``v4l2:`` path outside /dev, anything else
that starts like a URL scheme (``rtsp://``, ``usb:0``, ``C:``) and anything else starting with
``picamera`` (``picamera``, ``picamera3``: typos of the Pi camera, never meant as file names).

This module imports nothing heavy: config loading uses it, and loading stays cheap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SOURCE_ALLOWED = (
    "picamera2, picamera2:N, file:PATH, v4l2:/dev/videoN or a path to a video/image file"
)
PICAMERA = "picamera2"
V4L2_PREFIX = "v4l2:"
FILE_PREFIX = "file:"
GLOB_CHARS = "*?["

_CAMERA_NUMBER = re.compile(r"\d+")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")


class SourceError(ValueError):
    """A string outside the grammar; the message says what is wrong with it."""


class _Source:
    """What every kind of source answers, for code that must not match on the kinds."""

    __slots__ = ()

    @property
    def device_node(self) -> str | None:
        """The device node the camera is opened by, which must exist on the machine that runs
        it (None: a source not opened through a node of its own, or found by its library)."""
        return None


@dataclass(frozen=True, slots=True)
class PiCameraSource(_Source):
    """A CSI camera handled by libcamera, by its number in libcamera's list."""

    index: int = 0


@dataclass(frozen=True, slots=True)
class V4l2Source(_Source):
    """A V4L2 capture device (a USB webcam), by its device node."""

    device: str

    @property
    def device_node(self) -> str:
        return self.device


@dataclass(frozen=True, slots=True)
class FileSource(_Source):
    """Footage from the file system: ``path`` as written (``~`` not expanded), which may be a
    video, an image, a folder of images, a glob of images or a named pipe."""

    path: str

    @property
    def is_glob(self) -> bool:
        """Whether ``path`` is a pattern (matched by :mod:`glob`) rather than one path."""
        return any(ch in self.path for ch in GLOB_CHARS)


CameraSource = PiCameraSource | V4l2Source | FileSource


def parse_source(text: str) -> CameraSource:
    """The source ``text`` names; SourceError when it is outside the grammar (see the module)."""
    if text == PICAMERA:
        return PiCameraSource()
    if text.startswith(f"{PICAMERA}:"):
        number = text.removeprefix(f"{PICAMERA}:")
        if not _CAMERA_NUMBER.fullmatch(number):
            raise SourceError("the camera number must be 0, 1, ...")
        return PiCameraSource(int(number))
    if text.startswith(V4L2_PREFIX):
        device = text.removeprefix(V4L2_PREFIX)
        if device.startswith("/dev/"):
            return V4l2Source(device)
    elif text.startswith(FILE_PREFIX):
        if path := text.removeprefix(FILE_PREFIX):
            return FileSource(path)
    elif text and not _SCHEME.match(text) and not text.lower().startswith("picamera"):
        return FileSource(text)
    raise SourceError(f"must be {SOURCE_ALLOWED}")


def file_path(text: str) -> str | None:
    """The path of the footage ``text`` names, as written (``file:`` removed, ``~`` not
    expanded); None for a live camera or a string outside the grammar."""
    try:
        source = parse_source(text)
    except SourceError:
        return None
    return source.path if isinstance(source, FileSource) else None
