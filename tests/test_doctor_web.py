"""doctor's `web` check with real sockets: a free port, a port this test holds, the port of a
running edge-pose (a real `edge-pose run`), an address this machine does not have; and the
systemd unit's SocketBindAllow=/SocketBindDeny= rules, read from deploy/edge-pose.service and
from the drop-in docs/service.md documents, applied as systemd.resource-control(5) says."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from mqtt_broker import free_port, wait_for

from edge_pose.config import Config, HttpConfig, StatusConfig
from edge_pose.web.checks import (
    UNPRIVILEGED_PORT_START,
    BindRule,
    BindRules,
    bind_rules,
    check_web,
    parse_bind_rule,
    port_holder,
    try_bind,
)

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "deploy" / "edge-pose.service"
SERVICE_DOC = REPO / "docs" / "service.md"
HOST = socket.gethostname().split(".", 1)[0]


def config(tmp_path: Path, **http: object) -> Config:
    """A config with these [http] values and a status folder of the test's own."""
    return Config(http=HttpConfig(**http), status=StatusConfig(dir=str(tmp_path / "status")))


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A port this test holds, as another program would: bound to 127.0.0.1 and listening."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    yield sock
    sock.close()


# --------------------------------------------------------------------------- the port


def test_a_free_port_says_where_the_page_will_be(tmp_path: Path) -> None:
    port = free_port()
    check = check_web(config(tmp_path, port=port), None)
    assert (check.name, check.status) == ("web", "ok")
    assert check.summary == f"web view will be at http://127.0.0.1:{port}/"
    lan = check_web(config(tmp_path, bind="0.0.0.0", port=port, allow_anonymous=True), None)
    assert lan.status == "ok" and lan.summary == f"web view will be at http://{HOST}.local:{port}/"


def test_a_port_held_by_another_program_fails_naming_it(
    tmp_path: Path, listener: socket.socket
) -> None:
    port = listener.getsockname()[1]
    assert isinstance(try_bind("127.0.0.1", port), OSError)
    for bind in ("127.0.0.1", "0.0.0.0"):  # a wildcard bind collides with it as well
        check = check_web(config(tmp_path, bind=bind, port=port, allow_anonymous=True), None)
        assert check.status == "fail", check
        assert check.summary.startswith(f"port {port} is in use by ")
        assert check.summary.endswith("not by a running edge-pose")
        assert "http.port=8081" in check.fix and f"sport = :{port}" in check.fix
        if shutil.which("ss"):  # ss names this very process (it is ours, or we are root)
            assert f"(pid {os.getpid()})" in check.summary, check.summary
            assert check.data["holder"]["pid"] == os.getpid()
    listener.close()
    assert try_bind("127.0.0.1", port) is None
    assert check_web(config(tmp_path, port=port), None).status == "ok"


def test_ss_names_the_holder(listener: socket.socket) -> None:
    if not shutil.which("ss"):
        pytest.skip("ss is not installed (apt-get install iproute2): the holder is optional")
    holder = port_holder(listener.getsockname()[1])
    assert holder is not None and holder[1] == os.getpid()
    assert port_holder(free_port()) is None


def test_an_address_this_machine_does_not_have(tmp_path: Path) -> None:
    check = check_web(config(tmp_path, bind="192.0.2.7", port=free_port(), allow_anonymous=True),
                      None)  # fmt: skip
    assert check.status == "fail"
    assert check.summary == "http.bind = '192.0.2.7' is not an address of this machine"
    assert "0.0.0.0" in check.fix


def test_off_and_free_port(tmp_path: Path) -> None:
    off = check_web(config(tmp_path, enabled=False), None)
    assert (off.status, off.summary) == ("info", "off (http.enabled = false)")
    free = check_web(config(tmp_path, port=0), None)
    assert free.status == "info"
    assert free.summary == (
        "a free port is picked at start (http.port = 0); edge-pose status says which"
    )


def test_a_stale_status_of_a_dead_daemon_does_not_excuse_the_port(
    tmp_path: Path, listener: socket.socket
) -> None:
    """status.json says a daemon serves the port, but its process is gone: the holder is
    someone else, so the port is reported taken."""
    port = listener.getsockname()[1]
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    status = tmp_path / "status"
    status.mkdir()
    (status / "status.json").write_text(json.dumps({
        "v": 1, "state": "running", "pid": dead.pid, "uptime_s": 5.0,
        "http": {"enabled": True, "url": f"http://127.0.0.1:{port}/", "port": port},
    }))  # fmt: skip
    check = check_web(config(tmp_path, port=port), None)
    assert check.status == "fail" and "not by a running edge-pose" in check.summary


@pytest.fixture
def running(tmp_path: Path, data_dir: Path) -> Iterator[tuple[Path, int]]:
    """A real `edge-pose run` serving the web view on 127.0.0.1, port picked free at start
    (the suite's $EDGE_POSE_HTTP_PORT=0); its config (with its own status folder) and port."""
    status = tmp_path / "status"
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[mqtt]\nenabled = false\n[status]\ndir = "{status}"\n')
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge_pose.cli", "run", "--config", str(cfg), "--camera",
         str(data_dir / "tfjs" / "pose_squats.mp4"), "--loop", "--http-port", "0"],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip

    def bound() -> int | None:
        try:
            doc = json.loads((status / "status.json").read_text())
        except (OSError, ValueError):
            return None
        http = doc.get("http") or {}
        return http.get("port") if doc.get("state") == "running" else None

    try:
        assert wait_for(bound, 60), "the daemon did not report its web view within 60 s"
        port = bound()
        assert port
        yield cfg, port
    finally:
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr


def test_the_port_of_our_own_running_daemon_is_fine(running: tuple[Path, int]) -> None:
    """doctor (a real subprocess) next to a real run: the taken port is the daemon's own."""
    cfg, port = running
    cfg.write_text(cfg.read_text() + f"[http]\nport = {port}\n")
    result = subprocess.run(
        [sys.executable, "-m", "edge_pose.cli", "doctor", "--config", str(cfg), "--json",
         "--timeout", "2"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    web = checks["web"]
    assert web["status"] == "ok", web
    assert web["summary"] == f"web view at http://127.0.0.1:{port}/"
    names = [c["name"] for c in json.loads(result.stdout)["checks"]]
    assert names.index("web") == names.index("mqtt") + 1
    # The same config with port = 0: where the running daemon's page is.
    cfg.write_text(cfg.read_text().replace(f"port = {port}", "port = 0"))
    free = subprocess.run(
        [sys.executable, "-m", "edge_pose.cli", "doctor", "--config", str(cfg), "--json"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    web = {c["name"]: c for c in json.loads(free.stdout)["checks"]}["web"]
    assert web["status"] == "ok"
    assert web["summary"] == f"web view at http://127.0.0.1:{port}/ (http.port = 0: a free port)"


# --------------------------------------------------------------------------- the unit's rules


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("tcp:8080", BindRule(None, "tcp", 8080, 8080)),
        ("tcp8080", BindRule(None, "tcp", 8080, 8080)),  # systemctl show of systemd 252
        ("any", BindRule(None, None, 0, 0)),
        ("ipv6:udp:1000-2000", BindRule(6, "udp", 1000, 2000)),
        ("ipv4", BindRule(4, None, 0, 0)),
        ("tcp", BindRule(None, "tcp", 0, 0)),
        ("ipv4:tcp:any", BindRule(4, "tcp", 0, 0)),
        ("9000", BindRule(None, None, 9000, 9000)),
        ("0", None),  # port 0 is not a rule (systemd.resource-control(5))
        ("70000", None),
        ("2000-1000", None),
        ("sctp:80", None),
        ("", None),
    ],
)
def test_bind_rules_parse_as_systemd_writes_them(text: str, rule: BindRule | None) -> None:
    assert parse_bind_rule(text) == rule


def unit_lines(*dropins: str) -> list[str]:
    """The shipped unit's lines, then drop-ins, in the order systemd reads them."""
    lines = UNIT.read_text().splitlines()
    for dropin in dropins:
        lines += dropin.splitlines()
    return lines


def documented_dropin() -> str:
    """The drop-in docs/service.md gives for another port (the fenced block under "Another
    port")."""
    text = SERVICE_DOC.read_text()
    section = text[text.index("### Another port") :]
    block = re.search(r"```ini\n(.*?)```", section, re.S)
    assert block, "docs/service.md: no ```ini drop-in under 'Another port'"
    return block.group(1)


def test_the_unit_allows_exactly_the_web_port() -> None:
    rules = bind_rules(unit_lines())
    assert rules.allow == (BindRule(None, "tcp", 8080, 8080),)
    assert rules.deny == (BindRule(None, None, 0, 0),)
    for family in (4, 6):
        assert rules.allows(family, 8080)
        assert not rules.allows(family, 8080, "udp")
        for port in (0, 80, 1883, 8081, 9000):
            assert not rules.allows(family, port), port
    assert rules.allowed_ports() == "tcp:8080"


def test_the_documented_dropin_allows_another_port() -> None:
    dropin = documented_dropin()
    assert "[Service]" in dropin and "SocketBindAllow=tcp:9000" in dropin
    rules = bind_rules(unit_lines(dropin))
    assert rules.allows(4, 9000) and rules.allows(6, 9000) and rules.allows(4, 8080)
    assert not rules.allows(4, 9001)
    # An empty assignment clears what came before, as in systemd.
    assert bind_rules(unit_lines("SocketBindDeny=")).allows(4, 9000)
    assert not bind_rules(unit_lines("SocketBindAllow=")).allows(4, 8080)
    # No rules at all: nothing is refused.
    assert BindRules().allows(4, 1)


def test_a_port_the_unit_refuses_is_a_warning_with_the_dropin(tmp_path: Path) -> None:
    rules = bind_rules(unit_lines())
    port = free_port()
    check = check_web(config(tmp_path, port=port), rules)
    assert check.status == "warn", check
    assert check.summary.startswith(f"web view will be at http://127.0.0.1:{port}/, but ")
    assert f"may not bind port {port} (it allows tcp:8080)" in check.summary
    assert f"SocketBindAllow=tcp:{port}" in check.fix and "systemctl edit edge-pose" in check.fix
    allowed = bind_rules(unit_lines(f"[Service]\nSocketBindAllow=tcp:{port}\n"))
    assert check_web(config(tmp_path, port=port), allowed).status == "ok"
    zero = check_web(config(tmp_path, port=0), rules)
    assert zero.status == "warn" and "http.port = 0 (a free port) is refused" in zero.summary


def test_a_taken_port_the_unit_refuses_fails_and_says_both(
    tmp_path: Path, listener: socket.socket
) -> None:
    port = listener.getsockname()[1]
    check = check_web(config(tmp_path, port=port), bind_rules(unit_lines()))
    assert check.status == "fail"
    assert f"SocketBindAllow=tcp:{port}" in check.fix


def test_a_privileged_port_cannot_be_the_services(tmp_path: Path) -> None:
    """The unit has no capabilities: a port below 1024 fails for the service even when root
    (this test, maybe) could bind it."""
    if UNPRIVILEGED_PORT_START.read_text().strip() != "1024":
        pytest.skip("this machine lets everyone bind low ports (ip_unprivileged_port_start)")
    rules = bind_rules(unit_lines("SocketBindAllow=tcp:80"))
    check = check_web(config(tmp_path, port=80), rules)
    if check.status == "fail" and "in use" in check.summary:
        pytest.skip("port 80 is taken on this machine")
    assert check.status == ("warn" if os.geteuid() == 0 else "fail"), check
    assert "below" in check.summary and "1024" in check.fix
