"""From per-frame class scores to steady labels, repetitions and presence events.

Raw scores flicker; users want one `pose_change` per real change and a rep counter that counts
each squat once. Three mechanisms, all on the frames' scene time so they behave the same at
5 fps and at 30 fps:

- **EMA over a window** (ML Kit's approach): the scores of the frames within ``ema_window``
  frames at 30 fps (``ema_window / 30`` s), weighted ``(1 - ema_alpha) ** (age * 30 fps)``.
- **Hysteresis**: a label is entered when its smoothed score reaches ``enter_threshold`` and
  kept while it stays above ``exit_threshold``; below that it is kept through short dips (the
  moments between two poses) and becomes ``unknown`` only after ``unknown_after_s``.
- **Repetitions**: entering ``rep_down`` arms the counter, then reaching ``rep_up`` counts one.
- **Presence**: a person must be seen for ``person_enter_s`` before `person_enter`, and missing
  for ``person_leave_s`` before `person_leave`, so one bad frame never flaps presence.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edge_pose.config import ClassifierConfig

# One event as it goes out on <base>/event after the envelope: ``{"type": "rep", "count": 3, ...}``.
Event = dict[str, str | int | float]

REFERENCE_FPS = 30.0
NO_PERSON = "none"
UNKNOWN = "unknown"

log = logging.getLogger(__name__)


def unreachable_reps(classifier: ClassifierConfig, labels: list[str]) -> str | None:
    """Why repetitions can never count with these ``labels`` (None when they can).

    ``rep_down``/``rep_up`` default to the built-in rules' names: a trained classifier (knn,
    tflite) with its own labels would silently count nothing, so `run` logs this at start
    and `doctor` warns."""
    if not classifier.rep_up:
        return None
    missing = [
        f"classifier.{key} = {getattr(classifier, key)!r}"
        for key in ("rep_down", "rep_up")
        if getattr(classifier, key) not in labels
    ]
    if not missing:
        return None
    return (
        f"{' and '.join(missing)}: not a label of the classifier ({', '.join(labels)}), so "
        "repetitions are never counted: set rep_down and rep_up to two of its labels, or "
        'rep_up = "" to switch counting off'
    )


def warn_unreachable_reps(classifier: ClassifierConfig, labels: list[str]) -> None:
    """Log :func:`unreachable_reps` as one warning line (at start and after a reload)."""
    if (reason := unreachable_reps(classifier, labels)) is not None:
        log.warning("%s", reason)


@dataclass
class PoseState:
    """The current, published pose."""

    label: str = NO_PERSON
    confidence: float = 0.0
    person: bool = False
    since: float = 0.0  # wall clock of the last label or presence change
    reps: int = 0
    people: int = 0  # how many people are present (the published copy sets it)
    zones: tuple[str, ...] = ()  # the zones someone is in (the published copy sets these three)
    fall: bool = False  # someone fell and has not recovered
    inactive: bool = False  # someone has not moved for their inactivity time


class WindowedEma:
    """Mean of score dicts over the last ``window_s`` seconds, each weighted
    ``decay_per_s ** age``: kept as running sums, so a frame costs the same at 300 fps as at 5.
    """

    def __init__(self, window_s: float, decay_per_s: float) -> None:
        self.window_s = window_s
        self.decay_per_s = decay_per_s
        self.clear()

    def clear(self) -> None:
        self._labels: list[str] = []
        self._entries: deque[tuple[float, list[float]]] = deque()
        self._sums: list[float] = []
        self._weight = 0.0
        self._last = 0.0

    def add(self, scores: dict[str, float], t: float) -> dict[str, float]:
        """Take one frame's scores at ``t`` (s); the smoothed scores."""
        if list(scores) != self._labels:
            self.clear()
            self._labels = list(scores)
            self._sums = [0.0] * len(scores)
        values = list(scores.values())
        if self._entries:
            fade = self.decay_per_s ** max(0.0, t - self._last)
            self._sums = [s * fade for s in self._sums]
            self._weight *= fade
        self._last = max(t, self._last)
        self._sums = [s + v for s, v in zip(self._sums, values, strict=True)]
        self._weight += 1.0
        self._entries.append((self._last, values))
        entries = self._entries
        while self._last - entries[0][0] >= self.window_s:
            when, old = entries.popleft()
            weight = self.decay_per_s ** (self._last - when)
            self._sums = [s - weight * v for s, v in zip(self._sums, old, strict=True)]
            self._weight -= weight
        return {label: s / self._weight for label, s in zip(self._labels, self._sums, strict=True)}


class LabelTracker:
    """Turns one person's flickering per-frame scores into a steady label, reps and presence.

    Feeds on one frame's scores at a time and returns the events that frame caused; ``state`` is
    what the retained pose message and the status say.
    """

    def __init__(self, cfg: ClassifierConfig) -> None:
        self.cfg = cfg
        self.state = PoseState(since=time.time())
        self._ema = WindowedEma(cfg.ema_window / REFERENCE_FPS,
                                (1.0 - cfg.ema_alpha) ** REFERENCE_FPS)
        self._armed = False
        self._first_seen: float | None = None
        self._last_seen: float | None = None
        self._below_since: float | None = None
        self.smoothed: dict[str, float] = {}

    def update(
        self, scores: dict[str, float] | None, person: bool, t: float, wall: float
    ) -> list[Event]:
        """One frame at scene time ``t`` (s); ``scores`` None when nothing was classified."""
        events = self._presence(person, t, wall)
        if self.state.person and person and scores is not None:
            self.smoothed = self._smooth(scores, t)
            events += self._label(t, wall)
        return events

    def reset_reps(self) -> None:
        self.state.reps = 0
        self._armed = False

    def cut(self) -> None:
        """The footage jumped (a looped file starting over): forget the evidence, keep the
        label and the counts, so the jump itself neither completes a repetition nor flips the
        label."""
        self._ema.clear()
        self._armed = False
        self._below_since = None

    # -- presence ------------------------------------------------------------------------------

    def _presence(self, person: bool, t: float, wall: float) -> list[Event]:
        state = self.state
        if person:
            self._last_seen = t
            if self._first_seen is None:
                self._first_seen = t
            if not state.person and t - self._first_seen >= self.cfg.person_enter_s:
                state.person, state.label, state.confidence, state.since = True, UNKNOWN, 0.0, wall
                return [{"type": "person_enter"}]
        else:
            self._first_seen = None
            if (
                state.person
                and self._last_seen is not None
                and (t - self._last_seen >= self.cfg.person_leave_s)
            ):
                state.person, state.label, state.confidence, state.since = (
                    False,
                    NO_PERSON,
                    0.0,
                    wall,
                )
                self._ema.clear()
                self._below_since = None
                self._armed = False
                return [{"type": "person_leave"}]
        return []

    # -- labels --------------------------------------------------------------------------------

    def _smooth(self, scores: dict[str, float], t: float) -> dict[str, float]:
        return self._ema.add(scores, t)

    def _label(self, t: float, wall: float) -> list[Event]:
        cfg, state, smoothed = self.cfg, self.state, self.smoothed
        best = max(smoothed, key=smoothed.__getitem__)
        current = smoothed.get(state.label, 0.0)
        new = None
        if best not in (state.label, UNKNOWN) and smoothed[best] >= cfg.enter_threshold:
            new = best
        if current >= cfg.exit_threshold or new is not None:
            self._below_since = None
        elif self._below_since is None:
            self._below_since = t
        elif t - self._below_since >= cfg.unknown_after_s and state.label != UNKNOWN:
            new = UNKNOWN
        if new is None:
            state.confidence = current
            return []
        previous = state.label
        state.label, state.confidence, state.since = new, smoothed.get(new, 0.0), wall
        self._below_since = None
        events: list[Event] = [
            {
                "type": "pose_change",
                "label": new,
                "previous": previous,
                "confidence": round(state.confidence, 3),
            }
        ]
        if cfg.rep_up and new == cfg.rep_down:
            self._armed = True
        elif cfg.rep_up and new == cfg.rep_up and self._armed:
            self._armed = False
            state.reps += 1
            events.append({"type": "rep", "exercise": cfg.rep_name, "count": state.reps})
        return events
