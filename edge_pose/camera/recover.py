"""Riding out camera hiccups: a live camera that fails a read is closed and opened again.

A USB webcam that resets, an ISP timeout or a briefly unplugged cable should cost a few frames,
not a service restart with a model reload. After ``retries`` consecutive failed attempts the
error is raised after all, so a camera that is really gone ends the run (and systemd restarts the
service, which reports it). The watchdog still fires if recovery takes longer than it allows.
A live camera has no end: one that reports the end of its frames is treated as a failed read
too, so it is reopened or the run fails, never ends as if it had finished.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from edge_pose.camera.base import Camera, Frame
from edge_pose.errors import CameraError

log = logging.getLogger(__name__)


class RecoveringCamera(Camera):
    """Wraps a live camera made by ``open_camera``; reopens it after read errors with backoff."""

    live = True

    def __init__(self, open_camera: Callable[[], Camera], retries: int = 5,
                 first_delay: float = 0.5, max_delay: float = 8.0) -> None:
        self._open = open_camera
        self._retries = retries
        self._first_delay = first_delay
        self._max_delay = max_delay
        self.camera: Camera | None = open_camera()
        self.description = self.camera.description
        self.fps = self.camera.fps
        self.restarts = 0
        self._index_offset = 0
        self._next_index = 0

    def read(self) -> Frame | None:
        failures = 0
        delay = self._first_delay
        while True:
            try:
                if self.camera is None:
                    self.camera = self._open()
                    self._index_offset = self._next_index
                    self.restarts += 1
                    log.info("camera %s: reopened, frames flowing again", self.description)
                frame = self.camera.read()
                if frame is None:
                    raise CameraError(f"{self.description}: the camera stopped delivering frames")
            except CameraError as exc:
                failures += 1
                if failures > self._retries:
                    raise CameraError(
                        f"{exc} (gave up after {self._retries} reopen attempts)"
                    ) from exc
                log.warning("camera %s: %s; reopening in %.1f s (attempt %d of %d)",
                            self.description, exc, delay, failures, self._retries)
                self._close_quietly()
                time.sleep(delay)
                delay = min(delay * 2, self._max_delay)
                continue
            # Indices keep counting across reopenings, so downstream sees one stream.
            frame.index += self._index_offset
            self._next_index = frame.index + 1
            return frame

    def _close_quietly(self) -> None:
        if self.camera is not None:
            try:
                self.camera.close()
            except Exception as exc:  # a device in trouble may fail to close too
                log.debug("closing %s failed: %s", self.description, exc)
            self.camera = None

    def close(self) -> None:
        self._close_quietly()
