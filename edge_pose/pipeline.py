"""The per-frame loop: newest frame -> crop -> MoveNet -> smoothing -> label -> publish.

Everything here runs once per frame, so it does only what the result needs: no copies of the
frame, no logging, JSON formatted only when someone will receive it. Publishing hands the message
to the MQTT client's own thread and returns; inference never waits on the network.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TextIO

from edge_pose.camera.base import Frame
from edge_pose.camera.grabber import FrameGrabber
from edge_pose.classify.base import Classifier
from edge_pose.classify.events import PoseTracker, warn_unreachable_reps
from edge_pose.inference.crop import full_frame, next_region
from edge_pose.inference.movenet import MoveNet
from edge_pose.payload_compact import compact_keypoints_payload
from edge_pose.pose import PAYLOAD_VERSION, Pose, Region, keypoints_payload, pose_score
from edge_pose.smoothing import KeypointSmoother, RegionFilter
from edge_pose.stats import PipelineStats

# How long ``run`` waits for a frame before looking at the stop flag again.
POLL_SECONDS = 0.5


class StopFlag(Protocol):
    """Anything with ``is_set()``: a threading.Event, or several of them."""

    def is_set(self) -> bool: ...


class Sink(Protocol):
    """Where messages go (the MQTT publisher): keypoints rate-limited, the rest as they come."""

    def keypoints_due(self, now: float) -> bool: ...

    def publish_keypoints(self, payload: bytes, now: float) -> bool: ...

    def publish(
        self, suffix: str, payload: bytes | str, qos: int = 1, retain: bool = False
    ) -> bool: ...


@dataclass
class Temporal:
    """The optional per-person state kept across frames: smoothing and labelling."""

    smoother: KeypointSmoother | None = None
    region_filter: RegionFilter | None = None
    classifier: Classifier | None = None
    tracker: PoseTracker | None = None

    @classmethod
    def from_config(cls, cfg: Any) -> Temporal:
        """Smoothing and classification as the ``[smoothing]`` and ``[classifier]`` say."""
        smoothing = cfg.smoothing
        temporal = cls()
        if smoothing.enabled:
            temporal.smoother = KeypointSmoother.from_config(smoothing)
            temporal.region_filter = RegionFilter.from_config(smoothing)
        kind = cfg.classifier.type
        if kind == "rules":
            from edge_pose.classify.rules import RuleClassifier

            temporal.classifier = RuleClassifier()
        elif kind in ("knn", "tflite"):
            from edge_pose.classify import load_trained_classifier

            temporal.classifier = load_trained_classifier(cfg.classifier)
        if temporal.classifier is not None:
            warn_unreachable_reps(cfg.classifier, temporal.classifier.labels)
            temporal.tracker = PoseTracker(cfg.classifier)
        return temporal


class Pipeline:
    """Turns frames into poses and hands them on; keeps the crop region between frames."""

    def __init__(
        self,
        model: MoveNet,
        *,
        device_id: str,
        min_pose_score: float = 0.25,
        crop: bool = True,
        temporal: Temporal | None = None,
        sink: Sink | None = None,
        printer: TextIO | None = None,
        recorder: Any = None,
        compact_keypoints: bool = False,
    ) -> None:
        self.model = model
        self.device_id = device_id
        self.min_pose_score = min_pose_score
        self.crop = crop
        self.temporal = temporal or Temporal()
        self.sink = sink
        self.printer = printer
        self.recorder = recorder  # annotate.VideoRecorder for `run --annotate`, else None
        self.format_keypoints = (
            compact_keypoints_payload if compact_keypoints else keypoints_payload
        )
        self.stats = PipelineStats()
        self.last_pose: Pose | None = None
        self.events = 0
        self.paused = False  # frames are taken from the camera and dropped, not inferred
        self.paused_frames = 0
        self._region: Region | None = None
        self._frame_size = (0, 0)
        self._full = Region(0, 0, 1, 1)
        # The first frame, and the first after a pause, start afresh: a temporal carried over
        # from another session, or from before the pause, saw other footage.
        self._cut_next = True

    def process(self, frame: Frame) -> Pose:
        """Estimate the pose in one frame, smooth and label it, and publish it."""
        image = frame.image
        height, width = image.shape[:2]
        if (width, height) != self._frame_size:
            self._frame_size = (width, height)
            self._full = full_frame(width, height)
            self._region = None
        if frame.cut or self._cut_next:
            self._cut()
        region = self._region or self._full
        keypoints = self.model.infer(image, region)
        t_post = time.perf_counter_ns()
        score = pose_score(keypoints[:, 2])
        person = score >= self.min_pose_score
        temporal = self.temporal
        if person:
            if temporal.smoother is not None:
                temporal.smoother.apply(keypoints, frame.scene_ns, width, height)
            if self.crop:
                # As MoveNet does: the next crop follows the smoothed keypoints, low-passed.
                self._region = next_region(keypoints, width, height)
                if temporal.region_filter is not None:
                    self._region = temporal.region_filter.apply(self._region)
        else:
            self._region = None
            if temporal.smoother is not None:
                temporal.smoother.reset()
                temporal.region_filter.reset()
        pose = Pose(
            keypoints,
            score,
            person,
            region,
            frame.index,
            frame.capture_ns,
            frame.wall,
            width,
            height,
        )
        if temporal.tracker is not None:
            self._label(pose, frame)
        self.last_pose = pose
        t_pub = time.perf_counter_ns()
        self._publish(pose)
        done_ns = time.perf_counter_ns()
        pre, invoke, post = self.model.stage_ns
        latency_ms = (time.monotonic_ns() - frame.capture_ns) / 1e6
        self.stats.record(
            (frame.decode_ns, pre, invoke, post + t_pub - t_post, done_ns - t_pub),
            latency_ms,
            person,
        )
        if self.recorder is not None:
            self.recorder.write(image, pose)
        return pose

    def _cut(self) -> None:
        """A jump in the footage: nothing learnt from the frames before it applies."""
        temporal = self.temporal
        self._cut_next = False
        self._region = None
        if temporal.smoother is not None:
            temporal.smoother.reset()
        if temporal.region_filter is not None:
            temporal.region_filter.reset()
        if temporal.tracker is not None:
            temporal.tracker.cut()

    @property
    def handled(self) -> int:
        """Frames taken from the camera: processed, or dropped while paused (progress)."""
        return self.stats.processed + self.paused_frames

    def _label(self, pose: Pose, frame: Frame) -> None:
        """Classify, update the steady label, and publish what changed (pose, events)."""
        tracker = self.temporal.tracker
        state = tracker.state
        before = (state.label, state.person)
        scores = None
        if pose.person:
            scores = self.temporal.classifier.classify(pose.keypoints, pose.width, pose.height)
        events = tracker.update(scores, pose.person, frame.scene_ns / 1e9, frame.wall)
        pose.label, pose.confidence = state.label, state.confidence
        self.events += len(events)
        sink, printer = self.sink, self.printer
        if sink is None and printer is None:
            return
        for event in events:
            payload = {
                "v": PAYLOAD_VERSION,
                "device": self.device_id,
                "ts": round(frame.wall, 3),
                **event,
            }
            text = json.dumps(payload)
            if sink is not None:
                sink.publish("event", text, qos=1)
            if printer is not None:  # `--print`: events among the keypoints lines
                printer.write(text + "\n")
        if sink is not None and (state.label, state.person) != before:
            sink.publish("pose", pose_state_json(state), qos=1, retain=True)

    def _publish(self, pose: Pose) -> None:
        now = time.monotonic()
        sink = self.sink
        to_sink = sink is not None and sink.keypoints_due(now)
        if not (to_sink or self.printer):
            return
        latency_ms = (time.monotonic_ns() - pose.capture_ns) / 1e6
        payload = self.format_keypoints(pose, self.device_id, latency_ms)
        if to_sink and sink.publish_keypoints(payload.encode(), now):
            self.stats.published += 1
        if self.printer:
            self.printer.write(payload + "\n")
            self.printer.flush()

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


def pose_state_json(state: Any) -> str:
    """The retained `<base>/pose` message: the current label, presence and since when."""
    return json.dumps(
        {
            "v": PAYLOAD_VERSION,
            "label": state.label,
            "confidence": round(state.confidence, 3),
            "person": state.person,
            "since": round(state.since, 3),
        }
    )
