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
from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np

from edge_pose.classify.base import Classifier
from edge_pose.classify.events import (
    Event,
    LabelTracker,
    PoseState,
    warn_unreachable_reps,
)
from edge_pose.config import ClassifierConfig, Config, SmoothingConfig, TrackingConfig
from edge_pose.config.schema import EventsConfig
from edge_pose.inference.crop import next_region
from edge_pose.pose import Pose, Region
from edge_pose.safety.watch import SafetyWatch, zones_of
from edge_pose.safety.zones import Zone
from edge_pose.smoothing import KeypointSmoother, RegionFilter
from edge_pose.tracking import Tracker

SINGLE_ID = 1  # the id of the one person a single-pose model follows, unless taken before


@dataclass
class PersonTrack:
    """One person followed across frames (each part optional: smoothing and labelling can be
    switched off), and where to look for them in the next frame."""

    smoother: KeypointSmoother | None = None
    region_filter: RegionFilter | None = None
    labels: LabelTracker | None = None
    safety: SafetyWatch | None = None  # zones, falls, inactivity
    region: Region | None = None  # the crop for the next frame; None: the whole frame

    @classmethod
    def start(
        cls,
        smoothing: SmoothingConfig | None,
        labelling: ClassifierConfig | None,
        events: EventsConfig | None = None,
        zones: tuple[Zone, ...] = (),
    ) -> PersonTrack:
        """A new track with the smoothing, label and safety settings given (None: none of
        that)."""
        track = cls()
        if smoothing is not None and smoothing.enabled:
            track.smoother = KeypointSmoother.from_config(smoothing)
            track.region_filter = RegionFilter.from_config(smoothing)
        if labelling is not None:
            track.labels = LabelTracker(labelling)
        if events is not None:
            track.safety = SafetyWatch(events, zones)
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
        this frame. Without a classifier only presence is followed (the label stays
        ``unknown`` while someone is there)."""
        labels = self.labels
        if labels is None:
            return []
        scores = None
        if pose.person and classifier is not None:
            scores = classifier.classify(pose.keypoints, pose.width, pose.height)
        events = self._left(labels.update(scores, pose.person, scene_s, wall))
        if classifier is not None:
            pose.label, pose.confidence = labels.state.label, labels.state.confidence
        return events

    def _left(self, events: list[Event]) -> list[Event]:
        """``events``, and when they say the person left, their zones and inactivity end
        first (a single-pose person's track never ends: their leaving is this)."""
        if self.safety is not None and any(e["type"] == "person_leave" for e in events):
            return self.safety.end() + events
        return events

    def watch(self, pose: Pose | None, scene_s: float) -> list[Event]:
        """Zones, falls and inactivity for this frame (``pose`` None: the person was not
        found in it); the events it caused."""
        if self.safety is None:
            return []
        if pose is None:
            return self.safety.update(None, False, 0, 0, scene_s)
        return self.safety.update(pose.keypoints, pose.person, pose.width, pose.height, scene_s)

    def miss(self, scene_s: float, wall: float) -> list[Event]:
        """The person's track goes on but they were not found in this frame: start smoothing
        afresh and let presence count the absence (``person_leave`` after ``person_leave_s``)."""
        self.lose()
        if self.labels is None:
            return []
        return self._left(self.labels.update(None, False, scene_s, wall))

    def end(self) -> list[Event]:
        """The track ended (the tracker gave up on the person): they leave their zones, are no
        longer inactive, and ``person_leave`` if their presence had been announced."""
        events = [] if self.safety is None else self.safety.end()
        if self.labels is not None and self.labels.state.person:
            events.append({"type": "person_leave"})
        return events

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
        if self.safety is not None:
            self.safety.cut()


class Temporal:
    """The state the pipeline keeps across frames: one :class:`PersonTrack` per person id, the
    tracker of a multi-person model, the primary person and the classifier they share.

    Events that happen between frames (people dropped by a switch between single- and
    multi-person models, or by a reload that starts a new state) wait in ``pending`` and go out
    with the next frame, so a ``person_leave`` is never lost; track ids go on from where the
    previous state stopped, so none is reused while the device runs."""

    def __init__(
        self,
        smoothing: SmoothingConfig | None = None,
        classifier: Classifier | None = None,
        labelling: ClassifierConfig | None = None,
        tracking: TrackingConfig | None = None,
        previous: Temporal | None = None,
        events: EventsConfig | None = None,
        zones: tuple[Zone, ...] = (),
    ) -> None:
        self.smoothing = smoothing
        self.classifier = classifier
        self.labelling = labelling  # presence, and labels with a classifier
        self.tracking = tracking or TrackingConfig()
        self.events = events
        self.zones = zones
        # People whose fall was not recovered when their track ended: the fall stays on until
        # `reset_fall` (a person lying still can be lost by the tracker).
        self.fallen_gone: set[int] = set() if previous is None else set(previous.fallen_gone)
        first_id = 1 if previous is None else previous.next_id()
        self.tracker: Tracker = Tracker(self.tracking, first_id)
        self.many: bool = False if previous is None else previous.many  # several followed
        self.single_id = SINGLE_ID  # the single-pose person's id
        self._single_used = False  # frames went through the single-pose person's track
        if previous is not None and previous._single_used:
            self.single_id = previous.next_id()
            self.tracker.skip_to(self.single_id + 1)
        self.people: dict[int, PersonTrack] = {}
        if not self.many:
            self.people[self.single_id] = self.new_track()
        self.primary_id: int | None = None if self.many else self.single_id
        self.total_reps = 0  # every person's repetitions since start or reset_reps
        self.pending: list[Event] = []
        self._nobody = PoseState(since=time.time())  # the pose message when no one is there
        # What the retained pose message says. At start: unknown, so the first frame publishes
        # the device's state over whatever an earlier run left retained (a fall included).
        self._published: tuple[object, ...] = ()
        if previous is not None:  # still running until the switch: read, not changed
            self.pending = previous.pending + previous.leaves()
            self._keep_falls(previous.people)
            self._published = previous._published  # the broker holds that: say what changed

    @classmethod
    def from_config(cls, cfg: Config, previous: Temporal | None = None) -> Temporal:
        """Smoothing, classification and tracking as ``[smoothing]``, ``[classifier]`` and
        ``[tracking]`` say; ``previous``, the state it replaces (a reload), hands on its id
        count and the leaves of the people it followed."""
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
        return cls(
            cfg.smoothing, classifier, cfg.classifier, cfg.tracking, previous,
            cfg.events, zones_of(cfg.zones),
        )  # fmt: skip

    def next_id(self) -> int:
        """The track id the next new person gets."""
        return self.tracker.next_id

    def new_track(self) -> PersonTrack:
        """A track for a person newly in view, with this state's settings."""
        return PersonTrack.start(self.smoothing, self.labelling, self.events, self.zones)

    def follow_many(self, many: bool) -> None:
        """Follow several people (a multi-person model) or one. A change starts afresh: the
        people followed leave (their events go out with the next frame) and ids go on
        counting, the single-pose person's included."""
        if many == self.many:
            return
        self.many = many
        self.pending += self.drop_everyone()
        if many:
            if self._single_used:
                self.tracker.skip_to(self.single_id + 1)
        else:
            if self.tracker.next_id > SINGLE_ID:  # ids were given: the single person's is new
                self.single_id = self.tracker.next_id
                self.tracker.skip_to(self.single_id + 1)
            self.people = {self.single_id: self.new_track()}
            self.primary_id = self.single_id
        self._single_used = False

    def single(self) -> PersonTrack:
        """The single-pose person's track (the pipeline's one person)."""
        self._single_used = True
        return self.people[self.single_id]

    def leaves(self) -> list[Event]:
        """The ``person_leave`` events (with the id) that ending every track now would cause."""
        return [
            {**event, "person_id": person_id}
            for person_id, track in self.people.items()
            for event in track.end()
        ]  # fmt: skip

    def drop_everyone(self) -> list[Event]:
        """Every track ends now: ``person_leave`` (with the id) for each person present."""
        events = self.leaves()
        self._keep_falls(self.people)
        self.people, self.primary_id = {}, None
        self.tracker.clear()
        self._nobody = PoseState(since=time.time())
        return events

    def person(self, person_id: int) -> PersonTrack:
        """The track of ``person_id``, started on their first frame."""
        track = self.people.get(person_id)
        if track is None:
            track = self.people[person_id] = self.new_track()
        return track

    def end(self, person_ids: Iterable[int], wall: float) -> list[Event]:
        """The tracks of ``person_ids`` ended (at wall-clock ``wall``): their state is dropped;
        the events that causes, each with its person's id."""
        ended: list[Event] = []
        for person_id in person_ids:
            track = self.people.pop(person_id, None)
            if track is not None:
                ended += [{**event, "person_id": person_id} for event in track.end()]
                self._keep_falls({person_id: track})
                self._nobody = PoseState(since=wall)  # nobody, if no one else is left, since now
            if person_id == self.primary_id:
                self.primary_id = None
        return ended

    def cut(self, scene_s: float) -> None:
        """The footage jumped (a looped file, a pause, a reload) at scene time ``scene_s``:
        every track forgets what it saw (labels and reps are kept), and a multi-person
        tracker does not count the gap as time its people were away."""
        for track in self.people.values():
            track.cut()
        self.tracker.rebase(scene_s)

    def forget_regions(self) -> None:
        """The frame size changed: every crop region is meaningless."""
        for track in self.people.values():
            track.region = None

    def rewatch(self, events: EventsConfig, zones: tuple[Zone, ...]) -> None:
        """New ``[events]`` or ``[[zones]]`` settings (a reload): everyone is watched with
        them from the next frame, and keeps their label, reps and id. People leave the old
        zones (the events go out with the next frame) and enter the new ones after the dwell;
        a fall or stillness carries over while its own settings are unchanged."""
        self.events, self.zones = events, zones
        for person_id, track in self.people.items():
            old, track.safety = track.safety, SafetyWatch(events, zones)
            if old is None:
                continue
            new = track.safety
            if old.falls is not None and new.falls is not None and old.cfg.fall == events.fall:
                new.falls = old.falls
            elif old.fallen:
                self.fallen_gone.add(person_id)  # no detector left to see them stand up
            left = old.zones.leave_all()
            same_stillness = old.cfg.inactivity == events.inactivity
            if old.stillness is not None and new.stillness is not None and same_stillness:
                new.stillness = old.stillness
            elif old.stillness is not None:
                left += old.stillness.end()
            self.pending += [{**event, "person_id": person_id} for event in left]

    def _keep_falls(self, tracks: dict[int, PersonTrack]) -> None:
        """Remember the unrecovered falls of ``tracks``, which end now."""
        self.fallen_gone.update(
            person_id for person_id, track in tracks.items()
            if track.safety is not None and track.safety.fallen
        )  # fmt: skip

    def reset_fall(self) -> list[Event]:
        """The ``reset_fall`` command: every fall is over (``fall_recovered`` with ``reset``
        for each, with the person's id)."""
        events: list[Event] = []
        for person_id, track in self.people.items():
            if track.safety is not None:
                events += [{**e, "person_id": person_id} for e in track.safety.reset_fall()]
        events += [
            {"type": "fall_recovered", "reset": True, "person_id": person_id}
            for person_id in sorted(self.fallen_gone)
        ]  # fmt: skip
        self.fallen_gone.clear()
        return events

    def fall(self) -> bool:
        """Someone fell and has not recovered (nor was the fall reset)."""
        return bool(self.fallen_gone) or any(
            track.safety is not None and track.safety.fallen for track in self.people.values()
        )

    def inactive(self) -> bool:
        """Someone present has not moved for their inactivity time."""
        return any(
            track.safety is not None and track.safety.inactive for track in self.people.values()
        )

    def occupied_zones(self) -> list[str]:
        """The zones someone is in, in config order."""
        names = {
            name for track in self.people.values() if track.safety is not None
            for name in track.safety.zones.inside
        }  # fmt: skip
        return [zone.name for zone in self.zones if zone.name in names]

    def zones_of(self, person_id: int) -> list[str]:
        """The zones ``person_id`` is in."""
        track = self.people.get(person_id)
        return [] if track is None or track.safety is None else list(track.safety.zones.inside)

    def reset_reps(self) -> None:
        """Every person's repetitions, and the total, start from 0 (the ``reset_reps``
        command)."""
        self.total_reps = 0
        for track in self.people.values():
            if track.labels is not None:
                track.labels.reset_reps()

    def present(self) -> int:
        """How many tracks have a person present (``person_enter`` announced, not yet left)."""
        return sum(1 for _, state in self._states() if state.person)

    def spoken_of(self) -> PoseState | None:
        """The state the pose message, status and remote control speak of: the primary
        person's while they are present, else the first present person's (the longest
        tracked), else the primary's or nobody's; None without a classifier."""
        if self.labelling is None:
            return None
        states = self._states()
        for _, state in states:
            if state.person:
                return state
        return states[0][1] if states and states[0][0] == self.primary_id else self._nobody

    def present_people(self) -> list[tuple[int, PoseState]] | None:
        """Everyone present by track id, the one :meth:`spoken_of` first; None without a
        classifier."""
        if self.labelling is None:
            return None
        return [(person_id, state) for person_id, state in self._states() if state.person]

    def changed_state(self) -> PoseState | None:
        """The retained pose message's state (:meth:`spoken_of`, and how many people are
        present) when it differs from the last one returned; else None, and always None
        without a classifier."""
        state = self.spoken_of()
        if state is None:
            return None
        people = self.present()
        zones, fall, inactive = tuple(self.occupied_zones()), self.fall(), self.inactive()
        key = (state.label, state.person, people, zones, fall, inactive)
        if key == self._published:
            return None
        self._published = key
        return replace(state, people=people, zones=zones, fall=fall, inactive=inactive)

    def _states(self) -> list[tuple[int, PoseState]]:
        """The label states by track id: the primary first, then by id (longest tracked)."""
        states = [
            (person_id, track.labels.state) for person_id, track in self.people.items()
            if track.labels is not None
        ]  # fmt: skip
        states.sort(key=lambda item: (item[0] != self.primary_id, item[0]))
        return states
