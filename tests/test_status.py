"""status.json and `edge-pose status`: atomic writes, the health verdict, the command itself.

Real processes give real pids (a live one, a killed and reaped one, a zombie); the command runs
as a real subprocess; vcgencmd and systemctl are real executables written into a temp PATH (the
hardware/OS boundary), and the thermal zones a fixture sysfs tree.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from edge_pose import __version__, sysinfo
from edge_pose.service import health
from edge_pose.service.durations import duration
from edge_pose.service.health import Verdict, evaluate, pid_alive, systemd_state
from edge_pose.service.status import (
    STATUS_FILE,
    StatusFileError,
    StatusWriter,
    find_status,
    load_status_file,
    read_status,
)
from edge_pose.service.status_text import format_status

# --------------------------------------------------------------------------- helpers


def make_doc(**changes: Any) -> dict[str, Any]:
    """A healthy version-1 document of this (live) process; ``changes`` replace top-level keys."""
    now = time.time()
    doc: dict[str, Any] = {
        "v": 1,
        "state": "running",
        "pid": os.getpid(),
        "started": now - 1.0,
        "updated": now,
        "uptime_s": 1.0,
        "version": __version__,
        "device": "pi-lab",
        "camera": {"source": "picamera2", "description": "imx708_wide 640x480 @ 30 fps"},
        "model": {"name": "movenet_lightning_int8", "input_size": 192},
        "backend": {
            "kind": "edgetpu",
            "delegate": "libedgetpu.so.1 usb",
            "runtime": "ai-edge-litert 1.2.0",
            "reason": "",
        },
        "fps": {"capture": 29.8, "processed": 29.7},
        "frames": {"captured": 5000, "processed": 4990, "skipped": 10, "with_person": 4000},
        "inference_ms": {"p50": 8.1, "p95": 9.4},
        "latency_ms": {"p50": 18.2, "p95": 24.9},
        "mqtt": {
            "enabled": True,
            "broker": "127.0.0.1:1883",
            "connected": True,
            "last_publish": now - 0.2,
            "sent": 4990,
            "dropped": 0,
            "reconnects": 1,
            "last_error": None,
        },
        "pose": {"label": "standing", "confidence": 0.94, "person": True, "since": now - 130},
        "reps": {"exercise": "squat", "count": 12},
        "last_error": None,
        "min_fps": 10.0,
        "system": {"cpu_temp_c": 61.3, "throttled": "0x0", "throttled_flags": []},
    }
    doc.update(changes)
    return doc


def dead_pid() -> int:
    """The pid of a process that was killed and reaped."""
    proc = subprocess.Popen(["sleep", "60"])
    proc.kill()
    proc.wait()
    return proc.pid


@pytest.fixture
def sleeper():
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()


def write_exe(directory: Path, name: str, script: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\n" + textwrap.dedent(script))
    path.chmod(0o755)
    return path


# --------------------------------------------------------------------------- sysinfo


def make_zone(root: Path, n: int, kind: str, temp: str) -> None:
    zone = root / "class" / "thermal" / f"thermal_zone{n}"
    zone.mkdir(parents=True)
    (zone / "type").write_text(kind + "\n")
    (zone / "temp").write_text(temp + "\n")


def test_cpu_temperature_prefers_the_cpu_thermal_zone(tmp_path: Path) -> None:
    make_zone(tmp_path, 0, "acpitz", "40000")
    make_zone(tmp_path, 10, "gpu-thermal", "70000")
    make_zone(tmp_path, 2, "cpu-thermal", "61234")
    assert sysinfo.cpu_temperature_c(tmp_path) == 61.2


def test_cpu_temperature_falls_back_to_zone0_and_rejects_garbage(tmp_path: Path) -> None:
    assert sysinfo.cpu_temperature_c(tmp_path) is None  # no thermal class at all
    make_zone(tmp_path, 1, "acpitz", "45000")
    make_zone(tmp_path, 0, "acpitz", "38500")
    assert sysinfo.cpu_temperature_c(tmp_path) == 38.5
    other = tmp_path / "other"
    make_zone(other, 0, "cpu-thermal", "not a number")
    assert sysinfo.cpu_temperature_c(other) is None
    broken = tmp_path / "broken"
    make_zone(broken, 0, "cpu-thermal", "-2147483648")  # driver error value
    assert sysinfo.cpu_temperature_c(broken) is None


def test_decode_throttled_bits() -> None:
    assert sysinfo.decode_throttled(0) == []
    assert sysinfo.decode_throttled(0x50005) == [
        "under-voltage",
        "throttled",
        "under-voltage-occurred",
        "throttled-occurred",
    ]
    assert sysinfo.decode_throttled(0x80008) == [
        "soft-temperature-limit",
        "soft-temperature-limit-occurred",
    ]
    assert sysinfo.parse_throttled("throttled=0x20002\n") == 0x20002
    assert sysinfo.parse_throttled("50005") == 0x50005  # the sysfs spelling
    assert sysinfo.parse_throttled('error=1 error_msg="Command not registered"') is None


def test_throttled_runs_vcgencmd_from_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    write_exe(bin_dir, "vcgencmd", '[ "$1" = get_throttled ] && echo "throttled=0x50005"\n')
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert sysinfo.throttled() == (
        "0x50005",
        ["under-voltage", "throttled", "under-voltage-occurred", "throttled-occurred"],
    )


def test_throttled_is_none_when_vcgencmd_is_missing_or_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert sysinfo.throttled() is None
    failing = write_exe(tmp_path, "failing", "echo 'VCHI initialization failed' >&2; exit 1\n")
    assert sysinfo.throttled([str(failing)]) is None
    garbage = write_exe(tmp_path, "garbage", "echo hello\n")
    assert sysinfo.throttled([str(garbage)]) is None
    slow = write_exe(tmp_path, "slow", "exec sleep 5\n")
    started = time.monotonic()
    assert sysinfo.throttled([str(slow)], timeout=0.3) is None
    assert time.monotonic() - started < 3


def test_system_monitor_samples_and_rate_limits_vcgencmd(tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    fake = write_exe(tmp_path, "vcgencmd", f"echo x >> {calls}; echo throttled=0x80000\n")
    make_zone(tmp_path / "sys", 0, "cpu-thermal", "55000")
    monitor = sysinfo.SystemMonitor(
        root=tmp_path / "sys", throttle_command=[str(fake)], throttle_interval_s=60
    )
    for _ in range(3):
        sample = monitor.sample()
    assert sample == {
        "cpu_temp_c": 55.0,
        "throttled": "0x80000",
        "throttled_flags": ["soft-temperature-limit-occurred"],
    }
    assert calls.read_text().count("x") == 1


# --------------------------------------------------------------------------- writer


def test_writer_creates_directory_and_a_world_readable_file(tmp_path: Path) -> None:
    directory = tmp_path / "run" / "edge-pose"
    old = os.umask(0o077)  # a hardened service UMask must not hide the file from `status`
    try:
        assert StatusWriter(directory).write(make_doc())
    finally:
        os.umask(old)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o755
    assert stat.S_IMODE((directory / STATUS_FILE).stat().st_mode) == 0o644
    assert load_status_file(directory / STATUS_FILE)["device"] == "pi-lab"
    assert [p.name for p in directory.iterdir()] == [STATUS_FILE]  # no temp file left


def test_writer_converts_nan_and_numpy_values(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    doc = make_doc(fps={"capture": np.float32(29.5), "processed": float("nan")})
    doc["inference_ms"] = {"p50": float("inf"), "p95": np.float64(9.25)}
    doc["frames"]["processed"] = np.int64(7)
    assert StatusWriter(tmp_path).write(doc)
    text = (tmp_path / STATUS_FILE).read_text()
    assert "NaN" not in text and "Infinity" not in text
    back = json.loads(text)
    assert back["fps"] == {"capture": 29.5, "processed": None}
    assert back["inference_ms"] == {"p50": None, "p95": 9.25}
    assert back["frames"]["processed"] == 7


def test_writer_never_raises_logs_once_and_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "status"
    blocker.write_text("a file where the directory should be")
    writer = StatusWriter(blocker)
    with caplog.at_level(logging.DEBUG, logger="edge_pose.service.status"):
        assert writer.write(make_doc()) is False
        assert writer.write(make_doc()) is False
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and str(blocker) in warnings[0].getMessage()
        blocker.unlink()
        assert writer.write(make_doc()) is True
        assert any("written again" in r.getMessage() for r in caplog.records)
    assert read_status([blocker])[0]["state"] == "running"


def test_writer_refuses_a_directory_anyone_can_write(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    assert StatusWriter(shared).write(make_doc()) is False
    assert not (shared / STATUS_FILE).exists()
    shared.chmod(0o1777)  # sticky, like /tmp: acceptable
    assert StatusWriter(shared).write(make_doc()) is True


def test_writer_remove(tmp_path: Path) -> None:
    writer = StatusWriter(tmp_path)
    writer.write(make_doc())
    writer.remove()
    writer.remove()  # twice is fine
    assert list(tmp_path.iterdir()) == []


def test_reader_never_sees_a_partial_file(tmp_path: Path) -> None:
    """A writer thread alternates small and ~200 KB documents as fast as it can while the reader
    parses the file in a loop: every read must be one whole document. (Counted, not timed: 150
    reads during 150 writes at the least, however busy the machine is.)"""
    writer = StatusWriter(tmp_path)
    writer.write(make_doc(seq=0, pad=""))
    stop = threading.Event()
    written = [0]

    def keep_writing() -> None:
        seq = 0
        while not stop.is_set():
            seq += 1
            pad = "x" * (200_000 if seq % 2 else 10)
            assert writer.write(make_doc(seq=seq, pad=pad, check=seq * 7 + len(pad)))
            written[0] = seq

    thread = threading.Thread(target=keep_writing)
    thread.start()
    reads = 0
    try:
        deadline = time.monotonic() + 60
        while (reads <= 150 or written[0] <= 150) and time.monotonic() < deadline:
            doc = load_status_file(tmp_path / STATUS_FILE)  # raises on a partial file
            if doc["seq"]:
                assert doc["check"] == doc["seq"] * 7 + len(doc["pad"])
            reads += 1
    finally:
        stop.set()
        thread.join()
    assert reads > 150 and written[0] > 150
    assert sorted(p.name for p in tmp_path.iterdir()) == [STATUS_FILE]


def test_write_is_cheap(tmp_path: Path) -> None:
    writer = StatusWriter(tmp_path)
    doc = make_doc()
    started = time.perf_counter()
    for _ in range(200):
        writer.write(doc)
    per_write = (time.perf_counter() - started) / 200
    assert per_write < 0.005, f"{per_write * 1000:.2f} ms per write"


# --------------------------------------------------------------------------- reader


def test_find_status_skips_corrupt_files_with_a_reason(tmp_path: Path) -> None:
    corrupt, empty, good = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for d in (corrupt, empty, good):
        d.mkdir()
    (corrupt / STATUS_FILE).write_text('{"v": 1, "state": "runn')
    (empty / STATUS_FILE).write_text("")
    StatusWriter(good).write(make_doc())
    lookup = find_status([tmp_path / "missing", corrupt, empty, good])
    assert lookup.path == good / STATUS_FILE and lookup.doc is not None
    assert len(lookup.problems) == 2
    assert "not valid JSON" in lookup.problems[0] and "partially written" in lookup.problems[0]
    assert "empty" in lookup.problems[1]
    assert read_status([corrupt, empty]) == (None, None)
    (corrupt / STATUS_FILE).write_text('["not", "a", "status"]')
    with pytest.raises(StatusFileError, match="not an edge-pose status document"):
        load_status_file(corrupt / STATUS_FILE)
    (corrupt / STATUS_FILE).write_text('{"v": 99, "state": "running"}')
    with pytest.raises(StatusFileError, match="status format v99, newer than this edge-pose"):
        load_status_file(corrupt / STATUS_FILE)


def test_find_status_prefers_a_live_daemon_over_a_stale_file(tmp_path: Path) -> None:
    stale, live = tmp_path / "run", tmp_path / "xdg"
    StatusWriter(stale).write(make_doc(pid=dead_pid()))
    StatusWriter(live).write(make_doc())
    assert read_status([stale, live]) == (load_status_file(live / STATUS_FILE), live / STATUS_FILE)
    # with no live daemon anywhere, the first readable file is reported
    StatusWriter(live).write(make_doc(state="stopped"))
    assert read_status([stale, live])[1] == stale / STATUS_FILE


# --------------------------------------------------------------------------- verdict


def test_healthy() -> None:
    verdict = evaluate(make_doc(), time.time(), None)
    assert (verdict.code, verdict.state, verdict.reasons) == (0, "running", [])
    assert verdict.label == "healthy"


def test_mqtt_disconnected_is_degraded() -> None:
    doc = make_doc()
    doc["mqtt"].update(connected=False, last_error="connection refused")
    verdict = evaluate(doc, time.time(), None)
    assert verdict.code == 1 and verdict.state == "running"
    assert verdict.reasons == [
        "MQTT disconnected from 127.0.0.1:1883: connection refused — check the broker "
        "(systemctl status mosquitto) and mqtt.host/mqtt.port in the config"
    ]
    doc["mqtt"]["enabled"] = False  # no broker configured: nothing to be connected to
    assert evaluate(doc, time.time(), None).code == 0


def test_fps_below_minimum_is_degraded() -> None:
    doc = make_doc(fps={"capture": 30.0, "processed": 4.5}, min_fps=10.0)
    verdict = evaluate(doc, time.time(), None)
    assert verdict.code == 1
    assert verdict.reasons[0].startswith("processing 4.5 fps, below status.min_fps = 10")
    assert evaluate(doc, time.time(), None, min_fps=4.0).code == 0  # the command's config wins
    assert evaluate(make_doc(fps={"processed": 4.5}, min_fps=0), time.time(), None).code == 0
    # while starting the rate is still ramping up: only "starting" is reported
    starting = evaluate({**doc, "state": "starting"}, time.time(), None)
    assert [r.split(":")[0] for r in starting.reasons] == ["starting (for 1 s)"]


def test_stale_file_with_live_pid_is_degraded() -> None:
    now = time.time()
    verdict = evaluate(make_doc(updated=now - 30), now, None)
    assert verdict.code == 1 and verdict.state == "running"
    assert verdict.reasons[0].startswith(
        f"status not updated for 30 s although process {os.getpid()} is alive"
    )
    assert evaluate(make_doc(updated=now - 4.5), now, None).code == 0


def test_dead_pid_is_not_running() -> None:
    pid = dead_pid()
    verdict = evaluate(make_doc(pid=pid, updated=time.time() - 60), time.time(), None)
    assert verdict.code == 3 and verdict.state == "stale"
    assert verdict.reasons[0].startswith(
        f"stale status file: process {pid} is gone (killed or crashed; last update 1m 0s ago)"
    )


def test_zombie_counts_as_gone() -> None:
    proc = subprocess.Popen(["sleep", "60"])
    try:
        proc.send_signal(signal.SIGKILL)
        deadline = time.monotonic() + 5
        while Path(f"/proc/{proc.pid}/stat").read_text().split(") ")[1][0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert not pid_alive(proc.pid)  # killed, not yet reaped: still answers signal 0
    finally:
        proc.wait()


def test_reused_pid_is_not_the_daemon(sleeper: subprocess.Popen) -> None:
    """A live process younger than the uptime the daemon reported is someone else."""
    doc = make_doc(pid=sleeper.pid, uptime_s=3600.0)
    assert evaluate(doc, time.time(), None).code == 3
    assert evaluate(make_doc(pid=sleeper.pid, uptime_s=0.0), time.time(), None).code == 0


def test_no_file_is_not_running() -> None:
    verdict = evaluate(None, time.time(), None, missing="no status file in /run/edge-pose")
    assert verdict.code == 3 and verdict.state == "absent"
    assert verdict.reasons[0].startswith("not running: no status file in /run/edge-pose — start")


def test_other_states(monkeypatch: pytest.MonkeyPatch) -> None:
    now = time.time()
    stopped = evaluate(make_doc(state="stopped", last_error="camera unplugged"), now, None)
    assert (stopped.code, stopped.state) == (3, "stopped")
    assert "last error: camera unplugged" in stopped.reasons[0]
    assert evaluate(make_doc(state="stopping"), now, None).code == 3
    starting = evaluate(make_doc(state="starting", uptime_s=1.0), now, None)
    assert (starting.code, starting.state) == (1, "starting")
    assert starting.reasons == ["starting (for 1 s): loading the model and opening the camera"]
    monkeypatch.setattr(health, "STARTING_GRACE_S", 0.5)
    stuck = evaluate(make_doc(state="starting", uptime_s=1.0), now, None)
    assert stuck.code == 1 and "looks stuck" in stuck.reasons[0]


def test_throttling_now_is_degraded_but_past_throttling_is_not() -> None:
    doc = make_doc(system={"cpu_temp_c": 82.0, "throttled": "0x50005", "throttled_flags": []})
    verdict = evaluate(doc, time.time(), None)
    assert verdict.code == 1
    assert verdict.reasons[0].startswith("CPU throttled now (under-voltage, throttled, 0x50005)")
    assert "power supply" in verdict.reasons[0]
    doc["system"]["throttled"] = "0x80008"
    assert "heatsink" in evaluate(doc, time.time(), None).reasons[0]
    doc["system"]["throttled"] = "0x50000"
    assert evaluate(doc, time.time(), None).code == 0


def test_systemd_view_when_the_file_is_missing() -> None:
    active = {"active_state": "active", "sub_state": "running", "main_pid": 42}
    verdict = evaluate(None, time.time(), active, missing="no status file in /x")
    assert (
        verdict.code == 1
        and "systemd reports edge-pose active (main pid 42)" in (verdict.reasons[0])
    )
    restarting = {"active_state": "activating", "sub_state": "auto-restart", "n_restarts": 2}
    verdict = evaluate(None, time.time(), restarting)
    assert verdict.code == 3 and "systemd will restart it (restart #3)" in verdict.reasons[0]
    failed = {"active_state": "failed", "sub_state": "failed", "result": "watchdog"}
    assert "systemd: failed (watchdog)" in evaluate(None, time.time(), failed).reasons[0]


# --------------------------------------------------------------------------- systemd


def test_systemd_state_parses_systemctl_show(tmp_path: Path) -> None:
    booted = tmp_path / "run-systemd-system"
    booted.mkdir()
    args_file = tmp_path / "args"
    fake = write_exe(
        tmp_path,
        "systemctl",
        f"""\
        echo "$@" > {args_file}
        printf 'LoadState=loaded\\nActiveState=active\\nSubState=running\\nResult=success\\n'
        printf 'MainPID=1234\\nNRestarts=2\\n'
        printf 'ExecMainStartTimestamp=Mon 2025-11-24 10:00:00 UTC\\n'
        """,
    )
    state = systemd_state(systemctl=str(fake), booted=booted)
    assert state == {
        "unit": "edge-pose",
        "load_state": "loaded",
        "active_state": "active",
        "sub_state": "running",
        "result": "success",
        "main_pid": 1234,
        "n_restarts": 2,
        "started": "Mon 2025-11-24 10:00:00 UTC",
    }
    assert args_file.read_text().split() == [
        "show",
        "edge-pose",
        "--property=LoadState,ActiveState,SubState,Result,MainPID,NRestarts,ExecMainStartTimestamp",
    ]


def test_systemd_state_is_none_without_systemd_or_on_failure(tmp_path: Path) -> None:
    booted = tmp_path / "booted"
    booted.mkdir()
    ok = write_exe(tmp_path, "ok", "echo ActiveState=inactive\n")
    assert systemd_state(systemctl=str(ok), booted=tmp_path / "absent") is None
    failing = write_exe(tmp_path, "failing", "echo 'Failed to connect to bus' >&2; exit 1\n")
    assert systemd_state(systemctl=str(failing), booted=booted) is None
    slow = write_exe(tmp_path, "slow", "exec sleep 5\n")
    started = time.monotonic()
    assert systemd_state(systemctl=str(slow), booted=booted, timeout=0.3) is None
    assert time.monotonic() - started < 3
    assert systemd_state(systemctl=str(tmp_path / "nonexistent"), booted=booted) is None


# --------------------------------------------------------------------------- text


def test_format_healthy_summary(tmp_path: Path) -> None:
    now = time.time()
    doc = make_doc(uptime_s=3 * 86400 + 4 * 3600 + 12 * 60 + 5, updated=now - 0.4)
    doc["mqtt"]["last_publish"] = now - 2
    doc["pose"]["since"] = now - 130
    doc["system"]["throttled"] = "0x50000"
    verdict = Verdict(0, "running", [])
    systemd = {
        "unit": "edge-pose",
        "load_state": "loaded",
        "active_state": "active",
        "sub_state": "running",
        "result": "success",
        "main_pid": doc["pid"],
        "n_restarts": 0,
        "started": "Mon 2025-11-24 10:00:00 UTC",
    }
    text = format_status(doc, verdict, systemd, now=now, path=tmp_path / STATUS_FILE)
    lines = text.splitlines()
    assert lines[0] == "● edge-pose (pi-lab): running (healthy)"
    values = {line.split(": ", 1)[0].strip(): line.split(": ", 1)[1] for line in lines[1:]}
    assert len({line.index(": ") for line in lines[1:]}) == 1  # labels aligned
    assert values["state"] == f"running, pid {doc['pid']}, up 3d 4h 12m"
    assert values["version"] == __version__
    assert values["systemd"] == (
        f"active (running), main pid {doc['pid']}, 0 restarts, since Mon 2025-11-24 10:00:00 UTC"
    )
    assert values["camera"] == "picamera2 (imx708_wide 640x480 @ 30 fps)"
    assert values["model"] == "movenet_lightning_int8, 192x192 input"
    assert values["backend"] == "edgetpu (libedgetpu.so.1 usb, ai-edge-litert 1.2.0)"
    assert values["fps"] == "29.8 capture / 29.7 processed / 10 skipped total (minimum 10)"
    assert values["inference"] == "8.1 ms p50 / 9.4 ms p95"
    assert values["latency"] == "18.2 ms p50 / 24.9 ms p95 (capture -> publish)"
    assert values["mqtt"] == (
        "connected to 127.0.0.1:1883, last publish 2 s ago, 4990 sent / 0 dropped, 1 reconnect"
    )
    assert values["pose"] == "standing (0.94) for 2m 10s"
    assert values["reps"] == "squat: 12"
    assert values["last error"] == "-"
    assert values["cpu"] == "61.3 °C, since boot: under-voltage, throttled (0x50000)"
    assert values["file"] == f"{tmp_path / STATUS_FILE}, updated 0.4 s ago"
    assert "Problems" not in text and "\x1b[" not in text
    coloured = format_status(doc, verdict, systemd, now=now, color=True)
    assert coloured.startswith("\x1b[32m●\x1b[0m")


def test_format_degraded_and_not_running() -> None:
    now = time.time()
    doc = make_doc(last_error="camera timeout after 2 s")
    doc["mqtt"].update(connected=False, last_error="connection refused", since=now - 65)
    verdict = evaluate(doc, now, None)
    text = format_status(doc, verdict, None, now=now)
    assert text.splitlines()[0] == "● edge-pose (pi-lab): running (degraded)"
    assert "mqtt: DISCONNECTED from 127.0.0.1:1883 for 1m 5s (connection refused)" in text
    assert "last error: camera timeout after 2 s" in text
    assert text.endswith("\n\nProblems:\n  - " + verdict.reasons[0])
    missing = evaluate(None, now, None, missing="no status file in /run/edge-pose")
    text = format_status(None, missing, None, now=now, searched=[Path("/run/edge-pose")])
    assert text.splitlines()[0] == "○ edge-pose: not running (no status file)"
    assert "searched: /run/edge-pose" in text and "Why:" in text


def test_durations() -> None:
    assert duration(0.42) == "0.4 s"
    assert duration(42) == "42 s"
    assert duration(303) == "5m 3s"
    assert duration(4 * 3600 + 12 * 60 + 59) == "4h 12m"
    assert duration(3 * 86400 + 4 * 3600 + 12 * 60) == "3d 4h 12m"


# --------------------------------------------------------------------------- the command


def status_command_line() -> list[str]:
    """`edge-pose status`, as users run it."""
    return [sys.executable, "-m", "edge_pose.cli", "status"]


def run_status(
    *args: str, timeout: float = 30, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TERM")}
    return subprocess.run(
        [*status_command_line(), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**base, **(env or {})},
    )


class FakeDaemon:
    """Rewrites status.json every 0.2 s like the daemon does (this process is the 'daemon')."""

    def __init__(self, directory: Path, **changes: Any) -> None:
        self.writer = StatusWriter(directory)
        self.changes = changes
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            doc = make_doc(**self.changes)
            self.writer.write(doc)
            self._stop.wait(0.2)

    def __enter__(self) -> FakeDaemon:
        self.writer.write(make_doc(**self.changes))
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'[device]\nid = "pi-lab"\n[status]\ndir = "{tmp_path / "run"}"\n')
    return path


def test_command_healthy_text(config: Path, tmp_path: Path) -> None:
    with FakeDaemon(tmp_path / "run"):
        result = run_status("--config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0] == "● edge-pose (pi-lab): running (healthy)"
    assert any(line.strip().startswith("mqtt: connected to 127.0.0.1:1883") for line in lines)
    assert any(line.strip() == "inference: 8.1 ms p50 / 9.4 ms p95" for line in lines)


def test_command_json_schema(config: Path, tmp_path: Path) -> None:
    with FakeDaemon(tmp_path / "run"):
        result = run_status("--config", str(config), "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert set(out) >= {"verdict", "status", "systemd", "file"}
    assert out["verdict"] == {"code": 0, "state": "running", "reasons": []}
    assert out["file"] == str(tmp_path / "run" / STATUS_FILE)
    assert out["status"]["v"] == 1 and out["status"]["pid"] == os.getpid()
    assert set(out["status"]) >= set(make_doc())
    assert out["systemd"] is None or {"active_state", "main_pid"} <= set(out["systemd"])


def test_command_degraded_when_mqtt_is_down(config: Path, tmp_path: Path) -> None:
    mqtt = {**make_doc()["mqtt"], "connected": False, "last_error": "connection refused"}
    with FakeDaemon(tmp_path / "run", mqtt=mqtt):
        result = run_status("--config", str(config), "--json")
    assert result.returncode == 1
    verdict = json.loads(result.stdout)["verdict"]
    assert verdict["code"] == 1 and verdict["reasons"][0].startswith("MQTT disconnected")


def test_command_after_sigkill_and_without_file(config: Path, tmp_path: Path) -> None:
    result = run_status("--config", str(config), "--json")
    assert result.returncode == 3
    out = json.loads(result.stdout)
    assert out["status"] is None and out["file"] is None
    assert out["verdict"]["state"] == "absent"
    assert str(tmp_path / "run") in out["verdict"]["reasons"][0]
    StatusWriter(tmp_path / "run").write(make_doc(pid=dead_pid()))
    result = run_status("--config", str(config))
    assert result.returncode == 3
    assert result.stdout.splitlines()[0] == (
        "○ edge-pose (pi-lab): not running (process gone, stale status file)"
    )


def test_command_survives_an_invalid_config(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(f'[camera]\nfsp = 30\n[status]\ndir = "{tmp_path / "run"}"\n')
    with FakeDaemon(tmp_path / "run"):
        result = run_status("--config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("edge-pose: warning: config not usable (")
    assert f"status.dir = '{tmp_path / 'run'}' from it" in result.stderr
    # an unreadable config: the default places ($RUNTIME_DIRECTORY first), and one warning line
    env = {"RUNTIME_DIRECTORY": str(tmp_path / "runtime")}
    with FakeDaemon(tmp_path / "runtime"):
        result = run_status("--config", str(tmp_path / "missing.toml"), "--json", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr.startswith("edge-pose: warning: config not usable (config file not found")
    assert result.stderr.count("\n") == 1
    out = json.loads(result.stdout)
    assert out["file"] == str(tmp_path / "runtime" / STATUS_FILE)
    assert out["searched"][0] == str(tmp_path / "runtime")


def test_command_watch_redraws_until_ctrl_c(config: Path, tmp_path: Path) -> None:
    with FakeDaemon(tmp_path / "run"):
        proc = subprocess.Popen(
            [*status_command_line(), "--config", str(config), "--watch", "0.2"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert proc.stdout is not None
        first = proc.stdout.readline()  # running: the SIGINT handler is in place
        time.sleep(0.7)
        proc.send_signal(signal.SIGINT)
        rest = proc.stdout.read()  # (communicate() could drop what readline() buffered)
        proc.wait(timeout=10)
    assert proc.returncode == 0
    blocks = (first + rest).strip("\n").split("\n\n")
    assert len(blocks) >= 3
    assert all(b.startswith("● edge-pose (pi-lab): running (healthy)") for b in blocks), blocks
    assert "\x1b[" not in rest  # not a terminal: no screen clearing


def test_command_watch_json_lines(config: Path, tmp_path: Path) -> None:
    with FakeDaemon(tmp_path / "run"):
        proc = subprocess.Popen(
            [*status_command_line(), "--config", str(config), "--json", "--watch", "0.2"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        first = proc.stdout.readline()
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        rest = proc.stdout.read()
        proc.wait(timeout=10)
    assert proc.returncode == 0
    docs = [json.loads(line) for line in (first + rest).splitlines() if line]
    assert len(docs) >= 2 and all(d["verdict"]["code"] == 0 for d in docs)


def test_command_rejects_a_bad_interval() -> None:
    result = run_status("--watch", "0")
    assert result.returncode == 2 and "must be from 0.1 to 3600 seconds, not 0" in result.stderr


def test_status_imports_no_camera_model_or_mqtt_code(config: Path) -> None:
    code = textwrap.dedent(
        f"""\
        import sys
        from edge_pose.cli import main
        try:  # the whole command as users run it: parser (every sub-command's) included
            main(["status", "--config", {str(config)!r}, "--json"])
        except SystemExit:
            pass
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in
                       ("cv2", "numpy", "paho", "ai_edge_litert", "tflite_runtime", "tensorflow"))
        print(heavy, file=sys.stderr)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.stderr.strip() == "[]"


def test_command_watch_on_a_terminal_clears_the_screen_and_colours(
    config: Path, tmp_path: Path
) -> None:
    import pty

    master, slave = pty.openpty()
    env = {**os.environ, "TERM": "xterm"}
    env.pop("NO_COLOR", None)
    with FakeDaemon(tmp_path / "run"):
        proc = subprocess.Popen(
            [*status_command_line(), "--config", str(config), "--watch", "0.2"],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
        )
        os.close(slave)
        output = b""
        deadline = time.monotonic() + 20
        while output.count(b"\x1b[H\x1b[2J") < 2 and time.monotonic() < deadline:
            try:
                output += os.read(master, 65536)
            except OSError:
                break
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
        os.close(master)
    assert proc.returncode == 0
    text = output.decode()
    assert text.count("\x1b[H\x1b[2J") >= 2
    assert "every 0.2 s: edge-pose status" in text and "(Ctrl-C to stop)" in text
    assert "\x1b[32m●\x1b[0m" in text


def test_pose_without_a_label() -> None:
    now = time.time()
    doc = make_doc(pose={"label": None, "confidence": None, "person": True, "since": None})
    assert "pose: person (no pose label)" in format_status(doc, evaluate(doc, now), None, now=now)
    doc["pose"] = {"label": "standing", "confidence": 0.5, "person": False, "since": now - 3}
    assert "pose: no person for 3 s" in format_status(doc, evaluate(doc, now), None, now=now)
    doc["pose"] = None
    assert "pose: -" in format_status(doc, evaluate(doc, now), None, now=now)


def fallen_doc(now: float, **changes: Any) -> dict[str, Any]:
    """Two people, #1 down in the hall since 130 s ago, #4 in the kitchen and not moving."""
    fields: dict[str, Any] = dict(
        fall=True,
        falls=[{"id": 1, "since": now - 130, "zones": ["hall"], "present": True}],
        inactive=True,
        people=[
            {"id": 1, "label": "lying", "confidence": 0.81, "since": now - 132, "reps": 0,
             "zones": ["hall"], "fallen": True, "inactive": False},
            {"id": 4, "label": "standing", "confidence": 0.93, "since": now - 60, "reps": 0,
             "zones": ["kitchen"], "fallen": False, "inactive": True},
        ],
        zones=[
            {"name": "hall", "polygon": [[0, 0], [1, 0], [1, 1]], "lying_ok": False,
             "occupied": True, "people": [1]},
            {"name": "kitchen", "polygon": [[0, 0], [1, 0], [1, 1]], "lying_ok": False,
             "occupied": True, "people": [4]},
            {"name": "bed", "polygon": [[0, 0], [1, 0], [1, 1]], "lying_ok": True,
             "occupied": False, "people": []},
        ],
    )  # fmt: skip
    return make_doc(**{**fields, **changes})


def test_a_fall_is_the_first_line_and_the_verdict_stays_healthy() -> None:
    now = time.time()
    doc = fallen_doc(now)
    verdict = evaluate(doc, now)
    assert (verdict.code, verdict.reasons) == (0, [])  # news about people, not a device fault
    text = format_status(doc, verdict, None, now=now)
    lines = [line.strip() for line in text.splitlines()]
    since = time.strftime("%H:%M:%S", time.localtime(now - 130))
    assert lines[2] == (
        f"FALL: person 1 down since {since} (for 2m 10s), in zone 'hall' — reset: send "
        '{"command": "reset_fall"} to <base>/set'
    )
    people = "people: 2: #1 lying (0.81) FALLEN in hall, #4 standing (0.93) inactive in kitchen"
    assert people in lines
    assert "zones: hall: #1; kitchen: #4; bed: empty" in lines
    assert "inactive: #4, in zone 'kitchen' has not moved for the inactivity time" in lines
    # On a terminal the FALL line is bold red.
    coloured = format_status(doc, verdict, None, now=now, color=True).splitlines()[2]
    assert coloured.startswith("\x1b[31m\x1b[1m") and coloured.endswith("\x1b[0m")
    # A stopped daemon's last document: the fall as it was, no duration, no command.
    stopped = fallen_doc(now, state="stopped")
    line = format_status(stopped, evaluate(stopped, now), None, now=now).splitlines()[2].strip()
    assert line == f"FALL: person 1 down since {since}, in zone 'hall' (when the daemon stopped)"
    # Nobody fell: no FALL line; no zones configured: no zones line.
    calm = make_doc(fall=False, falls=[], inactive=False, zones=[])
    calm_text = format_status(calm, evaluate(calm, now), None, now=now)
    assert "FALL" not in calm_text and "zones:" not in calm_text and "inactive:" not in calm_text


def test_a_fall_as_the_file_has_it() -> None:
    """Hand-edited or hostile fall and zone fields: one printable line each, what is there."""
    now = time.time()
    long_ago = now - 3 * 86400
    cases: list[tuple[dict[str, Any], str]] = [
        ({"falls": "x"}, "FALL: someone fell (the file says no more)"),
        ({"falls": [{"id": 3, "present": False}]}, "FALL: person 3 down, no longer seen"),
        ({"falls": [{"id": "x", "since": long_ago, "zones": ["a\x1b[2J", 5]}]},
         f"FALL: person - down since {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(long_ago))}"
         " (for 3d 0h 0m), in zone 'a?[2J'"),
        ({"falls": [{"id": 1, "since": 10**400}]}, "FALL: person 1 down — reset"),
        ({"falls": [{"id": 1, "since": 1e300}]}, "FALL: person 1 down since -"),
        ({"falls": [{"id": n} for n in range(12)]}, "; 4 more"),
    ]  # fmt: skip
    for changes, expected in cases:
        doc = fallen_doc(now, **changes)
        text = format_status(doc, evaluate(doc, now), None, now=now)
        line = next(x.strip() for x in text.splitlines() if "FALL:" in x)
        assert expected in line, (changes, line)
        assert "\x1b" not in line and len(line) < 400
    # Only a real true is a fall; zones of any shape print what they have.
    for value in ("true", 1, None):
        doc = fallen_doc(now, fall=value)
        assert "FALL:" not in format_status(doc, evaluate(doc, now), None, now=now)
    doc = fallen_doc(
        now,
        zones=[
            {"name": "x" * 100, "people": ["a", 2.5]},
            "junk",
            {"occupied": True},
            *({"name": str(n)} for n in range(10)),
        ],
    )
    line = next(x.strip() for x in format_status(doc, evaluate(doc, now), None, now=now)
                .splitlines() if x.strip().startswith("zones:"))  # fmt: skip
    assert line.startswith("zones: " + "x" * 32 + ": #-, #2; -: occupied; 0: empty;"), line
    assert line.endswith("; 5 more"), line
