"""The one interface between the pipeline and its outputs: a frame's result, and a sink for it.

As picamera2's ``Output`` (``outputframe``) and Frigate's ``Communicator`` (``publish``), a sink
is a small base class with one method the producer calls; the producer keeps a list of them and
never learns what they are. Unlike those, what a sink receives is not bytes but the frame's
whole result, because outputs want different things from it (JSON, a picture, numbers), and a
sink decides lazily: the wire text of a frame is formatted the first time a sink asks for it and
kept for the next one, so a frame nobody sends costs no JSON and one sent twice (MQTT and
``--print``) is formatted once.

Sinks run on the pipeline's thread, once per frame: a sink must return quickly and never wait
on the network or a client (hand work to another thread, as the MQTT client does).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from edge_pose.camera.base import Frame
from edge_pose.classify.events import Event, PoseState
from edge_pose.pose import Pose
from edge_pose.wire import DeviceWire, pose_state_json


@dataclass(slots=True, eq=False)
class FrameResult:
    """Everything one frame produced.

    ``poses`` holds one pose per person seen, the primary person first (each with its
    ``person_id``); when nobody is seen it holds one pose with ``person`` False, the model's best
    guess, which still goes out as keypoints. The single-pose model follows one person, so it
    always holds one. ``events`` are the events the frame caused,
    ``state`` the primary person's steady label and presence when this frame changed them (the
    retained pose message), else None. ``stage_ns`` are the decode, preprocess, invoke and
    postprocess times of the frame, nanoseconds.
    """

    frame: Frame
    poses: list[Pose]
    events: Sequence[Event]
    state: PoseState | None
    stage_ns: tuple[int, int, int, int]
    wire: DeviceWire
    _keypoints_text: str | None = field(default=None, init=False, repr=False)
    _event_texts: list[str] | None = field(default=None, init=False, repr=False)

    @property
    def primary(self) -> Pose:
        """The pose the top-level fields of the keypoints message describe."""
        return self.poses[0]

    def latency_ms(self) -> float:
        """Milliseconds from the frame's capture until now."""
        return (time.monotonic_ns() - self.frame.capture_ns) / 1e6

    def keypoints_text(self) -> str:
        """The keypoints message (its latency measured now, the first time it is asked for)."""
        if self._keypoints_text is None:
            self._keypoints_text = self.wire.keypoints(self.poses, self.latency_ms())
        return self._keypoints_text

    def event_texts(self) -> list[str]:
        """The event messages, in order."""
        if self._event_texts is None:
            wall = self.frame.wall
            self._event_texts = [self.wire.event(wall, event) for event in self.events]
        return self._event_texts

    def state_text(self) -> str | None:
        """The retained pose message, when this frame changed the steady state."""
        return None if self.state is None else pose_state_json(self.state)


class Sink(ABC):
    """An output of the pipeline: takes every frame's result, on the pipeline's thread.

    ``timed`` says whether the sink's time counts in the frame's publish stage and latency
    (what a subscriber waits for). A local recording such as the annotated video is not: it
    runs after the frame's numbers are taken, so turning it on does not change them.
    """

    timed: ClassVar[bool] = True

    @abstractmethod
    def deliver(self, result: FrameResult) -> None:
        """Hand on what this output wants of ``result``; return quickly."""

    def close(self) -> None:  # noqa: B027 - most sinks have nothing to finish
        """The session ends: finish what was written (a video file); the sink is not used again."""
