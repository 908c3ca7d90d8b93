"""``mqtt.keypoints_max_rate`` as a schedule: when the next keypoints message may go.

Why a schedule (GCRA) and not "at least 1/rate since the last one": a message may come up to half
an interval early, so a 30 fps camera with ``keypoints_max_rate = 30`` is not halved by frame
jitter, while over any longer stretch the rate never exceeds the limit.
"""

from __future__ import annotations

import math


class RateSchedule:
    """At most ``rate`` messages a second (0: no limit), on the caller's monotonic clock."""

    def __init__(self, rate: float) -> None:
        self._interval = self._slack = 0.0
        self._due = -math.inf
        self.set_rate(rate)

    @property
    def rate(self) -> float:
        return 1.0 / self._interval if self._interval else 0.0

    def set_rate(self, rate: float) -> None:
        """A new limit, in force at once (the next message may go now)."""
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._slack = self._interval / 2
        self._due = -math.inf

    def early(self, now: float) -> bool:
        """Whether a message at ``now`` would come before its slot."""
        return now < self._due - self._slack

    def book(self, now: float) -> None:
        """A message at ``now`` took its slot (sent, or given up as if sent)."""
        self._due = max(self._due, now) + self._interval
