"""Home Assistant MQTT discovery: the whole device in one retained message.

Home Assistant's device-based discovery reads ``<discovery_prefix>/device/<object id>/config``:
a JSON object with ``device``, ``origin``, shared options (availability, QoS) and ``components``,
one entry per entity, each naming its ``platform``. This module builds that message from the
topics edge-pose already publishes, so no extra state messages are needed:

====================  ============================================  ===========================
entity                platform / class                              state from
====================  ============================================  ===========================
Person                binary_sensor, occupancy                      ``<base>/pose`` ``person``
People                sensor, state_class measurement               ``<base>/pose`` ``people``
Pose                  sensor, enum (options = the classifier's      ``<base>/pose`` ``label``
                      labels + ``none`` + ``uncertain``)
Repetitions           sensor, state_class total_increasing          ``<base>/event`` type rep
Pose event            event (event_types: :data:`EVENT_TYPES`)      ``<base>/event``
Fall                  binary_sensor, safety                         ``<base>/pose`` ``fall``
Inactive              binary_sensor, problem                        ``<base>/pose`` ``inactive``
Zone <name>           binary_sensor, occupancy (one per zone)       ``<base>/pose`` ``zones``
Safety event          event (event_types:                           ``<base>/event``
                      :data:`SAFETY_EVENT_TYPES`)
Reset fall            button (``{"command": "reset_fall"}``)        (sends to ``<base>/set``)
Fall snapshot         image, image/jpeg                             ``<base>/snapshot``
FPS, Inference time,  sensor, entity_category diagnostic            ``<base>/stats``
Backend
====================  ============================================  ===========================

Presence (Person, People, the presence events) is followed with or without a classifier; Pose,
Repetitions and the label events need one. The safety entities follow ``[events]`` and
``[[zones]]``: Fall and Reset fall with ``events.fall.enabled``, Fall snapshot when
``events.fall.snapshot`` too, Inactive with ``events.inactivity.enabled``, a Zone sensor per zone.
Each event entity lists only its own types and its value template renders nothing for the
others, which Home Assistant's MQTT event platform skips without a word (a type it does not list
would be a warning in its log for every such message). Inactive is a ``problem``: "on" means
someone seen has not moved for their inactivity time, which asks for a look, as a problem does.

Every entity's availability is ``<base>/availability`` (``online``/``offline``), so Home
Assistant shows the device unavailable when it stops or its last will fires. Keypoints are never
an entity state (Home Assistant drops states over 255 characters, and 30 state writes a second
would flood its recorder); every state here is a short label or a number.

A component the running config does not have (no classifier: no Pose or Repetitions; falls off:
no Fall, Reset fall or Fall snapshot) is still in the message, as ``{"platform": ...}`` alone:
Home Assistant's documented way to delete that one entity. Leaving it out is not enough (Home
Assistant keeps the entity with its last state), and because :data:`COMPONENTS` lists every fixed
component there can be, the retained message removes what any earlier run announced, across
restarts, without reading the broker. For an entity it does not know, Home Assistant ignores such
an entry.

Zones have names of the user's choosing, so no list can hold every zone sensor there ever was.
The device remembers them instead: :class:`Discovery` reads its own retained message back (the
broker hands it over on subscribing, before this run's message replaces it) and the last
message this process sent on the topic (a reload), and every zone sensor named there that the
config no longer has goes into the new message as ``{"platform": "binary_sensor"}``. Those
removals are carried on in every later message (at most :data:`MAX_ZONE_REMOVALS`, the newest),
so a Home Assistant that was away when a zone went still deletes it when it reads the retained
message. A zone sensor's unique id is the slug of its name: renaming a zone makes a new entity
(and removes the old one).

Home Assistant's birth message (``online``) comes on its own topic, ``homeassistant/status``
unless changed in its MQTT options (``mqtt.discovery_status_topic``; it does not follow the
discovery prefix). :meth:`Discovery.on_status` then publishes the config again after a random
delay of up to :data:`RESEND_DELAY_MAX_S`, so a fleet does not answer all at once.

Home Assistant shows a sensor state ``unknown`` or ``unavailable`` as "no value", so a label
spelled like that (the tracker's own ``unknown``) gets another name in the Pose options, mapped
by the value template (:data:`RESERVED_STATES`); the ``<base>/pose`` payload keeps its label.

The device links the web view (``device.configuration_url``: "Visit" on Home Assistant's device
page) when Home Assistant can open it: the web view is on and bound to more than loopback
(:func:`edge_pose.web.urls.lan_page_url`: the host's ``.local`` name for 0.0.0.0 and ``::``, an
interface's address as it is). A loopback bind, the default, leaves the link out. The only
picture that goes over MQTT is the JPEG of a confirmed fall (``<base>/snapshot``, never retained,
:mod:`edge_pose.sinks.snapshot`); Home Assistant shows the live stream as an MJPEG camera of the
web view (docs/homeassistant.md).

Keys are written in full (``device``, ``components``, ``platform``...), not abbreviated: the
message is small and sent rarely, and full names are easier to read and check.
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edge_pose import __version__
from edge_pose.classify.events import NO_PERSON, UNKNOWN
from edge_pose.wire import AVAILABILITY, EVENT, POSE, SET, SNAPSHOT, STATS

if TYPE_CHECKING:
    from edge_pose.classify.base import Classifier
    from edge_pose.config import Config
    from edge_pose.mqtt import MqttPublisher

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "homeassistant"
DEFAULT_STATUS_TOPIC = "homeassistant/status"
ONLINE = "online"
OFFLINE = "offline"
RESEND_DELAY_MAX_S = 5.0
# Home Assistant rejects entity states longer than this.
MAX_STATE_LENGTH = 255
# The `type`s of <base>/event the Pose event entity carries (commands add `error` for rejected
# commands); without a classifier there is no pose_change and no rep.
EVENT_TYPES = ("pose_change", "rep", "person_enter", "person_leave", "error")
LABEL_EVENT_TYPES = ("pose_change", "rep")
# The `type`s of <base>/event the Safety event entity carries: fall, inactivity, zones.
FALL_EVENT_TYPES = ("fall", "fall_recovered")
INACTIVITY_EVENT_TYPES = ("inactive", "active")
ZONE_EVENT_TYPES = ("zone_enter", "zone_leave")
SAFETY_EVENT_TYPES = FALL_EVENT_TYPES + INACTIVITY_EVENT_TYPES + ZONE_EVENT_TYPES
# What the Reset fall button sends to <base>/set (edge_pose/mqtt/remote.py).
RESET_FALL_PAYLOAD = '{"command": "reset_fall"}'
# Every fixed component id the device can announce, with its platform (see the module
# docstring); zone sensors (ZONE_PREFIX + a slug) come and go with the config.
COMPONENTS = {
    "person": "binary_sensor",
    "people": "sensor",
    "pose": "sensor",
    "reps": "sensor",
    "event": "event",
    "fall": "binary_sensor",
    "inactive": "binary_sensor",
    "safety_event": "event",
    "reset_fall": "button",
    "fall_snapshot": "image",
    "fps": "sensor",
    "inference": "sensor",
    "backend": "sensor",
}
ZONE_PREFIX = "zone_"
ZONE_PLATFORM = "binary_sensor"
# Zone sensors removed from the config whose removal later messages still carry (the newest).
MAX_ZONE_REMOVALS = 32
# A retained discovery message read back larger than this is not looked into (ours are < 16 KB).
MAX_READ_BACK_BYTES = 256 * 1024
# Home Assistant's own states (STATE_UNKNOWN, STATE_UNAVAILABLE) -> what such a label shows as.
RESERVED_STATES = {"unknown": "uncertain", "unavailable": "not_available"}

# What `publish(topic, payload, qos, retain)` must accept: MqttPublisher.publish_raw.
Publish = Callable[[str, str, int, bool], object]

_TOPIC_ID = re.compile(r"[A-Za-z0-9_-]+")
_ZONE_ID = re.compile(rf"{ZONE_PREFIX}[a-z0-9_]{{1,64}}")


@dataclass(frozen=True)
class Safety:
    """What the safety entities follow: the fall detector (and its snapshot), inactivity, and
    the zones' names in config order. The default has none of them."""

    fall: bool = False
    snapshot: bool = False  # only with `fall`
    inactivity: bool = False
    zones: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, cfg: Config) -> Safety:
        events = cfg.events
        return cls(
            fall=events.fall.enabled,
            snapshot=events.fall.enabled and events.fall.snapshot,
            inactivity=events.inactivity.enabled,
            zones=tuple(zone.name for zone in cfg.zones),
        )

    def event_types(self) -> list[str]:
        """The Safety event entity's types (none: no such entity)."""
        return [
            *(FALL_EVENT_TYPES if self.fall else ()),
            *(INACTIVITY_EVENT_TYPES if self.inactivity else ()),
            *(ZONE_EVENT_TYPES if self.zones else ()),
        ]


def discovery_topic(device_id: str, prefix: str = DEFAULT_PREFIX) -> str:
    """``<prefix>/device/<device_id>/config``: where the retained config lives."""
    if not _TOPIC_ID.fullmatch(device_id):
        raise ValueError(f"device id {device_id!r}: Home Assistant needs [A-Za-z0-9_-]+")
    return f"{prefix}/device/{device_id}/config"


def slug(text: str) -> str:
    """An entity id part: lower case, ``[a-z0-9_]``, no leading, trailing or double ``_``."""
    return re.sub(r"_+", "_", re.sub(r"[^a-z0-9]", "_", text.lower())).strip("_") or "edge_pose"


def zone_ids(names: Sequence[str]) -> dict[str, str]:
    """``{zone name: component id}``: ``zone_`` and the name's slug; names with the same slug
    (``Living room``, ``living-room``) are numbered in config order (``zone_living_room_2``)."""
    ids: dict[str, str] = {}
    for name in names:
        base = f"{ZONE_PREFIX}{slug(name)}"
        cid, number = base, 2
        while cid in ids.values():
            cid, number = f"{base}_{number}", number + 1
        ids[name] = cid
    return ids


def pose_labels(labels: Iterable[str]) -> list[str]:
    """Every label ``<base>/pose`` can carry: the classifier's labels, then ``none`` and
    ``unknown`` (the tracker reports those itself), without duplicates or unusable labels."""
    usable: list[str] = []
    for label in [*labels, NO_PERSON, UNKNOWN]:
        if not label or len(label) > MAX_STATE_LENGTH:
            log.warning("Home Assistant: pose label %.40r... cannot be a state; left out", label)
            continue
        if label not in usable:
            usable.append(label)
    return usable


def state_renames(labels: Sequence[str]) -> dict[str, str]:
    """``{label: state}`` for the labels Home Assistant would read as "no value": each gets its
    :data:`RESERVED_STATES` name, numbered when a label already has that name."""
    renames: dict[str, str] = {}
    for label in labels:
        if label in RESERVED_STATES:
            name, number = RESERVED_STATES[label], 2
            while name in labels or name in renames.values():
                name, number = f"{RESERVED_STATES[label]}_{number}", number + 1
            renames[label] = name
    return renames


def state_options(labels: Iterable[str]) -> list[str]:
    """The enum options of the Pose sensor: :func:`pose_labels` as Home Assistant shows them."""
    usable = pose_labels(labels)
    renames = state_renames(usable)
    return [renames.get(label, label) for label in usable]


def _pose_template(labels: Iterable[str]) -> str:
    """The Pose sensor's value template: the label, renamed where :func:`state_renames` says."""
    renames = state_renames(pose_labels(labels))
    if not renames:
        return "{{ value_json.label }}"
    # JSON strings are Jinja string literals; the names are ours, the labels reserved words.
    mapping = ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in renames.items())
    return f"{{{{ {{{mapping}}}.get(value_json.label, value_json.label) }}}}"


def _event_template(types: Sequence[str]) -> str:
    """An event entity's value template: the message with ``event_type`` (what Home Assistant
    wants; the other fields become the event's attributes) when its type is one of ``types``,
    else nothing, which Home Assistant skips quietly (an unlisted type is a logged warning)."""
    listed = json.dumps(list(types))  # a JSON list of plain names is a Jinja list literal
    return (
        f"{{% if value_json.type in {listed} %}}"
        "{{ dict(value_json, event_type=value_json.type) | to_json }}{% endif %}"
    )


def _flag_template(key: str) -> str:
    """ON/OFF from a boolean of the pose message (OFF when an older device leaves it out)."""
    return f"{{{{ 'ON' if value_json.{key} is defined and value_json.{key} else 'OFF' }}}}"


def _zone_template(name: str) -> str:
    """ON while ``name`` is among the pose message's occupied zones."""
    return (
        f"{{{{ 'ON' if value_json.zones is defined and {json.dumps(name)} in value_json.zones "
        "else 'OFF' }}"
    )


def discovery_config(
    device_id: str,
    base_topic: str,
    *,
    labels: Sequence[str] | None,
    exercise: str | None = None,
    name: str | None = None,
    version: str = __version__,
    configuration_url: str | None = None,
    safety: Safety | None = None,
    removed_zones: Sequence[str] = (),
) -> dict[str, Any]:
    """The device discovery message (a dict; :func:`discovery_message` gives topic and JSON).

    ``labels``: the running classifier's labels (``RuleClassifier.labels``, or a trained one's);
    ``None`` when no classifier runs, which leaves out the entities that need one (pose,
    repetitions; the label events). ``exercise``: the repetition counter's name
    (``classifier.rep_name``) or ``None`` when reps are not counted. ``name``: the device name
    shown (default the id). ``configuration_url``: the web view's page, linked from the device
    (None: no link). ``safety``: the safety entities to announce (None: none of them).
    ``removed_zones``: zone component ids an earlier message announced, to remove unless a zone
    of ``safety`` has that id.
    """
    base = base_topic
    ident = slug(device_id)
    uid = f"edge_pose_{device_id}"
    pose_t, event_t, stats_t = f"{base}/{POSE}", f"{base}/{EVENT}", f"{base}/{STATS}"
    safety = safety or Safety()

    def entity(platform: str, key: str, entity_name: str, **options: Any) -> dict[str, Any]:
        return {
            "platform": platform,
            "name": entity_name,
            "unique_id": f"{uid}_{key}",
            "default_entity_id": f"{platform}.{ident}_{key}",
            "qos": 1,  # per entity: Home Assistant does not pass a device-level qos on
            **options,
        }

    components: dict[str, dict[str, Any]] = {}
    # Presence is followed with or without a classifier.
    components["person"] = entity(
        "binary_sensor", "person", "Person",
        device_class="occupancy",
        state_topic=pose_t,
        value_template="{{ 'ON' if value_json.person else 'OFF' }}",
    )  # fmt: skip
    # How many people are present: 0 or 1 with a single-pose model, several with MultiPose
    # (one entity for the count, none per person: ids come and go).
    components["people"] = entity(
        "sensor", "people", "People",
        state_class="measurement",
        suggested_display_precision=0,
        state_topic=pose_t,
        value_template=(
            "{{ value_json.people if value_json.people is defined "
            "else (1 if value_json.person else 0) }}"
        ),
        icon="mdi:account-group",
    )  # fmt: skip
    if labels is not None:
        components["pose"] = entity(
            "sensor", "pose", "Pose",
            device_class="enum",
            options=state_options(labels),
            state_topic=pose_t,
            value_template=_pose_template(labels),
            json_attributes_topic=pose_t,
            json_attributes_template=(
                "{{ {'confidence': value_json.confidence, 'since': value_json.since} | to_json }}"
            ),
            icon="mdi:human",
        )  # fmt: skip
        if exercise:
            # Other events render "" and Home Assistant ignores an empty numeric state, so the
            # count stays until the next rep; a reset_reps shows as a new count from 1. It is
            # the device's total (every person's), which grows until a reset, as
            # total_increasing wants (a drop is a reset to it); an event without one (an older
            # device) gives its count.
            components["reps"] = entity(
                "sensor", "repetitions", "Repetitions",
                state_class="total_increasing",
                state_topic=event_t,
                value_template=(
                    "{% if value_json.type == 'rep' %}{{ value_json.total "
                    "if value_json.total is defined else value_json.count }}{% endif %}"
                ),
                icon="mdi:counter",
            )  # fmt: skip
    pose_events = [t for t in EVENT_TYPES if labels is not None or t not in LABEL_EVENT_TYPES]
    components["event"] = entity(
        "event", "pose_event", "Pose event",
        event_types=pose_events,
        state_topic=event_t,
        value_template=_event_template(pose_events),
    )  # fmt: skip
    if safety.fall:
        # On from the confirmed fall until the person stands up again or reset_fall.
        components["fall"] = entity(
            "binary_sensor", "fall", "Fall",
            device_class="safety",
            state_topic=pose_t,
            value_template=_flag_template("fall"),
        )  # fmt: skip
        components["reset_fall"] = entity(
            "button", "reset_fall", "Reset fall",
            command_topic=f"{base}/{SET}",
            payload_press=RESET_FALL_PAYLOAD,
            retain=False,  # the device ignores retained commands
            icon="mdi:restore",
        )  # fmt: skip
        if safety.snapshot:
            components["fall_snapshot"] = entity(
                "image", "fall_snapshot", "Fall snapshot",
                image_topic=f"{base}/{SNAPSHOT}",
                content_type="image/jpeg",
            )  # fmt: skip
    if safety.inactivity:
        components["inactive"] = entity(
            "binary_sensor", "inactive", "Inactive",
            device_class="problem",
            state_topic=pose_t,
            value_template=_flag_template("inactive"),
            icon="mdi:human-greeting-proximity",
        )  # fmt: skip
    if safety_types := safety.event_types():
        components["safety_event"] = entity(
            "event", "safety_event", "Safety event",
            event_types=safety_types,
            state_topic=event_t,
            value_template=_event_template(safety_types),
        )  # fmt: skip
    components["fps"] = entity(
        "sensor", "fps", "FPS",
        entity_category="diagnostic",
        state_class="measurement",
        unit_of_measurement="fps",
        suggested_display_precision=1,
        state_topic=stats_t,
        value_template=(
            "{{ value_json.fps.processed if value_json.fps is mapping else value_json.fps }}"
        ),
        icon="mdi:speedometer",
    )  # fmt: skip
    components["inference"] = entity(
        "sensor", "inference_time", "Inference time",
        entity_category="diagnostic",
        device_class="duration",
        state_class="measurement",
        unit_of_measurement="ms",
        suggested_display_precision=1,
        state_topic=stats_t,
        value_template="{{ value_json.inference_ms.p50 }}",
        json_attributes_topic=stats_t,
        json_attributes_template="{{ value_json.inference_ms | to_json }}",
    )  # fmt: skip
    components["backend"] = entity(
        "sensor", "backend", "Backend",
        entity_category="diagnostic",
        state_topic=stats_t,
        value_template=(
            "{{ value_json.backend.kind if value_json.backend is mapping "
            "else value_json.backend }}"
        ),
        json_attributes_topic=stats_t,
        json_attributes_template=(
            "{{ (value_json.backend if value_json.backend is mapping else {}) | to_json }}"
        ),
        icon="mdi:chip",
    )  # fmt: skip
    # What this config does not have: removed, in case an earlier run announced it.
    components = {cid: components.get(cid, {"platform": p}) for cid, p in COMPONENTS.items()}
    zones = zone_ids(safety.zones)
    for zone, cid in zones.items():
        components[cid] = entity(
            "binary_sensor", cid, f"Zone {zone}",
            device_class="occupancy",
            state_topic=pose_t,
            value_template=_zone_template(zone),
        )  # fmt: skip
    for cid in removed_zones:
        if cid not in components:
            components[cid] = {"platform": ZONE_PLATFORM}
    device: dict[str, Any] = {
        "identifiers": [uid],
        "name": name or device_id,
        "manufacturer": "edge-pose",
        "model": "Pose estimation (MoveNet)",
        "sw_version": version,
    }
    if configuration_url:
        device["configuration_url"] = configuration_url
    return {
        "device": device,
        "origin": {"name": "edge-pose", "sw_version": version},
        "availability": [
            {
                "topic": f"{base}/{AVAILABILITY}",
                "payload_available": ONLINE,
                "payload_not_available": OFFLINE,
            }
        ],
        "components": components,
    }


def discovery_message(
    device_id: str,
    base_topic: str,
    *,
    labels: Sequence[str] | None,
    exercise: str | None = None,
    prefix: str = DEFAULT_PREFIX,
    name: str | None = None,
    configuration_url: str | None = None,
    safety: Safety | None = None,
    removed_zones: Sequence[str] = (),
) -> tuple[str, str]:
    """``(topic, JSON payload)`` of the retained discovery message."""
    config = discovery_config(
        device_id,
        base_topic,
        labels=labels,
        exercise=exercise,
        name=name,
        configuration_url=configuration_url,
        safety=safety,
        removed_zones=removed_zones,
    )
    return discovery_topic(device_id, prefix), json.dumps(config, separators=(",", ":"))


def announced_zones(payload: bytes | str) -> list[str]:
    """The zone sensors a discovery message names (announced or removed), removals first, in
    message order; ``[]`` for anything that is not such a message. The message may come from
    anyone who may publish on the topic: it is bounded, and only well-formed zone ids count."""
    if not payload or len(payload) > MAX_READ_BACK_BYTES:
        return []
    try:
        message = json.loads(payload)
    except (ValueError, RecursionError):  # [[[[... nests deeper than the parser goes
        return []
    components = message.get("components") if isinstance(message, dict) else None
    if not isinstance(components, dict):
        return []
    removed: list[str] = []
    announced: list[str] = []
    for cid, comp in components.items():
        if (
            isinstance(comp, dict)
            and comp.get("platform") == ZONE_PLATFORM
            and _ZONE_ID.fullmatch(cid)
        ):
            (removed if len(comp) == 1 else announced).append(cid)
    return removed + announced


class _Announced:
    """The zone sensors named in the last discovery message this process sent on a topic, so
    a reload (a new :class:`Discovery` on a topic the client is already subscribed to, which
    the broker does not hand the retained message to again) still removes the zones it drops."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._zones: dict[str, list[str]] = {}

    def get(self, topic: str) -> list[str]:
        with self._lock:
            return list(self._zones.get(topic, ()))

    def set(self, topic: str, zones: list[str]) -> None:
        with self._lock:
            self._zones[topic] = zones


_announced = _Announced()


class Discovery:
    """Publishes the discovery message and answers Home Assistant's birth message.

    ``publish(topic, payload, qos, retain)`` sends one message (``MqttPublisher.publish_raw``).
    Wiring, once the classifier is known::

        discovery = Discovery(publisher.publish_raw, device_id, publisher.base_topic,
                              labels=classifier.labels, exercise="squat", prefix="homeassistant",
                              safety=Safety.from_config(cfg))
        publisher.subscribe_raw(discovery.status_topic, discovery.on_status)
        publisher.subscribe_raw(discovery.topic, discovery.on_announced)  # before publishing
        discovery.publish()           # retained; paho queues it until connected
        ...
        discovery.close()             # at stop: cancel a pending resend

    ``on_status`` and ``on_announced`` run in paho's thread; the resend runs in a timer thread
    (paho's ``publish`` is thread-safe) and never blocks the pipeline.
    """

    def __init__(
        self,
        publish: Publish,
        device_id: str,
        base_topic: str,
        *,
        labels: Sequence[str] | None,
        exercise: str | None = None,
        prefix: str = DEFAULT_PREFIX,
        status_topic: str = DEFAULT_STATUS_TOPIC,
        name: str | None = None,
        max_delay: float = RESEND_DELAY_MAX_S,
        configuration_url: str | None = None,
        safety: Safety | None = None,
    ) -> None:
        self._publish = publish
        self.topic = discovery_topic(device_id, prefix)

        def message(removed: Sequence[str]) -> str:
            return discovery_message(
                device_id,
                base_topic,
                labels=labels,
                exercise=exercise,
                prefix=prefix,
                name=name,
                configuration_url=configuration_url,
                safety=safety,
                removed_zones=removed,
            )[1]

        self._message = message
        self._zones = set(zone_ids((safety or Safety()).zones).values())
        self._removed: list[str] = []  # zone sensors to remove, oldest first
        self.payload = message(())
        self.status_topic = status_topic
        self.max_delay = max_delay
        self.sent = 0  # discovery messages handed to the client
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._learn(_announced.get(self.topic))

    @property
    def removed_zones(self) -> list[str]:
        """The zone sensors this message removes (earlier zones the config no longer has)."""
        with self._lock:
            return list(self._removed)

    def _learn(self, zones: Iterable[str]) -> bool:
        """Remove ``zones`` (component ids) not in this config; whether the message changed."""
        with self._lock:
            new = [z for z in dict.fromkeys(zones) if z not in self._zones]
            if not [z for z in new if z not in self._removed]:
                return False
            removed = [z for z in self._removed if z not in new] + new
            self._removed = removed[-MAX_ZONE_REMOVALS:]
            self.payload = self._message(self._removed)
            return True

    def publish(self) -> bool:
        """Send the config (QoS 1, retained). Returns whether the client took it."""
        payload = self.payload
        accepted = bool(self._publish(self.topic, payload, 1, True))
        if accepted:
            self.sent += 1
            _announced.set(self.topic, announced_zones(payload))
        return accepted

    def on_announced(self, payload: bytes) -> None:
        """A message on the discovery topic (the retained one of an earlier run when the
        subscription starts, then this run's own): zone sensors it names that the config no
        longer has are removed, and the message goes out again if that changed it."""
        if self._learn(announced_zones(payload)):
            with self._lock:
                if self._closed:
                    return
            log.info(
                "Home Assistant: removing zone sensor(s) no longer configured: %s",
                ", ".join(self.removed_zones),
            )
            self.publish()

    def on_status(self, payload: bytes) -> None:
        """Home Assistant's status message: on ``online``, resend after a random delay."""
        if payload.strip() != ONLINE.encode():
            return
        delay = random.uniform(0, self.max_delay)
        with self._lock:
            if self._closed:
                return
            if self._timer is not None:  # several births in a row: one resend is enough
                self._timer.cancel()
            self._timer = threading.Timer(delay, self._resend)
            self._timer.daemon = True
            self._timer.start()
        log.info("Home Assistant is online: discovery again in %.1f s", delay)

    def remove(self) -> bool:
        """Delete the device from Home Assistant: an empty retained config."""
        accepted = bool(self._publish(self.topic, "", 1, True))
        if accepted:
            _announced.set(self.topic, [])
        return accepted

    def close(self) -> None:
        """Cancel a pending resend (at stop or before replacing this object)."""
        with self._lock:
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def _resend(self) -> None:
        with self._lock:
            self._timer = None
            if self._closed:
                return
        self.publish()


def start_discovery(
    publisher: MqttPublisher | None,
    cfg: Config,
    classifier: Classifier | None,
    *,
    web_port: int | None = None,
) -> Discovery | None:
    """Announce a running pipeline to Home Assistant as the config says; None when
    ``mqtt.discovery`` is off or there is no broker. ``classifier``: the running classifier
    (``Temporal.classifier``) or None. ``web_port``: the port the web view bound (needed for
    ``http.port = 0``; by default the configured port), for the device's link to the page.
    Call ``close()`` on the result when the pipeline stops.

    Without a classifier the retained ``<base>/pose`` of an earlier run (a label, "person":
    true) is cleared with an empty retained message, discovery on or off, so no client reads it
    as current; the pipeline publishes the pose again when presence, zones or the fall and
    inactivity flags change."""
    if publisher is None:
        return None
    if classifier is None:
        publisher.publish(POSE, "", qos=1, retain=True)
    if not cfg.mqtt.discovery:
        return None
    from edge_pose.web.urls import lan_page_url  # the web package's one light module

    counting = classifier is not None and bool(cfg.classifier.rep_up)
    discovery = Discovery(
        publisher.publish_raw,
        cfg.device.id,
        publisher.base_topic,
        labels=None if classifier is None else list(classifier.labels),
        exercise=cfg.classifier.rep_name if counting else None,
        prefix=cfg.mqtt.discovery_prefix,
        status_topic=cfg.mqtt.discovery_status_topic,
        configuration_url=lan_page_url(cfg.http, web_port),
        safety=Safety.from_config(cfg),
    )
    publisher.subscribe_raw(discovery.status_topic, discovery.on_status)
    # Subscribed before the first publish: the broker hands over the retained message of an
    # earlier run first, and its zone sensors that this config lacks are removed.
    publisher.subscribe_raw(discovery.topic, discovery.on_announced)
    discovery.publish()  # retained; queued by paho until the connection is up
    return discovery
