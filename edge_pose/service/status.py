"""status.json and `edge-pose status`: what the daemon is doing, readable without touching it.

The daemon hands :class:`StatusWriter` one dict about once a second; the writer replaces
``status.json`` atomically (temp file in the same directory + ``os.replace``), so a reader sees the
previous document or the new one, never a mix. `edge-pose status` finds the newest document
(:func:`find_status`), asks systemd about the unit where systemd runs (:func:`systemd_state`),
judges it (:func:`evaluate`: 0 healthy, 1 degraded, 3 not running) and prints a summary
(:func:`format_status`) or JSON.

This module must stay cheap to import: `edge-pose status` never opens the camera or the model, so
nothing here imports OpenCV, LiteRT or paho (the config, and with it pydantic, is imported only
inside :func:`status_command`). The file format, the rules and the exit codes are documented in
docs/status.md.

Decisions:

- No fsync. The file lives in /run (tmpfs, where fsync does nothing) or another runtime directory,
  describes a running process and means nothing after a power cut; on an SD-card fallback
  directory an fsync every second would wear the card and can stall for tens of milliseconds.
  Atomicity towards concurrent readers comes from the rename alone.
- A clean stop *keeps* the file with ``"state": "stopped"`` (the daemon writes it last), so
  `status` can say when it stopped and with which error; `status` exits 3 for it. Under systemd
  the RuntimeDirectory is removed when the unit stops, so there the file simply disappears (also 3).
- After SIGKILL or a crash the file remains with a dead pid: "stale status file, process gone"
  -> 3 (not running), not 1: nothing is running. A pid reused by an unrelated, younger process is
  recognised by comparing the process's age with the daemon's reported uptime.
- "starting" counts as degraded (1): not serving yet. After STARTING_GRACE_S the reason says
  it looks stuck. "stopping" counts as not running (3), like ``systemctl is-active``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import shutil
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from edge_pose.errors import EX_FAILURE, EX_NOT_RUNNING, EX_OK

log = logging.getLogger(__name__)

STATUS_FILE = "status.json"
FORMAT_VERSION = 1
STATES = ("starting", "running", "stopping", "stopped")
STALE_AFTER_S = 5.0  # older than this while the process lives: hung
STARTING_GRACE_S = 60.0  # "starting" for longer than this: probably stuck
MAX_STATUS_BYTES = 1 << 20
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
_THROTTLE_NOW_MASK = 0xF  # get_throttled bits 0-3: active now (see edge_pose.sysinfo)
_JOURNAL_HINT = "see journalctl -u edge-pose -e"


# --------------------------------------------------------------------------- writing


class StatusWriter:
    """Writes ``<directory>/status.json`` atomically; cheap, thread-safe, never raises.

    ``write(doc)`` returns True when the file was replaced. A failure (directory not writable,
    disk full, a value JSON cannot hold) is logged once as a warning, then only at debug level
    until a write succeeds again; the pipeline never sees an exception. numpy scalars, Paths and
    other odd values are converted; NaN and infinities become null (they are not JSON).
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.path = self.directory / STATUS_FILE
        self._tmp = self.directory / f".{STATUS_FILE}.{os.getpid()}.tmp"
        self._lock = threading.Lock()
        self._dir_checked = False
        self._failing = False

    def write(self, doc: dict[str, Any]) -> bool:
        try:
            data = encode_status(doc)
            with self._lock:
                self._replace(data)
        except Exception as exc:  # never into the pipeline
            if not self._failing:
                self._failing = True
                log.warning(
                    "cannot write the status file %s: %s (`edge-pose status` will not see "
                    "this daemon; further failures are logged at debug level)",
                    self.path,
                    _describe_error(exc),
                )
            else:
                log.debug("status file %s: %s", self.path, _describe_error(exc))
            return False
        if self._failing:
            self._failing = False
            log.info("status file %s is written again", self.path)
        return True

    def remove(self) -> None:
        """Delete the file (and a leftover temp file); for tests and uninstalls. Never raises."""
        with self._lock:
            for path in (self.path, self._tmp):
                try:
                    path.unlink()
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    log.debug("cannot remove %s: %s", path, _describe_error(exc))

    def _replace(self, data: bytes) -> None:
        if not self._dir_checked:
            self._ensure_directory()
        try:
            fd = self._open_tmp()
        except FileNotFoundError:  # the directory vanished (rm -rf, tmpfiles clean-up)
            self._ensure_directory()
            fd = self._open_tmp()
        try:
            os.fchmod(fd, 0o644)  # readable by `edge-pose status` whatever the service's UMask
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        except BaseException:
            os.close(fd)
            _unlink_quietly(self._tmp)
            raise
        os.close(fd)
        try:
            os.replace(self._tmp, self.path)
        except BaseException:
            _unlink_quietly(self._tmp)
            raise

    def _open_tmp(self) -> int:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
        try:
            return os.open(self._tmp, flags, 0o644)
        except FileExistsError:  # left over by an earlier process with our pid
            os.unlink(self._tmp)
            return os.open(self._tmp, flags, 0o644)

    def _ensure_directory(self) -> None:
        """Create the directory (0755) if needed and refuse one another user could tamper with
        (matters for the /tmp fallback)."""
        try:
            os.mkdir(self.directory, 0o755)
        except FileNotFoundError:
            os.makedirs(self.directory, 0o755, exist_ok=True)
            os.chmod(self.directory, 0o755)
        except FileExistsError:
            pass
        else:
            os.chmod(self.directory, 0o755)  # mkdir's mode is masked by the umask
        st = os.stat(self.directory)
        if not stat.S_ISDIR(st.st_mode):
            raise NotADirectoryError(f"{self.directory} is not a directory")
        if st.st_uid not in (os.geteuid(), 0):
            raise PermissionError(
                f"{self.directory} belongs to another user (uid {st.st_uid}); "
                "set status.dir to a directory of the service user"
            )
        if st.st_mode & stat.S_IWOTH and not st.st_mode & stat.S_ISVTX:
            raise PermissionError(f"{self.directory} is writable by every user")
        self._dir_checked = True


def encode_status(doc: dict[str, Any]) -> bytes:
    """The bytes written to status.json: one JSON line, valid for any JSON reader (no NaN)."""
    try:
        text = json.dumps(doc, allow_nan=False, default=_json_default)
    except ValueError:  # NaN or infinity somewhere: replace them with null
        text = json.dumps(_finite(doc), allow_nan=False, default=_json_default)
    return (text + "\n").encode("utf-8")


def _json_default(value: Any) -> Any:
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        try:
            return item()
        except (TypeError, ValueError):
            pass
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def _finite(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if not isinstance(value, int | float | str | bool | type(None)):
        value = _json_default(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def _describe_error(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror} ({exc.filename})" if exc.filename else exc.strerror
    return str(exc) or type(exc).__name__


# --------------------------------------------------------------------------- reading


class StatusFileError(Exception):
    """A status.json that cannot be used; the message says why."""


@dataclass
class StatusLookup:
    """What :func:`find_status` found: the document, its file, where it looked and what was
    wrong with files it skipped (one line each)."""

    doc: dict[str, Any] | None
    path: Path | None
    searched: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def load_status_file(path: Path) -> dict[str, Any]:
    """One status.json -> dict; raises FileNotFoundError, or StatusFileError with the reason."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_STATUS_BYTES + 1)
    except FileNotFoundError:
        raise
    except PermissionError:
        raise StatusFileError(
            "permission denied (the service writes it readable for everyone: check the "
            "directory's permissions, or run with sudo)"
        ) from None
    except IsADirectoryError:
        raise StatusFileError("is a directory") from None
    except OSError as exc:
        raise StatusFileError(f"cannot read it: {exc.strerror}") from None
    if not data.strip():
        raise StatusFileError("empty file (not written by edge-pose, or a disk problem)")
    if len(data) > MAX_STATUS_BYTES:
        raise StatusFileError("larger than 1 MiB: not an edge-pose status file")
    try:
        doc = json.loads(data)
    except UnicodeDecodeError:
        raise StatusFileError("not UTF-8 text: corrupt") from None
    except json.JSONDecodeError as exc:
        raise StatusFileError(
            f"not valid JSON (line {exc.lineno}, column {exc.colno}): corrupt or partially "
            "written, so ignored"
        ) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("v"), int) or doc["v"] < 1:
        raise StatusFileError('not an edge-pose status document (no "v" version number)')
    return doc


def find_status(dirs: Iterable[Path]) -> StatusLookup:
    """Look for status.json in ``dirs`` (in order). Returns the first document whose process is
    alive (and not stopped); when none is, the first readable one. Unreadable files are skipped
    and reported in ``problems``."""
    lookup = StatusLookup(None, None)
    fallback: tuple[dict[str, Any], Path] | None = None
    for directory in dirs:
        directory = Path(directory)
        lookup.searched.append(directory)
        path = directory / STATUS_FILE
        try:
            doc = load_status_file(path)
        except FileNotFoundError:
            continue
        except NotADirectoryError:
            lookup.problems.append(f"{directory}: not a directory")
            continue
        except StatusFileError as exc:
            lookup.problems.append(f"{path}: {exc}")
            continue
        if doc.get("state") != "stopped" and _daemon_alive(doc):
            lookup.doc, lookup.path = doc, path
            return lookup
        if fallback is None:
            fallback = (doc, path)
    if fallback is not None:
        lookup.doc, lookup.path = fallback
    return lookup


def read_status(dirs: Iterable[Path]) -> tuple[dict[str, Any] | None, Path | None]:
    """The status document to report and its file, or (None, None); see :func:`find_status`."""
    lookup = find_status(dirs)
    return lookup.doc, lookup.path


# --------------------------------------------------------------------------- processes


def pid_alive(pid: object) -> bool:
    """Whether process ``pid`` exists (signal 0; EPERM means it exists but is another user's).
    A zombie (killed, not yet reaped) counts as gone."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
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


def _daemon_alive(doc: dict[str, Any]) -> bool:
    """The pid in ``doc`` is alive and is plausibly the daemon that wrote it: a process younger
    than the reported uptime is an unrelated one that reused the pid."""
    pid = doc.get("pid")
    if not pid_alive(pid):
        return False
    uptime = _number(doc.get("uptime_s"))
    age = process_age_s(pid)  # type: ignore[arg-type]
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
        "main_pid": _int(props.get("MainPID")) or 0,
        "n_restarts": _int(props.get("NRestarts")),
        "started": props.get("ExecMainStartTimestamp") or None,
    }


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


@dataclass
class Verdict:
    """``code``: 0 healthy, 1 degraded, 3 not running. ``state``: starting, running, stopping,
    stopped, stale (process gone) or absent (no status file). ``reasons``: one line each, with
    what to do after " — "; empty when healthy."""

    code: int
    state: str
    reasons: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return _LABELS.get(self.code, "unknown")

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "state": self.state, "reasons": list(self.reasons)}


def evaluate(
    doc: dict[str, Any] | None,
    now: float,
    systemd: dict[str, Any] | None = None,
    *,
    min_fps: float | None = None,
    missing: str | None = None,
) -> Verdict:
    """Judge a status document at wall time ``now`` (see docs/status.md for the rules).

    ``min_fps`` overrides the ``min_fps`` in the document when not None; ``missing`` describes
    where no file was found (used when ``doc`` is None). Checks whether the pid is alive.
    """
    sd = systemd or {}
    if doc is None:
        return _evaluate_missing(sd, missing or "no status file found")
    state = doc.get("state")
    pid = doc.get("pid")
    updated = _number(doc.get("updated"))
    age = max(0.0, now - updated) if updated is not None else None
    last_error = doc.get("last_error")
    if state == "stopped":
        when = f" {_ago(age)}" if age is not None else ""
        error = f"; last error: {last_error}" if last_error else ""
        return Verdict(
            EX_NOT_RUNNING,
            "stopped",
            [
                f"stopped{when}{error}{_systemd_hint(systemd)} — start it: sudo systemctl start "
                "edge-pose (or run `edge-pose run`)"
            ],
        )
    if not _daemon_alive(doc):
        when = f"; last update {_ago(age)}" if age is not None else ""
        error = f"; last error: {last_error}" if last_error else ""
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
            reason += f", no update for {_duration(age)}: stuck while stopping? — {_JOURNAL_HINT}"
        return Verdict(EX_NOT_RUNNING, "stopping", [reason])

    reasons: list[str] = []
    if age is not None and age > STALE_AFTER_S:
        reasons.append(
            f"status not updated for {_duration(age)} although process {pid} is alive: the "
            f"pipeline looks hung — systemd's watchdog restarts it; else {_JOURNAL_HINT} and "
            "restart it (sudo systemctl restart edge-pose)"
        )
    uptime = _number(doc.get("uptime_s"))
    if state == "starting":
        if uptime is not None and uptime > STARTING_GRACE_S:
            reasons.append(
                f"still starting after {_duration(uptime)}: model load or camera start looks "
                f"stuck — {_JOURNAL_HINT}; check the camera cable and `edge-pose doctor`"
            )
        else:
            since = f" (for {_duration(uptime)})" if uptime is not None else ""
            reasons.append(f"starting{since}: loading the model and opening the camera")
    elif state != "running":
        reasons.append(f"unknown state {state!r} in the status file — is edge-pose up to date?")

    mqtt = _dict(doc.get("mqtt"))
    if mqtt.get("enabled") and not mqtt.get("connected"):
        broker = mqtt.get("broker") or "the broker"
        why = f": {mqtt['last_error']}" if mqtt.get("last_error") else ""
        reasons.append(
            f"MQTT disconnected from {broker}{why} — check the broker (systemctl status "
            "mosquitto) and mqtt.host/mqtt.port in the config"
        )

    threshold = min_fps if min_fps is not None else _number(doc.get("min_fps"))
    processed = _number(_dict(doc.get("fps")).get("processed"))
    if state == "running" and threshold and processed is not None and processed < threshold:
        reasons.append(
            f"processing {processed:.1f} fps, below status.min_fps = {threshold:g} — check CPU "
            "load and temperature, model.threads, camera.fps, or use an Edge TPU"
        )

    system = _dict(doc.get("system"))
    value = _hex(system.get("throttled"))
    if value is not None and value & _THROTTLE_NOW_MASK:
        reasons.append(_throttle_reason(value))

    return Verdict(EX_DEGRADED if reasons else EX_OK, str(state), reasons)


def _evaluate_missing(sd: dict[str, Any], missing: str) -> Verdict:
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
            f"not running: {missing}{_systemd_hint(sd)} — start it: sudo systemctl start "
            f"edge-pose (or `edge-pose run`); {_JOURNAL_HINT}"
        ],
    )


def _throttle_reason(value: int) -> str:
    from edge_pose.sysinfo import decode_throttled

    now = decode_throttled(value & _THROTTLE_NOW_MASK)
    advice = []
    if value & 0x1:
        advice.append(
            "under-voltage: use the official power supply (5.1 V 3 A for a Pi 4, "
            "5.1 V 5 A for a Pi 5) and a short, thick cable"
        )
    if value & 0x8 or (value & 0x6 and not value & 0x1):
        advice.append("heat: add a heatsink or fan and give the case air")
    return f"CPU throttled now ({', '.join(now)}, {value:#x}) — {'; '.join(advice)}"


# --------------------------------------------------------------------------- text output

_GREEN, _YELLOW, _RED, _BOLD, _RESET = "\x1b[32m", "\x1b[33m", "\x1b[31m", "\x1b[1m", "\x1b[0m"


def format_status(
    doc: dict[str, Any] | None,
    verdict: Verdict,
    systemd: dict[str, Any] | None,
    *,
    now: float | None = None,
    path: Path | None = None,
    searched: Sequence[Path] = (),
    ignored: Sequence[str] = (),
    color: bool = False,
) -> str:
    """A compact summary like the top of ``systemctl status``: a headline with a dot (coloured
    when ``color``), aligned ``label: value`` lines with units, then the problems found."""
    now = time.time() if now is None else now
    rows: list[tuple[str, str]] = _doc_rows(doc, now) if doc is not None else []
    rows[1:1] = _systemd_rows(systemd, doc)  # under "state", like the top of systemctl status
    if path is not None and doc is not None:
        updated = _number(doc.get("updated"))
        when = f", updated {_ago(max(0.0, now - updated))}" if updated is not None else ""
        rows.append(("file", f"{path}{when}"))
    elif doc is None and searched:
        rows.append(("searched", ", ".join(str(d) for d in searched)))
    rows += [("ignored", problem) for problem in ignored]

    lines = [_headline(verdict, doc, color)]
    width = max((len(label) for label, _ in rows), default=0)
    lines += [f"{label:>{width + 2}}: {value}" for label, value in rows]
    if verdict.reasons and verdict.code != EX_OK:
        lines.append("")
        lines.append("Problems:" if verdict.code == EX_DEGRADED else "Why:")
        lines += [f"  - {reason}" for reason in verdict.reasons]
    return "\n".join(lines)


def _headline(verdict: Verdict, doc: dict[str, Any] | None, color: bool) -> str:
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


def _doc_rows(doc: dict[str, Any], now: float) -> list[tuple[str, str]]:
    from edge_pose import __version__

    rows: list[tuple[str, str]] = []
    uptime = _number(doc.get("uptime_s"))
    state = [str(doc.get("state", "?")), f"pid {doc.get('pid', '?')}"]
    if uptime is not None:
        state.append(f"up {_duration(uptime)}")
    if doc.get("paused"):
        state.append("PAUSED (send {\"command\": \"resume\"} to <base>/set)")
    rows.append(("state", ", ".join(state)))

    version = doc.get("version")
    if version:
        note = (
            f" (this command is {__version__}: restart the service)"
            if (version != __version__)
            else ""
        )
        rows.append(("version", f"{version}{note}"))

    camera = _dict(doc.get("camera"))
    if camera:
        text = _text(camera.get("source"))
        if camera.get("description") and camera.get("description") != camera.get("source"):
            text += f" ({camera['description']})"
        rows.append(("camera", text))

    model = _dict(doc.get("model"))
    if model:
        size = model.get("input_size")
        rows.append(
            ("model", _text(model.get("name")) + (f", {size}x{size} input" if size else ""))
        )

    backend = _dict(doc.get("backend"))
    if backend:
        parts = [p for p in (backend.get("delegate"), backend.get("runtime")) if p]
        text = _text(backend.get("kind")) + (f" ({', '.join(map(str, parts))})" if parts else "")
        if backend.get("reason"):
            text += f" — {backend['reason']}"
        rows.append(("backend", text))

    fps, frames = _dict(doc.get("fps")), _dict(doc.get("frames"))
    if fps or frames:
        text = (
            f"{_num(fps.get('capture'), '.1f')} capture / {_num(fps.get('processed'), '.1f')} "
            f"processed / {_num(frames.get('skipped'), 'd')} skipped total"
        )
        min_fps = _number(doc.get("min_fps"))
        if min_fps:
            text += f" (minimum {min_fps:g})"
        rows.append(("fps", text))
    if frames.get("processed") is not None:
        text = f"{_num(frames.get('processed'), 'd')} processed"
        if frames.get("with_person") is not None:
            text += f", {_num(frames.get('with_person'), 'd')} with a person"
        rows.append(("frames", text))

    for key, label, note in (
        ("inference_ms", "inference", ""),
        ("latency_ms", "latency", " (capture -> publish)"),
    ):
        ms = _dict(doc.get(key))
        if ms:
            rows.append((label, f"{_ms(ms.get('p50'))} p50 / {_ms(ms.get('p95'))} p95{note}"))

    mqtt = _dict(doc.get("mqtt"))
    if mqtt:
        rows.append(("mqtt", _mqtt_text(mqtt, now)))

    if "pose" in doc:
        rows.append(("pose", _pose_text(doc.get("pose"), now)))
    reps = doc.get("reps")
    if isinstance(reps, dict):
        rows.append(("reps", f"{_text(reps.get('exercise'))}: {_num(reps.get('count'), 'd')}"))

    rows.append(("last error", _text(doc.get("last_error"))))

    system = _dict(doc.get("system"))
    if system:
        rows.append(("cpu", _system_text(system)))
    memory = _dict(doc.get("memory"))
    if memory.get("rss_mb") is not None:
        rows.append(("memory", f"{_num(memory.get('rss_mb'), '.0f')} MB resident, "
                               f"{_num(memory.get('peak_rss_mb'), '.0f')} MB peak"))
    return rows


def _mqtt_text(mqtt: dict[str, Any], now: float) -> str:
    if not mqtt.get("enabled"):
        return "disabled"
    broker = _text(mqtt.get("broker"))
    since = _number(mqtt.get("since"))  # optional: when the connection state last changed
    for_ = f" for {_duration(max(0.0, now - since))}" if since is not None else ""
    if mqtt.get("connected"):
        parts = [f"connected to {broker}{for_}"]
    else:
        error = f" ({mqtt['last_error']})" if mqtt.get("last_error") else ""
        parts = [f"DISCONNECTED from {broker}{for_}{error}"]
    last = _number(mqtt.get("last_publish"))
    parts.append(
        f"last publish {_ago(max(0.0, now - last))}"
        if last is not None
        else "nothing published yet"
    )
    parts.append(f"{_num(mqtt.get('sent'), 'd')} sent / {_num(mqtt.get('dropped'), 'd')} dropped")
    reconnects = mqtt.get("reconnects")
    if isinstance(reconnects, int) and reconnects:
        parts.append(f"{reconnects} reconnect{'s' if reconnects != 1 else ''}")
    return ", ".join(parts)


def _pose_text(pose: object, now: float) -> str:
    if not isinstance(pose, dict):
        return "-"
    if not pose.get("person", True):
        text = "no person"
    elif pose.get("label") in (None, ""):
        text = "person (no pose label)"
    else:
        text = f"{pose['label']} ({_num(pose.get('confidence'), '.2f')})"
    since = _number(pose.get("since"))
    if since is not None:
        text += f" for {_duration(max(0.0, now - since))}"
    return text


def _system_text(system: dict[str, Any]) -> str:
    temp = _number(system.get("cpu_temp_c"))
    parts = [f"{temp:.1f} °C" if temp is not None else "temperature unknown"]
    value = _hex(system.get("throttled"))
    if value is None:
        parts.append("throttling unknown")
    elif value == 0:
        parts.append("not throttled (0x0)")
    else:
        from edge_pose.sysinfo import decode_throttled

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
    systemd: dict[str, Any] | None, doc: dict[str, Any] | None
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


# --------------------------------------------------------------------------- the command


def add_status_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add `status` to the `edge-pose` subcommands; its handler is :func:`status_command`."""
    parser = subparsers.add_parser(
        "status",
        help="health of the running service (exit 0 healthy, 1 degraded, 3 not running)",
        description="Show what the edge-pose daemon is doing, from its status file and systemd. "
        "Exit code: 0 healthy, 1 degraded, 3 not running. Never opens the camera or the model.",
    )
    _add_arguments(parser)
    return parser


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="config file, to find status.dir and status.min_fps "
        "(default /etc/edge-pose/config.toml)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--watch",
        nargs="?",
        const=2.0,
        default=None,
        type=_interval,
        metavar="SECONDS",
        help="redraw every SECONDS (default 2) until Ctrl-C",
    )
    parser.set_defaults(handler=status_command)


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or value < 0.1:
        raise argparse.ArgumentTypeError(f"must be at least 0.1 seconds, not {text}")
    return value


@dataclass
class _Settings:
    dirs: list[Path]
    min_fps: float | None
    note: str | None


def status_command(args: argparse.Namespace) -> int:
    """`edge-pose status [--config FILE] [--json] [--watch [SECONDS]]`; returns the exit code."""
    settings = _settings(getattr(args, "config", None))
    if settings.note:
        print(f"edge-pose: warning: {settings.note}", file=sys.stderr, flush=True)
    as_json = bool(getattr(args, "json", False))
    interval = getattr(args, "watch", None)
    if interval is None:
        code, text = _check(settings, as_json)
        _emit(text)
        return code
    tty = sys.stdout.isatty()
    code = EX_NOT_RUNNING
    first = True
    try:
        while True:
            code, text = _check(settings, as_json, color_ok=tty)
            if as_json:
                _emit(text)
            elif tty:
                stamp = time.strftime("%H:%M:%S")
                header = f"every {interval:g} s: edge-pose status   {stamp}   (Ctrl-C to stop)"
                _emit("\x1b[H\x1b[2J" + header + "\n\n" + text)
            else:
                _emit(text if first else "\n" + text)
            first = False
            time.sleep(interval)
    except KeyboardInterrupt:
        return code


def _check(settings: _Settings, as_json: bool, *, color_ok: bool | None = None) -> tuple[int, str]:
    lookup = find_status(settings.dirs)
    systemd = systemd_state()
    now = time.time()
    missing = None
    if lookup.doc is None:
        where = ", ".join(str(d) for d in lookup.searched) or "no directory"
        missing = f"no status file in {where}"
        if lookup.problems:
            missing += " (unusable: " + "; ".join(lookup.problems) + ")"
    verdict = evaluate(lookup.doc, now, systemd, min_fps=settings.min_fps, missing=missing)
    if as_json:
        payload = {
            "verdict": verdict.to_json(),
            "status": lookup.doc,
            "systemd": systemd,
            "file": str(lookup.path) if lookup.path else None,
            "searched": [str(d) for d in lookup.searched],
        }
        return verdict.code, json.dumps(payload, default=str)
    color = _use_color() if color_ok is None else color_ok and _use_color()
    text = format_status(
        lookup.doc,
        verdict,
        systemd,
        now=now,
        path=lookup.path,
        searched=lookup.searched,
        ignored=lookup.problems if lookup.doc is not None else (),
        color=color,
    )
    return verdict.code, text


def _settings(path: Path | None) -> _Settings:
    """Status directories and min_fps from the config; an unusable config falls back to the
    defaults (keeping status.dir / status.min_fps if the TOML has them) and says so."""
    from edge_pose.config import config_path, load_config, status_dir_candidates

    try:
        cfg = load_config(path)
    except Exception as exc:  # status must work whatever is wrong with the config
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        directory, min_fps = _salvage_status_section(config_path(path))
        fallback = SimpleNamespace(status=SimpleNamespace(dir=directory, min_fps=min_fps))
        using = f"status.dir = {directory!r} from it" if directory else "the default places"
        note = f"config not usable ({message}); looking for the status file in {using}"
        return _Settings(status_dir_candidates(fallback), min_fps or None, note)  # type: ignore[arg-type]
    min_fps = cfg.status.min_fps
    return _Settings(status_dir_candidates(cfg), min_fps if min_fps > 0 else None, None)


def _salvage_status_section(path: Path | None) -> tuple[str, float]:
    """``[status] dir`` and ``min_fps`` from a config that fails validation elsewhere."""
    if path is None:
        return "", 0.0
    try:
        import tomllib

        section = tomllib.loads(path.read_text(encoding="utf-8")).get("status", {})
    except Exception:
        return "", 0.0
    if not isinstance(section, dict):
        return "", 0.0
    directory = section.get("dir")
    min_fps = section.get("min_fps")
    return (
        directory if isinstance(directory, str) else "",
        float(min_fps)
        if isinstance(min_fps, int | float) and not isinstance(min_fps, bool) and min_fps > 0
        else 0.0,
    )


def _use_color() -> bool:
    return (
        sys.stdout.isatty()
        and not os.environ.get("NO_COLOR")
        and os.environ.get("TERM", "") not in ("", "dumb")
    )


_ASCII = str.maketrans({"●": "*", "○": "o", "—": "-", "°": ""})


def _emit(text: str) -> None:
    """Print, degrading ● ○ — ° to ASCII where the terminal's encoding cannot show them."""
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        text.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        text = text.translate(_ASCII).encode(encoding, "replace").decode(encoding)
    print(text, flush=True)


# --------------------------------------------------------------------------- small helpers


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text not in (None, "") else None
    except ValueError:
        return None


def _hex(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value, 16)
        except ValueError:
            return None
    return None


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: object) -> str:
    return "-" if value is None or value == "" else str(value)


def _num(value: object, spec: str) -> str:
    number = _number(value)
    if number is None:
        return "-"
    return format(int(number), spec) if spec == "d" else format(number, spec)


def _ms(value: object) -> str:
    number = _number(value)
    return "-" if number is None else f"{number:.1f} ms"


def _duration(seconds: float) -> str:
    """3d 4h 12m / 4h 12m / 5m 3s / 42 s / 0.4 s."""
    if seconds < 10:
        return f"{seconds:.1f} s" if seconds < 1 else f"{seconds:.0f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    total = round(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h {minutes}m"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s"


def _ago(seconds: float) -> str:
    return f"{_duration(seconds)} ago"


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m edge_pose.service.status [--config FILE] [--json] [--watch [S]]`."""
    parser = argparse.ArgumentParser(prog="edge-pose status")
    _add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="edge-pose: %(levelname)s: %(message)s")
    try:
        return status_command(args)
    except BrokenPipeError:
        return EX_OK


if __name__ == "__main__":
    sys.exit(main())
