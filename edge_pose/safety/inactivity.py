"""Inactivity for one person: ``inactive`` when someone seen has not moved for a long time,
``active`` when they move again.

"Moved" is two keypoints or more (:func:`~edge_pose.safety.body.moved`) moving more than
``events.inactivity.min_move`` body-size units (the torso's length) since the last movement:
keypoint jitter after smoothing is a few hundredths of that, a hand raised or a turn over in
bed is more. Time counts
only while the person is seen; one not seen for ``FORGET_S`` starts afresh when seen again
(they may have left and come back).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge_pose.classify.events import Event
from edge_pose.safety.body import Body, moved

if TYPE_CHECKING:
    from edge_pose.config.schema import InactivityConfig

# Not seen this long: the time still counted towards `inactive` is forgotten.
FORGET_S = 30.0


class InactivityWatch:
    """Counts how long one person has stayed still, on scene time."""

    def __init__(self, cfg: InactivityConfig) -> None:
        self.cfg = cfg
        self.inactive = False
        self._anchor: Body | None = None  # the body at the last movement
        self._still_since = 0.0
        self._last_seen = 0.0

    def still_s(self, t: float) -> float:
        """How long the person has not moved, at scene time ``t``."""
        return 0.0 if self._anchor is None else t - self._still_since

    def update(self, body: Body | None, t: float, after_s: float, zone: str | None) -> list[Event]:
        """One frame; ``after_s``: how long still is ``inactive`` where the person is (0:
        never); ``zone``: where they are, for the event."""
        if body is None:
            return []
        anchor = self._anchor
        if anchor is None or t - self._last_seen > FORGET_S:
            self._restart(body, t)
            return []
        self._last_seen = t
        if moved(anchor, body) > self.cfg.min_move * max(anchor.torso, body.torso):
            was_still = t - self._still_since
            self._restart(body, t)
            if self.inactive:
                self.inactive = False
                return [{"type": "active", "inactive_s": round(was_still, 1)}]
            return []
        if not self.inactive and after_s > 0 and t - self._still_since >= after_s:
            self.inactive = True
            event: Event = {"type": "inactive", "after_s": round(t - self._still_since, 1)}
            if zone is not None:
                event["zone"] = zone
            return [event]
        return []

    def end(self) -> list[Event]:
        """The person is gone (their track ended): ``active`` if ``inactive`` was said, so no
        one is left inactive who is not there."""
        was = self.inactive
        self.inactive = False
        self._anchor = None
        return [{"type": "active", "left": True}] if was else []

    def _restart(self, body: Body, t: float) -> None:
        self._anchor = body
        self._still_since = self._last_seen = t
