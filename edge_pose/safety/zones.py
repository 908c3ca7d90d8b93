"""Zones: which named parts of the picture a person is in, with ``zone_enter``/``zone_leave``.

A person is in a zone by where they stand: the midpoint of the ankles, or of the hips when the
ankles are not both seen (someone in bed, or cut by the frame's edge). The point is taken in
fractions of the frame, as the zones are written, so a change of resolution keeps them.
Membership must hold for ``events.zone_dwell_s`` before it is announced, so a person standing
on a border, or one odd frame, does not flap the zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from edge_pose.classify.events import Event
from edge_pose.safety.body import Body
from edge_pose.safety.geometry import Point, contains

if TYPE_CHECKING:
    from edge_pose.config.schema import ZoneConfig


@dataclass(frozen=True, slots=True)
class Zone:
    """A zone as the detectors use it."""

    name: str
    corners: tuple[Point, ...]
    lying_ok: bool
    inactive_after_s: float | None

    @classmethod
    def from_config(cls, cfg: ZoneConfig) -> Zone:
        return cls(cfg.name, cfg.polygon, cfg.lying_ok, cfg.inactive_after_s)

    def holds(self, x: float, y: float) -> bool:
        """Whether the point (fractions of the frame) is inside."""
        return contains(self.corners, x, y)


class ZoneWatch:
    """One person's zones: those announced (``inside``) and the change waiting for its dwell."""

    def __init__(self, zones: tuple[Zone, ...], dwell_s: float) -> None:
        self.zones = zones
        self.dwell_s = dwell_s
        self.inside: list[str] = []  # announced, in config order
        self._changing: dict[str, float] = {}  # zone -> since when it has looked otherwise
        self._here: set[str] = set()  # the zones the last measured frame put the person in

    def update(self, body: Body | None, width: int, height: int, t: float) -> list[Event]:
        """One frame at scene time ``t``; ``body`` None: the person is not seen, which changes
        nothing (leaving the picture ends the track, :meth:`leave_all`)."""
        if body is None or not self.zones:
            return []
        x, y = body.foot_x / width, body.foot_y / height
        events: list[Event] = []
        self._here = {zone.name for zone in self.zones if zone.holds(x, y)}
        for zone in self.zones:
            now_in = zone.name in self._here
            was_in = zone.name in self.inside
            if now_in == was_in:
                self._changing.pop(zone.name, None)
                continue
            since = self._changing.setdefault(zone.name, t)
            if t - since < self.dwell_s:
                continue
            del self._changing[zone.name]
            if now_in:
                self.inside.append(zone.name)
                self.inside.sort(key=self._order)
                events.append({"type": "zone_enter", "zone": zone.name})
            else:
                self.inside.remove(zone.name)
                events.append({"type": "zone_leave", "zone": zone.name})
        return events

    def leave_all(self) -> list[Event]:
        """The person is gone: ``zone_leave`` for every zone they were in."""
        events: list[Event] = [{"type": "zone_leave", "zone": name} for name in self.inside]
        self.inside = []
        self._changing.clear()
        self._here = set()
        return events

    def lying_ok(self) -> bool:
        """The person is in a zone where lying is normal: announced, or in it by the last
        frame already (someone lying down on a bed is there before the dwell time is up)."""
        return any(
            zone.lying_ok and (zone.name in self.inside or zone.name in self._here)
            for zone in self.zones
        )

    def first(self) -> str | None:
        """The first zone the person is in (config order), for an event's ``zone``."""
        return self.inside[0] if self.inside else None

    def inactive_after_s(self, default: float) -> float:
        """How long without moving is ``inactive`` here: the shortest override of the zones the
        person is in that set one (0: never), else ``default``."""
        overrides = [
            zone.inactive_after_s for zone in self.zones
            if zone.inactive_after_s is not None and zone.name in self.inside
        ]  # fmt: skip
        return min(overrides) if overrides else default

    def _order(self, name: str) -> int:
        return next(i for i, zone in enumerate(self.zones) if zone.name == name)
