"""The picture: the newest frame with the skeleton drawn, as JPEG, for every viewer at once.

One encoder thread serves all viewers (picamera2's ``mjpeg_server.py`` pattern: the newest JPEG
behind a Condition), so ten viewers cost one encode per frame, not ten. It wakes at most
``stream_fps`` times a second and only while someone watches; with no viewer it sleeps on the
condition and the pipeline pays nothing. It asks the hub for the pipeline's next frame
(:meth:`~edge_pose.web.hub.WebHub.take`) and draws it, scaled, into a canvas of its own before
encoding, on this thread, never on the pipeline's.

The zones ([[zones]]) are drawn under the people, from the newest status document (which holds
each zone's corners and whether someone is in it): this thread never reads the pipeline's
state, which changes under it, and a reload that changes the zones shows in the next document.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import replace

import cv2
import numpy as np

from edge_pose.annotate import ZoneOutline, draw_people
from edge_pose.pose import Pose, Region
from edge_pose.service.document import AsRead, number
from edge_pose.sinks.base import FrameResult
from edge_pose.web.hub import WebHub


class Jpeg:
    """One encoded picture: ``number`` counts encodes, so a viewer sends each one once."""

    __slots__ = ("data", "frame", "number")

    def __init__(self, data: bytes, frame: int, number: int) -> None:
        self.data = data
        self.frame = frame  # the hub's frame count it was made from
        self.number = number


# The pictures' longest side at most: a 720p or 1080p camera is shown at 960 pixels, enough to
# aim the camera and judge a pose on any screen, for about a third of the encoding time and
# memory of the full frame (docs/performance.md). A 640x480 camera is shown as it is.
MAX_SIDE = 960
# How long the picture maker waits for the pipeline's next frame before it looks again (and a
# snapshot gives the last picture instead): a camera at 1 fps still makes every picture.
TAKE_TIMEOUT_S = 1.0


def encode(
    result: FrameResult,
    quality: int,
    canvas: np.ndarray | None = None,
    zones: Sequence[ZoneOutline] = (),
) -> bytes:
    """``result``'s frame with its poses (and ``zones``) drawn, at most :data:`MAX_SIDE`
    pixels wide or high, as JPEG bytes; drawn into ``canvas`` when it has the picture's shape
    (the encoder reuses one), else into new memory."""
    image, poses = result.frame.image, result.poses
    shape = picture_shape(image)
    if shape != image.shape:
        scale = MAX_SIDE / max(image.shape[:2])
        size = (shape[1], shape[0])
        fits = canvas is not None and canvas.shape == shape
        # Bilinear down to half size (a tenth of INTER_AREA's time at 720p -> 960, and no
        # visible difference in a preview); area averaging below that, where bilinear aliases.
        interpolation = cv2.INTER_LINEAR if scale >= 0.5 else cv2.INTER_AREA
        image = cv2.resize(image, size, dst=canvas if fits else None, interpolation=interpolation)
        poses = [_scaled(pose, scale) for pose in poses]
        canvas = image  # drawn on in place: the resized copy is ours
    canvas = draw_people(image, poses, out=canvas, zones=zones)
    bgr = cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR, dst=canvas)  # in place: the copy is ours
    ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - OpenCV's JPEG encoder does not fail on uint8 images
        raise RuntimeError("JPEG encoding failed")
    return data.tobytes()


def zone_outlines(doc: AsRead | None) -> list[ZoneOutline]:
    """The zones of a status document as drawn: name, corners, occupied (a zone whose corners
    are not [x, y] numbers is left out)."""
    zones = None if doc is None else doc.get("zones")
    outlines = []
    for zone in zones if isinstance(zones, list) else []:
        if not isinstance(zone, dict) or not isinstance(name := zone.get("name"), str):
            continue
        polygon = zone.get("polygon")
        corners = []
        for corner in polygon if isinstance(polygon, list) else []:
            xy = [number(v) for v in corner] if isinstance(corner, list) else []
            if len(xy) != 2 or xy[0] is None or xy[1] is None:
                break
            corners.append((min(max(xy[0], 0.0), 1.0), min(max(xy[1], 0.0), 1.0)))
        else:
            if len(corners) >= 3:
                outlines.append(ZoneOutline(name, corners, zone.get("occupied") is True))
    return outlines


def picture_shape(image: np.ndarray) -> tuple[int, ...]:
    """The shape of the picture :func:`encode` makes of a frame ``image``."""
    height, width = image.shape[:2]
    scale = MAX_SIDE / max(height, width)
    if scale >= 1.0:
        return image.shape
    return (round(height * scale), round(width * scale), *image.shape[2:])


def _scaled(pose: Pose, scale: float) -> Pose:
    """``pose`` on a picture ``scale`` times the frame's size."""
    keypoints = pose.keypoints.copy()
    keypoints[:, :2] *= scale
    r = pose.region
    region = Region(r.x0 * scale, r.y0 * scale, r.x1 * scale, r.y1 * scale)
    return replace(pose, keypoints=keypoints, region=region,
                   width=round(pose.width * scale), height=round(pose.height * scale))  # fmt: skip


class JpegStream:
    """The shared encoder; :meth:`frames` is one viewer's view of it."""

    def __init__(self, hub: WebHub, fps: float, quality: int) -> None:
        self.hub = hub
        self.interval = 1.0 / fps
        self.quality = quality
        self.viewers = 0
        self.encodes = 0  # pictures made: the benchmark checks viewers share them
        self.made: deque[float] = deque(maxlen=64)  # when the last pictures were made (bench)
        self._latest: Jpeg | None = None
        self._canvas: np.ndarray | None = None  # the encoder thread draws every picture into it
        self._taken_at = 0.0  # when the encoder thread last had a frame (or gave up waiting)
        self._snapshots = threading.Lock()  # one snapshot encode at a time
        self._snapshot: tuple[float, bytes] | None = None  # (when, JPEG) of the last one
        # The zones drawn, and the document they were read from (one read per document).
        self._zones_of: tuple[AsRead | None, list[ZoneOutline]] = (None, [])
        self._changed = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="edge-pose-jpeg", daemon=True)

    def start(self) -> None:
        """Start the encoder thread (the server does once its port is bound)."""
        self._thread.start()

    def _run(self) -> None:
        next_at = 0.0
        with self._changed:
            while not self._stopped:
                if not self.viewers:
                    self._changed.wait()
                    continue
                delay = next_at - time.monotonic()
                if delay > 0:
                    self._changed.wait(delay)
                    continue
                self._changed.release()  # wait and encode outside the lock: viewers keep sending
                try:
                    jpeg = self._next_picture()
                finally:
                    self._changed.acquire()
                # Paced from the frame's arrival, not from the request: a wait for a frame
                # (the camera between frames, a stall) never lets two pictures follow closely.
                next_at = self._taken_at + self.interval
                if jpeg is not None:
                    self.made.append(time.monotonic())
                    self.encodes += 1
                    self._latest = jpeg
                    self._changed.notify_all()

    def _next_picture(self) -> Jpeg | None:
        """The pipeline's next frame drawn and encoded; None when no frame came. The frame is
        let go on return, not held while the thread waits for the next picture."""
        taken = self.hub.take(TAKE_TIMEOUT_S)
        self._taken_at = time.monotonic()
        if taken is None:
            return None
        frame, result = taken
        shape = picture_shape(result.frame.image)
        if self._canvas is None or self._canvas.shape != shape:
            self._canvas = np.empty(shape, np.uint8)
        data = encode(result, self.quality, self._canvas, self._zones())
        return Jpeg(data, frame, self.encodes + 1)

    def _zones(self) -> list[ZoneOutline]:
        """The zones to draw: the newest document's, read once per document."""
        doc = self.hub.document()
        if doc is not self._zones_of[0]:
            self._zones_of = (doc, zone_outlines(doc))
        return self._zones_of[1]

    def viewer(self, timeout: float) -> _Viewer:
        """A viewer: :meth:`_Viewer.next` gives each new picture (None after ``timeout``)."""
        return _Viewer(self, timeout)

    @property
    def stopped(self) -> bool:
        return self._stopped

    def snapshot(self) -> bytes | None:
        """The newest picture as JPEG: the stream's when it shows the newest frame or is
        younger than a stream interval, else the next frame encoded now (on the caller's
        thread; one such snapshot at a time, so a flood of requests queues instead of taking
        the cores from the pipeline); the stream's last picture when no frame comes within
        :data:`TAKE_TIMEOUT_S` (a stalled camera); None without either."""
        with self._snapshots:
            latest = self._latest
            if latest is not None and (
                latest.frame == self.hub.frames or time.monotonic() - self.made[-1] < self.interval
            ):
                return latest.data
            snap = self._snapshot
            if snap is not None and time.monotonic() - snap[0] < self.interval:
                return snap[1]  # made for a request a moment ago
            taken = self.hub.take(TAKE_TIMEOUT_S)
            if taken is None:
                return None if latest is None else latest.data
            data = encode(taken[1], self.quality, zones=self._zones())
            self._snapshot = (time.monotonic(), data)
            return data

    def close(self) -> None:
        with self._changed:
            self._stopped = True
            self._changed.notify_all()
        self.hub.wake_takers()  # an encoder waiting for a frame looks up at once
        if self._thread.is_alive():
            self._thread.join(2.0)


class _Viewer:
    """One MJPEG connection: counts as a viewer from creation until closed."""

    def __init__(self, stream: JpegStream, timeout: float) -> None:
        self.stream = stream
        self.timeout = timeout
        self.sent = 0
        with stream._changed:
            stream.viewers += 1
            stream._changed.notify_all()
        self._closed = False

    def next(self) -> bytes | None:
        """The next picture this viewer has not had; None after ``timeout`` or a close."""
        stream = self.stream
        with stream._changed:

            def ready() -> bool:
                latest = stream._latest
                return stream._stopped or (latest is not None and latest.number != self.sent)

            if not stream._changed.wait_for(ready, self.timeout) or stream._stopped:
                return None
            latest = stream._latest
            assert latest is not None
            self.sent = latest.number
            return latest.data

    @property
    def stopped(self) -> bool:
        return self.stream.stopped

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            with self.stream._changed:
                self.stream.viewers -= 1
