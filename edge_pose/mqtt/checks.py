"""The `edge-pose doctor` check of the broker: one connection made with the client factory the
daemon and `watch` use (protocol, TLS, login from the config) and judged by the same
connection check, under its own client id (the service's would kick the running service off
the broker) and a short timeout.
"""

from __future__ import annotations

import os

from edge_pose.config import read_password
from edge_pose.doctor import Check, Context, not_checked
from edge_pose.errors import ConfigError
from edge_pose.mqtt.client import CheckedConnection, Outcome, make_client


def broker(ctx: Context) -> Check:
    if ctx.cfg is None:
        return not_checked("mqtt")
    m = ctx.cfg.mqtt
    address = f"{m.host}:{m.port}"
    data = {"broker": address, "tls": m.tls, "username": m.username}
    if not m.enabled:
        return Check("mqtt", "info", "disabled (mqtt.enabled = false)", data=data)
    try:
        password = read_password(m)
    except ConfigError as exc:
        return Check("mqtt", "fail", exc.problems[0], "fix mqtt.password_file", data)
    try:
        client = make_client(m, f"edge-pose-doctor-{os.getpid()}", password)
    except ConfigError as exc:
        return Check(
            "mqtt", "fail", exc.problems[0], "check mqtt.ca_file, certfile and keyfile", data
        )
    client.connect_timeout = ctx.timeout
    connection = CheckedConnection(client)
    try:
        answer = connection.open(m.host, m.port, keepalive=10, timeout=ctx.timeout)
    finally:
        connection.close()
    if answer.outcome is Outcome.UNREACHABLE:
        error = answer.error
        why = getattr(error, "strerror", None) or str(error) or type(error).__name__
        return Check(
            "mqtt",
            "fail",
            f"cannot connect to {address}: {why}",
            "start the broker (sudo systemctl start mosquitto) or fix mqtt.host, "
            "mqtt.port and mqtt.tls",
            data,
        )
    if answer.outcome in (Outcome.SILENT, Outcome.CLOSED):
        return Check(
            "mqtt",
            "fail",
            f"{address} took the connection but did not answer MQTT within {ctx.timeout:g} s",
            "check mqtt.port and whether it expects TLS (mqtt.tls)",
            data,
        )
    if answer.outcome is Outcome.REFUSED:
        return Check(
            "mqtt",
            "fail",
            f"{address} refused the connection: {answer.reason}",
            "check mqtt.username and mqtt.password_file",
            data,
        )
    how = (" over TLS" if m.tls else "") + (f" as {m.username}" if m.username else "")
    return Check("mqtt", "ok", f"{address} accepted a connection{how}", data=data)
