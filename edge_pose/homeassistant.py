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
FPS, Inference time,  sensor, entity_category diagnostic            ``<base>/stats``
Backend
====================  ============================================  ===========================

Every entity's availability is ``<base>/availability`` (``online``/``offline``), so Home
Assistant shows the device unavailable when it stops or its last will fires. Keypoints are never
an entity state (Home Assistant drops states over 255 characters, and 30 state writes a second
would flood its recorder); every state here is a short label or a number.

A component the running config does not have (no classifier: no Person, People, Pose, Repetitions or
Pose event) is still in the message, as ``{"platform": ...}`` alone: Home Assistant's documented way
to delete that one entity. Leaving it out is not enough (Home Assistant keeps the entity with its
last state), and because :data:`COMPONENTS` lists every component there can be, the retained message
removes what any earlier run announced, across restarts, without reading the broker.
For an entity it does not know, Home Assistant ignores such an entry.

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
interface's address as it is). A loopback bind, the default, leaves the link out. No picture
goes over MQTT: Home Assistant shows the stream as an MJPEG camera of the web view
(docs/homeassistant.md).

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
from typing import TYPE_CHECKING, Any

from edge_pose import __version__
from edge_pose.classify.events import NO_PERSON, UNKNOWN
from edge_pose.wire import AVAILABILITY, EVENT, POSE, STATS

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
# Every `type` of a <base>/event message (commands add `error` for rejected commands).
EVENT_TYPES = ("pose_change", "rep", "person_enter", "person_leave", "error")
# Every component id the device can announce, with its platform (see the module docstring).
COMPONENTS = {
    "person": "binary_sensor",
    "people": "sensor",
    "pose": "sensor",
    "reps": "sensor",
    "event": "event",
    "fps": "sensor",
    "inference": "sensor",
    "backend": "sensor",
}
# Home Assistant's own states (STATE_UNKNOWN, STATE_UNAVAILABLE) -> what such a label shows as.
RESERVED_STATES = {"unknown": "uncertain", "unavailable": "not_available"}

# What `publish(topic, payload, qos, retain)` must accept: MqttPublisher.publish_raw.
Publish = Callable[[str, str, int, bool], object]

_TOPIC_ID = re.compile(r"[A-Za-z0-9_-]+")


def discovery_topic(device_id: str, prefix: str = DEFAULT_PREFIX) -> str:
    """``<prefix>/device/<device_id>/config``: where the retained config lives."""
    if not _TOPIC_ID.fullmatch(device_id):
        raise ValueError(f"device id {device_id!r}: Home Assistant needs [A-Za-z0-9_-]+")
    return f"{prefix}/device/{device_id}/config"


def slug(text: str) -> str:
    """An entity id part: lower case, ``[a-z0-9_]``, no leading, trailing or double ``_``."""
    return re.sub(r"_+", "_", re.sub(r"[^a-z0-9]", "_", text.lower())).strip("_") or "edge_pose"


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


def discovery_config(
    device_id: str,
    base_topic: str,
    *,
    labels: Sequence[str] | None,
    exercise: str | None = None,
    name: str | None = None,
    version: str = __version__,
    configuration_url: str | None = None,
) -> dict[str, Any]:
    """The device discovery message (a dict; :func:`discovery_message` gives topic and JSON).

    ``labels``: the running classifier's labels (``RuleClassifier.labels``, or a trained one's);
    ``None`` when no classifier runs, which leaves out the entities that need one (person, pose,
    repetitions, events). ``exercise``: the repetition counter's name (``classifier.rep_name``)
    or ``None`` when reps are not counted. ``name``: the device name shown (default the id).
    ``configuration_url``: the web view's page, linked from the device (None: no link).
    """
    base = base_topic
    ident = slug(device_id)
    uid = f"edge_pose_{device_id}"
    pose_t, event_t, stats_t = f"{base}/{POSE}", f"{base}/{EVENT}", f"{base}/{STATS}"

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
    if labels is not None:
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
        components["event"] = entity(
            "event", "pose_event", "Pose event",
            event_types=list(EVENT_TYPES),
            state_topic=event_t,
            # Home Assistant wants `event_type`; the other fields become the event's attributes.
            value_template="{{ dict(value_json, event_type=value_json.type) | to_json }}",
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
) -> tuple[str, str]:
    """``(topic, JSON payload)`` of the retained discovery message."""
    config = discovery_config(
        device_id,
        base_topic,
        labels=labels,
        exercise=exercise,
        name=name,
        configuration_url=configuration_url,
    )
    return discovery_topic(device_id, prefix), json.dumps(config, separators=(",", ":"))


class Discovery:
    """Publishes the discovery message and answers Home Assistant's birth message.

    ``publish(topic, payload, qos, retain)`` sends one message (``MqttPublisher.publish_raw``).
    Wiring, once the classifier is known::

        discovery = Discovery(publisher.publish_raw, device_id, publisher.base_topic,
                              labels=classifier.labels, exercise="squat", prefix="homeassistant")
        publisher.subscribe_raw(discovery.status_topic, discovery.on_status)
        discovery.publish()           # retained; paho queues it until connected
        ...
        discovery.close()             # at stop: cancel a pending resend

    ``on_status`` runs in paho's thread; the resend runs in a timer thread (paho's ``publish``
    is thread-safe) and never blocks the pipeline.
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
    ) -> None:
        self._publish = publish
        self.topic, self.payload = discovery_message(
            device_id,
            base_topic,
            labels=labels,
            exercise=exercise,
            prefix=prefix,
            name=name,
            configuration_url=configuration_url,
        )
        self.status_topic = status_topic
        self.max_delay = max_delay
        self.sent = 0  # discovery messages handed to the client
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self._closed = False

    def publish(self) -> bool:
        """Send the config (QoS 1, retained). Returns whether the client took it."""
        accepted = bool(self._publish(self.topic, self.payload, 1, True))
        if accepted:
            self.sent += 1
        return accepted

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
        return bool(self._publish(self.topic, "", 1, True))

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

    Without a classifier nothing publishes ``<base>/pose``, so a pose retained by an earlier run
    would be read as current (Person "on", Pose "standing" in Home Assistant, a stale pose in any
    other client): it is cleared with an empty retained message, discovery on or off."""
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
    )
    publisher.subscribe_raw(discovery.status_topic, discovery.on_status)
    discovery.publish()  # retained; queued by paho until the connection is up
    return discovery
