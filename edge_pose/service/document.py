"""The status document: what a running edge-pose says about itself, as types.

One document, several views. The daemon builds it once a second (edge_pose.service.status_builder)
and hands the same object to status.json (:class:`~edge_pose.service.status.StatusWriter`),
systemd's ``STATUS=`` line (:func:`~edge_pose.service.supervisor.status_line`) and the
``<base>/stats`` message (edge_pose.mqtt.remote); `edge-pose status` reads it back from the
file for its text, its ``--json`` and the health verdict (edge_pose.service.health). None of them
builds a document of its own, so a new view (an HTTP ``/status``, Prometheus ``/metrics``) is one
more reader of :class:`StatusDocument`, not another dict to keep in step.

Decisions:

- TypedDicts, not dataclasses: every path is JSON (a file, an MQTT payload, soon an HTTP body).
  A TypedDict is a plain dict at run time, so writing is one ``json.dumps`` and reading one
  ``json.loads``, with no conversion layer and no copy, while mypy checks every key.
- Every key is optional in the types (``total=False``): a document read from a file may lack any
  of them (an older or newer writer, a crash mid-way), and the readers must say "-" rather than
  fail. The daemon's documents always carry the keys that docs/status.md lists;
  edge_pose/schemas/status.schema.json says which, and the tests check real documents against it.
- A file is another process's output: :func:`parse_document` keeps a known field only when its
  value has the declared type (a finite number, an int that is not a bool, a string, a section
  that is an object...) and leaves the field out otherwise, so a reader of the typed view uses
  ``.get()`` and never ``isinstance``. Unknown fields are kept as they are (a newer daemon may add
  optional fields within format version 1).
- `edge-pose status` shows a file as it is: ``--json`` prints the document as read, and the text
  and the verdict name what the file says (a hand-edited ``"pid": "812"`` is shown as 812, a
  ``"pose": {"person": 0}`` as no person) rather than hiding a field of another type. They read
  numbers with the same rule as the typed view (:func:`number`), sections with :func:`section`
  and the throttling value with :func:`throttled_value`, the readers of a document *as read*
  (:data:`AsRead`).
"""

from __future__ import annotations

import math
import types
from collections.abc import Mapping
from functools import cache
from typing import TypedDict, Union, cast, get_args, get_origin, get_type_hints, is_typeddict

from edge_pose.sysinfo import parse_throttled

FORMAT_VERSION = 1
STATES = ("starting", "running", "stopping", "stopped")


class CameraStatus(TypedDict, total=False):
    source: str  # as configured
    description: str  # the camera's own words
    restarts: int  # reopened after read errors (live cameras)


class ModelStatus(TypedDict, total=False):
    name: str  # catalog name or path
    input_size: int | None  # pixels; None before the model has loaded


class BackendStatus(TypedDict, total=False):
    kind: str  # cpu | edgetpu
    delegate: str | None
    runtime: str | None
    reason: str | None  # why this backend


class FpsStatus(TypedDict, total=False):
    capture: float
    processed: float


class FrameCounts(TypedDict, total=False):
    captured: int
    processed: int
    skipped: int
    with_person: int


class Percentiles(TypedDict, total=False):
    p50: float | None  # None until there are samples
    p95: float | None


class MqttStatus(TypedDict, total=False):
    enabled: bool
    broker: str  # host:port
    connected: bool
    last_publish: float | None  # wall clock
    sent: int
    dropped: int
    reconnects: int
    last_error: str | None
    since: float | None  # wall clock of the last connect or disconnect
    rate_limited: int
    events_dropped: int
    unacked: int


class PoseStatus(TypedDict, total=False):
    label: str
    confidence: float
    person: bool
    since: float  # wall clock of the last label or presence change


class RepsStatus(TypedDict, total=False):
    exercise: str
    count: int


class PersonStatus(TypedDict, total=False):
    """One person present: their track id, steady label, repetitions and safety state."""

    id: int
    label: str
    confidence: float
    since: float  # wall clock of their last label or presence change
    reps: int
    zones: list[str]  # the zones they are in (announced: zone_enter), in config order
    fallen: bool  # fell and has not got up (nor was the fall reset)
    inactive: bool  # has not moved for their inactivity time


class ZoneStatus(TypedDict, total=False):
    """A configured zone ([[zones]]) and who is in it."""

    name: str
    polygon: list[list[float]]  # [x, y] corners, fractions of the frame's width and height
    lying_ok: bool  # lying here is never a fall
    occupied: bool  # someone is in it
    people: list[int]  # the track ids of those in it, ascending


class FallStatus(TypedDict, total=False):
    """A fall that is not over: the person has not got up, nor was it reset."""

    id: int  # the person's track id
    since: float  # wall clock the daemon first saw it (within a second of the `fall` event)
    zones: list[str]  # the zones the person is (or was last) in
    present: bool  # still followed; false: the track ended while they were down


class SystemStatus(TypedDict, total=False):
    cpu_temp_c: float | None
    throttled: str | None  # vcgencmd get_throttled, "0x50005" (readers accept an int too)
    throttled_flags: list[str]


class MemoryStatus(TypedDict, total=False):
    rss_mb: float | None
    peak_rss_mb: float | None


class HttpStatus(TypedDict, total=False):
    enabled: bool
    url: str | None  # where the page is (None: off, or not bound yet)
    bind: str
    port: int | None  # the port bound (also when http.port = 0 picked one)
    auth: bool  # a password is asked
    tls: bool
    viewers: int  # MJPEG streams open
    followers: int  # event streams open


class StatusDocument(TypedDict, total=False):
    """status.json, format version :data:`FORMAT_VERSION`; docs/status.md says what each field
    means. The keys are in the order the daemon writes them."""

    v: int
    version: str
    device: str
    camera: CameraStatus
    model: ModelStatus
    backend: BackendStatus | None  # None until the model has loaded
    fps: FpsStatus
    frames: FrameCounts | None
    inference_ms: Percentiles | None
    latency_ms: Percentiles | None
    mqtt: MqttStatus | None
    pose: PoseStatus | None  # None before the pipeline runs
    reps: RepsStatus | None  # None without a repetition rule
    people: list[PersonStatus] | None  # the people present, primary first; None: not running
    fall: bool  # someone fell and has not got up (nor was the fall reset)
    falls: list[FallStatus]  # each such fall, by track id
    inactive: bool  # someone present has not moved for their inactivity time
    zones: list[ZoneStatus]  # the configured zones, in config order
    min_fps: float
    paused: bool
    events: int
    state: str  # one of STATES; another text is reported as an unknown state
    pid: int
    started: float
    updated: float
    uptime_s: float  # monotonic clock
    last_error: str | None
    system: SystemStatus
    memory: MemoryStatus
    http: HttpStatus | None  # the web view
    last_frame: float | None  # running documents only
    stall_s: float  # running documents only


# --------------------------------------------------------------------------- reading


_INVALID = object()  # what a value that does not have its declared type parses to


def parse_document(raw: Mapping[str, object]) -> StatusDocument:
    """``raw`` (a decoded JSON object) as a :class:`StatusDocument`: a new dict, in ``raw``'s key
    order, without the known fields whose values have the wrong type (nested sections alike).

    Idempotent and cheap (tens of microseconds), so a reader may parse whatever it is handed."""
    return cast(StatusDocument, _parse_object(StatusDocument, raw))


@cache
def _declared(section: type) -> dict[str, object]:
    return get_type_hints(section)


def _parse_object(section: type, raw: Mapping[str, object]) -> dict[str, object]:
    declared = _declared(section)
    parsed: dict[str, object] = {}
    for key, value in raw.items():
        kind = declared.get(key)
        if kind is None:
            parsed[key] = value  # not ours to judge
        elif (checked := _parse(kind, value)) is not _INVALID:
            parsed[key] = checked
    return parsed


def _parse(kind: object, value: object) -> object:
    if is_typeddict(kind):
        return _parse_object(cast(type, kind), value) if isinstance(value, dict) else _INVALID
    origin = get_origin(kind)
    if origin in (Union, types.UnionType):
        for member in get_args(kind):
            if (checked := _parse(member, value)) is not _INVALID:
                return checked
        return _INVALID
    if origin is list:
        (item,) = get_args(kind)
        if not isinstance(value, list):
            return _INVALID
        items = [_parse(item, v) for v in value]  # each checked as its type says (parsed)
        return _INVALID if any(v is _INVALID for v in items) else items
    if kind is type(None):
        return value if value is None else _INVALID
    if isinstance(value, bool):  # JSON true is no number
        return value if kind is bool else _INVALID
    if kind is float:
        return value if number(value) is not None else _INVALID
    return value if isinstance(kind, type) and isinstance(value, kind) else _INVALID


# --------------------------------------------------------------------------- reading as written

AsRead = Mapping[str, object]
"""A document (or a section of one) as decoded from a file: any JSON value under any key. A
:class:`StatusDocument` is one too."""


def number(value: object) -> float | None:
    """A finite int or float as float; None for anything else (bools, text, an int too large
    for a float). The typed view keeps a ``float`` field by this same rule."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return float(value) if math.isfinite(value) else None
    except OverflowError:  # an int too large for a float
        return None


def section(doc: AsRead, key: str) -> AsRead:
    """``doc[key]`` when it is an object; an empty one when it is missing or anything else."""
    value = doc.get(key)
    return cast(AsRead, value) if isinstance(value, dict) else {}


def throttled_value(value: object) -> int | None:
    """``system.throttled`` as written: the daemon's hex text (``"0x50005"``, also without
    ``0x``) or an int; None for anything else."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and "=" not in value:  # a bare number, not vcgencmd's key=value
        return parse_throttled(value)
    return None
