"""What every camera shares: the :class:`Frame` it hands on, the :class:`Camera` interface and the
:class:`FrameClock` that stamps frames.

Only shared types live here, so the camera kinds (file.py, v4l2.py, picam.py) import this module
and nothing imports them back; opening a source by its kind is open.py's job.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np


@dataclass(slots=True)
class Frame:
    """One captured image: RGB uint8 HxWx3 and when it was taken.

    ``capture_ns`` (monotonic) is when the frame became available: latency is measured from it.
    ``scene_ns`` (monotonic) is the instant the frame shows: the same for cameras, the media
    time for files (their start plus index / fps), so smoothing and timing rules see the
    scene's real pace even when a file is decoded faster than real time.
    ``decode_ns`` is how long the camera spent producing it (decode, colour conversion).
    ``cut`` marks the first frame after a jump in the footage (a looped file starting over):
    what the frames before it showed is no guide to this one.
    """

    image: np.ndarray
    capture_ns: int
    wall: float
    index: int
    decode_ns: int = 0
    scene_ns: int = 0
    cut: bool = False


class Camera(ABC):
    """A source of frames. ``read`` blocks until the next frame and returns None at the end.

    Only a finite source (a video file, images) has an end; a live one (a device, a named
    pipe) that stops raises CameraError instead, so the run fails visibly and is restarted.

    ``live`` cameras (and files paced in real time) produce frames whether or not anyone keeps
    up, so the reader keeps only the newest; others wait for the reader (back-pressure).
    """

    live: bool = True
    description: str = ""
    fps: float | None = None  # nominal frame rate, when the source knows it

    @abstractmethod
    def read(self) -> Frame | None:
        """The next frame, or None when a finite source has ended."""

    def close(self) -> None:  # noqa: B027 - most sources have nothing to release
        """Release the device or file."""

    def __enter__(self) -> Camera:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FrameClock:
    """Stamps frames with a running index and the capture clocks."""

    def __init__(self) -> None:
        self.index = 0

    def stamp(
        self,
        image: np.ndarray,
        capture_ns: int | None = None,
        decode_ns: int = 0,
        scene_ns: int | None = None,
        cut: bool = False,
    ) -> Frame:
        now_ns = time.monotonic_ns()
        if capture_ns is None:
            capture_ns = now_ns
        # Wall time of the capture instant, even when the stamp comes from the sensor.
        wall = time.time() - (now_ns - capture_ns) / 1e9
        frame = Frame(image, capture_ns, wall, self.index, decode_ns,
                      capture_ns if scene_ns is None else scene_ns, cut)
        self.index += 1
        return frame

