"""Capture in its own thread, handing frames to the pipeline through a one-frame slot.

A live camera never waits for the pipeline: a frame not yet taken is replaced by the newer one
and counted as skipped, so latency stays one frame at most and memory stays bounded. A camera
that is not live (a file read as fast as possible) waits until its frame is taken instead
(back-pressure), so every frame is processed. Decoding runs here, in parallel with inference
(OpenCV and the interpreter release the GIL).
"""

from __future__ import annotations

import threading

from edge_pose.camera.base import Camera, Frame
from edge_pose.errors import CameraError, EdgePoseError


class FrameGrabber:
    """Runs ``camera.read`` in a daemon thread; ``get`` returns the newest frame."""

    def __init__(self, camera: Camera) -> None:
        self.camera = camera
        self.captured = 0
        self.skipped = 0
        self.error: EdgePoseError | None = None
        self._slot: Frame | None = None
        self._ended = False
        self._stopping = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)

    def start(self) -> FrameGrabber:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            while not self._stopping:
                frame = self.camera.read()
                if frame is None:
                    break
                self._put(frame)
        except EdgePoseError as exc:
            self.error = exc
        except Exception as exc:  # a driver failure must end the run visibly, not hang it
            self.error = CameraError(f"{self.camera.description}: capture failed: {exc}")
        finally:
            with self._cond:
                self._ended = True
                self._cond.notify_all()

    def _put(self, frame: Frame) -> None:
        with self._cond:
            if not self.camera.live:
                while self._slot is not None and not self._stopping:
                    self._cond.wait()
            elif self._slot is not None:
                self.skipped += 1
                frame.cut = frame.cut or self._slot.cut  # a skipped jump is still a jump
            self._slot = frame
            self.captured += 1
            self._cond.notify_all()

    def get(self, timeout: float | None = None) -> Frame | None:
        """The next frame; None when the source ended (check ``error``) or on timeout."""
        with self._cond:
            if self._slot is None and not self._ended:
                self._cond.wait_for(lambda: self._slot is not None or self._ended, timeout)
            frame, self._slot = self._slot, None
            self._cond.notify_all()
            return frame

    @property
    def ended(self) -> bool:
        return self._ended and self._slot is None

    def stop(self, timeout: float = 2.0) -> None:
        """Stop capturing and release the camera."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._thread.is_alive():
            # Stuck inside the driver or a blocking read: releasing the device under it could
            # crash; the daemon thread ends with the process instead.
            return
        self.camera.close()
