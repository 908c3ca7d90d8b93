"""The `edge-pose doctor` check of the web view: where the page is, and whether it can be served.

- The configured address and port are tried the way the server takes them (a TCP socket with
  ``SO_REUSEADDR``, bound and closed at once): free means the page will be there. Taken is fine
  when the taker is this device's own running daemon (its status document says it serves that
  port and its process is alive); anything else is a failure naming the port and, where ``ss``
  can tell, the program holding it.
- Under systemd the unit may bind only the ports its ``SocketBindAllow=`` entries name
  (``SocketBindDeny=any`` refuses the rest; deploy/edge-pose.service allows tcp:8080). The
  rules are read back from systemd (``systemctl show``, so drop-ins count) and applied as the
  kernel hook does (systemd.resource-control(5)): an allow entry that matches wins, else a deny
  entry that matches refuses, else the bind is allowed. A port the unit would refuse is a
  warning with the drop-in that allows it.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import socket
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edge_pose.doctor import Check, not_checked
from edge_pose.web.urls import page_url

if TYPE_CHECKING:
    from edge_pose.config import Config, HttpConfig
    from edge_pose.doctor import Context

NAME = "web"
UNIT = "edge-pose"
SS_TIMEOUT_S = 2.0
# ip_unprivileged_port_start: below it a bind needs CAP_NET_BIND_SERVICE, which the unit drops.
UNPRIVILEGED_PORT_START = Path("/proc/sys/net/ipv4/ip_unprivileged_port_start")


# --------------------------------------------------------------------------- the unit's rules


@dataclass(frozen=True)
class BindRule:
    """One ``SocketBindAllow=``/``SocketBindDeny=`` entry: ``family`` 4, 6 or None (both),
    ``protocol`` "tcp", "udp" or None (both), ports ``low``..``high`` (0, 0: every port,
    ``any``, which also matches a bind to port 0)."""

    family: int | None
    protocol: str | None
    low: int
    high: int

    def matches(self, family: int, protocol: str, port: int) -> bool:
        return (
            self.family in (None, family)
            and self.protocol in (None, protocol)
            and (self.low == self.high == 0 or self.low <= port <= self.high)
        )


# [ipv4:|ipv6:][tcp:|udp:](any|PORT|LOW-HIGH), or "any" alone. systemctl show of systemd 252
# prints a protocol without its colon ("tcp8080"), so the colon after it is optional.
_RULE = re.compile(
    r"(?:(?P<family>ipv4|ipv6):)?(?:(?P<protocol>tcp|udp):?)?"
    r"(?P<ports>any|(?P<low>\d{1,5})(?:-(?P<high>\d{1,5}))?)"
)


def parse_bind_rule(text: str) -> BindRule | None:
    """A rule as a unit file or ``systemctl show`` writes it; None when it is not one."""
    text = text.strip()
    if text in ("ipv4", "ipv6", "tcp", "udp"):  # a family or protocol alone: every port
        text += ":any"
    match = _RULE.fullmatch(text)
    if match is None:
        return None
    family = {"ipv4": 4, "ipv6": 6}.get(match["family"] or "")
    if match["ports"] == "any":
        return BindRule(family, match["protocol"], 0, 0)
    low = int(match["low"])
    high = int(match["high"] or low)
    if not 1 <= low <= high <= 65535:
        return None
    return BindRule(family, match["protocol"], low, high)


@dataclass(frozen=True)
class BindRules:
    """The unit's ``SocketBindAllow=`` and ``SocketBindDeny=`` entries, in order."""

    allow: tuple[BindRule, ...] = ()
    deny: tuple[BindRule, ...] = ()

    def allows(self, family: int, port: int, protocol: str = "tcp") -> bool:
        """Whether the unit's processes may bind ``port``: allow wins, then deny, else yes."""
        if any(rule.matches(family, protocol, port) for rule in self.allow):
            return True
        return not any(rule.matches(family, protocol, port) for rule in self.deny)

    def allowed_ports(self) -> str:
        """The allow entries for people: ``tcp:8080``, ``none``."""
        return ", ".join(_describe(rule) for rule in self.allow) or "none"


def _describe(rule: BindRule) -> str:
    parts = [f"ipv{rule.family}"] if rule.family else []
    parts += [rule.protocol] if rule.protocol else []
    ports = "any" if rule.low == rule.high == 0 else str(rule.low)
    if rule.high != rule.low:
        ports += f"-{rule.high}"
    return ":".join([*parts, ports])


def bind_rules(lines: Iterable[str]) -> BindRules:
    """The rules in ``KEY=VALUE`` lines: a unit file with its drop-ins, in the order systemd reads
    them, or ``systemctl show`` output. An empty assignment clears the list, as in a unit file;
    a line that is not a rule is skipped (as systemd skips it, with a warning)."""
    found: dict[str, list[BindRule]] = {"SocketBindAllow": [], "SocketBindDeny": []}
    for line in lines:
        key, sep, value = line.strip().partition("=")
        if not sep or key.strip() not in found:
            continue
        rules = found[key.strip()]
        if not value.strip():
            rules.clear()
            continue
        for word in value.split():
            rule = parse_bind_rule(word)
            if rule is not None:
                rules.append(rule)
    return BindRules(tuple(found["SocketBindAllow"]), tuple(found["SocketBindDeny"]))


def systemd_bind_rules(systemctl: str | None = None, timeout: float = 2.0) -> BindRules | None:
    """The installed unit's rules as systemd has them (drop-ins included), or None where
    systemd does not run, the unit is not installed or systemctl does not answer."""
    from edge_pose.service.health import systemd_state

    state = systemd_state(UNIT, systemctl=systemctl, timeout=timeout)
    if state is None or state.get("load_state") != "loaded":
        return None
    exe = systemctl or shutil.which("systemctl")
    if not exe:
        return None
    try:
        result = subprocess.run(
            [exe, "show", UNIT, "--property=SocketBindAllow", "--property=SocketBindDeny"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "LC_ALL": "C", "SYSTEMD_PAGER": "", "SYSTEMD_COLORS": "0"},
        )
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    if result.returncode != 0:
        return None
    return bind_rules(result.stdout.splitlines())


def dropin_fix(port: int) -> str:
    """How to let the service bind ``port``: a drop-in (docs/service.md, "Another port")."""
    return (
        f"allow the port with a drop-in: sudo systemctl edit {UNIT}, add the two lines "
        f"'[Service]' and 'SocketBindAllow=tcp:{port}', then sudo systemctl restart {UNIT} "
        '(docs/service.md, "Another port"); or set http.port back to one the unit allows'
    )


# --------------------------------------------------------------------------- the port


def try_bind(bind: str, port: int) -> OSError | None:
    """Bind a TCP socket to ``bind``:``port`` as the server would and close it at once; the
    error, or None when the address is free."""
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((bind, port))
    except OSError as exc:
        return exc
    return None


_SS_USER = re.compile(r'\("(?P<name>[^"]*)",pid=(?P<pid>\d+)')


def port_holder(port: int, timeout: float = SS_TIMEOUT_S) -> tuple[str, int] | None:
    """``(program, pid)`` listening on TCP ``port`` as ``ss -ltnp`` tells it; None when ``ss``
    is missing or may not say (another user's process, seen without root)."""
    exe = shutil.which("ss")
    if not exe:
        return None
    try:
        result = subprocess.run(
            [exe, "-H", "-l", "-t", "-n", "-p", "sport", "=", f":{port}"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "LC_ALL": "C"},
        )
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    match = _SS_USER.search(result.stdout)
    return (match["name"], int(match["pid"])) if match else None


def own_daemon_web(cfg: Config) -> tuple[int, int | None, str | None] | None:
    """``(pid, port, url)`` of this device's running daemon's web view, from its status document
    (the process alive and not stopped); None when no daemon runs."""
    from edge_pose.service.health import daemon_alive
    from edge_pose.service.status import find_status
    from edge_pose.service.status_dir import status_dirs

    doc = find_status(status_dirs(cfg.status.dir)).doc
    if doc is None or doc.get("state") == "stopped" or not daemon_alive(doc):
        return None
    pid = doc.get("pid")
    http = doc.get("http") or {}
    if pid is None or not isinstance(http, dict):
        return None
    port, url = http.get("port"), http.get("url")
    return (
        pid,
        port if isinstance(port, int) and not isinstance(port, bool) else None,
        url if isinstance(url, str) else None,
    )


def _unprivileged_start() -> int:
    try:
        return int(UNPRIVILEGED_PORT_START.read_text().strip())
    except (OSError, ValueError):
        return 1024


# --------------------------------------------------------------------------- the check


def web(ctx: Context) -> Check:
    """doctor's ``web`` line: the configured port against this machine and the systemd unit."""
    if ctx.cfg is None:
        return not_checked(NAME)
    return check_web(ctx.cfg, systemd_bind_rules())


def check_web(cfg: Config, unit_rules: BindRules | None) -> Check:
    """The check for ``cfg`` and the installed unit's bind rules (None: no unit under systemd)."""
    http = cfg.http
    data: dict[str, object] = {"bind": http.bind, "port": http.port, "url": page_url(http)}
    if not http.enabled:
        return Check(NAME, "info", "off (http.enabled = false)", data=data)
    family = 6 if ":" in http.bind else 4
    if unit_rules is not None:
        data["unit_allows"] = unit_rules.allowed_ports()
    unit_warning = _unit_warning(http, family, unit_rules)
    if http.port == 0:
        return _free_port(cfg, data, unit_warning)
    problem = try_bind(http.bind, http.port)
    if problem is None:
        url = page_url(http)
        data["url"] = url
        return _with_unit(Check(NAME, "ok", f"web view will be at {url}", data=data), unit_warning)
    if problem.errno == errno.EADDRINUSE:
        return _port_taken(cfg, data, unit_warning)
    if problem.errno == errno.EADDRNOTAVAIL:
        return Check(
            NAME,
            "fail",
            f"http.bind = {http.bind!r} is not an address of this machine",
            "set http.bind to 0.0.0.0 (every network), 127.0.0.1 (this machine only) or an "
            "address this machine has (ip -brief address)",
            data,
        )
    if problem.errno == errno.EACCES:
        return Check(
            NAME,
            "fail",
            f"port {http.port} needs privileges (below {_unprivileged_start()})",
            "choose http.port from 1024 up, e.g. 8080: the service runs without privileges",
            data,
        )
    return Check(
        NAME,
        "fail",
        f"cannot bind {http.bind} port {http.port}: {problem.strerror or problem}",
        "check http.bind and http.port",
        data,
    )


def _unit_warning(http: HttpConfig, family: int, rules: BindRules | None) -> Check | None:
    """A warning when the installed unit would refuse the configured port, else None."""
    if rules is None:
        return None
    port = http.port
    if port == 0:
        if rules.allows(family, 0):
            return None
        return Check(
            NAME,
            "warn",
            f"http.port = 0 (a free port) is refused by the systemd unit, which may bind only "
            f"{rules.allowed_ports()}",
            f"set a fixed port the unit allows (edge-pose config set http.port=8080), or "
            f"{dropin_fix(8080)}",
        )
    if not rules.allows(family, port):
        return Check(
            NAME,
            "warn",
            f"the systemd unit may not bind port {port} (it allows {rules.allowed_ports()}): "
            "the service would stop at start",
            dropin_fix(port),
        )
    if port < _unprivileged_start():
        return Check(
            NAME,
            "warn",
            f"port {port} is below {_unprivileged_start()}: the service has no privileges to "
            "bind it",
            "choose http.port from 1024 up, e.g. 8080",
        )
    return None


def _with_unit(check: Check, unit_warning: Check | None) -> Check:
    """``check`` with the unit's warning folded in (a failure stays a failure)."""
    if unit_warning is None:
        return check
    if check.status == "fail":
        check.fix = f"{check.fix}; also {unit_warning.summary}: {unit_warning.fix}"
        return check
    return Check(
        NAME,
        "warn",
        f"{check.summary}, but {unit_warning.summary}",
        unit_warning.fix,
        check.data,
    )


def _free_port(cfg: Config, data: dict[str, object], unit_warning: Check | None) -> Check:
    own = own_daemon_web(cfg)
    if own is not None and own[1]:
        pid, port, url = own
        data.update(port=port, url=url or page_url(cfg.http, port), pid=pid)
        check = Check(
            NAME, "ok", f"web view at {data['url']} (http.port = 0: a free port)", data=data
        )
    else:
        check = Check(
            NAME,
            "info",
            "a free port is picked at start (http.port = 0); edge-pose status says which",
            data=data,
        )
    return _with_unit(check, unit_warning)


def _port_taken(cfg: Config, data: dict[str, object], unit_warning: Check | None) -> Check:
    http = cfg.http
    own = own_daemon_web(cfg)
    holder = port_holder(http.port)
    if own is not None:
        pid, port, url = own
        if port == http.port or (holder is not None and holder[1] == pid):
            data.update(url=url or page_url(http), pid=pid)
            check = Check(NAME, "ok", f"web view at {data['url']}", data=data)
            return _with_unit(check, unit_warning)
    who = f"{holder[0]} (pid {holder[1]})" if holder else "another program"
    if holder:
        data["holder"] = {"program": holder[0], "pid": holder[1]}
    check = Check(
        NAME,
        "fail",
        f"port {http.port} is in use by {who}, not by a running edge-pose",
        f"stop that program (sudo ss -ltnp 'sport = :{http.port}' names it), or choose another "
        "port: edge-pose config set http.port=8081 (under systemd the unit must allow it too: "
        'docs/service.md, "Another port")',
        data,
    )
    return _with_unit(check, unit_warning)
