"""`edge-pose status` as text: a headline and aligned lines, like the top of systemctl status.

Only formatting: the verdict comes from edge_pose.service.health, the document from the status
file as read. Every field is shown as the file has it (a text, or a value of another type in its
JSON spelling), numbers are read with the status document's rule
(:func:`edge_pose.service.document.number`) and a section that is not an object counts as empty,
so a document from another version, or a hand-edited one, prints what it has and "-" for the rest.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edge_pose import __version__
from edge_pose.errors import EX_NOT_RUNNING, EX_OK
from edge_pose.service.document import AsRead, number, section, throttled_value
from edge_pose.service.durations import ago, duration
from edge_pose.service.health import EX_DEGRADED, UNIT, Verdict
from edge_pose.service.status import SERVICE_USER, describe_user, user_name
from edge_pose.sysinfo import decode_throttled

_GREEN, _YELLOW, _RED, _BOLD, _RESET = "\x1b[32m", "\x1b[33m", "\x1b[31m", "\x1b[1m", "\x1b[0m"
FALL = "FALL"  # the label of the line that says someone fell (red on a terminal)
_SHOWN = 8  # people, zones or falls named in one line at most


def format_status(
    doc: AsRead | None,
    verdict: Verdict,
    systemd: dict[str, Any] | None,
    *,
    now: float | None = None,
    path: Path | None = None,
    searched: Sequence[Path] = (),
    ignored: Sequence[str] = (),
    color: bool = False,
    owner: int | None = None,
) -> str:
    """A compact summary like the top of ``systemctl status``: a headline with a dot (coloured
    when ``color``), aligned ``label: value`` lines with units, then the problems found.
    ``owner`` (the file's uid) is named when it is another user's run. ``doc`` is the document
    as read (a :class:`~edge_pose.service.document.StatusDocument` is one)."""
    now = time.time() if now is None else now
    live = verdict.state not in ("stopped", "stale")  # else nothing is connected any more
    rows: list[tuple[str, str]] = _doc_rows(doc, now, live) if doc is not None else []
    rows[1:1] = _systemd_rows(systemd, doc)  # under "state", like the top of systemctl status
    if path is not None and doc is not None:
        updated = number(doc.get("updated"))
        when = f", updated {ago(max(0.0, now - updated))}" if updated is not None else ""
        rows.append(("file", f"{path}{_whose(owner)}{when}"))
    elif doc is None and searched:
        rows.append(("searched", ", ".join(str(d) for d in searched)))
    rows += [("ignored", problem) for problem in ignored]

    lines = [_headline(verdict, doc, color)]
    width = max((len(label) for label, _ in rows), default=0)
    for label, value in rows:
        line = f"{label:>{width + 2}}: {value}"
        lines.append(f"{_RED}{_BOLD}{line}{_RESET}" if color and label == FALL else line)
    if verdict.reasons and verdict.code != EX_OK:
        lines.append("")
        lines.append("Problems:" if verdict.code == EX_DEGRADED else "Why:")
        lines += [f"  - {reason}" for reason in verdict.reasons]
    return "\n".join(lines)


def _whose(owner: int | None) -> str:
    """" (run of user alice)" for another user's document; "" for the caller's, root's or the
    service user's (the expected writers)."""
    if owner is None or owner in (0, os.geteuid()):
        return ""
    return "" if user_name(owner) == SERVICE_USER else f" (run of {describe_user(owner)})"


def _headline(verdict: Verdict, doc: AsRead | None, color: bool) -> str:
    if verdict.code == EX_NOT_RUNNING:
        detail = {
            "stopped": "stopped",
            "stale": "process gone, stale status file",
            "stopping": "stopping",
            "absent": "no status file",
        }.get(verdict.state, verdict.state)
        text, dot, hue = f"not running ({detail})", "○", _RED
    else:
        state = verdict.state
        text = f"{state} ({verdict.label})"
        dot, hue = "●", _GREEN if verdict.code == EX_OK else _YELLOW
    device = doc.get("device") if doc else None
    name = f"edge-pose ({device})" if isinstance(device, str) and device else "edge-pose"
    if color:
        return f"{hue}{dot}{_RESET} {_BOLD}{name}{_RESET}: {hue}{text}{_RESET}"
    return f"{dot} {name}: {text}"


def _doc_rows(doc: AsRead, now: float, live: bool) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    uptime = number(doc.get("uptime_s"))
    state = [str(doc.get("state", "?")), f"pid {doc.get('pid', '?')}"]
    if uptime is not None:
        state.append(f"up {duration(uptime)}")
    if doc.get("paused"):
        state.append("PAUSED (send {\"command\": \"resume\"} to <base>/set)")
    rows.append(("state", ", ".join(state)))
    if doc.get("fall") is True:  # first, under the state: the one line nobody may miss
        rows.append((FALL, _fall_text(doc.get("falls"), now, live)))

    version = doc.get("version")
    if version:
        note = (
            f" (this command is {__version__}: restart the service)"
            if (version != __version__)
            else ""
        )
        rows.append(("version", f"{version}{note}"))

    camera = section(doc, "camera")
    if camera:
        text = _text(camera.get("source"))
        description = camera.get("description")
        if description and description != camera.get("source"):
            text += f" ({description})"
        rows.append(("camera", text))

    model = section(doc, "model")
    if model:
        size = model.get("input_size")
        rows.append(
            ("model", _text(model.get("name")) + (f", {size}x{size} input" if size else ""))
        )

    backend = section(doc, "backend")
    if backend:
        parts = [str(p) for p in (backend.get("delegate"), backend.get("runtime")) if p]
        text = _text(backend.get("kind")) + (f" ({', '.join(parts)})" if parts else "")
        if reason := backend.get("reason"):
            text += f" — {reason}"
        rows.append(("backend", text))

    fps, frames = section(doc, "fps"), section(doc, "frames")
    if fps or frames:
        text = (
            f"{_num(fps.get('capture'), '.1f')} capture / {_num(fps.get('processed'), '.1f')} "
            f"processed / {_num(frames.get('skipped'), 'd')} skipped total"
        )
        if min_fps := number(doc.get("min_fps")):
            text += f" (minimum {min_fps:g})"
        rows.append(("fps", text))
    if frames.get("processed") is not None:
        text = f"{_num(frames.get('processed'), 'd')} processed"
        if frames.get("with_person") is not None:
            text += f", {_num(frames.get('with_person'), 'd')} with a person"
        last = number(doc.get("last_frame"))
        if last is not None:
            text += f", last {ago(max(0.0, now - last))}"
        rows.append(("frames", text))

    if inference := section(doc, "inference_ms"):
        rows.append(("inference", _percentiles_text(inference)))
    if latency := section(doc, "latency_ms"):
        rows.append(("latency", _percentiles_text(latency) + " (capture -> publish)"))

    if mqtt := section(doc, "mqtt"):
        rows.append(("mqtt", _mqtt_text(mqtt, now, live)))
    if web := section(doc, "http"):
        rows.append(("web view", _web_text(web, live)))

    if "pose" in doc:
        rows.append(("pose", _pose_text(doc.get("pose"), now)))
    reps = doc.get("reps")
    if isinstance(reps, dict):
        rows.append(("reps", f"{_text(reps.get('exercise'))}: {_num(reps.get('count'), 'd')}"))
    people = doc.get("people")
    if isinstance(people, list) and _several(people):
        rows.append(("people", _people_text(people)))
    zones = doc.get("zones")
    if isinstance(zones, list) and zones:
        rows.append(("zones", _zones_text(zones)))
    if doc.get("inactive") is True:
        rows.append(("inactive", _inactive_text(people)))

    rows.append(("last error", _text(doc.get("last_error"))))

    if system := section(doc, "system"):
        rows.append(("cpu", _system_text(system)))
    memory = section(doc, "memory")
    if memory.get("rss_mb") is not None:
        rows.append(("memory", f"{_num(memory.get('rss_mb'), '.0f')} MB resident, "
                               f"{_num(memory.get('peak_rss_mb'), '.0f')} MB peak"))
    return rows


def _percentiles_text(ms: AsRead) -> str:
    return f"{_ms(ms.get('p50'))} p50 / {_ms(ms.get('p95'))} p95"


def _mqtt_text(mqtt: AsRead, now: float, live: bool) -> str:
    """The connection as the document says; a stopped or vanished daemon is connected nowhere,
    whatever its last document said."""
    if not mqtt.get("enabled"):
        return "disabled"
    broker = _text(mqtt.get("broker"))
    since = number(mqtt.get("since"))  # optional: when the connection state last changed
    for_ = f" for {duration(max(0.0, now - since))}" if since is not None else ""
    if not live:
        parts = [f"not connected (the daemon is not running; broker {broker})"]
    elif mqtt.get("connected"):
        parts = [f"connected to {broker}{for_}"]
    else:
        error = f" ({last_error})" if (last_error := mqtt.get("last_error")) else ""
        parts = [f"DISCONNECTED from {broker}{for_}{error}"]
    last = number(mqtt.get("last_publish"))
    parts.append(
        f"last publish {ago(max(0.0, now - last))}"
        if last is not None
        else "nothing published yet"
    )
    parts.append(f"{_num(mqtt.get('sent'), 'd')} sent / {_num(mqtt.get('dropped'), 'd')} dropped")
    reconnects = mqtt.get("reconnects")
    if isinstance(reconnects, int) and reconnects:
        parts.append(f"{reconnects} reconnect{'s' if reconnects != 1 else ''}")
    return ", ".join(parts)


def _web_text(web: AsRead, live: bool) -> str:
    """Where the page is and who watches; a daemon that is not running serves nothing."""
    if not web.get("enabled"):
        return "disabled (http.enabled = false)"
    url = web.get("url")
    if not live or not url:
        return "not serving (the daemon is not running)" if not live else "not serving yet"
    parts = [_text(url)]
    parts.append("password" if web.get("auth") else "no password")
    viewers = web.get("viewers")
    if isinstance(viewers, int) and viewers:
        parts.append(f"{viewers} watching")
    return ", ".join(parts)


def _several(people: list[object]) -> bool:
    """Whether the people line says more than the pose line: several people, or one who is not
    the single-pose model's person 1."""
    if len(people) != 1:
        return len(people) > 1
    only = people[0]
    return not isinstance(only, dict) or only.get("id") != 1


def _people_text(people: list[object]) -> str:
    """``3: #1 squat_down (0.88) 4 reps, #2 standing (0.93), #5 unknown (0.00)``: at most 8,
    each id and label cut short and made printable (the file is anyone's who can write it)."""
    shown = []
    for person in people[:8]:
        if not isinstance(person, dict):
            continue
        label = "".join(c if c.isprintable() else "?" for c in _text(person.get("label"))[:32])
        text = f"#{_num(person.get('id'), 'd')[:12]} {label}"
        text += f" ({_num(person.get('confidence'), '.2f')})"
        reps = number(person.get("reps"))
        if reps:
            text += f" {reps:.0f} reps"
        if person.get("fallen") is True:
            text += " FALLEN"
        if person.get("inactive") is True:
            text += " inactive"
        zones = person.get("zones")
        if isinstance(zones, list) and zones:
            text += " in " + ", ".join(_name(z) for z in zones[:_SHOWN])
        shown.append(text)
    more = f", {len(people) - 8} more" if len(people) > 8 else ""
    return f"{len(people)}: " + ", ".join(shown) + more


def _fall_text(falls: object, now: float, live: bool) -> str:
    """``person 1 down since 12:03:04 (for 2m 10s), in zone 'hall'``, for each fall that is
    not over; the file may say there is a fall without saying whose."""
    said = []
    for fall in falls[:_SHOWN] if isinstance(falls, list) else []:
        if not isinstance(fall, dict):
            continue
        text = f"person {_num(fall.get('id'), 'd')[:12]} down"
        since = number(fall.get("since"))
        if since is not None:
            text += f" since {_clock(since, now)}"
            if live:  # a stopped daemon's fall may be over: how long is not known
                text += f" (for {duration(max(0.0, now - since))})"
        if fall.get("present") is False:
            text += ", no longer seen"
        zones = fall.get("zones")
        names = [_name(z) for z in zones if isinstance(z, str)] if isinstance(zones, list) else []
        if names:
            text += ", in zone " + ", ".join(f"'{name}'" for name in names[:_SHOWN])
        said.append(text)
    text = "; ".join(said) if said else "someone fell (the file says no more)"
    if isinstance(falls, list) and len(falls) > _SHOWN:
        text += f"; {len(falls) - _SHOWN} more"
    if not live:
        return text + " (when the daemon stopped)"
    return text + " — reset: send {\"command\": \"reset_fall\"} to <base>/set"


def _zones_text(zones: list[object]) -> str:
    """``hall: #1; bed: empty``: each zone and the track ids of those in it."""
    shown = []
    for zone in zones[:_SHOWN]:
        if not isinstance(zone, dict):
            continue
        people = zone.get("people")
        ids = [f"#{_num(i, 'd')[:12]}" for i in people[:_SHOWN]] if isinstance(people, list) else []
        who = ", ".join(ids) if ids else "occupied" if zone.get("occupied") is True else "empty"
        shown.append(f"{_name(zone.get('name'))}: {who}")
    more = f"; {len(zones) - _SHOWN} more" if len(zones) > _SHOWN else ""
    return "; ".join(shown) + more


def _inactive_text(people: object) -> str:
    """Who has not moved for their inactivity time: ``#2, in zone 'bed'``."""
    said = []
    for person in people[:_SHOWN] if isinstance(people, list) else []:
        if isinstance(person, dict) and person.get("inactive") is True:
            text = f"#{_num(person.get('id'), 'd')[:12]}"
            zones = person.get("zones")
            if isinstance(zones, list) and zones:
                text += ", in zone " + ", ".join(f"'{_name(z)}'" for z in zones[:_SHOWN])
            said.append(text)
    return ("; ".join(said) or "someone") + " has not moved for the inactivity time"


def _name(value: object) -> str:
    """A name from the file (a zone's), cut short and made printable."""
    return "".join(c if c.isprintable() else "?" for c in _text(value)[:32])


def _clock(when: float, now: float) -> str:
    """A wall-clock time as people read it: ``12:03:04``, with the date when not today."""
    try:
        local = time.localtime(when)
    except (OverflowError, OSError, ValueError):  # a time no calendar has
        return "-"
    same_day = time.localtime(now)[:3] == local[:3]
    return time.strftime("%H:%M:%S" if same_day else "%Y-%m-%d %H:%M:%S", local)


def _pose_text(pose: object, now: float) -> str:
    if not isinstance(pose, dict):
        return "-"
    label = pose.get("label")
    if not pose.get("person", True):  # as written: 0 is no person, as false is
        text = "no person"
    elif label is None or label == "":
        text = "person (no pose label)"
    else:
        text = f"{label} ({_num(pose.get('confidence'), '.2f')})"
    since = number(pose.get("since"))
    if since is not None:
        text += f" for {duration(max(0.0, now - since))}"
    return text


def _system_text(system: AsRead) -> str:
    temp = number(system.get("cpu_temp_c"))
    parts = [f"{temp:.1f} °C" if temp is not None else "temperature unknown"]
    value = throttled_value(system.get("throttled"))
    if value is None:
        parts.append("throttling unknown")
    elif value == 0:
        parts.append("not throttled (0x0)")
    else:
        flags = decode_throttled(value)
        now = [f for f in flags if not f.endswith("-occurred")]
        before = [f.removesuffix("-occurred") for f in flags if f.endswith("-occurred")]
        if now:
            parts.append(f"THROTTLED NOW: {', '.join(now)}")
        if before:
            parts.append(f"since boot: {', '.join(before)}")
        parts[-1] += f" ({value:#x})"
    return ", ".join(parts)


def _systemd_rows(
    systemd: dict[str, Any] | None, doc: AsRead | None
) -> list[tuple[str, str]]:
    if not systemd:
        return []
    if systemd.get("load_state") == "not-found":
        return [("systemd", f"{systemd.get('unit', UNIT)}.service not installed")]
    text = f"{systemd.get('active_state')}"
    if systemd.get("sub_state"):
        text += f" ({systemd['sub_state']})"
    main_pid = systemd.get("main_pid")
    if main_pid:
        text += f", main pid {main_pid}"
    restarts = systemd.get("n_restarts")
    if isinstance(restarts, int):
        text += f", {restarts} restart{'s' if restarts != 1 else ''}"
    if systemd.get("result") not in (None, "success"):
        text += f", result {systemd['result']}"
    if systemd.get("started"):
        text += f", since {systemd['started']}"
    if doc is not None and main_pid and doc.get("pid") not in (None, main_pid):
        text += f" (the status file is from pid {doc.get('pid')}, not the service)"
    return [("systemd", text)]


def _text(value: object) -> str:
    return "-" if value is None or value == "" else str(value)


def _num(value: object, spec: str) -> str:
    """A number of the document in ``spec``; a count ("d") of a float is its whole part."""
    amount = number(value)
    if amount is None:
        return "-"
    return format(int(amount), spec) if spec == "d" else format(amount, spec)


def _ms(value: object) -> str:
    amount = number(value)
    return "-" if amount is None else f"{amount:.1f} ms"
