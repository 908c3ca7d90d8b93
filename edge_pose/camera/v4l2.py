"""USB webcams and other V4L2 devices through OpenCV."""

from __future__ import annotations

import os
import time

import cv2

from edge_pose.camera.base import Camera, Frame, FrameClock
from edge_pose.errors import CameraError


class V4l2Camera(Camera):
    """A /dev/videoN device; a live source, so only the newest frame is used."""

    live = True

    def __init__(self, device: str, *, width: int, height: int, fps: float) -> None:
        if not os.path.exists(device):
            raise CameraError(f"camera source v4l2:{device}: no such device (see `ls /dev/video*`)")
        if not os.access(device, os.R_OK | os.W_OK):
            raise CameraError(
                f"camera source v4l2:{device}: permission denied "
                "(add the user to the `video` group)"
            )
        self._capture = cv2.VideoCapture(device, cv2.CAP_V4L2)
        if not self._capture.isOpened():
            raise CameraError(
                f"camera source v4l2:{device}: cannot open it as a V4L2 capture device"
            )
        self._capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        self._capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        self._capture.set(cv2.CAP_PROP_FPS, fps)
        self.description = f"v4l2:{device}"
        self.fps = self._capture.get(cv2.CAP_PROP_FPS) or fps
        self._clock = FrameClock()

    def read(self) -> Frame | None:
        ok, image = self._capture.read()
        if not ok:
            raise CameraError(
                f"{self.description}: the device stopped delivering frames (unplugged?)"
            )
        started_ns = time.perf_counter_ns()
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB, dst=image)
        return self._clock.stamp(image, decode_ns=time.perf_counter_ns() - started_ns)

    def close(self) -> None:
        self._capture.release()
