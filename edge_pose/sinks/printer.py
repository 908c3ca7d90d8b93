"""``run --print``: the keypoints and event messages as JSON lines on a text stream.

The lines are the MQTT messages byte for byte (the same text, formatted once when both go out),
so a pipe into ``jq`` shows what a subscriber would get, at every frame (no rate limit).
"""

from __future__ import annotations

from typing import TextIO

from edge_pose.sinks.base import FrameResult, Sink


class PrintSink(Sink):
    """Writes each frame's events, then its keypoints message, one per line; flushed per frame
    so a reader sees every frame as it happens."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def deliver(self, result: FrameResult) -> None:
        stream = self.stream
        if result.events:
            for text in result.event_texts():
                stream.write(text + "\n")
        stream.write(result.keypoints_text() + "\n")
        stream.flush()
