"""What the web server's threads read, and the sink that feeds it from the pipeline.

The pipeline thread must not wait on a browser, so the hand-over is as picamera2's
``mjpeg_server.py`` does it, one step cheaper: the sink feeds the metrics, and when the picture
maker asks for a frame (:meth:`WebHub.take`, at most ``stream_fps`` times a second while someone
watches) it hands over a reference to the next frame's result (the camera makes a new image per
frame and never writes it again, so nothing is copied). The hub holds no frame otherwise: keeping
the newest one "in case" would pin a whole camera image (2.7 MB at 720p, 6 MB at 1080p) beside
the pipeline's. Drawing, encoding and sending happen on the HTTP side (:mod:`edge_pose.web.stream`).

Server-Sent Events need more than the newest frame: an event (a rep, a person leaving) must
reach every follower, in order, even a slow one. Events and pose changes go into one bounded log
numbered by a sequence; each follower remembers the last number it sent (which is also the SSE
``id``, so a browser that reconnects with ``Last-Event-ID`` resumes where it was). A follower so
slow that the log moved past it is cut off and reconnects, rather than making the pipeline keep
an unbounded queue. Keypoints are the newest only: a slow follower skips keypoints, never
events. While nobody follows, none of this runs: the sink checks one integer.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from edge_pose.service.document import StatusDocument
from edge_pose.service.status import encode_status
from edge_pose.sinks.base import FrameResult, Sink
from edge_pose.web.metrics import Metrics

# Events and pose changes kept for followers: at most one per frame is usual, so this covers
# minutes of an ordinary scene and several seconds of a pathological one.
LOG_SIZE = 1024


@dataclass(frozen=True, slots=True)
class Message:
    """One message for followers: ``name`` is the SSE event name (``event``, ``pose``)."""

    seq: int
    name: str
    text: str


class FallenBehind(Exception):
    """A follower's next message is no longer in the log."""


class WebHub:
    """What the HTTP threads read: frames on request, the status document and messages."""

    def __init__(self) -> None:
        self.metrics = Metrics()
        self.frames = 0  # results delivered: the stream encodes a frame only once
        self._picture = threading.Condition()  # take() waits on it for the next frame
        self._takers = 0  # threads waiting in take(): read by the pipeline without the lock
        self._offered: tuple[int, FrameResult] | None = None  # (frame count, result) for them
        self.followers = 0  # SSE connections open: the sink formats nothing while it is 0
        self.keypoint_followers = 0  # of those, the ones that want keypoints (not the page)
        self._changed = threading.Condition()
        self._log: deque[Message] = deque(maxlen=LOG_SIZE)
        self._seq = 0
        self._keypoints: tuple[int, str] | None = None  # (frame count, text), newest only
        self._document: StatusDocument | None = None
        self._document_json: bytes | None = None  # the document serialised, when asked for
        self._take_wakes = 0  # calls of wake_takers()
        self._documents = 0  # documents published, so a follower sends each once
        self._pose: Message | None = None  # the newest pose message, sent first on connect
        self._wakes = 0  # calls of wake(): a waiting follower returns to look at its server

    # -- producers -------------------------------------------------------------------------

    def frame(self, result: FrameResult) -> None:
        """A frame's result (pipeline thread): a counter, unless a picture is wanted or someone
        follows."""
        self.frames += 1
        if self._takers:  # an int read: a taker that just arrived gets the next frame
            with self._picture:
                if self._takers:  # not one that gave up meanwhile: nobody would let go of it
                    self._offered = (self.frames, result)
                    self._picture.notify_all()
        if not self.followers and not result.events and result.state is None:
            return
        with self._changed:
            for text in result.event_texts():
                self._append("event", text)
            if (state := result.state_text()) is not None:
                self._pose = self._append("pose", state)
            if self.keypoint_followers:
                self._keypoints = (self.frames, result.keypoints_text())
            self._changed.notify_all()

    def publish_document(self, document: StatusDocument) -> None:
        """The newest status document (once a second, from the supervisor)."""
        with self._changed:
            self._document = document
            self._document_json = None
            self._documents += 1
            self._changed.notify_all()

    def wake_takers(self) -> None:
        """Return every :meth:`take` at once, with no frame (the stream is closing)."""
        with self._picture:
            self._take_wakes += 1
            self._picture.notify_all()

    def wake(self) -> None:
        """Wake every follower (the server is closing: they look and leave)."""
        with self._changed:
            self._wakes += 1
            self._changed.notify_all()

    def _append(self, name: str, text: str) -> Message:
        self._seq += 1
        message = Message(self._seq, name, text)
        self._log.append(message)
        return message

    # -- readers ---------------------------------------------------------------------------

    def take(self, timeout: float) -> tuple[int, FrameResult] | None:
        """The next frame's result and its number (the count of frames so far), waiting up to
        ``timeout`` seconds for the pipeline to deliver one; None when none came (a stalled or
        paused camera). The hub lets go of it at once: the caller holds the only extra
        reference."""
        with self._picture:
            self._takers += 1
            frames, wakes = self.frames, self._take_wakes
            try:
                self._picture.wait_for(
                    lambda: (self._offered is not None and self._offered[0] > frames)
                    or self._take_wakes != wakes,
                    timeout,
                )
                offered = self._offered
                return offered if offered is not None and offered[0] > frames else None
            finally:
                self._takers -= 1
                if not self._takers:
                    self._offered = None

    def document(self) -> StatusDocument | None:
        return self._document

    def document_json(self) -> bytes | None:
        """The newest document as status.json has it (one line, NaN as null, numpy numbers
        as numbers), serialised once per document for every reader."""
        with self._changed:
            if self._document_json is None and self._document is not None:
                self._document_json = encode_status(self._document).rstrip(b"\n")
            return self._document_json

    def resumable(self, last_seen: int) -> bool:
        """Whether everything after ``last_seen`` is still in the log (call with the lock).
        A browser asleep for longer, or a ``Last-Event-ID`` of an earlier run, starts afresh
        with the current pose: sending it away would make it come back with the same id."""
        oldest = self._log[0].seq if self._log else self._seq + 1
        return oldest - 1 <= last_seen <= self._seq

    def follow(self, last_seen: int | None = None, keypoints: bool = True) -> Follower:
        """A follower of the messages after ``last_seen`` (a reconnecting browser's
        ``Last-Event-ID``); None: from now on, the current pose first. ``keypoints`` False:
        no keypoints messages (the page shows the picture instead; a phone is spared ~1 kB a
        frame)."""
        return Follower(self, last_seen, keypoints)


class Follower:
    """One SSE connection's view of the hub: what it has not sent yet."""

    def __init__(self, hub: WebHub, last_seen: int | None, keypoints: bool = True) -> None:
        self.hub = hub
        self.keypoints = keypoints
        with hub._changed:
            hub.followers += 1
            hub.keypoint_followers += keypoints
            if last_seen is None or not hub.resumable(last_seen):
                self.seq = hub._seq
                self.first: Message | None = hub._pose
            else:
                self.seq, self.first = last_seen, None
            self.keypoints_sent = 0
            self.documents_sent = 0
            self.wakes = hub._wakes
        self._closed = False

    def wait(self, timeout: float) -> list[tuple[str, str, int | None]]:
        """The messages to send now, as (event name, data, id); waits up to ``timeout`` for one
        (an empty list then: time for a keep-alive). Raises FallenBehind when the log has moved
        past this follower."""
        hub = self.hub
        with hub._changed:
            hub._changed.wait_for(self._pending, timeout)
            self.wakes = hub._wakes
            out: list[tuple[str, str, int | None]] = []
            if self.first is not None:
                out.append((self.first.name, self.first.text, self.first.seq))
                self.first = None
            out.extend((m.name, m.text, m.seq) for m in self._new_messages())
            if hub._document is not None and self.documents_sent != hub._documents:
                self.documents_sent = hub._documents
                out.append(("status", "", None))  # the document is serialised outside the lock
            keypoints = hub._keypoints if self.keypoints else None
            if keypoints is not None and keypoints[0] != self.keypoints_sent:
                self.keypoints_sent = keypoints[0]
                out.append(("keypoints", keypoints[1], None))
            return out

    def _pending(self) -> bool:
        hub = self.hub
        return (
            hub._wakes != self.wakes
            or self.first is not None
            or hub._seq != self.seq
            or (hub._document is not None and self.documents_sent != hub._documents)
            or (
                self.keypoints
                and hub._keypoints is not None
                and hub._keypoints[0] != self.keypoints_sent
            )
        )

    def _new_messages(self) -> Iterator[Message]:
        log = self.hub._log
        if self.hub._seq == self.seq:
            return
        if not log or log[0].seq > self.seq + 1:
            raise FallenBehind(f"{log[0].seq - self.seq - 1 if log else 0} messages missed")
        start = self.seq + 1 - log[0].seq
        for index in range(start, len(log)):
            message = log[index]
            self.seq = message.seq
            yield message

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            with self.hub._changed:
                self.hub.followers -= 1
                self.hub.keypoint_followers -= self.keypoints
                if not self.hub.keypoint_followers:
                    self.hub._keypoints = None  # the next one gets fresh keypoints, not these


class WebSink(Sink):
    """Hands every frame's result to the hub and the metrics (pipeline thread, microseconds).

    Untimed: it runs after the frame's latency is taken, so the web view never changes the
    numbers it shows (the metrics' latency histogram reads the clock microseconds after the
    status document's sample)."""

    timed = False

    def __init__(self, hub: WebHub) -> None:
        self.hub = hub

    def deliver(self, result: FrameResult) -> None:
        self.hub.metrics.observe(result)
        self.hub.frame(result)
