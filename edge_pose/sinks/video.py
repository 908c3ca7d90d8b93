"""``run --annotate OUT``: every processed frame with its skeleton, written into a video.

A debugging and demonstration aid, off by default: drawing and encoding cost far more than the
rest of the per-frame work. The writer opens on the first frame (its size is the frame's), so a
folder that is not there fails at the first frame with a message saying so. The zones
(``[[zones]]``) are drawn under the people, those someone is in highlighted, as of that frame.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2

from edge_pose.annotate import Zoned, draw_people, zone_outlines
from edge_pose.errors import EdgePoseError
from edge_pose.sinks.base import FrameResult, Sink

log = logging.getLogger(__name__)


class VideoSink(Sink):
    """Draws the people (and the zones of ``zoned``) on each frame and appends it to ``path``
    (.mp4: mp4v, else MJPG)."""

    timed = False  # drawing and encoding are not part of what a subscriber waits for

    def __init__(self, path: Path, fps: float, zoned: Zoned | None = None) -> None:
        self.path = path
        self.fps = fps
        self.zoned = zoned
        self.frames = 0
        self._writer: cv2.VideoWriter | None = None

    def deliver(self, result: FrameResult) -> None:
        zones = zone_outlines(self.zoned)
        image = draw_people(result.frame.image, result.poses, zones=zones)
        canvas = cv2.cvtColor(image, cv2.COLOR_RGB2BGR, dst=image)  # in place: the copy is ours
        if self._writer is None:
            self._writer = self._open(canvas.shape[1], canvas.shape[0])
        self._writer.write(canvas)
        self.frames += 1

    def _open(self, width: int, height: int) -> cv2.VideoWriter:
        fourcc = cv2.VideoWriter.fourcc(*("mp4v" if self.path.suffix == ".mp4" else "MJPG"))
        writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, (width, height))
        if not writer.isOpened():
            raise EdgePoseError(
                f"cannot write the annotated video {self.path} (check the folder exists; "
                "use .mp4 or .avi)"
            )
        return writer

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
        log.info("annotated video: %s (%d frames)", self.path, self.frames)
