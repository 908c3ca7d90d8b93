"""The MQTT output: events, the retained pose and rate-limited keypoints of every frame.

It speaks to :class:`~edge_pose.mqtt.MqttPublisher` (or anything with the same three methods),
which owns the connection and sends on paho's own thread, so delivering never waits on the
network. Keypoints go out at most ``mqtt.keypoints_max_rate`` times a second: the rate limit is
asked *before* the message is formatted, so a frame that would not be sent costs no JSON.
"""

from __future__ import annotations

import time
from typing import Protocol

from edge_pose import wire
from edge_pose.sinks.base import FrameResult, Sink
from edge_pose.stats import PipelineStats


class KeypointsPublisher(Protocol):
    """What the sink needs of the MQTT client: keypoints rate-limited, the rest as they come."""

    def keypoints_due(self, now: float) -> bool: ...

    def publish_keypoints(self, payload: bytes, now: float) -> bool: ...

    def publish(
        self, suffix: str, payload: bytes | str, qos: int = 1, retain: bool = False
    ) -> bool: ...


class MqttSink(Sink):
    """Publishes each frame's events (QoS 1), the pose when it changed (retained) and the
    keypoints when due (QoS 0); keypoints handed to the client are counted in ``stats``."""

    def __init__(self, publisher: KeypointsPublisher, stats: PipelineStats) -> None:
        self.publisher = publisher
        self.stats = stats

    def deliver(self, result: FrameResult) -> None:
        publisher = self.publisher
        if result.events:
            for text in result.event_texts():
                publisher.publish(wire.EVENT, text, qos=1)
        if (state := result.state_text()) is not None:
            publisher.publish(wire.POSE, state, qos=1, retain=True)
        now = time.monotonic()
        if publisher.keypoints_due(now) and publisher.publish_keypoints(
            result.keypoints_text().encode(), now
        ):
            self.stats.published += 1
