"""The one place a paho client is made, and the connection check of the tools that wait for it.

Why it is built this way:

- The daemon's publisher, `edge-pose watch` and `edge-pose doctor` all talk to the broker the
  ``[mqtt]`` section names. Making their clients here (protocol version, TLS, login, reconnect
  delays) means a setting is honoured by all three or by none, and a TLS file that cannot be
  loaded is the same ConfigError, naming the key, for each of them.
- The publisher never waits for the network (``connect_async``); ``watch`` and ``doctor`` must
  know at once whether the broker took them. :class:`CheckedConnection` is that wait: connect,
  then one answer out of accepted, refused, closed before accepting, silent, unreachable. Each
  tool words the answer for its own screen; the reasons shared with the publisher are worded
  here (:func:`describe_connect_error`, :func:`describe_refusal`).
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from edge_pose.config import MqttConfig, tls_file_problems
from edge_pose.errors import ConfigError

RECONNECT_MIN_S, RECONNECT_MAX_S = 1, 30
_AUTH_REFUSED = {"Not authorized", "Bad user name or password"}


def make_client(settings: MqttConfig, client_id: str, password: str | None) -> mqtt.Client:
    """A paho client for the broker of ``settings``: its protocol version, login and TLS, and
    reconnects 1..30 s apart. Raises ConfigError for TLS files that cannot be loaded."""
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5 if settings.protocol == "5" else mqtt.MQTTv311,
    )
    apply_credentials(client, settings, password)
    client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
    return client


def apply_credentials(client: mqtt.Client, settings: MqttConfig, password: str | None) -> None:
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


def describe_refusal(reason: ReasonCode) -> str:
    """Why the broker refused a connect (its CONNACK reason), with the fix for a bad login."""
    why = str(reason).lower()
    if str(reason) in _AUTH_REFUSED:
        why = f"not authorised ({why}): check mqtt.username and mqtt.password_file"
    return why


class Outcome(Enum):
    """How a connect ended, as far as a waiting tool needs to know."""

    ACCEPTED = "accepted"
    REFUSED = "refused"  # the broker answered with a failure reason (login, client id...)
    CLOSED = "closed"  # the connection ended before the broker answered (TLS expected?)
    SILENT = "silent"  # connected, but no answer within the timeout
    UNREACHABLE = "unreachable"  # no connection: refused, unknown host, TLS handshake...


@dataclass(frozen=True)
class Answer:
    """The outcome of :meth:`CheckedConnection.open`, with the broker's reason when it refused
    and the exception when the broker could not be reached."""

    outcome: Outcome
    reason: ReasonCode | None = None
    error: BaseException | None = None


class CheckedConnection:
    """A client connected in the foreground: :meth:`open` returns once the broker has answered
    (or the timeout is over), then paho's thread keeps the connection, reconnecting as the
    client's reconnect delays say.

    ``on_connected(reconnect)`` runs in paho's thread after each accepted connect (subscribe
    there: a clean session forgets subscriptions); ``on_lost()`` when an accepted connection
    ends other than by :meth:`close`. A refused connect is not retried.
    """

    def __init__(
        self,
        client: mqtt.Client,
        on_connected: Callable[[bool], None] | None = None,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        self.client = client
        self.connected = False
        self._on_connected = on_connected
        self._on_lost = on_lost
        self._answer: Answer | None = None
        self._answered = threading.Event()
        self._closing = False
        client.on_connect = self._connect_answered
        client.on_disconnect = self._disconnected

    def open(self, host: str, port: int, *, keepalive: int, timeout: float) -> Answer:
        """Connect (paho's ``connect_timeout`` bounds the TCP and TLS part) and wait up to
        ``timeout`` s for the broker's answer."""
        try:
            self.client.connect(host, port, keepalive=keepalive)
        except (OSError, ValueError) as exc:  # refused, unreachable, DNS, TLS (ssl.SSLError)
            return Answer(Outcome.UNREACHABLE, error=exc)
        self.client.loop_start()
        if not self._answered.wait(timeout) or self._answer is None:
            return Answer(Outcome.SILENT)
        return self._answer

    def close(self) -> None:
        """Disconnect and stop paho's thread (also after a failed or unanswered open)."""
        self._closing = True
        self.client.disconnect()
        self.client.loop_stop()

    # --- paho callbacks: they run in paho's network thread -------------------------------------

    def _connect_answered(
        self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: ReasonCode, _props: Any
    ) -> None:
        if reason.is_failure:
            if not self._answered.is_set():
                self._answer = Answer(Outcome.REFUSED, reason=reason)
                self._answered.set()
            client.disconnect()  # a refused login is not retried
            return
        self.connected = True
        reconnect = self._answered.is_set()
        if not reconnect:
            self._answer = Answer(Outcome.ACCEPTED)
        if self._on_connected is not None:
            self._on_connected(reconnect)
        self._answered.set()

    def _disconnected(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, _reason: Any, _props: Any
    ) -> None:
        if not self._answered.is_set():
            self._answer = Answer(Outcome.CLOSED)
            self._answered.set()
            return
        was_connected, self.connected = self.connected, False
        if was_connected and not self._closing and self._on_lost is not None:
            self._on_lost()
