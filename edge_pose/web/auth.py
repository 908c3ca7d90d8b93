"""Who may see the web view: HTTP Basic auth with password guessing slowed down per client
address, and, without a password, a check of the ``Host`` header against DNS rebinding.

A wrong password costs the client one of its tries (a burst of :data:`BURST`, then
:data:`PER_SECOND` a second). A client with no tries left gets 429 *before* its password is
compared: were the comparison made first, a right guess would stand out from the 429s of wrong
ones and the throttle would not slow guessing at all. A browser's first request, without
credentials, costs nothing (it is how Basic auth starts). Tries are counted per client address,
so a guesser on one machine does not lock the owner out on another; the table of addresses is
bounded (the least recently seen are forgotten first).

Without a password, the page trusts where it is served (loopback, or a LAN by
``allow_anonymous``). A web page in the user's browser could still reach it by rebinding its own
name to the device's address and then read the camera as its own origin. Such a request carries
the attacker's name in ``Host``; :func:`host_allowed` admits only the device's own names and
plain addresses, as Jupyter and other local servers do. With a password the browser sends no
credentials to another origin, so the password is the guard.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from enum import Enum
from functools import cache

USER = "edge-pose"
PER_SECOND, BURST = 1.0, 10
CLIENTS = 256  # addresses remembered at most


class Verdict(Enum):
    ALLOWED = "allowed"
    ASK = "ask"  # 401: no or wrong credentials
    THROTTLED = "throttled"  # 429: too many wrong tries from this address


class Logins:
    """Checks ``Authorization`` headers against the password; thread-safe."""

    def __init__(self, password: str | None, clock: Callable[[], float] = time.monotonic) -> None:
        self._expected = None if password is None else f"{USER}:{password}".encode()
        self._clock = clock
        self._tries: OrderedDict[str, tuple[float, float]] = OrderedDict()  # (tokens, when)
        self._lock = threading.Lock()

    @property
    def required(self) -> bool:
        return self._expected is not None

    def check(self, header: str | None, client: str) -> Verdict:
        """What to answer a request from ``client`` (its address) with this header."""
        if self._expected is None:
            return Verdict.ALLOWED
        if header is None:
            return Verdict.ASK
        with self._lock:
            now = self._clock()
            tokens, when = self._tries.pop(client, (float(BURST), now))
            tokens = min(float(BURST), tokens + (now - when) * PER_SECOND)
            if tokens < 1:
                self._remember(client, tokens, now)
                return Verdict.THROTTLED
            if _matches(header, self._expected):
                self._remember(client, tokens, now)
                return Verdict.ALLOWED
            self._remember(client, tokens - 1, now)
            return Verdict.ASK

    def _remember(self, client: str, tokens: float, now: float) -> None:
        if tokens < BURST:  # a client with all its tries needs no entry
            self._tries[client] = (tokens, now)
            while len(self._tries) > CLIENTS:
                self._tries.popitem(last=False)


def _matches(header: str, expected: bytes) -> bool:
    """Whether a ``Basic`` header carries ``user:password`` (compared in constant time)."""
    if header[:6].lower() != "basic ":
        return False
    try:
        given = base64.b64decode(header[6:], validate=True)
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(given, expected)


def host_allowed(host: str | None) -> bool:
    """Whether a ``Host`` header names this device: an IP address, ``localhost``, or the
    machine's own name (bare, ``.local``, or fully qualified), with or without a port."""
    if not host:
        return True  # HTTP/1.0 without Host: no browser sends that
    name = host.strip().lower()
    if name.startswith("["):  # [v6]:port
        name = name[1 : name.find("]")] if "]" in name else name
    elif name.count(":") == 1:
        name = name.partition(":")[0]
    name = name.rstrip(".")
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        pass
    return name == "localhost" or name.endswith(".localhost") or name in _own_names()


@cache
def _own_names() -> frozenset[str]:
    bare = socket.gethostname().lower()
    short = bare.split(".", 1)[0]
    return frozenset({bare, short, short + ".local", socket.getfqdn().lower()})
