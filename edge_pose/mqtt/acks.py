"""Whether the broker still answers: QoS 1 acknowledgements waited for, and a probe when none are.

Why it is built this way:

- A broker that keeps the TCP connection open but answers nothing (hung, stopped, a half-open
  path) looks connected to paho until the keepalive gives up, up to twice ``mqtt.keepalive``.
  Every QoS 1 message is a question the broker must answer, so the oldest one unacknowledged
  for ``ACK_TIMEOUT_S`` says the broker is stuck, long before that.
- Keypoints are QoS 0 and have no answer. With nothing to acknowledge for ``PROBE_INTERVAL_S``
  the broker is asked once: an UNSUBSCRIBE of a topic never subscribed, which it must answer
  (UNSUBACK) and which no other client sees.
- While QoS 1 messages back up (``KEYPOINTS_YIELD_BACKLOG``), keypoints yield to them: they would
  only queue in front of the events that matter.
- The pipeline, paho's thread and Home Assistant's timer all publish, so the queue of messages
  in flight changes only under a lock, never held while calling into paho.
"""

from __future__ import annotations

import collections
import math
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

ACK_TIMEOUT_S = 10.0  # a QoS 1 message unacknowledged this long (connected): the broker is stuck
PROBE_INTERVAL_S = 5.0  # with nothing to acknowledge for this long, the broker is asked once
KEYPOINTS_YIELD_BACKLOG = 20  # with this many QoS 1 messages unacknowledged, keypoints wait


class AckWatch:
    """The QoS 1 messages of one client awaiting the broker's acknowledgement, and its probe.

    Times are monotonic seconds. The publisher says when a connection starts
    (:meth:`connected`), hands over each QoS 1 message it sent on it (:meth:`handed`), and
    asks about overdue answers only while connected.
    """

    def __init__(self, client: mqtt.Client, probe_topic: str, capacity: int) -> None:
        self._client = client
        self._probe_topic = probe_topic
        # In the order handed over, with the time; pruned from the front once acknowledged
        # (paho sets the flag that is_published reads).
        self._unacked: collections.deque[tuple[float, mqtt.MQTTMessageInfo]] = collections.deque(
            maxlen=capacity
        )
        self._lock = threading.Lock()
        self._since = 0.0  # when this connection started: nothing waited on it before
        self._probe: tuple[float, int] | None = None  # (time sent, mid) while unanswered
        self._last_answer = 0.0  # time of the last probe answer or probe sent
        # The probe's answer can come on paho's thread before ``unsubscribe`` has returned its
        # mid to us: answers seen while no probe was recorded, checked when it is.
        self._early: collections.deque[int] = collections.deque(maxlen=8)
        self._probe_lock = threading.Lock()  # never held while calling into paho

    def connected(self, now: float) -> None:
        """A new connection: waits count from ``now``, a probe of the old one is forgotten."""
        with self._probe_lock:
            self._since = now
            self._probe = None

    def handed(self, info: mqtt.MQTTMessageInfo, now: float) -> None:
        """A QoS 1 message handed to paho on this connection at ``now``."""
        with self._lock:
            self._prune()
            self._unacked.append((now, info))

    @property
    def waiting(self) -> int:
        """QoS 1 messages handed over and not yet acknowledged (counted from the oldest)."""
        with self._lock:
            self._prune()
            return len(self._unacked)

    def backlogged(self) -> bool:
        """Whether keypoints should yield: ``KEYPOINTS_YIELD_BACKLOG`` messages wait (checked
        without the lock first, as this is asked once a frame)."""
        return len(self._unacked) >= KEYPOINTS_YIELD_BACKLOG and (
            self.waiting >= KEYPOINTS_YIELD_BACKLOG
        )

    def overdue(self, now: float) -> float | None:
        """Seconds the oldest QoS 1 message (or the probe) has waited on this connection, when
        that is ``ACK_TIMEOUT_S`` or more; else None."""
        with self._lock:
            self._prune()
            oldest = self._unacked[0][0] if self._unacked else math.inf
        probe = self._probe
        if probe is not None:
            oldest = min(oldest, probe[0])
        waited = now - max(oldest, self._since)
        return waited if waited >= ACK_TIMEOUT_S else None

    def probe(self, now: float) -> None:
        """Ask a broker that has had nothing to acknowledge for ``PROBE_INTERVAL_S``, so a hung
        one is noticed also while only QoS 0 keypoints flow."""
        if self._probe is not None or self.waiting:
            return
        if now - max(self._last_answer, self._since) < PROBE_INTERVAL_S:
            return
        self._early.clear()
        result, mid = self._client.unsubscribe(self._probe_topic)
        with self._probe_lock:
            answered = mid in self._early
            if result == MQTTErrorCode.MQTT_ERR_SUCCESS and mid is not None and not answered:
                self._probe = (now, mid)
            self._last_answer = now

    def unsubscribed(self, mid: int, now: float) -> None:
        """paho's thread: the broker answered an UNSUBSCRIBE (``mid``); the probe's, maybe,
        even one whose mid :meth:`probe` has not recorded yet."""
        with self._probe_lock:
            probe = self._probe
            if probe is None:
                self._early.append(mid)
            elif probe[1] == mid:
                self._probe, self._last_answer = None, now

    def _prune(self) -> None:
        """Drop acknowledged messages from the front (with the lock held)."""
        unacked = self._unacked
        while unacked and unacked[0][1].is_published():
            unacked.popleft()
