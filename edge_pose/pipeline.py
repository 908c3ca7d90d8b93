"""The per-frame loop: newest frame -> estimator -> per-person tracks -> one result -> sinks.

Everything here runs once per frame, so it does only what the result needs: no copies of the
frame, no logging, no JSON (the sinks format what they send, when they send it). What the
frame produced is one :class:`~edge_pose.sinks.base.FrameResult`, handed to every sink in
turn; the pipeline has no outputs of its own and never waits on the network.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Protocol

from edge_pose.camera.base import Frame
from edge_pose.camera.grabber import FrameGrabber
from edge_pose.classify.events import Event, PoseState
from edge_pose.inference.crop import full_frame
from edge_pose.inference.estimator import Detection, PoseEstimator, nobody
from edge_pose.pose import Pose
from edge_pose.sinks.base import FrameResult, Sink
from edge_pose.stats import PipelineStats
from edge_pose.track import PersonTrack, Temporal
from edge_pose.wire import DeviceWire

# How long ``run`` waits for a frame before looking at the stop flag again.
POLL_SECONDS = 0.5


class StopFlag(Protocol):
    """Anything with ``is_set()``: a threading.Event, or several of them."""

    def is_set(self) -> bool: ...


class Pipeline:
    """Turns frames into poses, follows the people across frames, and hands each frame's
    result to the sinks."""

    def __init__(
        self,
        model: PoseEstimator,
        *,
        device_id: str,
        min_pose_score: float = 0.25,
        crop: bool = True,
        temporal: Temporal | None = None,
        compact_keypoints: bool = False,
    ) -> None:
        self.model = model
        self.min_pose_score = min_pose_score
        self.crop = crop
        self.temporal = temporal or Temporal()
        self.sinks: list[Sink] = []  # where each frame's result goes, in order
        self.wire = DeviceWire(device_id, compact_keypoints)
        self.stats = PipelineStats()
        self.events = 0
        self.paused = False  # frames are taken from the camera and dropped, not inferred
        self.paused_frames = 0
        self._frame_size = (0, 0)
        # The first frame, and the first after a pause, start afresh: a temporal carried over
        # from another session, or from before the pause, saw other footage.
        self._cut_next = True

    def process(self, frame: Frame) -> Pose:
        """Estimate, follow and label the person in one frame, hand the result to the sinks,
        and return the primary pose."""
        image = frame.image
        height, width = image.shape[:2]
        tracks = self.temporal.tracks
        if (width, height) != self._frame_size:
            self._frame_size = (width, height)
            for track in tracks:
                track.region = None
        if frame.cut or self._cut_next:
            self._cut_next = False
            for track in tracks:
                track.cut()
        # One person is followed: the track looks where they were last seen, and the best
        # detection continues it (an empty list is nobody in view). Several people (issue 15)
        # will match detections to tracks here.
        track = tracks[0]
        detections = self.model.estimate(image, track.region)
        if detections:
            detection = detections[0]
        else:
            detection = nobody(track.region or full_frame(width, height))
        t_post = time.perf_counter_ns()
        pose, events, state = self._follow(track, detection, frame, width, height)
        self.events += len(events)
        pre, invoke, post = self.model.stage_ns
        t_deliver = time.perf_counter_ns()
        result = FrameResult(
            frame, [pose], events, state,
            (frame.decode_ns, pre, invoke, post + t_deliver - t_post), self.wire,
        )  # fmt: skip
        sinks = self.sinks
        for sink in sinks:
            if sink.timed:
                sink.deliver(result)
        done_ns = time.perf_counter_ns()
        self.stats.record((*result.stage_ns, done_ns - t_deliver), result.latency_ms(), pose.person)
        for sink in sinks:
            if not sink.timed:
                sink.deliver(result)
        return pose

    def _follow(
        self, track: PersonTrack, detection: Detection, frame: Frame, width: int, height: int
    ) -> tuple[Pose, Sequence[Event], PoseState | None]:
        """One person in one frame: smooth, choose the next crop, label; their pose, the
        events it caused and their new steady state (None: unchanged)."""
        person = detection.score >= self.min_pose_score
        # As MoveNet does: the next crop follows the smoothed keypoints, low-passed.
        track.follow(detection.keypoints, person, frame.scene_ns, width, height, self.crop)
        pose = Pose(
            detection.keypoints,
            detection.score,
            person,
            detection.region,
            frame.index,
            frame.capture_ns,
            frame.wall,
            width,
            height,
        )
        events, state = track.label(
            pose, self.temporal.classifier, frame.scene_ns / 1e9, frame.wall
        )
        return pose, events, state

    @property
    def handled(self) -> int:
        """Frames taken from the camera: processed, or dropped while paused (progress)."""
        return self.stats.processed + self.paused_frames

    def close(self) -> None:
        """The session ends: every sink finishes what it wrote."""
        for sink in self.sinks:
            sink.close()

    def run(
        self,
        grabber: FrameGrabber,
        stop: StopFlag,
        max_frames: int | None = None,
        on_tick: Callable[[], None] | None = None,
    ) -> None:
        """Process frames until the source ends, ``stop`` is set or ``max_frames`` were done.

        ``on_tick`` runs after every frame and after every wait that brought none (supervision:
        readiness, watchdog, status). A capture error ends the run by raising it, so the service
        exits and systemd restarts it.
        """
        while not stop.is_set():
            frame = grabber.get(POLL_SECONDS)
            if frame is not None:
                if self.paused:
                    self.paused_frames += 1
                    self._cut_next = True  # what was learnt before the pause is stale after it
                else:
                    self.process(frame)
            if on_tick is not None:
                on_tick()
            if frame is None:
                if grabber.error is not None:
                    raise grabber.error
                if grabber.ended:
                    return
            elif max_frames is not None and self.stats.processed >= max_frames:
                return
