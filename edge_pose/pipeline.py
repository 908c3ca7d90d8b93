"""The per-frame loop: newest frame -> crop -> MoveNet -> pose -> publish.

Everything here runs once per frame, so it does only what the result needs: no copies of the
frame, no logging, JSON formatted only when someone will receive it. Publishing hands the message
to the MQTT client's own thread and returns; inference never waits on the network.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol, TextIO

from edge_pose.camera.base import Frame
from edge_pose.camera.grabber import FrameGrabber
from edge_pose.inference.crop import full_frame, next_region
from edge_pose.inference.movenet import MoveNet
from edge_pose.pose import Pose, Region, keypoints_payload, pose_score
from edge_pose.stats import PipelineStats

# How long ``run`` waits for a frame before looking at the stop flag again.
POLL_SECONDS = 0.5


class KeypointSink(Protocol):
    """Where keypoints messages go (the MQTT publisher)."""

    def keypoints_due(self, now: float) -> bool: ...

    def publish_keypoints(self, payload: bytes, now: float) -> bool: ...


class Pipeline:
    """Turns frames into poses and hands them on; keeps the crop region between frames."""

    def __init__(
        self,
        model: MoveNet,
        *,
        device_id: str,
        min_pose_score: float = 0.25,
        crop: bool = True,
        sink: KeypointSink | None = None,
        printer: TextIO | None = None,
    ) -> None:
        self.model = model
        self.device_id = device_id
        self.min_pose_score = min_pose_score
        self.crop = crop
        self.sink = sink
        self.printer = printer
        self.stats = PipelineStats()
        self.last_pose: Pose | None = None
        self._region: Region | None = None
        self._frame_size = (0, 0)
        self._full = Region(0, 0, 1, 1)

    def process(self, frame: Frame) -> Pose:
        """Estimate the pose in one frame and publish it."""
        image = frame.image
        height, width = image.shape[:2]
        if (width, height) != self._frame_size:
            self._frame_size = (width, height)
            self._full = full_frame(width, height)
            self._region = None
        region = self._region or self._full
        keypoints = self.model.infer(image, region)
        t_post = time.perf_counter_ns()
        score = pose_score(keypoints[:, 2])
        person = score >= self.min_pose_score
        if self.crop:
            self._region = next_region(keypoints, width, height) if person else None
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
        return pose

    def _publish(self, pose: Pose) -> None:
        now = time.monotonic()
        to_sink = self.sink is not None and self.sink.keypoints_due(now)
        if not (to_sink or self.printer):
            return
        latency_ms = (time.monotonic_ns() - pose.capture_ns) / 1e6
        payload = keypoints_payload(pose, self.device_id, latency_ms)
        if to_sink and self.sink.publish_keypoints(payload.encode(), now):
            self.stats.published += 1
        if self.printer:
            self.printer.write(payload + "\n")
            self.printer.flush()

    def run(
        self, grabber: FrameGrabber, stop: threading.Event, max_frames: int | None = None
    ) -> None:
        """Process frames until the source ends, ``stop`` is set or ``max_frames`` were done.

        A capture error ends the run by raising it, so the service exits and systemd restarts it.
        """
        while not stop.is_set():
            frame = grabber.get(POLL_SECONDS)
            if frame is None:
                if grabber.error is not None:
                    raise grabber.error
                if grabber.ended:
                    return
                continue
            self.process(frame)
            if max_frames is not None and self.stats.processed >= max_frames:
                return
