"""Running numbers of the pipeline: rates, stage times and latency percentiles.

Recorded once per frame, so recording is a few array stores; percentiles are computed only when
someone asks (status, stats, bench).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

STAGES = ("decode", "preprocess", "invoke", "postprocess", "publish")
RATE_WINDOW_S = 5.0  # rates cover this many seconds up to now: a stall shows within it


class Ring:
    """The last ``size`` samples of a quantity, for rates and percentiles over a recent window."""

    def __init__(self, size: int = 512) -> None:
        self._values = np.zeros(size, np.float64)
        self._count = 0

    def add(self, value: float) -> None:
        self._values[self._count % self._values.size] = value
        self._count += 1

    def values(self) -> np.ndarray:
        return self._values[: min(self._count, self._values.size)]

    def percentile(self, q: float) -> float | None:
        values = self.values()
        return float(np.percentile(values, q)) if values.size else None

    def clear(self) -> None:
        self._count = 0


class PipelineStats:
    """Counters and recent samples of one run.

    ``clock`` (monotonic seconds) is injectable so tests can drive time instead of sleeping.
    """

    def __init__(self, window: int = 512, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.started = clock()
        self.processed = 0
        self.with_person = 0
        self.published = 0
        self.stage_ns = dict.fromkeys(STAGES, 0)  # totals since start
        self.invoke_ms = Ring(window)
        self.latency_ms = Ring(window)
        self.done_at = Ring(window)  # monotonic seconds each frame finished

    def record(
        self, stages: tuple[int, int, int, int, int], latency_ms: float, person: bool
    ) -> None:
        """Book one processed frame: stage times (ns, in STAGES order) and capture->publish ms."""
        for name, ns in zip(STAGES, stages, strict=True):
            self.stage_ns[name] += ns
        self.processed += 1
        self.with_person += person
        self.invoke_ms.add(stages[2] / 1e6)
        self.latency_ms.add(latency_ms)
        self.done_at.add(self.clock())

    def fps(self, now: float | None = None) -> float:
        """Processed frames per second over the RATE_WINDOW_S seconds ending ``now``.

        The window ends now, not at the last frame, so during a stall or a pause the rate falls
        to 0 instead of freezing at its last value. It starts at the first frame when that is
        more recent (no start-up time counted), or at the oldest frame still held when frames
        came faster than the ring holds for a whole window.
        """
        now = self.clock() if now is None else now
        done = self.done_at.values()
        if done.size == 0:
            return 0.0
        oldest = float(done.min())
        start = now - RATE_WINDOW_S
        if oldest >= start:  # the first frame, or a ring too small for the window
            start = oldest
        span = now - start
        return int(np.count_nonzero(done > start)) / span if span > 0 else 0.0

    def stage_means_ms(self) -> dict[str, float]:
        n = max(self.processed, 1)
        return {name: round(total / n / 1e6, 3) for name, total in self.stage_ns.items()}
