"""The per-frame loop: newest frame -> estimator -> per-person tracks -> one result -> sinks.

Everything here runs once per frame, so it does only what the result needs: no copies of the
frame, no logging, no JSON (the sinks format what they send, when they send it). What the
frame produced is one :class:`~edge_pose.sinks.base.FrameResult`, handed to every sink in
turn; the pipeline has no outputs of its own and never waits on the network.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from edge_pose.camera.base import Frame
from edge_pose.camera.grabber import FrameGrabber
from edge_pose.classify.events import Event
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
        self.many = model.max_people > 1  # several people, tracked (edge_pose.tracking)
        self.temporal.follow_many(self.many)
        self.wire = DeviceWire(device_id, compact_keypoints, people=self.many)
        self.sinks: list[Sink] = []  # where each frame's result goes, in order
        self.stats = PipelineStats()
        self.events = 0
        self.paused = False  # frames are taken from the camera and dropped, not inferred
        self.paused_frames = 0
        self._frame_size = (0, 0)
        # The first frame, and the first after a pause, start afresh: a temporal carried over
        # from another session, or from before the pause, saw other footage.
        self._cut_next = True

    def process(self, frame: Frame) -> Pose:
        """Estimate, follow and label the people in one frame, hand the result to the sinks,
        and return the primary pose."""
        image = frame.image
        height, width = image.shape[:2]
        temporal = self.temporal
        if (width, height) != self._frame_size:
            self._frame_size = (width, height)
            temporal.forget_regions()
        if frame.cut or self._cut_next:
            self._cut_next = False
            temporal.cut(frame.scene_ns / 1e9)
        # A single-pose model looks where its person was last seen; a multi-person model looks
        # at the whole frame and the tracker says who is who.
        region = None if self.many else temporal.single().region
        detections = self.model.estimate(image, region)
        t_post = time.perf_counter_ns()
        if self.many:
            poses, events = self._follow_many(detections, frame, width, height)
        else:
            detection = detections[0] if detections else nobody(region or full_frame(width, height))
            pose = self._pose(detection, frame, width, height)
            poses, events = [pose], self._follow(temporal.single_id, temporal.single(), pose, frame)
        if temporal.pending:  # people dropped between frames (a reload, a change of model kind)
            events, temporal.pending = temporal.pending + events, []
        self.events += len(events)
        pre, invoke, post = self.model.stage_ns
        t_deliver = time.perf_counter_ns()
        result = FrameResult(
            frame, poses, events, temporal.changed_state(),
            (frame.decode_ns, pre, invoke, post + t_deliver - t_post), self.wire,
        )  # fmt: skip
        sinks = self.sinks
        for sink in sinks:
            if sink.timed:
                sink.deliver(result)
        done_ns = time.perf_counter_ns()
        primary = poses[0]
        latency_ms = result.latency_ms()
        self.stats.record((*result.stage_ns, done_ns - t_deliver), latency_ms, primary.person)
        for sink in sinks:
            if not sink.timed:
                sink.deliver(result)
        return primary

    def _pose(self, detection: Detection, frame: Frame, width: int, height: int) -> Pose:
        """A detection as a pose of this frame; a person if it scores ``min_pose_score``."""
        return Pose(
            detection.keypoints,
            detection.score,
            detection.score >= self.min_pose_score,
            detection.region,
            frame.index,
            frame.capture_ns,
            frame.wall,
            width,
            height,
        )

    def _follow(self, person_id: int, track: PersonTrack, pose: Pose, frame: Frame) -> list[Event]:
        """One person in one frame: smooth (in place), choose their next crop, label; the events
        it caused, each with the person's id."""
        # As MoveNet does: the next crop follows the smoothed keypoints, low-passed (a
        # multi-person model looks at the whole frame: no crop to choose).
        crop = self.crop and not self.many
        track.follow(pose.keypoints, pose.person, frame.scene_ns, pose.width, pose.height, crop)
        scene_s = frame.scene_ns / 1e9
        events = track.label(pose, self.temporal.classifier, scene_s, frame.wall)
        events += track.watch(pose, scene_s)
        if pose.person:
            pose.person_id = person_id
        for event in events:
            if event["type"] == "rep":  # the device's count too, for a counter of everyone's
                self.temporal.total_reps += 1
                event["total"] = self.temporal.total_reps
        return _with_person(events, person_id)

    def _follow_many(
        self, detections: list[Detection], frame: Frame, width: int, height: int
    ) -> tuple[list[Pose], list[Event]]:
        """The people of a multi-person model: ids from the tracker, each followed and
        labelled on their own track; the poses seen, the primary person first (or the best
        guess, ``person`` false, when nobody is), and the events of every person."""
        temporal = self.temporal
        scene_s, wall = frame.scene_ns / 1e9, frame.wall
        seen = [d for d in detections if d.score >= self.min_pose_score]
        ids, ended = temporal.tracker.assign([d.keypoints for d in seen], scene_s)
        events: list[Event] = []
        events += temporal.end(ended, wall)
        poses: list[Pose] = []
        for person_id, detection in zip(ids, seen, strict=True):
            if person_id:  # 0: more people than tracking.max_tracks, not followed
                pose = self._pose(detection, frame, width, height)
                events += self._follow(person_id, temporal.person(person_id), pose, frame)
                poses.append(pose)
        followed = {pose.person_id for pose in poses}
        for person_id, track in temporal.people.items():
            if person_id not in followed:
                missed = track.miss(scene_s, wall) + track.watch(None, scene_s)
                events += _with_person(missed, person_id)
        if not poses:
            best = detections[0] if detections else nobody(full_frame(width, height))
            pose = self._pose(best, frame, width, height)
            pose.person = False
            if (state := temporal.spoken_of()) is not None:
                pose.label, pose.confidence = state.label, state.confidence
            return [pose], events
        first = self._primary(poses)
        if first:
            poses.insert(0, poses.pop(first))
        return poses, events

    def _primary(self, poses: list[Pose]) -> int:
        """Which of ``poses`` the top-level fields describe: the primary person, who stays so
        while their track lasts, so the fields do not jump between people in view. When there
        is none, the best of those seen becomes it: present (announced) first, then the longest
        tracked, then the largest box; while the primary is missed for a moment, that best one
        stands in for the frame."""
        temporal = self.temporal
        ids = [pose.person_id for pose in poses]
        if temporal.primary_id in ids:
            return ids.index(temporal.primary_id)
        tracks = temporal.tracker.tracks

        def rank(i: int) -> tuple[bool, float, float]:
            track = tracks[ids[i]]  # type: ignore[index]
            labels = temporal.people[track.id].labels
            box = track.box
            area = 0.0 if box is None else (box[2] - box[0]) * (box[3] - box[1])
            return labels is None or not labels.state.person, track.first_seen_s, -area

        best = min(range(len(poses)), key=rank)
        if temporal.primary_id not in tracks:
            temporal.primary_id = ids[best]
        return best

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


def _with_person(events: list[Event], person_id: int) -> list[Event]:
    """``events`` (fresh dicts) with the id of the person who caused them."""
    for event in events:
        event["person_id"] = person_id
    return events
