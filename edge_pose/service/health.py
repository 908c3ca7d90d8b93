"""Is edge-pose healthy? The verdict on a status document, the process and systemd's view.

:func:`evaluate` judges a status document (edge_pose.service.document) at a given time: 0 healthy,
1 degraded (with the reasons and what to do), 3 not running, the exit codes of `edge-pose status`
(docs/status.md has the rules). It checks that the process that wrote the document still lives
(:func:`pid_alive`; a pid reused by an unrelated, younger process is recognised by comparing its
age with the daemon's reported uptime) and reads the unit's state from systemd where systemd
runs (:func:`systemd_state`).

Decisions:

- After SIGKILL or a crash the file remains with a dead pid: "stale status file, process gone"
  -> 3 (not running), not 1: nothing is running.
- "starting" counts as degraded (1): not serving yet. After STARTING_GRACE_S the reason says
  it looks stuck. "stopping" counts as not running (3), like ``systemctl is-active``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

from edge_pose.errors import EX_FAILURE, EX_NOT_RUNNING, EX_OK
from edge_pose.service.document import (
    AsRead,
    FpsStatus,
    StatusDocument,
    parse_document,
    section,
    throttled_value,
)
from edge_pose.service.durations import ago, duration
from edge_pose.sysinfo import THROTTLED_NOW_MASK, decode_throttled

STALE_AFTER_S = 5.0  # older than this while the process lives: hung
STARTING_GRACE_S = 60.0  # "starting" for longer than this: probably stuck
STALL_S = 10.0  # no frame for this long counts as a stall when the document does not say
UNIT = "edge-pose"
SYSTEMD_BOOTED = Path("/run/systemd/system")  # sd_booted(): systemd is PID 1
SYSTEMD_PROPERTIES = (
    "LoadState",
    "ActiveState",
    "SubState",
    "Result",
    "MainPID",
    "NRestarts",
    "ExecMainStartTimestamp",
)
EX_DEGRADED = EX_FAILURE
_LABELS = {EX_OK: "healthy", EX_DEGRADED: "degraded", EX_NOT_RUNNING: "not running"}
_JOURNAL_HINT = "see journalctl -u edge-pose -e"
_PID_MAX = 2**31 - 1  # pid_t; a larger "pid" from a hostile document would overflow os.kill


# --------------------------------------------------------------------------- processes


def pid_alive(pid: object) -> bool:
    """Whether process ``pid`` exists (signal 0; EPERM means it exists but is another user's).
    A zombie (killed, not yet reaped) counts as gone."""
    if not isinstance(pid, int) or isinstance(pid, bool) or not 0 < pid <= _PID_MAX:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    except OSError:
        return False
    fields = _proc_stat(pid)
    return not (fields and fields[0] in ("Z", "X"))


def process_age_s(pid: int) -> float | None:
    """Seconds since process ``pid`` started: /proc's start time against CLOCK_BOOTTIME (both
    boot-relative, so wall-clock jumps do not matter); None where that cannot be told."""
    fields = _proc_stat(pid)
    try:
        start = int(fields[19]) / os.sysconf("SC_CLK_TCK") if fields else None
        now = time.clock_gettime(time.CLOCK_BOOTTIME)
    except (OSError, ValueError, IndexError, AttributeError):
        return None
    if start is None or now < start:
        return None
    return now - start


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (index 0 = state, 19 = starttime)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            text = f.read()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()


def daemon_alive(doc: StatusDocument) -> bool:
    """The pid in ``doc`` is alive and is plausibly the daemon that wrote it: a process younger
    than the reported uptime is an unrelated one that reused the pid."""
    pid = doc.get("pid")
    if pid is None or not pid_alive(pid):
        return False
    uptime = doc.get("uptime_s")
    age = process_age_s(pid)
    return not (uptime is not None and age is not None and age + 2.0 < uptime)


# --------------------------------------------------------------------------- systemd


def systemd_state(
    unit: str = UNIT,
    *,
    systemctl: str | None = None,
    booted: Path = SYSTEMD_BOOTED,
    timeout: float = 2.0,
) -> dict[str, Any] | None:
    """``systemctl show UNIT`` as a dict, or None where systemd does not run, systemctl is
    missing, slow (``timeout``) or fails. Never raises.

    Keys: ``unit``, ``load_state`` ("loaded" / "not-found"), ``active_state``, ``sub_state``,
    ``result``, ``main_pid`` (int, 0 = none), ``n_restarts`` (int or None), ``started`` (systemd's
    ExecMainStartTimestamp text or None).
    """
    if not booted.is_dir():
        return None
    exe = systemctl or shutil.which("systemctl")
    if not exe:
        return None
    try:
        result = subprocess.run(
            [exe, "show", unit, "--property=" + ",".join(SYSTEMD_PROPERTIES)],
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
    props = dict(line.partition("=")[::2] for line in result.stdout.splitlines() if "=" in line)
    if not props.get("ActiveState"):
        return None
    return {
        "unit": unit,
        "load_state": props.get("LoadState") or None,
        "active_state": props.get("ActiveState"),
        "sub_state": props.get("SubState") or None,
        "result": props.get("Result") or None,
        "main_pid": _parse_int(props.get("MainPID")) or 0,
        "n_restarts": _parse_int(props.get("NRestarts")),
        "started": props.get("ExecMainStartTimestamp") or None,
    }


def _parse_int(text: str | None) -> int | None:
    """An integer from systemctl's text output; None when empty or not a number."""
    try:
        return int(text) if text else None
    except ValueError:
        return None


def _systemd_hint(systemd: dict[str, Any] | None) -> str:
    """What systemd says about a unit that is not running, for a 'not running' reason."""
    if not systemd or systemd.get("load_state") == "not-found":
        return ""
    active, sub = systemd.get("active_state"), systemd.get("sub_state")
    restarts = systemd.get("n_restarts")
    if sub == "auto-restart":
        count = f" (restart #{restarts + 1})" if isinstance(restarts, int) else ""
        return f"; systemd will restart it{count}"
    if active == "failed":
        return f"; systemd: failed ({systemd.get('result') or 'unknown result'})"
    if active in ("inactive", "deactivating"):
        return f"; systemd: {active}"
    return ""


# --------------------------------------------------------------------------- verdict


class VerdictJson(TypedDict):
    """A :class:`Verdict` as JSON (``status --json``)."""

    code: int
    state: str
    reasons: list[str]


@dataclass
class Verdict:
    """``code``: 0 healthy, 1 degraded, 3 not running. ``state``: starting, running, paused
    (running, paused by an MQTT command), stopping, stopped, stale (process gone) or absent (no
    status file). ``reasons``: one line each, with
    what to do after " — "; empty when healthy."""

    code: int
    state: str
    reasons: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return _LABELS.get(self.code, "unknown")

    def to_json(self) -> VerdictJson:
        return {"code": self.code, "state": self.state, "reasons": list(self.reasons)}


def evaluate(
    doc: AsRead | None,
    now: float,
    systemd: dict[str, Any] | None = None,
    *,
    min_fps: float | None = None,
    missing: str | None = None,
) -> Verdict:
    """Judge a status document at wall time ``now`` (see docs/status.md for the rules).

    ``min_fps`` overrides the ``min_fps`` in the document when not None; ``missing`` describes
    where no file was found (used when ``doc`` is None). Checks whether the pid is alive.
    ``doc`` is a document as read: the numbers and flags are judged on its typed view
    (:func:`~edge_pose.service.document.parse_document`), so a judgement never fails on a field,
    while the reasons name what the file says (a state, pid or error of another type included).
    """
    if doc is None:
        return _evaluate_missing(systemd, missing or "no status file found")
    raw, doc = doc, parse_document(doc)
    state = raw.get("state")
    pid = raw.get("pid")
    updated = doc.get("updated")
    age = max(0.0, now - updated) if updated is not None else None
    last_error = raw.get("last_error")
    error = f"; last error: {last_error}" if last_error else ""
    if state == "stopped":
        when = f" {ago(age)}" if age is not None else ""
        return Verdict(
            EX_NOT_RUNNING,
            "stopped",
            [
                f"stopped{when}{error}{_systemd_hint(systemd)} — start it: sudo systemctl start "
                "edge-pose (or run `edge-pose run`)"
            ],
        )
    if not daemon_alive(doc):
        when = f"; last update {ago(age)}" if age is not None else ""
        return Verdict(
            EX_NOT_RUNNING,
            "stale",
            [
                f"stale status file: process {pid} is gone (killed or crashed{when}){error}"
                f"{_systemd_hint(systemd)} — {_JOURNAL_HINT}"
            ],
        )
    if state == "stopping":
        reason = f"stopping (shutdown in progress, pid {pid})"
        if age is not None and age > STALE_AFTER_S:
            reason += f", no update for {duration(age)}: stuck while stopping? — {_JOURNAL_HINT}"
        return Verdict(EX_NOT_RUNNING, "stopping", [reason])

    reasons: list[str] = []
    if age is not None and age > STALE_AFTER_S:
        reasons.append(
            f"status not updated for {duration(age)} although process {pid} is alive: the "
            f"pipeline looks hung — systemd's watchdog restarts it; else {_JOURNAL_HINT} and "
            "restart it (sudo systemctl restart edge-pose)"
        )
    uptime = doc.get("uptime_s")
    if state == "starting":
        if uptime is not None and uptime > STARTING_GRACE_S:
            reasons.append(
                f"still starting after {duration(uptime)}: model load or camera start looks "
                f"stuck — {_JOURNAL_HINT}; check the camera cable and `edge-pose doctor`"
            )
        else:
            since = f" (for {duration(uptime)})" if uptime is not None else ""
            reasons.append(f"starting{since}: loading the model and opening the camera")
    elif state != "running":
        reasons.append(f"unknown state {state!r} in the status file — is edge-pose up to date?")

    paused = doc.get("paused") is True
    if paused:
        reasons.append(
            'paused by an MQTT command: frames are dropped, nothing is inferred or published — '
            'send {"command": "resume"} to <base>/set'
        )
    stall = _stall_reason(doc, now) if state == "running" else None
    if stall:
        reasons.append(stall)

    mqtt = section(raw, "mqtt")  # as written: any true "enabled", any false "connected"
    if mqtt.get("enabled") and not mqtt.get("connected"):
        broker = mqtt.get("broker") or "the broker"
        why = f": {mqtt_error}" if (mqtt_error := mqtt.get("last_error")) else ""
        reasons.append(
            f"MQTT disconnected from {broker}{why} — check the broker (systemctl status "
            "mosquitto) and mqtt.host/mqtt.port in the config"
        )

    threshold = min_fps if min_fps is not None else doc.get("min_fps")
    processed = (doc.get("fps") or FpsStatus()).get("processed")
    slow = processed is not None and threshold and processed < threshold
    if state == "running" and slow and not (paused or stall):  # those reasons say why
        reasons.append(
            f"processing {processed:.1f} fps, below status.min_fps = {threshold:g} — check CPU "
            "load and temperature, model.threads, camera.fps, or use an Edge TPU"
        )

    value = throttled_value(section(raw, "system").get("throttled"))
    if value is not None and value & THROTTLED_NOW_MASK:
        reasons.append(_throttle_reason(value))

    shown = "paused" if paused and state == "running" else str(state)
    return Verdict(EX_DEGRADED if reasons else EX_OK, shown, reasons)


def _stall_reason(doc: StatusDocument, now: float) -> str | None:
    """"no frame processed for N s" when the last frame is older than the daemon's stall
    limit (``stall_s``, half the watchdog interval): the rates alone cannot tell a stall."""
    last = doc.get("last_frame")
    if last is None:
        return None
    limit = doc.get("stall_s")
    limit = limit if limit is not None and limit > 0 else STALL_S
    idle = now - last
    if idle <= limit:
        return None
    return (
        f"no frame processed for {duration(idle)} (camera stalled or its source ended?) — "
        "check the camera (cable, `edge-pose doctor`) and journalctl -u edge-pose -e; "
        "systemd's watchdog restarts a stalled service"
    )


def _evaluate_missing(systemd: dict[str, Any] | None, missing: str) -> Verdict:
    sd = systemd or {}
    active, sub = sd.get("active_state"), sd.get("sub_state")
    if active in ("active", "reloading"):
        return Verdict(
            EX_DEGRADED,
            "running",
            [
                f"systemd reports edge-pose {active} (main pid {sd.get('main_pid')}) but "
                f"{missing} — does this command use the service's config (status.dir)? Try "
                "--config /etc/edge-pose/config.toml"
            ],
        )
    if active == "activating" and sub != "auto-restart":
        return Verdict(
            EX_DEGRADED, "starting", ["starting (systemd: activating), no status file yet"]
        )
    return Verdict(
        EX_NOT_RUNNING,
        "absent",
        [
            f"not running: {missing}{_systemd_hint(systemd)} — start it: sudo systemctl start "
            f"edge-pose (or `edge-pose run`); {_JOURNAL_HINT}"
        ],
    )


def _throttle_reason(value: int) -> str:
    now = decode_throttled(value & THROTTLED_NOW_MASK)
    advice = []
    if value & 0x1:
        advice.append(
            "under-voltage: use the official power supply (5.1 V 3 A for a Pi 4, "
            "5.1 V 5 A for a Pi 5) and a short, thick cable"
        )
    if value & 0x8 or (value & 0x6 and not value & 0x1):
        advice.append("heat: add a heatsink or fan and give the case air")
    return f"CPU throttled now ({', '.join(now)}, {value:#x}) — {'; '.join(advice)}"
