"""Prometheus metrics for ``/metrics``: the status document and two histograms, in the text format.

As Frigate's ``stats/prometheus.py`` does, most numbers are not kept twice: at scrape time a
collector reads the status document the daemon already builds once a second (the same
numbers `edge-pose status` and ``/api/status`` show) and writes it as metric families. Only
what a document cannot say is recorded per frame: the distribution of inference time and of
capture -> publish latency, as histograms (the document holds percentiles of a recent window,
which cannot be aggregated over time or devices; histogram buckets can).

Decisions:

- A private :class:`~prometheus_client.CollectorRegistry`, not the global one: two daemons in
  one process (the tests) each scrape their own, and nothing a library registers globally
  appears by surprise. The process collector (CPU seconds, resident memory, open fds, start
  time) and the Python platform collector are added to it: standard names a dashboard knows.
- Names and units by Prometheus conventions: the ``edge_pose_`` prefix, base units (seconds,
  bytes, celsius), ``_total`` on counters, ``_info`` for labels worth joining on. Label values
  come from small fixed sets (``result``, ``stage``, ``flag``) or from the configuration
  (pose label, exercise, model), never from a frame.
- Counters come from the document's counts since the pipeline (re)started: a reload starts them
  from 0 again, which Prometheus' ``rate()`` reads as a counter reset.
- A document field that is missing or not a number is left out, never written as 0: a
  dashboard shows a gap, not a false reading.
- Per frame, :meth:`Metrics.observe` costs two histogram observations (a lock and a bucket
  search each, a few microseconds); it runs on the pipeline thread after the frame's numbers
  are taken (the web sink is untimed). Falls are counted there too, from the frame's events
  (a fall can begin and end between two documents; an event is never missed).
- Zone names are label values from the configuration (1-32 letters, digits, spaces, ``_``,
  ``-``); prometheus_client escapes them all the same, and a name seen twice in a document is
  written once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from edge_pose import __version__
from edge_pose.service.document import AsRead, StatusDocument, number, section, throttled_value
from edge_pose.sinks.base import FrameResult
from edge_pose.sysinfo import THROTTLE_BITS

CONTENT_TYPE = CONTENT_TYPE_LATEST
# No ``*_created`` series: in the text format each would be one more gauge per counter and
# histogram, which Prometheus stores and nobody queries (process-wide; edge-pose is the only
# user of prometheus_client in its process).
disable_created_metrics()
PREFIX = "edge_pose"
MIB = 1024 * 1024

# Invoke time: a Pi 5 runs Lightning in ~5 ms, a Pi 4 in ~15-25 ms, Thunder takes 40-120 ms.
INFERENCE_BUCKETS = (0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5)
# Capture -> publish: one frame's processing at best, a camera stall at worst.
LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0)


class Metrics:
    """The metrics of one daemon: histograms fed per frame, the rest read at scrape time."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.inference = Histogram(
            f"{PREFIX}_inference_seconds",
            "Time the model took per frame (invoke only: the number status calls inference).",
            buckets=INFERENCE_BUCKETS,
            registry=self.registry,
        )
        self.latency = Histogram(
            f"{PREFIX}_latency_seconds",
            "Time from a frame's capture until its keypoints were published.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.falls = Counter(
            f"{PREFIX}_falls",
            "Falls detected (fall events) since the daemon started.",
            registry=self.registry,
        )
        self._document = _DocumentCollector()
        self.registry.register(self._document)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self._render = threading.Lock()  # one scrape at a time sees its own document

    def observe(self, result: FrameResult) -> None:
        """A processed frame (pipeline thread)."""
        self.inference.observe(result.stage_ns[2] / 1e9)
        self.latency.observe(result.latency_ms() / 1e3)
        for event in result.events:  # usually none
            if event.get("type") == "fall":
                self.falls.inc()

    def render(self, doc: StatusDocument | None) -> bytes:
        """The text exposition of everything, with ``doc`` (None before the first document)."""
        with self._render:
            self._document.doc = doc or {}
            try:
                return generate_latest(self.registry)
            finally:
                self._document.doc = {}


class _DocumentCollector(Collector):
    """The status document as metric families (built anew at every scrape)."""

    def __init__(self) -> None:
        self.doc: AsRead = {}

    def describe(self) -> list[Metric]:
        return []  # families depend on the document: none are declared ahead

    def collect(self) -> Iterator[Metric]:
        doc = self.doc
        yield _build_info(doc)
        mqtt = section(doc, "mqtt").get("enabled") is True  # MQTT off: no "disconnected" alarm
        for family in VALUES:
            if mqtt or not family.name.startswith("mqtt_"):
                yield from family.read(doc)
        yield from _frames(doc)
        yield from _pose_and_reps(doc)
        yield from _zones(doc)
        yield from _throttled(doc)


@dataclass(frozen=True, slots=True)
class _Family:
    """A metric family whose samples are numbers of the document, one per label value (a
    single sample with ``label`` empty): ``where`` maps the label value to the document path."""

    name: str
    kind: str  # gauge | counter | flag (a bool written as 0/1)
    text: str
    where: dict[str, tuple[str, ...]]
    label: str = ""
    scale: float = 1.0

    def read(self, doc: AsRead) -> Iterator[Metric]:
        labels = [self.label] if self.label else []
        make = CounterMetricFamily if self.kind == "counter" else GaugeMetricFamily
        family = make(f"{PREFIX}_{self.name}", self.text, labels=labels)
        for value, path in self.where.items():
            raw = _at(doc, path)
            if self.kind == "flag":
                found = float(raw) if isinstance(raw, bool) else None
            else:
                found = number(raw)
            if found is not None and (self.kind != "counter" or found >= 0):
                family.add_metric([value] if self.label else [], found * self.scale)
        if family.samples:
            yield family


def _at(doc: AsRead, path: tuple[str, ...]) -> object:
    for key in path[:-1]:
        doc = section(doc, key)
    return doc.get(path[-1])


def _one(name: str, kind: str, text: str, *path: str, scale: float = 1.0) -> _Family:
    return _Family(name, kind, text, {"": path}, scale=scale)


VALUES = (
    _one("start_time_seconds", "gauge", "When the daemon started (Unix time).", "started"),
    _one("paused", "flag", "1 while paused by an MQTT command.", "paused"),
    _one("last_frame_timestamp_seconds", "gauge", "When the last frame was taken (Unix time).",
         "last_frame"),
    _one("stall_limit_seconds", "gauge", "Seconds without a frame after which the daemon "
         "counts as stalled (a setting: compare the last frame's timestamp with it).",
         "stall_s"),
    _one("camera_restarts_total", "counter", "Times a live camera was reopened after errors.",
         "camera", "restarts"),
    _Family("frames_per_second", "gauge", "Frame rate over the last seconds, by stage.",
            {"capture": ("fps", "capture"), "processed": ("fps", "processed")}, label="stage"),
    _one("events_total", "counter", "Pose, presence and rep events since the pipeline started.",
         "events"),
    _one("person_present", "flag", "1 while a person is in view (steady, debounced).",
         "pose", "person"),
    _one("pose_confidence_ratio", "gauge", "Confidence of the steady pose label (0-1).",
         "pose", "confidence"),
    _one("pose_changed_timestamp_seconds", "gauge",
         "When the pose label or presence last changed (Unix time).", "pose", "since"),
    _one("fall", "flag", "1 while someone who fell has not got up (nor was it reset).",
         "fall"),
    _one("inactive", "flag", "1 while someone present has not moved for their inactivity "
         "time.", "inactive"),
    _one("mqtt_connected", "flag", "1 while connected to the broker.", "mqtt", "connected"),
    _Family("mqtt_messages", "counter", "MQTT messages by result: sent, dropped (queue full or "
            "offline), rate_limited (keypoints left out by keypoints_max_rate).",
            {r: ("mqtt", r) for r in ("sent", "dropped", "rate_limited")}, label="result"),
    _one("mqtt_events_dropped_total", "counter", "Events given up because the queue was full.",
         "mqtt", "events_dropped"),
    _one("mqtt_reconnects_total", "counter", "Reconnections to the broker.", "mqtt",
         "reconnects"),
    _one("mqtt_unacked_messages", "gauge",
         "QoS 1 messages waiting for the broker's acknowledgement.", "mqtt", "unacked"),
    _one("mqtt_last_publish_timestamp_seconds", "gauge",
         "When a message was last published (Unix time).", "mqtt", "last_publish"),
    _one("cpu_temperature_celsius", "gauge", "CPU temperature.", "system", "cpu_temp_c"),
    _one("peak_resident_memory_bytes", "gauge", "Peak resident memory of the daemon.",
         "memory", "peak_rss_mb", scale=MIB),
    _one("http_viewers", "gauge", "Live streams (MJPEG) being watched.", "http", "viewers"),
    _one("http_followers", "gauge", "Event streams (/api/events) open.", "http", "followers"),
)  # fmt: skip


def _text(value: object) -> str:
    """A label value: text as it is, anything else empty. Text read with ``surrogateescape``
    (a file name in another encoding) is made encodable, so one odd name cannot fail a scrape."""
    if not isinstance(value, str):
        return ""
    try:
        value.encode()
    except UnicodeEncodeError:
        return value.encode("utf-8", "replace").decode()
    return value


def _build_info(doc: AsRead) -> Metric:
    model, backend = section(doc, "model"), section(doc, "backend")
    info = InfoMetricFamily(f"{PREFIX}_build", "The running edge-pose: version, model, backend.")
    info.add_metric([], {
        "version": _text(doc.get("version")) or __version__,
        "device": _text(doc.get("device")),
        "model": _text(model.get("name")),
        "backend": _text(backend.get("kind")),
        "runtime": _text(backend.get("runtime")),
    })  # fmt: skip
    return info


def _frames(doc: AsRead) -> Iterator[Metric]:
    frames = section(doc, "frames")
    processed, person = number(frames.get("processed")), number(frames.get("with_person"))
    skipped = number(frames.get("skipped"))
    family = CounterMetricFamily(
        f"{PREFIX}_frames",
        "Frames since the pipeline started, by result: processed with a person, processed "
        "with nobody, or skipped (the camera was faster than the model).",
        labels=["result"],
    )
    if processed is not None and person is not None and 0 <= person <= processed:
        family.add_metric(["person"], person)
        family.add_metric(["nobody"], processed - person)
    if skipped is not None and skipped >= 0:
        family.add_metric(["skipped"], skipped)
    if family.samples:
        yield family


def _pose_and_reps(doc: AsRead) -> Iterator[Metric]:
    if isinstance(label := section(doc, "pose").get("label"), str):
        info = InfoMetricFamily(f"{PREFIX}_pose", "The steady pose label.")
        info.add_metric([], {"label": label})
        yield info
    if isinstance(people := doc.get("people"), list):
        present = GaugeMetricFamily(
            f"{PREFIX}_people", "People present (steady, debounced): 0 or 1 with a single-pose "
            "model, up to 6 with MultiPose.",
        )  # fmt: skip
        present.add_metric([], float(len(people)))
        yield present
    reps = section(doc, "reps")
    if (count := number(reps.get("count"))) is not None:
        family = GaugeMetricFamily(
            f"{PREFIX}_reps",
            "Repetitions counted (a reset command sets it back to 0).",
            labels=["exercise"],
        )
        family.add_metric([_text(reps.get("exercise"))], count)
        yield family


def _zones(doc: AsRead) -> Iterator[Metric]:
    zones = doc.get("zones")
    if not isinstance(zones, list):
        return
    family = GaugeMetricFamily(
        f"{PREFIX}_zone_occupied", "1 while someone is in the zone, else 0.", labels=["zone"]
    )
    seen: set[str] = set()
    for zone in zones:
        if not isinstance(zone, dict):
            continue
        name, occupied = zone.get("name"), zone.get("occupied")
        if isinstance(name, str) and name and isinstance(occupied, bool):
            label = _text(name)
            if label not in seen:
                seen.add(label)
                family.add_metric([label], float(occupied))
    if family.samples:
        yield family


def _throttled(doc: AsRead) -> Iterator[Metric]:
    bits = throttled_value(section(doc, "system").get("throttled"))
    if bits is None or bits < 0:  # not the firmware's unsigned flags
        return
    family = GaugeMetricFamily(
        f"{PREFIX}_throttled",
        "The Pi firmware's throttling flags (vcgencmd get_throttled), 1 when set; the "
        "*-occurred flags stay set until reboot.",
        labels=["flag"],
    )
    for bit, name in THROTTLE_BITS.items():
        family.add_metric([name], float(bits >> bit & 1))
    yield family
