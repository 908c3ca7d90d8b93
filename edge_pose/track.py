"""What is remembered about each person from frame to frame, one object per person.

A person's keypoint smoother, crop-region filter and label stabiliser all describe the same
person over time: they start together, are reset together when the person is lost, and forget
together when the footage jumps. :class:`PersonTrack` holds the three, so following several
people is one track per person id and following one person is the same with one id (1).

:class:`Temporal` is all the pipeline carries across frames: the tracks by person id, the
tracker that gives a multi-person model's people their ids (:mod:`edge_pose.tracking`), the
primary person (whom the top-level fields of the messages describe) and the classifier they
share. The daemon keeps it across a SIGHUP reload while the ``[smoothing]``, ``[classifier]``
and ``[tracking]`` settings hold, so repetition counts survive a reload.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from edge_pose.classify.base import Classifier
from edge_pose.classify.events import (
    NO_PERSON,
    Event,
    LabelTracker,
    PoseState,
    warn_unreachable_reps,
)
from edge_pose.config import ClassifierConfig, Config, SmoothingConfig, TrackingConfig
from edge_pose.inference.crop import next_region
from edge_pose.pose import Pose, Region
from edge_pose.smoothing import KeypointSmoother, RegionFilter
from edge_pose.tracking import Tracker

NO_EVENTS: Sequence[Event] = ()
SINGLE_ID = 1  # the one person a single-pose model follows


@dataclass
class PersonTrack:
    """One person followed across frames (each part optional: smoothing and labelling can be
    switched off), and where to look for them in the next frame."""

    smoother: KeypointSmoother | None = None
    region_filter: RegionFilter | None = None
    labels: LabelTracker | None = None
    region: Region | None = None  # the crop for the next frame; None: the whole frame

    @classmethod
    def start(
        cls, smoothing: SmoothingConfig | None, labelling: ClassifierConfig | None
    ) -> PersonTrack:
        """A new track with the smoothing and label settings given (None: none of that)."""
        track = cls()
        if smoothing is not None and smoothing.enabled:
            track.smoother = KeypointSmoother.from_config(smoothing)
            track.region_filter = RegionFilter.from_config(smoothing)
        if labelling is not None:
            track.labels = LabelTracker(labelling)
        return track

    def follow(
        self, keypoints: np.ndarray, person: bool, scene_ns: int, width: int, height: int,
        crop: bool,
    ) -> None:  # fmt: skip
        """Smooth this frame's ``keypoints`` in place (scene time) and, with ``crop``, choose
        the next crop from them, as MoveNet does; a frame without the person resets both."""
        if not person:
            self.lose()
            return
        if self.smoother is not None:
            self.smoother.apply(keypoints, scene_ns, width, height)
        if crop:
            region = next_region(keypoints, width, height)
            self.region = region if self.region_filter is None else self.region_filter.apply(region)

    def label(
        self, pose: Pose, classifier: Classifier | None, scene_s: float, wall: float
    ) -> list[Event]:
        """Classify ``pose``, update the steady label and write it into ``pose``; the events of
        this frame (none without a classifier)."""
        labels = self.labels
        if labels is None or classifier is None:
            return []
        scores = None
        if pose.person:
            scores = classifier.classify(pose.keypoints, pose.width, pose.height)
        events = labels.update(scores, pose.person, scene_s, wall)
        pose.label, pose.confidence = labels.state.label, labels.state.confidence
        return events

    def miss(self, scene_s: float, wall: float) -> list[Event]:
        """The person's track goes on but they were not found in this frame: start smoothing
        afresh and let presence count the absence (``person_leave`` after ``person_leave_s``)."""
        self.lose()
        if self.labels is None:
            return []
        return self.labels.update(None, False, scene_s, wall)

    def end(self) -> list[Event]:
        """The track ended (the tracker gave up on the person): ``person_leave`` if their
        presence had been announced."""
        if self.labels is None or not self.labels.state.person:
            return []
        return [{"type": "person_leave"}]

    def lose(self) -> None:
        """The person is not seen: smoothing starts afresh, the next frame is looked at whole."""
        self.region = None
        if self.smoother is not None:
            self.smoother.reset()
        if self.region_filter is not None:
            self.region_filter.reset()

    def cut(self) -> None:
        """The footage jumped: nothing seen before applies (the label and reps are kept)."""
        self.lose()
        if self.labels is not None:
            self.labels.cut()


class Temporal:
    """The state the pipeline keeps across frames: one :class:`PersonTrack` per person id, the
    tracker of a multi-person model, the primary person and the classifier they share."""

    def __init__(
        self,
        smoothing: SmoothingConfig | None = None,
        classifier: Classifier | None = None,
        labelling: ClassifierConfig | None = None,
        tracking: TrackingConfig | None = None,
    ) -> None:
        self.smoothing = smoothing
        self.classifier = classifier
        self.labelling = labelling if classifier is not None else None
        self.tracking = tracking or TrackingConfig()
        self.tracker = Tracker(self.tracking)
        self.many = False  # following several people (a multi-person model)
        self.people: dict[int, PersonTrack] = {SINGLE_ID: self.new_track()}
        self.primary_id: int | None = SINGLE_ID
        self._nobody = PoseState(since=time.time())  # the pose message when no one is followed
        self._published: tuple[str, bool, int] = (NO_PERSON, False, 0)

    @classmethod
    def from_config(cls, cfg: Config) -> Temporal:
        """Smoothing, classification and tracking as ``[smoothing]``, ``[classifier]`` and
        ``[tracking]`` say."""
        kind = cfg.classifier.type
        classifier: Classifier | None = None
        if kind == "rules":
            from edge_pose.classify.rules import RuleClassifier

            classifier = RuleClassifier()
        elif kind in ("knn", "tflite"):
            from edge_pose.classify import load_trained_classifier

            classifier = load_trained_classifier(cfg.classifier)
        if classifier is not None:
            warn_unreachable_reps(cfg.classifier, classifier.labels)
        return cls(cfg.smoothing, classifier, cfg.classifier, cfg.tracking)

    def new_track(self) -> PersonTrack:
        """A track for a person newly in view, with this state's settings."""
        return PersonTrack.start(self.smoothing, self.labelling)

    def follow_many(self, many: bool) -> None:
        """Follow several people (a multi-person model) or one; a change starts afresh (ids
        go on counting, so none is reused)."""
        if many == self.many:
            return
        self.many = many
        self.tracker.clear()
        self.people = {} if many else {SINGLE_ID: self.new_track()}
        self.primary_id = None if many else SINGLE_ID

    def person(self, person_id: int) -> PersonTrack:
        """The track of ``person_id``, started on their first frame."""
        track = self.people.get(person_id)
        if track is None:
            track = self.people[person_id] = self.new_track()
        return track

    def end(self, person_ids: Iterable[int], wall: float) -> list[tuple[int, list[Event]]]:
        """The tracks of ``person_ids`` ended (at wall-clock ``wall``): their state is dropped;
        the events that causes, by person."""
        ended = []
        for person_id in person_ids:
            track = self.people.pop(person_id, None)
            if track is not None:
                ended.append((person_id, track.end()))
            if person_id == self.primary_id:
                self.primary_id = None
                self._nobody = PoseState(since=wall)
        return ended

    def cut(self) -> None:
        """The footage jumped: every track forgets what it saw (labels and reps are kept)."""
        for track in self.people.values():
            track.cut()

    def forget_regions(self) -> None:
        """The frame size changed: every crop region is meaningless."""
        for track in self.people.values():
            track.region = None

    def reset_reps(self) -> None:
        """Every person's repetitions start from 0 (the ``reset_reps`` command)."""
        for track in self.people.values():
            if track.labels is not None:
                track.labels.reset_reps()

    @property
    def primary_labels(self) -> LabelTracker | None:
        """The label stabiliser of the primary person (what status, reps and remote control
        speak of); None without a classifier or while no one is followed."""
        track = None if self.primary_id is None else self.people.get(self.primary_id)
        return None if track is None else track.labels

    def present(self) -> int:
        """How many people are present (their ``person_enter`` announced, not yet left)."""
        return sum(
            1 for track in self.people.values()
            if track.labels is not None and track.labels.state.person
        )  # fmt: skip

    def present_people(self) -> list[tuple[int, PoseState]] | None:
        """Everyone present (announced by ``person_enter``, not yet left) by track id, the
        primary person first; None without a classifier."""
        if self.labelling is None:
            return None
        present = [
            (person_id, track.labels.state) for person_id, track in self.people.items()
            if track.labels is not None and track.labels.state.person
        ]  # fmt: skip
        present.sort(key=lambda item: item[0] != self.primary_id)
        return present

    def changed_state(self) -> PoseState | None:
        """The retained pose message's state (the primary person's label and presence, and how
        many people are present) when it differs from the last one returned; else None, and
        always None without a classifier."""
        if self.labelling is None:
            return None
        labels = self.primary_labels
        state = self._nobody if labels is None else labels.state
        people = self.present()
        key = (state.label, state.person, people)
        if key == self._published:
            return None
        self._published = key
        return replace(state, people=people)
