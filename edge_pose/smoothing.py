"""Temporal smoothing: a One Euro filter on the keypoints and a low-pass on the crop region.

This follows MoveNet's own video pipeline (tfjs-models pose-detection: ``KeypointsOneEuroFilter``,
``OneEuroFilter``, ``LowPassFilter`` and the crop-region filter of the MoveNet detector):

- Every x and y coordinate is filtered on its own, in coordinates normalized to the frame
  (x / width, y / height), so ``beta`` and the jump threshold mean the same at any resolution.
  Scores are never filtered.
- The filter runs on capture timestamps: the rate is 1 / (time since the previous frame), so a
  5 fps camera and a 30 fps camera get the same smoothing in time. ``frequency`` only stands in
  before there is a previous frame, when the output is the input anyway.
- Per frame, with ``f`` the rate and ``a(c) = 1 / (1 + f / (2 pi c))``::

      speed     = lowpass(a(derivative_cutoff), (x_raw - x_raw_prev) * f)   # per second
      cutoff    = min_cutoff + beta * |speed|
      threshold = threshold_cutoff + threshold_beta * |speed|
      x         = x_prev + a(cutoff) * threshold * asinh((x_raw - x_prev) / threshold)

  The ``asinh`` term is MoveNet's large-jump limiter: a change well below ``threshold`` passes
  as in a plain One Euro filter, a far larger one (a keypoint snapping onto the wrong limb for a
  frame) is compressed to about ``threshold * log(2 * change / threshold)``.
- A timestamp that does not move forward returns the input unchanged and leaves the state alone.
  After ``reset`` (the person was lost) the first frame passes through and starts the filter again.

All 34 coordinates are filtered at once with numpy on preallocated arrays: no per-keypoint Python
and no allocation per frame (docs/smoothing.md has the cost per call).

``RegionFilter`` low-passes each edge of the next crop region, ``edge = edge_prev + alpha *
(new - edge_prev)`` (``alpha`` weighs the new value; MoveNet uses 0.9), so the model input does
not shake with the keypoints. MoveNet computes the next region from the smoothed keypoints.
"""

from __future__ import annotations

import math

import numpy as np

from edge_pose.config import SmoothingConfig
from edge_pose.pose import Region

NUM_KEYPOINTS = 17
TWO_PI = 2.0 * math.pi


class KeypointSmoother:
    """One Euro filter over the x, y of all keypoints, driven by capture timestamps (ns).

    ``apply`` writes the smoothed x, y into the (17, 3) array it is given (in place; scores are
    left alone) and returns that same array. Call it once per frame while a person is present,
    and ``reset`` when the person is lost.
    """

    def __init__(
        self,
        *,
        frequency: float = 30.0,
        min_cutoff: float = 2.5,
        beta: float = 300.0,
        derivative_cutoff: float = 2.5,
        threshold_cutoff: float | None = 0.5,
        threshold_beta: float = 5.0,
        enabled: bool = True,
        num_keypoints: int = NUM_KEYPOINTS,
    ) -> None:
        if frequency <= 0 or min_cutoff <= 0 or derivative_cutoff <= 0:
            raise ValueError("frequency, min_cutoff and derivative_cutoff must be > 0")
        if beta < 0 or threshold_beta < 0:
            raise ValueError("beta and threshold_beta must be >= 0")
        if threshold_cutoff is not None and threshold_cutoff <= 0:
            raise ValueError("threshold_cutoff must be > 0 (or None for no jump limiter)")
        self.enabled = enabled
        self.frequency = float(frequency)  # updated from the timestamps
        self.min_cutoff = float(min_cutoff)
        self.beta = float(beta)
        self.derivative_cutoff = float(derivative_cutoff)
        self.threshold_cutoff = None if threshold_cutoff is None else float(threshold_cutoff)
        self.threshold_beta = float(threshold_beta)
        shape = (num_keypoints, 2)
        # Filter state, normalized coordinates.
        self._raw = np.zeros(shape)  # previous input
        self._value = np.zeros(shape)  # previous output
        self._speed = np.zeros(shape)  # low-passed derivative (per second)
        # Scratch buffers, reused every frame.
        self._x = np.zeros(shape)
        self._t1 = np.zeros(shape)
        self._t2 = np.zeros(shape)
        self._t3 = np.zeros(shape)
        self._to_norm = np.ones(2)  # 1 / width, 1 / height
        self._to_px = np.ones(2)  # width, height
        self._size = (0, 0)
        self._last_ns: int | None = None

    @classmethod
    def from_config(cls, cfg: SmoothingConfig) -> KeypointSmoother:
        """A smoother with the ``[smoothing]`` parameters; a pass-through when disabled."""
        return cls(
            frequency=cfg.frequency,
            min_cutoff=cfg.min_cutoff,
            beta=cfg.beta,
            derivative_cutoff=cfg.derivative_cutoff,
            threshold_cutoff=cfg.threshold_cutoff,
            threshold_beta=cfg.threshold_beta,
            enabled=cfg.enabled,
        )

    @property
    def active(self) -> bool:
        """True once a frame has been taken since the last reset."""
        return self._last_ns is not None

    def reset(self) -> None:
        """Forget the past (person lost): the next frame passes through and restarts the filter."""
        self._last_ns = None

    def apply(self, keypoints: np.ndarray, capture_ns: int, width: int, height: int) -> np.ndarray:
        """Smooth ``keypoints`` (17, 3: x, y in frame pixels, score) in place and return them.

        ``capture_ns`` is the frame's monotonic capture time. The first frame after a reset and a
        frame whose time is not after the previous one come back unchanged; when disabled, all do.
        """
        if not self.enabled:
            return keypoints
        xy = keypoints[:, :2]
        if (width, height) != self._size:
            if self._size != (0, 0):
                self._last_ns = None  # another frame size: old state means nothing here
            self._size = (width, height)
            self._to_px[:] = (width, height)
            self._to_norm[:] = (1.0 / width, 1.0 / height)
        x = np.multiply(xy, self._to_norm, out=self._x)
        if self._last_ns is None:
            self._raw[:] = x
            self._value[:] = x
            self._speed.fill(0.0)
            self._last_ns = capture_ns
            return keypoints
        dt_ns = capture_ns - self._last_ns
        if dt_ns <= 0:
            return keypoints  # out of order or repeated: unpredictable, so pass through
        self._last_ns = capture_ns
        rate = 1e9 / dt_ns
        self.frequency = rate
        t1, t2, speed = self._t1, self._t2, self._speed

        # Speed: the change per second, low-passed at the derivative cutoff.
        np.subtract(x, self._raw, out=t1)
        t1 *= rate
        t1 -= speed
        t1 *= _alpha(self.derivative_cutoff, rate)
        speed += t1
        self._raw[:] = x
        np.abs(speed, out=t1)  # t1 = |speed| from here on

        # alpha = 1 / (1 + rate / (2 pi cutoff)) = c / (c + rate / 2 pi), c = cutoff.
        np.multiply(t1, self.beta, out=t2)
        t2 += self.min_cutoff
        alpha = np.add(t2, rate / TWO_PI, out=self._t3)
        np.divide(t2, alpha, out=alpha)

        np.subtract(x, self._value, out=x)  # x = change from the previous output
        if self.threshold_cutoff is not None:
            # The jump limiter: change -> threshold * asinh(change / threshold).
            t1 *= self.threshold_beta
            t1 += self.threshold_cutoff
            x /= t1
            np.arcsinh(x, out=x)
            x *= t1
        x *= alpha
        self._value += x
        np.multiply(self._value, self._to_px, out=xy)
        return keypoints


def _alpha(cutoff: float, rate: float) -> float:
    """Weight of the new value in an exponential low-pass at ``cutoff`` Hz sampled at ``rate``."""
    return 1.0 / (1.0 + rate / (TWO_PI * cutoff))


class RegionFilter:
    """Low-pass on the four edges of the crop region: ``edge += alpha * (new - edge)``.

    ``alpha`` weighs the new region (1.0 = no filtering). ``apply`` returns a new ``Region``;
    ``reset`` when the person is lost, so the next region is taken as it is.
    """

    def __init__(self, alpha: float = 0.9, *, enabled: bool = True) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError("alpha must be in (0, 1]")
        self.alpha = float(alpha)
        self.enabled = enabled
        self._last: Region | None = None

    @classmethod
    def from_config(cls, cfg: SmoothingConfig) -> RegionFilter:
        return cls(cfg.crop_alpha, enabled=cfg.enabled)

    def reset(self) -> None:
        self._last = None

    def apply(self, region: Region) -> Region:
        """The filtered region (a new object); the first one after a reset passes through."""
        last = self._last
        if not self.enabled:
            return region
        if last is None:
            self._last = region
            return region
        a = self.alpha
        out = Region(
            last.x0 + a * (region.x0 - last.x0),
            last.y0 + a * (region.y0 - last.y0),
            last.x1 + a * (region.x1 - last.x1),
            last.y1 + a * (region.y1 - last.y1),
        )
        self._last = out
        return out
