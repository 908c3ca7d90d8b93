"""What systemd and `edge-pose status` learn about a running pipeline, once a second.

The pipeline calls ``tick()`` after every frame and whenever it waited in vain for one. A tick
costs one clock read unless a second has passed; then it:
- says READY=1 once the first frame was inferred (not merely when the process started);
- pings the watchdog only while frames are being processed: if none was for half the watchdog
  interval (a stalled camera, a hung driver) the pings stop and systemd restarts the service;
- sends a STATUS= line every few seconds and rewrites status.json, adding when the last frame
  came (``last_frame``) and after how long without one it counts as stalled (``stall_s``), so
  `edge-pose status` can tell a stall from a slow pipeline.

The status document comes from a callable (the daemon's snapshot) and goes to another (the
status file's writer): the supervisor knows when, not how a document is built or stored. The
frame clock is the one part of the document only it knows, so it adds those two fields.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from edge_pose.service.document import (
    BackendStatus,
    FpsStatus,
    MqttStatus,
    Percentiles,
    PoseStatus,
    StatusDocument,
)
from edge_pose.service.notify import Notifier

log = logging.getLogger(__name__)

TICK_SECONDS = 1.0
STATUS_LINE_SECONDS = 5.0


class Supervisor:
    """Readiness, watchdog, status line and status file for one run."""

    def __init__(
        self,
        notifier: Notifier,
        snapshot: Callable[[], StatusDocument],
        write_status: Callable[[StatusDocument], object] | None = None,
        stall_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.notifier = notifier
        self.snapshot = snapshot
        self.write_status = write_status
        self.ready = False
        watchdog = notifier.watchdog_usec / 1e6
        # No progress for this long -> stop pinging; without a watchdog: only warn.
        self.stall_seconds = watchdog / 2 if watchdog else stall_seconds
        self.clock = clock
        self.wall = wall
        self._next_tick = 0.0
        self._next_line = 0.0
        self._last_frame_at = clock()
        self._last_count = -1
        self._stalled = False

    def tick(self, progress: int) -> None:
        """Called per frame and per empty wait with the count of frames handled so far (inferred,
        or dropped while paused); does the work at most once a second."""
        now = self.clock()
        if now < self._next_tick:
            return
        self._next_tick = now + TICK_SECONDS
        if progress != self._last_count:
            self._last_count = progress
            self._last_frame_at = now
        doc = self._document(now, progress)
        if progress and not self.ready:
            self.ready = True
            self.notifier.ready(status_line(doc))
            log.info("ready: first frame inferred")
        stalled = now - self._last_frame_at > self.stall_seconds
        if stalled != self._stalled:
            self._stalled = stalled
            if stalled:
                log.warning("no frame processed for %.0f s: camera stalled?", self.stall_seconds)
            else:
                log.info("frames flowing again")
        if self.ready and not stalled:
            self.notifier.watchdog()
        if now >= self._next_line:
            self._next_line = now + STATUS_LINE_SECONDS
            self.notifier.status(status_line(doc))
        if self.write_status is not None:
            self.write_status(doc)

    def _document(self, now: float, progress: int) -> StatusDocument:
        """The snapshot plus the frame clock: a copy, so the snapshot's owner keeps its dict."""
        doc = self.snapshot().copy()
        doc["last_frame"] = self.wall() - (now - self._last_frame_at) if progress else None
        doc["stall_s"] = self.stall_seconds
        return doc

    @property
    def stalled(self) -> bool:
        return self._stalled


def status_line(doc: StatusDocument) -> str:
    """One line for `systemctl status`: fps, inference time, backend, MQTT, pose, a fall."""
    fps = (doc.get("fps") or FpsStatus()).get("processed") or 0.0
    inference = (doc.get("inference_ms") or Percentiles()).get("p50")
    mqtt = doc.get("mqtt") or MqttStatus()
    if not mqtt.get("enabled"):
        broker = "MQTT off"
    else:
        broker = "MQTT connected" if mqtt.get("connected") else "MQTT disconnected"
    pose = doc.get("pose") or PoseStatus()
    label = pose.get("label") or ("person" if pose.get("person") else "no person")
    ms = f"{inference:.1f} ms" if inference is not None else "- ms"
    if doc.get("paused"):
        label = "paused"
    kind = (doc.get("backend") or BackendStatus()).get("kind", "?")
    line = f"{fps:.1f} fps, inference {ms}, {kind}, {broker}, {label}"
    if doc.get("fall"):
        line += ", FALL"  # `edge-pose status` says who, since when, where
    idle = _seconds_without_frame(doc)
    if idle is not None and idle > (doc.get("stall_s") or 0):
        line += f", no frame for {idle:.0f} s"
    return line


def _seconds_without_frame(doc: StatusDocument) -> float | None:
    last, updated = doc.get("last_frame"), doc.get("updated")
    if last is None or updated is None:
        return None
    return max(0.0, updated - last)
