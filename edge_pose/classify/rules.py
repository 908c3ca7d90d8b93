"""Built-in pose rules: standing, sitting, squat_down, lying, arms_raised (no training needed).

Each label's score is a product of soft conditions on joint angles and relative positions,
``ramp(value, a, b)`` going linearly from 0 at ``a`` to 1 at ``b``, so scores fade instead of
flipping at a hard threshold and the label smoothing downstream gets a usable signal. A side of
the body counts only when its keypoints are seen (score > 0.2); both sides are averaged when both
are. Angles in degrees; image y grows downwards.

- torso tilt: angle of the shoulder-midpoint -> hip-midpoint line from vertical.
- knee angle: hip-knee-ankle (180 = straight leg); hip angle: shoulder-hip-knee.
- thigh tilt: angle of hip -> knee from horizontal (0 = thigh level, 90 = thigh vertical).

- lying: torso tilt 50 -> 70.
- arms_raised: both wrists above the shoulders by 0.3 -> 0.7 torso lengths; not lying.
- standing: knees straight (140 -> 160), hips open (140 -> 160), torso upright (40 -> 20),
  arms not raised.
- squat_down: knees bent (135 -> 115), thighs towards level (60 -> 45); not sitting, not lying.
- sitting: knees bent (140 -> 110), thighs level (45 -> 25), torso upright (30 -> 15), feet
  ahead of the hips (0.5 -> 0.8 thigh lengths).
- unknown: 1 - the best of the above.

Without the torso (a shoulder and a hip) nothing is judged: every label scores 0, ``unknown`` 1.
Without any leg (hip, knee and ankle of one side) only lying and arms_raised can score.
"""

from __future__ import annotations

import math

import numpy as np

from edge_pose.pose import KEYPOINT_THRESHOLD, KP

LABELS = ["standing", "sitting", "squat_down", "lying", "arms_raised", "unknown"]

_SIDES = tuple(
    (KP[f"{s}_shoulder"], KP[f"{s}_hip"], KP[f"{s}_knee"], KP[f"{s}_ankle"], KP[f"{s}_wrist"])
    for s in ("left", "right")
)


def ramp(value: float, a: float, b: float) -> float:
    """0 at ``a``, 1 at ``b``, linear between (either direction), clipped."""
    t = (value - a) / (b - a)
    return 0.0 if t <= 0 else 1.0 if t >= 1 else t


def _angle(a: tuple[float, float], b: tuple[float, float], c: tuple[float, float]) -> float:
    """The angle at ``b`` between ``b->a`` and ``b->c``, degrees."""
    ux, uy, vx, vy = a[0] - b[0], a[1] - b[1], c[0] - b[0], c[1] - b[1]
    norm = math.hypot(ux, uy) * math.hypot(vx, vy)
    if norm == 0:
        return 180.0
    return math.degrees(math.acos(max(-1.0, min(1.0, (ux * vx + uy * vy) / norm))))


class RuleClassifier:
    """The built-in rules as a classifier (``labels`` and ``classify``)."""

    labels = LABELS

    def classify(self, keypoints: np.ndarray, width: int, height: int) -> dict[str, float]:
        """Scores of every label; plain float maths on the few joints involved (tens of µs)."""
        pts = keypoints.tolist()
        seen = [p[2] > KEYPOINT_THRESHOLD for p in pts]
        scores = dict.fromkeys(LABELS, 0.0)
        shoulders = [pts[s] for s, *_ in _SIDES if seen[s]]
        hips = [pts[h] for _, h, *_ in _SIDES if seen[h]]
        if not shoulders or not hips:
            scores["unknown"] = 1.0
            return scores
        sx, sy = _mean(shoulders)
        hx, hy = _mean(hips)
        torso = math.hypot(sx - hx, sy - hy) or 1.0
        tilt = math.degrees(math.atan2(abs(sx - hx), abs(sy - hy)))
        lying = ramp(tilt, 50, 70)

        legs = [
            (shoulder, hip, knee, ankle)
            for shoulder, hip, knee, ankle, _ in _SIDES
            if seen[hip] and seen[knee] and seen[ankle] and seen[shoulder]
        ]
        wrists = [
            (shoulder, wrist)
            for shoulder, _, _, _, wrist in _SIDES
            if seen[shoulder] and seen[wrist]
        ]
        arms = 0.0
        if len(wrists) == 2:
            arms = min(ramp((pts[s][1] - pts[w][1]) / torso, 0.3, 0.7) for s, w in wrists)
        scores["lying"] = lying
        scores["arms_raised"] = arms * (1 - lying)
        if legs:
            knee = _mean_of(_angle(pts[h], pts[k], pts[a]) for _, h, k, a in legs)
            hip = _mean_of(_angle(pts[s], pts[h], pts[k]) for s, h, k, _ in legs)
            thigh = _mean_of(
                math.degrees(math.atan2(abs(pts[k][1] - pts[h][1]), abs(pts[k][0] - pts[h][0])))
                for _, h, k, _ in legs
            )
            ahead = _mean_of(
                abs(pts[a][0] - pts[h][0])
                / (math.hypot(pts[k][0] - pts[h][0], pts[k][1] - pts[h][1]) or 1.0)
                for _, h, k, a in legs
            )
            upright = ramp(tilt, 40, 20)
            scores["standing"] = ramp(knee, 140, 160) * ramp(hip, 140, 160) * upright * (1 - arms)
            sitting = (
                ramp(knee, 140, 110)
                * ramp(thigh, 45, 25)
                * ramp(tilt, 30, 15)
                * ramp(ahead, 0.5, 0.8)
            )
            scores["sitting"] = sitting * (1 - lying)
            scores["squat_down"] = (
                ramp(knee, 135, 115) * ramp(thigh, 60, 45) * (1 - sitting) * (1 - lying)
            )
        scores["unknown"] = 1.0 - max(scores.values())
        return scores


def _mean(points: list[list[float]]) -> tuple[float, float]:
    return sum(p[0] for p in points) / len(points), sum(p[1] for p in points) / len(points)


def _mean_of(values: object) -> float:
    items = list(values)  # type: ignore[call-overload]
    return sum(items) / len(items)
