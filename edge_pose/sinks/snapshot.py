"""The fall snapshot: one JPEG of the frame a ``fall`` was confirmed in, on ``<base>/snapshot``.

When a frame's events hold a ``fall``, this sink draws the zones and the people's skeletons on a
copy of the frame, encodes it as a JPEG and publishes it on ``<base>/snapshot`` with QoS 1, so Home
Assistant's Fall snapshot image entity (and a phone notification) shows what happened. Nothing
else ever goes out as a picture over MQTT: no frame without a ``fall`` event, no stream.

The message is never retained: a picture of someone's home must not stay on the broker for
every later subscriber (nor survive in its persistence file). A client that was away misses it;
while the broker is away, the client holds it in its bounded QoS 1 queue like an event, and it
goes out after the reconnect.

It runs on the pipeline's thread (as every sink) but only on the frame of a confirmed fall:
drawing, the colour conversion and the encode of a 640x480 frame took 1.3 ms (median of 50;
OpenCV's libjpeg-turbo) on one AMD EPYC server core, with a 63 KB JPEG at quality
:data:`QUALITY` (ambianic's fall_img_12.png); a Raspberry Pi 4 core is several times slower,
some 10 ms (not measured), once per fall. ``timed`` is False, so that once is not counted in the
frame's publish stage and latency (what a subscriber of the keypoints waits for).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Protocol

import cv2
import numpy as np

from edge_pose import wire
from edge_pose.annotate import Zoned, ZoneOutline, draw_people, zone_outlines
from edge_pose.pose import Pose
from edge_pose.sinks.base import FrameResult, Sink

log = logging.getLogger(__name__)

QUALITY = 85  # JPEG quality: people and the room stay recognisable at about 60 KB for 640x480
FALL = "fall"


class SnapshotPublisher(Protocol):
    """What the sink needs of the MQTT client (``MqttPublisher.publish``)."""

    def publish(
        self, suffix: str, payload: bytes | str, qos: int = 1, retain: bool = False
    ) -> bool: ...


def snapshot_jpeg(
    image: np.ndarray,
    poses: list[Pose],
    quality: int = QUALITY,
    zones: Sequence[ZoneOutline] = (),
) -> bytes:
    """``image`` (RGB uint8) with the zones and the people's skeletons drawn on a copy, as
    JPEG bytes."""
    canvas = cv2.cvtColor(draw_people(image, poses, zones=zones), cv2.COLOR_RGB2BGR)  # BGR
    ok, encoded = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"JPEG encoding failed for a {image.shape} image")
    return encoded.tobytes()


class SnapshotSink(Sink):
    """Publishes a JPEG of every frame whose events hold a ``fall`` (QoS 1, not retained)."""

    timed = False  # once per fall; not part of what a subscriber of the keypoints waits for

    def __init__(
        self, publisher: SnapshotPublisher, quality: int = QUALITY, zoned: Zoned | None = None
    ) -> None:
        self.publisher = publisher
        self.quality = quality
        self.zoned = zoned  # the zones drawn, as in the web view (edge_pose.track.Temporal)
        self.sent = 0  # snapshots handed to the client
        self.last_ms: float | None = None  # the last snapshot's drawing and encoding time

    def deliver(self, result: FrameResult) -> None:
        if not any(event.get("type") == FALL for event in result.events):
            return
        started = time.perf_counter()
        try:
            zones = zone_outlines(self.zoned)
            jpeg = snapshot_jpeg(result.frame.image, result.poses, self.quality, zones)
        except (cv2.error, ValueError) as exc:  # no picture is better than no pipeline
            log.warning("fall snapshot not made: %s", exc)
            return
        self.last_ms = (time.perf_counter() - started) * 1000
        if self.publisher.publish(wire.SNAPSHOT, jpeg, qos=1, retain=False):
            self.sent += 1
            log.info(
                "fall snapshot: %d KB on %s (%.1f ms to draw and encode)",
                round(len(jpeg) / 1024), wire.SNAPSHOT, self.last_ms,
            )  # fmt: skip
        else:
            log.warning("fall snapshot dropped: the MQTT client did not take it")
