"""The status documents of one `edge-pose run`, built in one place from the run's parts.

The daemon asks for a document at three moments: ``starting`` (nothing loaded yet: what the
config names), ``running`` (once a second, from the live parts) and ``stopped`` (last, with the
final numbers and the MQTT client gone). :class:`StatusBuilder` keeps what it needs between them:
the last numbers, the capture counts of the last snapshots (for the capture rate) and the system
monitor. The document then goes, unchanged, to every view (edge_pose.service.document).

Decisions:

- A document is the run's numbers (camera, model, rates, MQTT, pose...) plus the process's own
  fields (state, pid, clocks, last error, CPU, memory). The numbers are kept apart, so the
  ``stopped`` document carries the last ones instead of zeros: it says how far the run got.
- What is read from the parts is typed by small Protocols (:class:`MqttCounters`,
  :class:`LabelState`, :class:`CaptureCounters`, :class:`SafetyState`), so a part may change
  its class, not this module.
- Safety (zones, falls, inactivity) is a picture of the people followed at the snapshot. The
  zones are the config's, so a document says where they are before the first frame (the web
  view draws them from it). A fall's ``since`` is when the first snapshot saw it: the detector
  works on scene time, and the daemon's wall clock of a frame is that snapshot's second.
- Building runs once a second on the pipeline's thread (two percentiles, one sysfs and one
  /proc read), never per frame.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING, Protocol

from edge_pose import __version__
from edge_pose.service.document import (
    FORMAT_VERSION,
    FallStatus,
    HttpStatus,
    MqttStatus,
    Percentiles,
    PersonStatus,
    StatusDocument,
    ZoneStatus,
)
from edge_pose.stats import Ring
from edge_pose.sysinfo import SystemMonitor, process_memory_mb

if TYPE_CHECKING:
    from edge_pose.camera.base import Camera
    from edge_pose.config import Config, HttpConfig, MqttConfig
    from edge_pose.config.schema import ZoneConfig
    from edge_pose.inference.backend import Backend
    from edge_pose.stats import PipelineStats

CAPTURE_RATE_SNAPSHOTS = 8  # the capture rate spans the last this many snapshots (~8 s)


class MqttCounters(Protocol):
    """What the document shows of the MQTT client (edge_pose.mqtt.MqttPublisher)."""

    last_publish: float | None
    sent: int
    dropped: int
    reconnects: int
    last_error: str | None
    since: float | None
    rate_limited: int
    events_dropped: int

    @property
    def unacked(self) -> int: ...

    @property
    def responsive(self) -> bool: ...  # connected, and the broker answers


class LabelState(Protocol):
    """The steady pose label and repetitions (edge_pose.classify.events.PoseState)."""

    label: str
    confidence: float
    person: bool
    since: float
    reps: int


class ZoneMembership(Protocol):
    """The zones one person is in (edge_pose.safety.zones.ZoneWatch)."""

    inside: list[str]  # announced, in config order


class PersonSafety(Protocol):
    """One person's zones, fall and inactivity (edge_pose.safety.watch.SafetyWatch)."""

    @property
    def zones(self) -> ZoneMembership: ...
    @property
    def fallen(self) -> bool: ...
    @property
    def inactive(self) -> bool: ...


class Followed(Protocol):
    """One person's track (edge_pose.track.PersonTrack): their safety state, if watched."""

    @property
    def safety(self) -> PersonSafety | None: ...


class SafetyState(Protocol):
    """Zones, falls and inactivity of everyone followed (edge_pose.track.Temporal)."""

    @property
    def people(self) -> Mapping[int, Followed]: ...
    @property
    def fallen_gone(self) -> AbstractSet[int]: ...  # fell, then their track ended

    def fall(self) -> bool: ...
    def inactive(self) -> bool: ...
    def occupied_zones(self) -> list[str]: ...


class CaptureCounters(Protocol):
    """The capture side of a run (edge_pose.camera.grabber.FrameGrabber)."""

    camera: Camera
    captured: int
    skipped: int


def mqtt_status(cfg: MqttConfig, client: MqttCounters | None) -> MqttStatus:
    """The ``mqtt`` section: the client's counters, or zeros while there is none."""
    counters = client or _NO_CLIENT
    return {
        "enabled": cfg.enabled,
        "broker": f"{cfg.host}:{cfg.port}",
        "connected": counters.responsive,  # a silent broker is no connection
        "last_publish": counters.last_publish,
        "sent": counters.sent,
        "dropped": counters.dropped,
        "reconnects": counters.reconnects,
        "last_error": counters.last_error,
        "since": counters.since,
        "rate_limited": counters.rate_limited,
        "events_dropped": counters.events_dropped,
        "unacked": counters.unacked,
    }


class _NoClient:
    """The counters of an MQTT client that does not exist (MQTT off, or not connected yet)."""

    last_publish: float | None = None
    sent = dropped = reconnects = rate_limited = events_dropped = unacked = 0
    last_error: str | None = None
    since: float | None = None
    responsive = False


_NO_CLIENT = _NoClient()


def percentiles(ring: Ring) -> Percentiles:
    """p50 and p95 of the recent samples in ms, rounded; None while there are none."""
    p50, p95 = ring.percentile(50), ring.percentile(95)
    return {
        "p50": None if p50 is None else round(p50, 2),
        "p95": None if p95 is None else round(p95, 2),
    }


class WebCounters(Protocol):
    """What the document shows of the web server (edge_pose.web.server.WebServer)."""

    @property
    def port(self) -> int | None: ...
    @property
    def url(self) -> str | None: ...
    @property
    def viewers(self) -> int: ...
    @property
    def followers(self) -> int: ...


def http_status(cfg: HttpConfig, server: WebCounters | None) -> HttpStatus:
    """The ``http`` section: where the page is and who watches; no URL while none serves."""
    return {
        "enabled": cfg.enabled,
        "url": None if server is None else server.url,
        "bind": cfg.bind,
        "port": None if server is None else server.port,
        "auth": bool(cfg.password_file),
        "tls": bool(cfg.certfile),
        "viewers": 0 if server is None else server.viewers,
        "followers": 0 if server is None else server.followers,
    }


class StatusBuilder:
    """The status documents of one run (see the module doc); created when the run starts."""

    def __init__(self) -> None:
        self._started = time.time()
        self._started_mono = time.monotonic()
        self._system = SystemMonitor()
        self._capture_times = Ring(CAPTURE_RATE_SNAPSHOTS)
        self._capture_counts = Ring(CAPTURE_RATE_SNAPSHOTS)
        self._numbers: StatusDocument | None = None  # of the last snapshot
        self._falls: dict[int, FallStatus] = {}  # the falls not over, by track id
        self.web: WebCounters | None = None  # the web server, while one serves

    def document(self, state: str, cfg: Config, last_error: str | None) -> StatusDocument:
        """The document in ``state``: the last snapshot's numbers (before the first, what
        ``cfg`` names) and the process's fields as of now."""
        doc = self._numbers.copy() if self._numbers is not None else _configured(cfg)
        doc["state"] = state
        doc["pid"] = os.getpid()
        doc["started"] = self._started
        doc["updated"] = time.time()
        doc["uptime_s"] = round(time.monotonic() - self._started_mono, 1)
        doc["last_error"] = last_error
        doc["system"] = self._system.sample()
        memory = process_memory_mb()
        doc["memory"] = {"rss_mb": memory["rss_mb"], "peak_rss_mb": memory["peak_rss_mb"]}
        doc["http"] = http_status(cfg.http, self.web)
        return doc

    def running(
        self,
        cfg: Config,
        *,
        model_name: str,
        input_size: int,
        backend: Backend,
        capture: CaptureCounters,
        stats: PipelineStats,
        labels: LabelState | None,
        people: Sequence[tuple[int, LabelState]] | None,
        mqtt: MqttCounters | None,
        paused: bool,
        events: int,
        last_error: str | None,
        safety: SafetyState | None = None,
    ) -> StatusDocument:
        """The ``running`` document from the live parts (``labels``, the primary person's, and
        ``people``, everyone present by track id, are None when nobody is followed; ``mqtt`` is
        None without a client; ``safety``, the people followed, None: nobody watched); its
        numbers are kept for the next documents."""
        tracks: Mapping[int, Followed] = {} if safety is None else safety.people
        self._numbers = {
            "v": FORMAT_VERSION,
            "version": __version__,
            "device": cfg.device.id,
            "camera": {
                "source": cfg.camera.source,
                "description": capture.camera.description,
                # only a live camera that can be reopened counts restarts
                "restarts": getattr(capture.camera, "restarts", 0),
            },
            "model": {"name": model_name, "input_size": input_size},
            "backend": {
                "kind": backend.kind,
                "delegate": backend.delegate,
                "runtime": backend.runtime,
                "reason": backend.reason,
            },
            "fps": {
                "capture": round(self._capture_rate(capture.captured), 2),
                "processed": round(stats.fps(), 2),
            },
            "frames": {
                "captured": capture.captured,
                "processed": stats.processed,
                "skipped": capture.skipped,
                "with_person": stats.with_person,
            },
            "inference_ms": percentiles(stats.invoke_ms),
            "latency_ms": percentiles(stats.latency_ms),
            "mqtt": mqtt_status(cfg.mqtt, mqtt),
            "pose": None
            if labels is None
            else {
                "label": labels.label,
                "confidence": round(labels.confidence, 3),
                "person": labels.person,
                "since": labels.since,
            },
            "reps": None
            if labels is None or not cfg.classifier.rep_up
            else {"exercise": cfg.classifier.rep_name, "count": labels.reps},
            "people": None
            if people is None
            else [_person(person_id, state, tracks.get(person_id)) for person_id, state in people],
            "fall": False if safety is None else safety.fall(),
            "falls": self._fall_list(safety),
            "inactive": False if safety is None else safety.inactive(),
            "zones": zones_status(
                cfg.zones, tracks, () if safety is None else safety.occupied_zones()
            ),
            "min_fps": cfg.status.min_fps,
            "paused": paused,
            "events": events,
        }
        return self.document("running", cfg, last_error)

    def _fall_list(self, safety: SafetyState | None) -> list[FallStatus]:
        """The falls not over, by track id: when each was first seen, and where."""
        if safety is None:
            return []
        now = time.time()
        down = {
            person_id: track.safety for person_id, track in safety.people.items()
            if track.safety is not None and track.safety.fallen
        }  # fmt: skip
        falls: dict[int, FallStatus] = {}
        for person_id in sorted(down.keys() | safety.fallen_gone):
            before = self._falls.get(person_id)
            watch = down.get(person_id)
            zones = list(watch.zones.inside) if watch is not None else []
            if not zones and before is not None:
                zones = before.get("zones", [])  # gone, or out of every zone: where they were
            falls[person_id] = {
                "id": person_id,
                "since": now if before is None else before.get("since", now),
                "zones": zones,
                "present": watch is not None,
            }
        self._falls = falls
        return list(falls.values())

    def mqtt_stopped(self, cfg: MqttConfig, client: MqttCounters) -> None:
        """The MQTT client has stopped: the next document says so (disconnected now)."""
        if self._numbers is not None:
            self._numbers["mqtt"] = mqtt_status(cfg, client)

    def _capture_rate(self, captured: int) -> float:
        """Frames per second the camera delivered over the last snapshots."""
        self._capture_times.add(time.monotonic())
        self._capture_counts.add(captured)
        times, counts = self._capture_times.values(), self._capture_counts.values()
        span = float(times.max() - times.min())
        return float(counts.max() - counts.min()) / span if span > 0 else 0.0


def _person(person_id: int, state: LabelState, track: Followed | None) -> PersonStatus:
    """One person present: their steady label and reps, their zones, fall and inactivity."""
    watch = None if track is None else track.safety
    return {
        "id": person_id,
        "label": state.label,
        "confidence": round(state.confidence, 3),
        "since": state.since,
        "reps": state.reps,
        "zones": [] if watch is None else list(watch.zones.inside),
        "fallen": watch is not None and watch.fallen,
        "inactive": watch is not None and watch.inactive,
    }


def zones_status(
    zones: Sequence[ZoneConfig], tracks: Mapping[int, Followed], occupied: Sequence[str] = ()
) -> list[ZoneStatus]:
    """The ``zones`` section: each configured zone, whether someone is in it (``occupied``,
    the names the pose message says) and the track ids of those in it."""
    inside: dict[str, list[int]] = {}
    for person_id, track in sorted(tracks.items()):
        if track.safety is not None:
            for name in track.safety.zones.inside:
                inside.setdefault(name, []).append(person_id)
    return [
        {
            "name": zone.name,
            "polygon": [[x, y] for x, y in zone.polygon],
            "lying_ok": zone.lying_ok,
            "occupied": zone.name in occupied or zone.name in inside,
            "people": inside.get(zone.name, []),
        }
        for zone in zones
    ]


def _configured(cfg: Config) -> StatusDocument:
    """The numbers before the first snapshot: what the config names, nothing measured."""
    return {
        "v": FORMAT_VERSION,
        "version": __version__,
        "device": cfg.device.id,
        "camera": {"source": cfg.camera.source, "description": ""},
        "model": {"name": cfg.model.name, "input_size": None},
        "backend": None,
        "fps": {"capture": 0.0, "processed": 0.0},
        "frames": None,
        "inference_ms": None,
        "latency_ms": None,
        "mqtt": None,
        "pose": None,
        "reps": None,
        "people": None,
        "fall": False,
        "falls": [],
        "inactive": False,
        "zones": zones_status(cfg.zones, {}),
        "min_fps": cfg.status.min_fps,
    }
