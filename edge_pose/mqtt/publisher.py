"""MQTT publishing over paho-mqtt 2: availability, rate-limited keypoints, QoS 1 pose/events/stats.

Why it is built this way (DESIGN.md, section MQTT):

- The pipeline never waits on the network. ``connect_async`` + ``loop_start`` hand connecting to
  paho's own thread, so a broker that is down at start neither blocks nor raises; the thread then
  retries with a backoff for as long as the service runs.
- Keypoints are QoS 0 and only worth anything while fresh: during an outage they are counted as
  dropped, never queued. Messages that matter (pose, events) are QoS 1: paho keeps up to
  ``MAX_QUEUED`` of them while disconnected and sends them after the reconnect, so an outage costs
  bounded memory.
- ``<base>/availability`` is retained: ``online`` after every (re)connect, ``offline`` as the last
  will (crash, power loss, network gone) and on a clean stop, so subscribers always see the truth.
- Retained messages (state, pose, Home Assistant discovery) are kept, latest per topic, and
  published again after every connect (``retained.py``), so they never queue up behind each
  other.
- A broker that keeps the TCP connection open but answers nothing is noticed by the missing
  acknowledgements (``acks.py``): the connection is dropped so paho makes a new one, and until
  then ``responsive`` is false.
- The client itself (protocol, TLS, login, the 1..30 s backoff) comes from ``client.py``, as
  for `edge-pose watch` and `edge-pose doctor`.
- Counters are plain attributes, each written by one thread, read without locks by status/stats.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from edge_pose import wire
from edge_pose.config import MqttConfig
from edge_pose.mqtt.acks import AckWatch
from edge_pose.mqtt.client import describe_connect_error, describe_refusal, make_client
from edge_pose.mqtt.pacing import RateSchedule
from edge_pose.mqtt.retained import RetainedMessages

log = logging.getLogger("edge_pose.mqtt")

MAX_QUEUED = 1000  # QoS 1 messages paho holds during an outage; further ones are counted as dropped
_OK, _NO_CONN = MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN
_QUEUE_FULL = MQTTErrorCode.MQTT_ERR_QUEUE_SIZE


class MqttPublisher:
    """One broker connection for one device; topics live under ``<topic_prefix>/<device_id>``.

    State for the status file: ``connected``, ``since`` (wall clock of the last connect or
    disconnect), ``sent`` (messages the broker got: QoS 0 written, QoS 1 acknowledged),
    ``dropped`` (messages given up: QoS 0 while disconnected, QoS 1 beyond the queue),
    ``events_dropped`` (the events among them: the loss that matters), ``unacked`` (QoS 1
    messages waiting for the broker's acknowledgement),
    ``rate_limited`` (keypoints skipped by ``keypoints_max_rate``; not a loss), ``reconnects``
    (successful connects after the first), ``last_publish`` (wall clock), ``last_error``.

    Raises ConfigError for TLS files that cannot be loaded (a config problem that retrying
    cannot fix).
    """

    def __init__(self, settings: MqttConfig, device_id: str, password: str | None = None) -> None:
        self.settings = settings
        self.base_topic = f"{settings.topic_prefix}/{device_id}"
        self.client_id = settings.client_id or f"edge-pose-{device_id}"
        self.broker = f"{settings.host}:{settings.port}"
        self.connected = False
        self.since: float | None = None
        self.sent = self.dropped = self.rate_limited = self.reconnects = self.events_dropped = 0
        self._event_topic = f"{self.base_topic}/{wire.EVENT}"
        self.last_publish: float | None = None
        self.last_error: str | None = None
        self._availability = f"{self.base_topic}/{wire.AVAILABILITY}"
        self._keypoints = f"{self.base_topic}/{wire.KEYPOINTS}"
        self._schedule = RateSchedule(settings.keypoints_max_rate)
        self._up = threading.Event()
        self._subscriptions: list[str] = []
        # Under this lock: `connected` flips, subscriptions and retained messages are recorded,
        # so a topic is subscribed (and a retained message published) once per connection.
        self._lock = threading.Lock()
        self._retained = RetainedMessages()
        self._unanswered = ""  # why check_link dropped the connection, for _on_disconnect
        self._ever_connected = self._started = self._stopped = self._refused = False
        self._client = make_client(settings, self.client_id, password)
        self._client.will_set(self._availability, wire.OFFLINE, qos=1, retain=True)
        self._client.max_queued_messages_set(MAX_QUEUED)
        self._client.on_connect = self._on_connect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.on_unsubscribe = self._on_unsubscribe
        self._acks = AckWatch(self._client, f"{self.base_topic}/probe", 2 * MAX_QUEUED)

    def start(self) -> None:
        """Begin connecting in the background; returns at once, whether or not a broker answers."""
        if self._started:
            return
        s = self.settings
        self._client.connect_async(s.host, s.port, keepalive=s.keepalive)
        self._client.loop_start()
        self._started = True

    def wait_connected(self, timeout: float) -> bool:
        """Block up to ``timeout`` s for a connection (for tools and tests; never the pipeline)."""
        return self._up.wait(timeout)

    def set_keypoints_rate(self, rate: float) -> None:
        """Change ``keypoints_max_rate`` while running (messages per second, 0 = every frame)."""
        self._schedule.set_rate(rate)

    @property
    def keypoints_rate(self) -> float:
        return self._schedule.rate

    @property
    def unacked(self) -> int:
        """QoS 1 messages handed over and not yet acknowledged (counted from the oldest)."""
        return self._acks.waiting

    def subscribe(
        self, suffix: str, handler: Callable[[bytes], None], *, retained: bool = True
    ) -> None:
        """Call ``handler(payload)`` for each message on ``<base>/<suffix>`` (in paho's thread,
        so it should only hand the payload on); renewed on every reconnect. With
        ``retained=False`` messages the broker kept (retained) are skipped, with a warning."""
        self.subscribe_raw(f"{self.base_topic}/{suffix}", handler, retained=retained)

    def subscribe_raw(
        self, topic: str, handler: Callable[[bytes], None], *, retained: bool = True
    ) -> None:
        """``subscribe`` for a topic outside ``<base>`` (Home Assistant's status)."""

        def deliver(_client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
            if message.retain and not retained:
                if message.payload:
                    log.warning(
                        "MQTT: ignored a retained message on %s; clear it with: "
                        "mosquitto_pub -r -n -t '%s'", topic, topic,
                    )
                return
            handler(bytes(message.payload))  # bytes already: not copied

        self._client.message_callback_add(topic, deliver)
        with self._lock:
            if topic in self._subscriptions:
                return
            self._subscriptions.append(topic)
            if self.connected:
                self._client.subscribe(topic, qos=1)

    def keypoints_due(self, now: float) -> bool:
        """Whether a keypoints message at ``now`` (monotonic s) would be handed on.

        Asked by the pipeline before it formats the payload, so frames nobody will receive cost
        no JSON. A frame that is not due is booked here: as ``rate_limited``, or, while
        disconnected or while QoS 1 messages back up, as ``dropped`` (it uses its slot in the
        rate schedule, as if sent).
        """
        if self._schedule.early(now):
            self.rate_limited += 1
            return False
        if not self.connected or self._acks.backlogged():
            self._schedule.book(now)
            self.dropped += 1
            return False
        return True

    def publish_keypoints(self, payload: bytes, now: float) -> bool:
        """QoS 0, not retained, at most ``keypoints_max_rate`` per second. Called once per frame.

        Returns whether the message was handed to the client (written by its thread).
        """
        if not self.keypoints_due(now):
            return False
        self._schedule.book(now)
        if self._client.publish(self._keypoints, payload).rc != _OK:
            self.dropped += 1  # the connection went away since keypoints_due()
            return False
        return True

    def publish(
        self, suffix: str, payload: bytes | str, qos: int = 1, retain: bool = False
    ) -> bool:
        """Publish to ``<base>/<suffix>`` (pose, event, stats).

        QoS 1/2 messages published while disconnected wait in paho's bounded queue and go out
        after the reconnect; QoS 0 ones are dropped. Returns whether the message was accepted.
        """
        return self.publish_raw(f"{self.base_topic}/{suffix}", payload, qos, retain)

    def publish_raw(
        self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False
    ) -> bool:
        """``publish`` to a topic outside ``<base>`` (Home Assistant discovery).

        A retained message is remembered and, while disconnected, only remembered: the connect
        publishes the latest of each.
        """
        if self._stopped:
            self.dropped += 1
            return False
        if retain:
            with self._lock:
                self._retained.remember(topic, payload, qos)
                if not self.connected:
                    return True
                return self._send(topic, payload, qos, retain)
        if qos == 0 and not self.connected:
            self.dropped += 1
            return False
        return self._send(topic, payload, qos, retain)

    def _send(self, topic: str, payload: bytes | str, qos: int, retain: bool) -> bool:
        info = self._client.publish(topic, payload, qos, retain)
        if info.rc == _OK or (qos > 0 and info.rc == _NO_CONN):  # NO_CONN: queued for later
            if qos > 0 and info.rc == _OK:  # (queued ones are not on this connection)
                self._acks.handed(info, time.monotonic())
                if retain:
                    self._retained.handed(topic, info)
            return True
        self.dropped += 1
        if info.rc == _QUEUE_FULL and topic == self._event_topic:
            self.events_dropped += 1
        return False

    @property
    def responsive(self) -> bool:
        """Connected, and no QoS 1 message has waited ``ACK_TIMEOUT_S`` for the broker."""
        return self.connected and self._acks.overdue(time.monotonic()) is None

    def check_link(self) -> None:
        """Drop a connection whose broker stopped acknowledging, so paho connects anew (call it
        about once a second; cheap). A hung broker otherwise looks connected until the
        keepalive gives up, up to twice ``mqtt.keepalive``.

        It also publishes, after a reconnect, the latest value of retained topics whose older
        value paho was still delivering, so the broker keeps the newest."""
        if self._retained.resends_due:
            with self._lock:
                for topic, payload, qos in self._retained.take_resends():
                    if self.connected:
                        self._send(topic, payload, qos, True)
        if not self.connected:
            return
        now = time.monotonic()
        self._acks.probe(now)
        waited = self._acks.overdue(now)
        if waited is None:
            return
        sock = self._client.socket()
        if sock is None:
            return
        self._unanswered = f"{self.broker} has not acknowledged a message for {waited:.0f} s"
        # Shut down a duplicate of the descriptor: the connection ends for paho's thread, which
        # reconnects, while a TLS socket's state stays intact for the read it may be in.
        with contextlib.suppress(OSError), socket.socket(fileno=os.dup(sock.fileno())) as dup:
            dup.shutdown(socket.SHUT_RDWR)

    def stop(self, timeout: float = 2.0) -> None:
        """Say ``offline`` (retained), let queued QoS 1 messages out, disconnect. Idempotent.

        Waits at most ``timeout`` s in total: for a reconnect if the link is down (so the broker
        does not keep a stale ``online``), then for the broker to acknowledge ``offline``. As paho
        sends QoS 1 messages in order, that acknowledgement also covers the ones queued before.
        During an outage, paho's thread may need up to 1 s more to leave its reconnect pause.
        """
        if not self._started or self._stopped:
            return
        self._stopped = True
        deadline = time.monotonic() + timeout
        if self._up.wait(timeout):
            info = self._client.publish(self._availability, wire.OFFLINE, qos=1, retain=True)
            try:
                info.wait_for_publish(max(0.0, deadline - time.monotonic()))
                delivered = info.is_published()
            except (RuntimeError, ValueError):
                delivered = False
            if not delivered:
                log.warning(
                    "MQTT: %s did not acknowledge 'offline' within %.1f s", self.broker, timeout
                )
        elif self._ever_connected:  # never connected: the broker holds no `online` of ours
            log.warning(
                "MQTT: not connected at stop; %s publishes the last will 'offline' once it notices",
                self.broker,
            )
        self._client.disconnect()
        self._client.loop_stop()
        self.connected = False
        self._up.clear()

    # --- paho callbacks: they run in paho's network thread -------------------------------------

    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: ReasonCode, _props: Any
    ) -> None:
        if reason.is_failure:
            self._refused = True
            self._failed(f"{self.broker} refused the connection: {describe_refusal(reason)}")
            return
        if self._ever_connected:
            self.reconnects += 1
        self._ever_connected = True
        log.info("MQTT connected to %s as %s", self.broker, self.client_id)
        client.publish(self._availability, wire.ONLINE, qos=1, retain=True)
        with self._lock:
            self.connected, self.since = True, time.time()
            self._acks.connected(time.monotonic())
            for topic in self._subscriptions:  # a clean session forgets subscriptions
                client.subscribe(topic, qos=1)
            # A broker without persistence forgot them; one with it gets the same again.
            for topic, payload, qos in self._retained.after_connect():
                self._send(topic, payload, qos, True)
        self._up.set()

    def _on_connect_fail(self, _client: mqtt.Client, _userdata: Any) -> None:
        # paho calls this from inside its `except OSError:` block: the exception is still current.
        self._failed(describe_connect_error(sys.exception(), self.settings.host, self.broker))

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        if not self.connected:
            if not (self._refused or self._stopped):  # _on_connect said why when it refused
                self._failed(
                    f"{self.broker} closed the connection before accepting it "
                    "(does it expect TLS? check mqtt.tls and mqtt.port)"
                )
            self._refused = False
            return
        self.connected, self.since = False, time.time()
        self._up.clear()
        if self._stopped:
            log.info("MQTT disconnected from %s", self.broker)
            return
        detail = "" if str(reason) in ("Success", "Unspecified error") else f" ({reason})"
        self.last_error = f"connection to {self.broker} lost{detail}"
        if self._unanswered:  # check_link ended it
            self.last_error, self._unanswered = f"{self._unanswered}: connection dropped", ""
        log.warning("MQTT %s; reconnecting in the background", self.last_error)

    def _on_unsubscribe(
        self, _client: mqtt.Client, _userdata: Any, mid: int, _reasons: Any, _props: Any
    ) -> None:
        self._acks.unsubscribed(mid, time.monotonic())

    def _on_publish(
        self, _client: mqtt.Client, _userdata: Any, _mid: int, _reason: Any, _props: Any
    ) -> None:
        self.sent += 1
        self.last_publish = time.time()

    def _failed(self, message: str) -> None:
        """Record a failed connect; log it only when it differs from the last one (no log spam)."""
        if message != self.last_error:
            log.warning("MQTT %s; retrying in the background", message)
        self.last_error = message
