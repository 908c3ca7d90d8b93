"""Where the web view is, said the same way by the log, `edge-pose status`, doctor and Home
Assistant's device link."""

from __future__ import annotations

import ipaddress
import socket

from edge_pose.config import HttpConfig


def page_url(http: HttpConfig, port: int | None = None) -> str | None:
    """The page's URL for a person on this machine or the LAN; None when the web view is off.

    ``port`` is the port actually bound (``http.port = 0`` picks one); without it the configured
    port is used, and a configured 0 has no URL yet. A wildcard bind (0.0.0.0, ::) is shown with
    the host's mDNS name (``raspberrypi.local``), which Raspberry Pi OS announces by default; a
    specific address is shown as it is.
    """
    if not http.enabled:
        return None
    port = port if port is not None else http.port
    if not port:
        return None
    scheme = "https" if http.certfile else "http"
    address = ipaddress.ip_address(http.bind)
    if address.is_unspecified:
        host = socket.gethostname().split(".", 1)[0] + ".local"
    elif address.version == 6:
        host = f"[{http.bind}]"
    else:
        host = http.bind
    default = 443 if scheme == "https" else 80
    return f"{scheme}://{host}{'' if port == default else f':{port}'}/"


def lan_page_url(http: HttpConfig, port: int | None = None) -> str | None:
    """:func:`page_url` when another machine can open it, else None: a loopback bind
    (127.0.0.1, ::1) serves this machine only, so a link to it (Home Assistant's device page)
    would lead nowhere."""
    if not http.enabled or http.loopback:
        return None
    return page_url(http, port)
