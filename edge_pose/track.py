"""What is remembered about a person from frame to frame, one object per person.

A person's keypoint smoother, crop-region filter and label stabiliser all describe the same
person over time: they start together, are reset together when the person is lost, and forget
together when the footage jumps. :class:`PersonTrack` holds the three, so following several
people is a list of tracks and following one person is that list with one track in it.

:class:`Temporal` is all the pipeline carries across frames: the tracks and the classifier they
share. The daemon keeps it across a SIGHUP reload while the ``[smoothing]`` and ``[classifier]``
settings hold, so the repetition count survives a reload.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from edge_pose.classify.base import Classifier
from edge_pose.classify.events import Event, LabelTracker, PoseState, warn_unreachable_reps
from edge_pose.config import ClassifierConfig, Config, SmoothingConfig
from edge_pose.inference.crop import next_region
from edge_pose.pose import Pose, Region
from edge_pose.smoothing import KeypointSmoother, RegionFilter

NO_EVENTS: Sequence[Event] = ()


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
    ) -> tuple[Sequence[Event], PoseState | None]:
        """Classify ``pose``, update the steady label and write it into ``pose``.

        Returns the events of this frame and, when the label or presence changed, a copy of the
        new state (for the retained pose message); without a classifier, no events.
        """
        labels = self.labels
        if labels is None or classifier is None:
            return NO_EVENTS, None
        state = labels.state
        before = (state.label, state.person)
        scores = None
        if pose.person:
            scores = classifier.classify(pose.keypoints, pose.width, pose.height)
        events = labels.update(scores, pose.person, scene_s, wall)
        pose.label, pose.confidence = state.label, state.confidence
        changed = replace(state) if (state.label, state.person) != before else None
        return events, changed

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
    """The state the pipeline keeps across frames: one :class:`PersonTrack` per person
    followed (the single-pose model follows one) and the classifier they share."""

    def __init__(
        self,
        smoothing: SmoothingConfig | None = None,
        classifier: Classifier | None = None,
        labelling: ClassifierConfig | None = None,
    ) -> None:
        self.smoothing = smoothing
        self.classifier = classifier
        self.labelling = labelling if classifier is not None else None
        self.tracks = [self.new_track()]

    @classmethod
    def from_config(cls, cfg: Config) -> Temporal:
        """Smoothing and classification as the ``[smoothing]`` and ``[classifier]`` say."""
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
        return cls(cfg.smoothing, classifier, cfg.classifier)

    def new_track(self) -> PersonTrack:
        """A track for a person newly in view, with this state's settings."""
        return PersonTrack.start(self.smoothing, self.labelling)

    @property
    def tracker(self) -> LabelTracker | None:
        """The label stabiliser of the primary person (what status, reps and remote control
        speak of); None without a classifier."""
        return self.tracks[0].labels
