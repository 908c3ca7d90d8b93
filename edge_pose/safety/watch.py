"""The safety events of one person: zones, falls and inactivity, from one body measure a frame.

:class:`SafetyWatch` is the part of a person's track (:class:`~edge_pose.track.PersonTrack`)
that the three detectors share: the body is measured once per frame from the smoothed
keypoints, the zones decide where the person is (which the fall detector needs for
``lying_ok`` and inactivity for its per-zone time), and each event says which zone it happened
in. Events, not labels: a fall is something that happened, with a time and a picture.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edge_pose.classify.events import Event
from edge_pose.safety.body import measure
from edge_pose.safety.falls import FallDetector
from edge_pose.safety.inactivity import InactivityWatch
from edge_pose.safety.zones import Zone, ZoneWatch

if TYPE_CHECKING:
    from edge_pose.config.schema import EventsConfig, ZoneConfig


def zones_of(configs: tuple[ZoneConfig, ...]) -> tuple[Zone, ...]:
    return tuple(Zone.from_config(zone) for zone in configs)


class SafetyWatch:
    """Zones, fall and inactivity of one person."""

    def __init__(self, cfg: EventsConfig, zones: tuple[Zone, ...]) -> None:
        self.cfg = cfg
        self.zones = ZoneWatch(zones, cfg.zone_dwell_s)
        self.falls = FallDetector(cfg.fall) if cfg.fall.enabled else None
        self.stillness = InactivityWatch(cfg.inactivity) if cfg.inactivity.enabled else None

    @property
    def fallen(self) -> bool:
        return self.falls is not None and self.falls.fallen

    @property
    def inactive(self) -> bool:
        return self.stillness is not None and self.stillness.inactive

    def update(
        self, keypoints: np.ndarray | None, person: bool, width: int, height: int, t: float
    ) -> list[Event]:
        """One frame of this person (smoothed ``keypoints``; ``person`` False or no keypoints:
        not seen) at scene time ``t``; the events it caused."""
        body = measure(keypoints) if person and keypoints is not None else None
        events = self.zones.update(body, width, height, t)
        zone = self.zones.first()
        if self.falls is not None:
            for event in self.falls.update(body, t, self.zones.lying_ok()):
                if event["type"] == "fall" and zone is not None:
                    event["zone"] = zone
                events.append(event)
        if self.stillness is not None:
            after_s = self.zones.inactive_after_s(self.cfg.inactivity.after_s)
            events += self.stillness.update(body, t, after_s, zone)
        return events

    def reset_fall(self) -> list[Event]:
        """The ``reset_fall`` command."""
        return [] if self.falls is None else self.falls.reset()

    def cut(self) -> None:
        """The footage jumped: no descent spans it."""
        if self.falls is not None:
            self.falls.cut()

    def end(self) -> list[Event]:
        """The person is gone: they leave their zones and are no longer inactive (a fall is
        the caller's to keep: it stays until someone resets it)."""
        events = self.zones.leave_all()
        if self.stillness is not None:
            events += self.stillness.end()
        return events
