"""The Raspberry Pi camera through picamera2 (from apt: python3-picamera2).

picamera2 is imported only when this camera is opened, so the rest of edge-pose works where it is
not installed. Two facts shape this module:
- picamera2 names formats the libcamera/DRM way: "BGR888" arrays hold R, G, B bytes, which is
  what MoveNet needs, so we ask for it and never convert a frame.
- The ISP scales to the configured size for free, and the request metadata carries the sensor
  timestamp (``SensorTimestamp``, CLOCK_MONOTONIC ns), the true capture instant.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from edge_pose.camera.base import Camera, Frame, FrameClock
from edge_pose.errors import CameraError

PICAMERA2_MISSING = (
    "picamera2 is not installed: on Raspberry Pi OS run `sudo apt install python3-picamera2` and "
    "create the venv with `python3 -m venv --system-site-packages` so it can see it"
)
NO_SUCH_CAMERA_FIX = "check the ribbon cable and `rpicam-hello --list-cameras`"
RGB_ORDER_FORMAT = "BGR888"  # R, G, B byte order in picamera2's naming (picamera2 issue #1325)
# A sensor timestamp further than this from "now" is not on our clock; use the arrival time.
MAX_TIMESTAMP_SKEW_NS = 5_000_000_000


def found_cameras(cameras: Sequence[Mapping[str, object]]) -> str:
    """The cameras libcamera lists, ``0: imx708, 1: ov5647`` (``none``), for a message about
    a camera that is not there."""
    return ", ".join(f"{i}: {c.get('Model', '?')}" for i, c in enumerate(cameras)) or "none"


class PiCamera(Camera):
    """A CSI camera handled by libcamera; only the newest frame matters (live source)."""

    live = True

    def __init__(self, index: int, *, width: int, height: int, fps: float) -> None:
        try:
            from picamera2 import Picamera2  # type: ignore[import-not-found]
        except ImportError as exc:
            raise CameraError(PICAMERA2_MISSING) from exc
        cameras = Picamera2.global_camera_info()
        if index >= len(cameras):
            raise CameraError(
                f"camera source picamera2:{index}: no such camera "
                f"(found: {found_cameras(cameras)}); {NO_SUCH_CAMERA_FIX}"
            )
        self.description = f"picamera2:{index} ({cameras[index].get('Model', 'unknown')})"
        self.fps = fps
        self._clock = FrameClock()
        try:
            self._camera = Picamera2(index)
            config = self._camera.create_video_configuration(
                main={"size": (width, height), "format": RGB_ORDER_FORMAT},
                controls={"FrameRate": float(fps)},
            )
            self._camera.configure(config)
            self._camera.start()
        except Exception as exc:  # libcamera reports device trouble with assorted exception types
            raise CameraError(f"cannot start {self.description}: {exc}") from exc

    def read(self) -> Frame | None:
        try:
            request = self._camera.capture_request()
        except Exception as exc:  # libcamera reports device trouble with assorted types
            raise CameraError(f"{self.description}: capture failed: {exc}") from exc
        started_ns = time.perf_counter_ns()
        try:
            image = request.make_array("main")
            sensor_ns = request.get_metadata().get("SensorTimestamp")
        finally:
            request.release()
        if sensor_ns is None or abs(time.monotonic_ns() - sensor_ns) > MAX_TIMESTAMP_SKEW_NS:
            sensor_ns = None
        return self._clock.stamp(image, sensor_ns, time.perf_counter_ns() - started_ns)

    def close(self) -> None:
        self._camera.stop()
        self._camera.close()
