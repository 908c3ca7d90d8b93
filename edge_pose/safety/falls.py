"""Fall detection for one person: a small state machine on the smoothed body over scene time.

A fall is a sequence, not a pose: someone **standing** -> a **fast descent** (the hips drop
and the torso turns towards level within ``window_s``) -> **down** (lying across the picture,
or the hips far below where they were while standing) for ``confirm_s`` -> ``fall``; then
``fall_recovered`` once they stand for ``recover_s``. Each condition rules out one everyday
movement (docs/events.md has the numbers):

- lying down slowly (going to bed) turns the torso, but over seconds, not within the window;
- sitting and squatting drop the hips fast, but the torso stays upright (and squats come up
  again well before ``confirm_s``);
- bending to pick something up turns the torso fast, but the hips stay up and the body is not
  lying across the picture;
- a person walking out of the frame, or seen only in part, gives no torso to measure
  (:func:`~edge_pose.safety.body.measure`), and a descent nobody is seen finishing is dropped.

Lengths are in body-size units (the torso's length while standing), so the thresholds hold at
any distance from the camera.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from edge_pose.classify.events import Event
from edge_pose.pose import KP
from edge_pose.safety.body import SEEN, Body

if TYPE_CHECKING:
    from edge_pose.config.schema import FallConfig

# How quickly the standing torso length follows the person (per standing frame): slow enough
# that a few odd frames do not change the body-size unit, fast enough to follow someone walking
# towards or away from the camera.
_TORSO_FOLLOW = 0.2


# Lying: the ankles at most this many torso lengths below the hips (a crouch has the shins
# under the hips, about 0.7).
_LYING_LEGS = 0.5

_TORSO = tuple(KP[name] for name in ("left_shoulder", "right_shoulder", "left_hip", "right_hip"))


class Phase(Enum):
    WATCHING = "watching"  # nothing unusual (standing, walking, sitting, ...)
    FALLING = "falling"  # a fast descent was seen: waiting for the person to stay down
    FALLEN = "fallen"  # `fall` was sent: waiting for them to stand up (or a reset)


@dataclass(frozen=True, slots=True)
class _Sample:
    t: float
    hip_y: float
    tilt: float
    torso: float  # the standing torso length at the time
    standing: bool


@dataclass(slots=True)
class _Descent:
    started: float  # scene time of the last standing sample before it
    drop: float  # body-size units
    turn: float  # degrees
    score: float  # mean keypoint score of the torso when it was seen


class FallDetector:
    """One person's fall state machine; :meth:`update` once per frame with their body (None
    when not measurable) on scene time."""

    def __init__(self, cfg: FallConfig) -> None:
        self.cfg = cfg
        self.phase = Phase.WATCHING
        self.upright_torso = 0.0  # body-size unit: 0 until the person was seen standing
        self.standing_hip_y = 0.0
        self._recent: deque[_Sample] = deque()
        self._descent: _Descent | None = None
        self._down_since: float | None = None
        self._last_down: float | None = None
        self._standing_since: float | None = None
        self._fell_at = 0.0

    @property
    def fallen(self) -> bool:
        return self.phase is Phase.FALLEN

    def update(self, body: Body | None, t: float, lying_ok: bool) -> list[Event]:
        """One frame at scene time ``t``; ``lying_ok``: the person is in a zone where lying is
        normal (a bed), where nothing counts as a fall. The events this frame caused."""
        if body is None:
            return self._unseen(t)
        cfg = self.cfg
        standing = body.standing(cfg.upright_deg)
        if standing:
            if self.upright_torso <= 0:
                self.upright_torso = body.torso
            else:
                self.upright_torso += _TORSO_FOLLOW * (body.torso - self.upright_torso)
            self.standing_hip_y = body.hip_y
        if self.upright_torso <= 0:
            return []  # no body-size unit yet: a fall needs someone first seen standing
        tilt = body.tilt_deg(self.upright_torso)
        sample = _Sample(t, body.hip_y, tilt, self.upright_torso, standing)
        recent = self._recent
        recent.append(sample)
        while recent and t - recent[0].t > cfg.window_s:
            recent.popleft()
        if self.phase is Phase.WATCHING:
            self._watch(sample, body, lying_ok)
        elif self.phase is Phase.FALLING:
            return self._confirm(sample, body, lying_ok)
        else:
            return self._recover(sample)
        return []

    def reach(self) -> tuple[float, float, float]:
        """How close the latest frame comes to a descent: the drop (body-size units) and turn
        (degrees) since the standing moment within the window that comes closest, and that
        closeness (the smaller of drop / min_drop and turn / min_turn_deg; 1: a descent).
        ``benchmarks/fall_margins.py`` reports it for everyday movements and real clips."""
        if not self._recent or self._recent[-1].standing:
            return 0.0, 0.0, 0.0
        now, cfg = self._recent[-1], self.cfg
        best = (0.0, 0.0, 0.0)
        for before in self._recent:
            if before.standing:
                drop = (now.hip_y - before.hip_y) / before.torso
                turn = now.tilt - before.tilt
                closeness = min(drop / cfg.min_drop, turn / cfg.min_turn_deg)
                if closeness > best[2]:
                    best = (drop, turn, closeness)
        return best

    def reset(self) -> list[Event]:
        """The ``reset_fall`` command: the fall is over as far as anyone cares."""
        if self.phase is not Phase.FALLEN:
            self._watching()
            return []
        self._watching()
        return [{"type": "fall_recovered", "reset": True}]

    def cut(self) -> None:
        """The footage jumped: a descent across the jump is no descent (a fall stays)."""
        self._recent.clear()
        if self.phase is Phase.FALLING:
            self._watching()

    # -- phases ------------------------------------------------------------------------------

    def _watch(self, now: _Sample, body: Body, lying_ok: bool) -> None:
        """Standing -> a fast descent within the window?"""
        cfg = self.cfg
        if lying_ok or now.standing:
            return
        for before in reversed(self._recent):  # the latest standing moment that qualifies
            if not before.standing:
                continue
            drop = (now.hip_y - before.hip_y) / before.torso
            turn = now.tilt - before.tilt
            if drop >= cfg.min_drop and turn >= cfg.min_turn_deg:
                score = _torso_score(body)
                self._descent = _Descent(before.t, drop, turn, score)
                self.phase = Phase.FALLING
                self._down_since = None
                return

    def _confirm(self, now: _Sample, body: Body, lying_ok: bool) -> list[Event]:
        """After a descent: down for ``confirm_s`` -> ``fall``; standing again -> nothing."""
        cfg = self.cfg
        descent = self._descent
        assert descent is not None
        if lying_ok or now.standing:
            self._watching()
            return []
        if not self._down(now, body):
            self._down_since = None
            return []
        self._last_down = now.t
        if self._down_since is None:
            self._down_since = now.t
        descent.score = max(descent.score, _torso_score(body))
        descent.drop = max(descent.drop, (now.hip_y - self.standing_hip_y) / now.torso)
        if now.t - self._down_since < cfg.confirm_s:
            return []
        self.phase = Phase.FALLEN
        self._fell_at = now.t
        self._standing_since = None
        descent_s = max(0.0, self._down_since - descent.started)
        return [
            {
                "type": "fall",
                "confidence": round(_confidence(descent, cfg), 3),
                "descent_s": round(descent_s, 2),
            }
        ]

    def _recover(self, now: _Sample) -> list[Event]:
        """Fallen: standing for ``recover_s`` -> ``fall_recovered``."""
        if not now.standing:
            self._standing_since = None
            return []
        if self._standing_since is None:
            self._standing_since = now.t
        if now.t - self._standing_since < self.cfg.recover_s:
            return []
        down_s = round(max(0.0, self._standing_since - self._fell_at), 1)
        self._watching()
        return [{"type": "fall_recovered", "down_s": down_s}]

    def _unseen(self, t: float) -> list[Event]:
        """No measurable body: a descent nobody is seen finishing is dropped (the person left
        the picture or was never whole in it); a fall stays until they stand up."""
        if self.phase is Phase.FALLING:
            last = self._last_down if self._last_down is not None else self._recent_t()
            if last is None or t - last > self.cfg.confirm_s:
                self._watching()
        return []

    def _down(self, now: _Sample, body: Body) -> bool:
        """On the floor: lying (turned far, across the picture unless the torso turned away
        from the camera, and the hips down by the ankles, not above them as in a crouch), or
        the hips far below where they were while standing."""
        cfg = self.cfg
        across = body.wide or body.lean_deg < cfg.upright_deg
        hips_down = body.legs is None or body.legs < _LYING_LEGS * now.torso
        lying = now.tilt >= cfg.lying_deg and across and hips_down
        low = (now.hip_y - self.standing_hip_y) / now.torso >= cfg.low_drop
        return lying or (low and now.tilt >= cfg.upright_deg)

    def _recent_t(self) -> float | None:
        return self._recent[-1].t if self._recent else None

    def _watching(self) -> None:
        self.phase = Phase.WATCHING
        self._descent = None
        self._down_since = self._last_down = self._standing_since = None


def _torso_score(body: Body) -> float:
    """The mean score of the shoulders and hips: how sure the model was of the torso."""
    scores = [body.points[i][2] for i in _TORSO]
    seen = [s for s in scores if s > SEEN]
    return sum(seen) / len(seen) if seen else 0.0


def _confidence(descent: _Descent, cfg: FallConfig) -> float:
    """0..1: how clear the descent was (twice the thresholds or more counts fully) times how
    sure the model was of the torso."""
    drop = min(1.0, descent.drop / (2 * cfg.min_drop))
    turn = min(1.0, descent.turn / (2 * cfg.min_turn_deg))
    return descent.score * (0.5 + 0.25 * drop + 0.25 * turn)
