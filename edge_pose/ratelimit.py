"""A token bucket for things a remote party can make us do (answer, log) as often as it likes.

A publisher on ``<base>/set`` controls how many messages reach the device; without a bound each
one costs an answer on the broker and a line in the journal. The bucket lets a short burst
through, then a steady trickle, and counts what it held back so the next line can say how many.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    """``burst`` at once, then ``per_second``; ``suppressed`` counts what it refused."""

    def __init__(
        self, per_second: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.per_second = per_second
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()
        self.suppressed = 0

    def allow(self) -> bool:
        """Take a token if there is one; otherwise count the refusal."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.per_second)
        self._last = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        self.suppressed += 1
        return False

    def take_suppressed(self) -> int:
        """How many were refused since the last call (and start counting again)."""
        count, self.suppressed = self.suppressed, 0
        return count
