"""The latest retained message of each topic, kept to be published again after every connect.

Why it is built this way:

- A broker restarted without persistence has forgotten the retained state, pose and Home
  Assistant discovery messages, so each connect publishes them again; a broker with persistence
  gets the same again, which changes nothing.
- During an outage only the latest value of each topic is worth sending: values are kept here,
  not queued in paho, so they never line up behind each other.
- A retained message paho was still delivering when the link dropped is sent again by paho
  after the reconnect, *after* the republished newer value, and would win. Those topics are
  published once more a moment later (:meth:`RetainedMessages.take_resends`), so the broker
  keeps the newest.
"""

from __future__ import annotations

import paho.mqtt.client as mqtt

Message = tuple[str, bytes | str, int]  # (topic, payload, qos)


class RetainedMessages:
    """Latest (payload, qos) per topic and what paho was last handed for it.

    Not locked itself: the publisher uses it under the lock with which it flips ``connected``,
    so each connection publishes a value once.
    """

    def __init__(self) -> None:
        self._latest: dict[str, tuple[bytes | str, int]] = {}
        self._handed: dict[str, mqtt.MQTTMessageInfo] = {}
        self._resend: list[str] = []

    def remember(self, topic: str, payload: bytes | str, qos: int) -> None:
        """The newest value of ``topic`` (an empty one too: a clear made offline must still
        reach the broker)."""
        self._latest[topic] = (payload, qos)

    def handed(self, topic: str, info: mqtt.MQTTMessageInfo) -> None:
        """``topic``'s value was handed to paho on this connection (``info`` tells when it is
        acknowledged)."""
        self._handed[topic] = info

    def after_connect(self) -> list[Message]:
        """Every latest value, to publish on a new connection; the topics whose older value
        paho is still delivering are noted for :meth:`take_resends`."""
        self._resend = [topic for topic, info in self._handed.items() if not _acknowledged(info)]
        return [(topic, payload, qos) for topic, (payload, qos) in self._latest.items()]

    @property
    def resends_due(self) -> bool:
        return bool(self._resend)

    def take_resends(self) -> list[Message]:
        """The latest values of the topics noted by :meth:`after_connect`, once."""
        topics, self._resend = self._resend, []
        return [(topic, *self._latest[topic]) for topic in topics if topic in self._latest]


def _acknowledged(info: mqtt.MQTTMessageInfo) -> bool:
    try:
        return info.is_published()
    except (RuntimeError, ValueError):  # never handed to a connection
        return True
