"""`edge-pose doctor` checks of the machine the service runs on: Python, the OS, the service
user and its groups, power and heat, and the systemd unit.

The service user's name is the one status files are trusted for (edge_pose.service.status);
its groups are the unit's ``SupplementaryGroups=`` (deploy/edge-pose.service); temperature and
throttling are read as the status document reads them (edge_pose.sysinfo); the unit's state as
`edge-pose status` asks systemd (edge_pose.service.health).
"""

from __future__ import annotations

import grp
import platform
import pwd
import sys
from pathlib import Path
from typing import Any

from edge_pose.doctor import Check, Context, Status
from edge_pose.inference.edgetpu import Identity
from edge_pose.service.status import SERVICE_USER

# SupplementaryGroups= of deploy/edge-pose.service, and what each one opens.
SERVICE_GROUPS = {
    "video": "the camera (/dev/video*, /dev/media*, /dev/dma_heap) and vcgencmd",
    "plugdev": "the Coral USB Accelerator (deploy/udev rules)",
    "apex": "the Coral M.2/PCIe module (/dev/apex_*)",
}
MIN_PYTHON = (3, 11)
HOT_C = 80.0  # the Pi starts soft throttling at 80 degrees C


def service_identity() -> tuple[Identity, str]:
    """The service user with the unit's SupplementaryGroups=, else whoever runs doctor (and a
    note saying so)."""
    try:
        user = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        me = Identity.current()
        return me, f"service user {SERVICE_USER} does not exist; checked as {me.name}"
    gids = {user.pw_gid}
    for group in grp.getgrall():
        if user.pw_name in group.gr_mem or group.gr_name in SERVICE_GROUPS:
            gids.add(group.gr_gid)
    return Identity(user.pw_name, user.pw_uid, frozenset(gids)), ""


def python_version(_ctx: Context) -> Check:
    version = platform.python_version()
    data = {"version": version, "executable": sys.executable}
    if sys.version_info[:2] < MIN_PYTHON:
        return Check(
            "python",
            "fail",
            f"Python {version}: edge-pose needs 3.11 or later",
            "use Raspberry Pi OS Bookworm (3.11) or Trixie (3.13)",
            data,
        )
    return Check("python", "ok", f"Python {version} ({sys.executable})", data=data)


def operating_system(_ctx: Context) -> Check:
    release = _os_release()
    machine = platform.machine()
    board = _read(Path("/proc/device-tree/model")).rstrip("\0")
    name = release.get("PRETTY_NAME", "unknown OS")
    data = {
        "pretty_name": name,
        "codename": release.get("VERSION_CODENAME", ""),
        "machine": machine,
        "board": board,
        "kernel": platform.release(),
    }
    text = ", ".join(p for p in (name, machine, board) if p)
    if machine in ("armv7l", "armv6l"):
        return Check(
            "os",
            "warn",
            f"{text}: a 32-bit OS",
            "install the 64-bit Raspberry Pi OS (LiteRT has no 32-bit ARM wheels)",
            data,
        )
    return Check("os", "ok", text, data=data)


def service_user(ctx: Context) -> Check:
    """The service user and the groups the unit asks for: systemd refuses to start a unit
    whose SupplementaryGroups= do not exist."""
    missing = []
    for name in SERVICE_GROUPS:
        try:
            grp.getgrnam(name)
        except KeyError:
            missing.append(name)
    data = {"user": ctx.who.name, "missing_groups": missing}
    if ctx.who_note:
        return Check(
            "service user",
            "warn" if missing else "info",
            ctx.who_note + (f"; groups missing: {', '.join(missing)}" if missing else ""),
            "sudo deploy/install.sh creates the user, the groups and the service",
            data,
        )
    if missing:
        uses = "; ".join(f"{g}: {SERVICE_GROUPS[g]}" for g in missing)
        return Check(
            "service user",
            "fail",
            f"group(s) {', '.join(missing)} do not exist, so systemd refuses to start "
            f"the unit ({uses})",
            f"sudo groupadd --system {' '.join(missing)}",
            data,
        )
    groups = ", ".join(SERVICE_GROUPS)
    return Check(
        "service user", "ok", f"{SERVICE_USER} with groups {groups} (from the unit)", data=data
    )


def power_and_heat(_ctx: Context) -> Check:
    """CPU temperature and throttling: under-voltage and heat slow inference down."""
    from edge_pose.sysinfo import THROTTLED_NOW_MASK, cpu_temperature_c, decode_throttled, throttled

    temp = cpu_temperature_c()
    throttle = throttled()
    data: dict[str, Any] = {
        "cpu_temp_c": temp,
        "throttled": throttle[0] if throttle else None,
        "throttled_flags": throttle[1] if throttle else [],
    }
    parts = [f"CPU {temp:.1f} °C" if temp is not None else "CPU temperature not available"]
    now: list[str] = []
    if throttle is not None:
        value = int(throttle[0], 16)
        now = decode_throttled(value & THROTTLED_NOW_MASK)
        parts.append(
            f"throttled={throttle[0]}" + (f" ({', '.join(throttle[1])})" if throttle[1] else "")
        )
    summary = ", ".join(parts)
    if "under-voltage" in now:
        return Check(
            "system",
            "warn",
            summary,
            "use the official power supply (5 V 3 A for a Pi 4, 5 V 5 A for a Pi 5); "
            "a bus-powered Coral USB adds to the load",
            data,
        )
    if now or (temp is not None and temp >= HOT_C):
        return Check(
            "system", "warn", summary, "add a heatsink or fan; throttling slows inference", data
        )
    status: Status = "ok" if temp is not None or throttle is not None else "info"
    return Check("system", status, summary, data=data)


def systemd_unit(_ctx: Context) -> Check:
    """The unit's state as systemd reports it (context unless it failed)."""
    from edge_pose.service.health import UNIT, systemd_state

    state = systemd_state()
    if state is None:
        return Check("service", "info", "systemd is not running here (no service to look at)")
    if state.get("load_state") == "not-found":
        return Check(
            "service",
            "info",
            f"{UNIT}.service is not installed (sudo deploy/install.sh)",
            data=state,
        )
    text = f"{UNIT}.service {state.get('active_state')} ({state.get('sub_state')})"
    if state.get("active_state") == "failed":
        return Check(
            "service",
            "warn",
            f"{text}, result {state.get('result')}",
            f"journalctl -u {UNIT} -n 50 says why",
            state,
        )
    return Check(
        "service", "ok" if state.get("active_state") == "active" else "info", text, data=state
    )


def _os_release() -> dict[str, str]:
    values = {}
    for line in _read(Path("/etc/os-release")).splitlines():
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip().strip('"')
    return values


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""
