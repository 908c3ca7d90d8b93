"""MQTT publishing over paho-mqtt 2: availability, rate-limited keypoints, QoS 1 pose/events/stats.

Why it is built this way (DESIGN.md, section MQTT):

- The pipeline never waits on the network. ``connect_async`` + ``loop_start`` hand connecting to
  paho's own thread, so a broker that is down at start neither blocks nor raises; the thread then
  retries with a 1..30 s backoff for as long as the service runs.
- Keypoints are QoS 0 and only worth anything while fresh: during an outage they are counted as
  dropped, never queued. Messages that matter (pose, events) are QoS 1: paho keeps up to
  ``MAX_QUEUED`` of them while disconnected and sends them after the reconnect, so an outage costs
  bounded memory.
- ``<base>/availability`` is retained: ``online`` after every (re)connect, ``offline`` as the last
  will (crash, power loss, network gone) and on a clean stop, so subscribers always see the truth.
- Retained messages (state, pose, Home Assistant discovery) are kept here, latest per topic, and
  published again after every connect: a broker restarted without persistence has forgotten
  them, and during an outage only the latest value of each is worth sending, so they never
  queue up behind each other.
- A broker that keeps the TCP connection open but answers nothing is noticed by the QoS 1
  acknowledgements: one outstanding for ``ACK_TIMEOUT_S`` drops the connection so paho makes a
  new one, and until then ``responsive`` is false. While QoS 1 messages back up, keypoints
  yield to them.
- Counters are plain attributes, each written by one thread, read without locks by status/stats.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import math
import os
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from edge_pose.config import tls_file_problems
from edge_pose.errors import ConfigError

log = logging.getLogger("edge_pose.mqtt")

MAX_QUEUED = 1000  # QoS 1 messages paho holds during an outage; further ones are counted as dropped
ACK_TIMEOUT_S = 10.0  # a QoS 1 message unacknowledged this long (connected): the broker is stuck
PROBE_INTERVAL_S = 5.0  # with nothing to acknowledge for this long, the broker is asked for once
KEYPOINTS_YIELD_BACKLOG = 20  # with this many QoS 1 messages unacknowledged, keypoints wait
RECONNECT_MIN_S, RECONNECT_MAX_S = 1, 30
_OK, _NO_CONN = MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN
_QUEUE_FULL = MQTTErrorCode.MQTT_ERR_QUEUE_SIZE
_AUTH_REFUSED = {"Not authorized", "Bad user name or password"}


class MqttSettings(Protocol):
    """The fields of ``config.MqttConfig`` used here (read-only, so a frozen model fits)."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def topic_prefix(self) -> str: ...
    @property
    def username(self) -> str: ...
    @property
    def tls(self) -> bool: ...
    @property
    def ca_file(self) -> str: ...
    @property
    def certfile(self) -> str: ...
    @property
    def keyfile(self) -> str: ...
    @property
    def keepalive(self) -> int: ...
    @property
    def keypoints_max_rate(self) -> float: ...
    @property
    def client_id(self) -> str: ...


class MqttPublisher:
    """One broker connection for one device; topics live under ``<topic_prefix>/<device_id>``.

    State for the status file: ``connected``, ``since`` (wall clock of the last connect or
    disconnect), ``sent`` (messages the broker got: QoS 0 written, QoS 1 acknowledged),
    ``dropped`` (messages given up: QoS 0 while disconnected, QoS 1 beyond the queue),
    ``events_dropped`` (the events among them: the loss that matters), ``unacked`` (QoS 1
    messages waiting for the broker's acknowledgement),
    ``rate_limited`` (keypoints skipped by ``keypoints_max_rate``; not a loss), ``reconnects``
    (successful connects after the first), ``last_publish`` (wall clock), ``last_error``.
    """

    def __init__(self, settings: MqttSettings, device_id: str, password: str | None = None) -> None:
        self.settings = settings
        self.base_topic = f"{settings.topic_prefix}/{device_id}"
        self.client_id = settings.client_id or f"edge-pose-{device_id}"
        self.broker = f"{settings.host}:{settings.port}"
        self.connected = False
        self.since: float | None = None
        self.sent = self.dropped = self.rate_limited = self.reconnects = self.events_dropped = 0
        self._event_topic = f"{self.base_topic}/event"
        self.last_publish: float | None = None
        self.last_error: str | None = None
        self._password = password
        self._availability = f"{self.base_topic}/availability"
        self._keypoints = f"{self.base_topic}/keypoints"
        rate = settings.keypoints_max_rate
        self._interval = 1.0 / rate if rate > 0 else 0.0
        # Rate limit as a virtual schedule (GCRA): a message may come up to half an interval early,
        # so a 30 fps camera with keypoints_max_rate = 30 is not halved by frame jitter, while the
        # long-run rate never exceeds the limit.
        self._slack = self._interval / 2
        self._due = -math.inf
        self._up = threading.Event()
        self._subscriptions: list[str] = []
        # Under this lock: `connected` flips, subscriptions and retained messages are recorded,
        # so a topic is subscribed (and a retained message published) once per connection.
        self._lock = threading.Lock()
        self._retained: dict[str, tuple[bytes | str, int]] = {}  # topic -> latest (payload, qos)
        # topic -> the last retained message handed to paho for it. One still unacknowledged
        # when the link drops is sent again by paho after the reconnect, after our republish
        # of a newer value; those topics are published once more from check_link.
        self._retained_sent: dict[str, mqtt.MQTTMessageInfo] = {}
        self._republish_later: list[str] = []
        self._unanswered = ""  # why check_link dropped the connection, for _on_disconnect
        # QoS 1 messages in the order handed over, with the monotonic time; pruned from the
        # front once acknowledged (paho sets the flag that is_published reads).
        self._unacked: collections.deque[tuple[float, mqtt.MQTTMessageInfo]] = (
            collections.deque(maxlen=2 * MAX_QUEUED)
        )
        # The pipeline, paho's thread and Home Assistant's timer all publish: the deque is
        # changed only under this lock (never held while calling into paho).
        self._ack_lock = threading.Lock()
        self._connected_mono = 0.0
        self._ever_connected = self._started = self._stopped = self._refused = False
        self._client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv5 if settings.protocol == "5" else mqtt.MQTTv311,
        )
        self._client.on_connect = self._on_connect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.on_unsubscribe = self._on_unsubscribe
        # The probe: an UNSUBSCRIBE of a topic never subscribed, which the broker must answer
        # (UNSUBACK) and which nobody else sees. (monotonic time sent, mid) while unanswered.
        self._probe_topic = f"{self.base_topic}/probe"
        self._probe: tuple[float, int] | None = None
        self._last_answer = 0.0  # monotonic time of the last probe answer or probe sent

    def start(self) -> None:
        """Begin connecting in the background; returns at once, whether or not a broker answers.

        Raises ConfigError only for TLS files that cannot be loaded (a config problem that
        retrying cannot fix).
        """
        if self._started:
            return
        s, client = self.settings, self._client
        client.will_set(self._availability, "offline", qos=1, retain=True)
        apply_credentials(client, s, self._password)
        client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        client.max_queued_messages_set(MAX_QUEUED)
        client.connect_async(s.host, s.port, keepalive=s.keepalive)
        client.loop_start()
        self._started = True

    def wait_connected(self, timeout: float) -> bool:
        """Block up to ``timeout`` s for a connection (for tools and tests; never the pipeline)."""
        return self._up.wait(timeout)

    def set_keypoints_rate(self, rate: float) -> None:
        """Change ``keypoints_max_rate`` while running (messages per second, 0 = every frame)."""
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._slack = self._interval / 2
        self._due = -math.inf

    @property
    def keypoints_rate(self) -> float:
        return 1.0 / self._interval if self._interval else 0.0

    @property
    def unacked(self) -> int:
        """QoS 1 messages handed over and not yet acknowledged (counted from the oldest)."""
        with self._ack_lock:
            self._prune()
            return len(self._unacked)

    def _prune(self) -> None:
        """Drop acknowledged messages from the front (with ``_ack_lock`` held)."""
        unacked = self._unacked
        while unacked and unacked[0][1].is_published():
            unacked.popleft()

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
            handler(message.payload)

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
        disconnected, as ``dropped`` (it uses its slot in the rate schedule, as if sent).
        """
        if now < self._due - self._slack:
            self.rate_limited += 1
            return False
        backlog = len(self._unacked) >= KEYPOINTS_YIELD_BACKLOG and (
            self.unacked >= KEYPOINTS_YIELD_BACKLOG
        )
        if not self.connected or backlog:
            self._due = max(self._due, now) + self._interval
            self.dropped += 1
            return False
        return True

    def publish_keypoints(self, payload: bytes, now: float) -> bool:
        """QoS 0, not retained, at most ``keypoints_max_rate`` per second. Called once per frame.

        Returns whether the message was handed to the client (written by its thread).
        """
        if not self.keypoints_due(now):
            return False
        self._due = max(self._due, now) + self._interval
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

        A retained message is remembered (an empty one too: a clear made while offline must
        still reach the broker) and, while disconnected, only remembered: the connect
        publishes the latest of each.
        """
        if self._stopped:
            self.dropped += 1
            return False
        if retain:
            with self._lock:
                self._retained[topic] = (payload, qos)
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
                with self._ack_lock:
                    self._prune()
                    self._unacked.append((time.monotonic(), info))
                if retain:
                    self._retained_sent[topic] = info
            return True
        self.dropped += 1
        if info.rc == _QUEUE_FULL and topic == self._event_topic:
            self.events_dropped += 1
        return False

    @property
    def responsive(self) -> bool:
        """Connected, and no QoS 1 message has waited ``ACK_TIMEOUT_S`` for the broker."""
        return self.connected and self._overdue(time.monotonic()) is None

    def check_link(self) -> None:
        """Drop a connection whose broker stopped acknowledging, so paho connects anew (call it
        about once a second; cheap). A hung broker otherwise looks connected until the
        keepalive gives up, up to twice ``mqtt.keepalive``.

        It also publishes, after a reconnect, the latest value of retained topics whose older
        value paho was still delivering, so the broker keeps the newest."""
        if self._republish_later:
            with self._lock:
                topics, self._republish_later = self._republish_later, []
                for topic in topics:
                    if self.connected and topic in self._retained:
                        self._send(topic, *self._retained[topic], True)
        now = time.monotonic()
        self._ask(now)
        waited = self._overdue(now)
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

    def _overdue(self, now: float) -> float | None:
        """Seconds the oldest QoS 1 message (or the probe) has waited on this connection, past
        the timeout."""
        if not self.connected:
            return None
        with self._ack_lock:
            self._prune()
            oldest = self._unacked[0][0] if self._unacked else math.inf
        probe = self._probe
        if probe is not None:
            oldest = min(oldest, probe[0])
        waited = now - max(oldest, self._connected_mono)
        return waited if waited >= ACK_TIMEOUT_S else None

    def _ask(self, now: float) -> None:
        """Probe a broker that has had nothing to acknowledge for ``PROBE_INTERVAL_S``, so a
        hung one is noticed also while only QoS 0 keypoints flow (they have no answer)."""
        if not self.connected or self._probe is not None or self.unacked:
            return
        if now - max(self._last_answer, self._connected_mono) < PROBE_INTERVAL_S:
            return
        result, mid = self._client.unsubscribe(self._probe_topic)
        if result == _OK and mid is not None:
            self._probe = (now, mid)
        self._last_answer = now

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
            info = self._client.publish(self._availability, "offline", qos=1, retain=True)
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
        self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _properties: Any
    ) -> None:
        if reason.is_failure:
            self._refused = True
            why = str(reason).lower()
            if str(reason) in _AUTH_REFUSED:
                why = f"not authorised ({why}): check mqtt.username and mqtt.password_file"
            self._failed(f"{self.broker} refused the connection: {why}")
            return
        if self._ever_connected:
            self.reconnects += 1
        self._ever_connected = True
        log.info("MQTT connected to %s as %s", self.broker, self.client_id)
        client.publish(self._availability, "online", qos=1, retain=True)
        with self._lock:
            self.connected, self.since = True, time.time()
            self._connected_mono = time.monotonic()
            self._probe = None
            for topic in self._subscriptions:  # a clean session forgets subscriptions
                client.subscribe(topic, qos=1)
            # A broker without persistence forgot them; one with it gets the same again.
            self._republish_later = [
                topic for topic, info in self._retained_sent.items() if not _acknowledged(info)
            ]
            for topic, (payload, qos) in self._retained.items():
                self._send(topic, payload, qos, True)
        self._up.set()

    def _on_connect_fail(self, _client: mqtt.Client, _userdata: Any) -> None:
        # paho calls this from inside its `except OSError:` block: the exception is still current.
        self._failed(self._describe(sys.exception()))

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _properties: Any
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
        self, _client: mqtt.Client, _userdata: Any, mid: int, _reasons: Any, _properties: Any
    ) -> None:
        probe = self._probe
        if probe is not None and probe[1] == mid:
            self._probe, self._last_answer = None, time.monotonic()

    def _on_publish(
        self, _client: mqtt.Client, _userdata: Any, _mid: int, _reason: Any, _properties: Any
    ) -> None:
        self.sent += 1
        self.last_publish = time.time()

    def _failed(self, message: str) -> None:
        """Record a failed connect; log it only when it differs from the last one (no log spam)."""
        if message != self.last_error:
            log.warning("MQTT %s; retrying in the background", message)
        self.last_error = message

    def _describe(self, exc: BaseException | None) -> str:
        return describe_connect_error(exc, self.settings.host, self.broker)


def _acknowledged(info: mqtt.MQTTMessageInfo) -> bool:
    try:
        return info.is_published()
    except (RuntimeError, ValueError):  # never handed to a connection
        return True


def apply_credentials(client: mqtt.Client, settings: Any, password: str | None) -> None:
    """User name, password and TLS of the ``[mqtt]`` settings on a paho client.

    A TLS file that is missing or not loadable is a ConfigError naming the key, before any
    connection is tried.
    """
    if settings.username:
        client.username_pw_set(settings.username, password)
    if not settings.tls:
        return
    if problems := tls_file_problems(settings):
        raise ConfigError(problems)
    try:
        client.tls_set(
            ca_certs=settings.ca_file or None,
            certfile=settings.certfile or None,
            keyfile=settings.keyfile or None,
        )
    except OSError as exc:  # ssl.SSLError is an OSError: a file that is not PEM, ...
        raise ConfigError(
            [f"mqtt.ca_file/certfile/keyfile: cannot load the TLS files: {exc}"]
        ) from exc


def describe_connect_error(exc: BaseException | None, host: str, where: str) -> str:
    """Why a connection to the broker ``where`` (host:port) failed, in words a user can act on."""
    if isinstance(exc, ConnectionRefusedError):
        return f"connection refused by {where}"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host {host!r} ({exc.strerror})"
    if isinstance(exc, TimeoutError):
        return f"timed out connecting to {where}"
    if isinstance(exc, ssl.SSLError):
        why = getattr(exc, "verify_message", None) or exc.reason or exc
        return f"TLS handshake with {where} failed: {why}"
    if isinstance(exc, OSError):
        return f"cannot connect to {where}: {exc.strerror or exc}"
    return f"cannot connect to {where}"
