"""Status under attack and under stalls: rates that decay, stalls and pauses in the verdict,
status documents of other users, a second run in the same folder, hostile documents.

Time is driven with injected clocks (no sleeping); processes are real (the pid checks read
/proc), files are real files, and ownership is either real (chown, when the tests run as root)
or judged against an injected set of trusted uids.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from test_status import dead_pid, make_doc, run_status

from edge_pose.service.cmdline import edge_pose_command, is_edge_pose, read_command_line
from edge_pose.service.health import evaluate
from edge_pose.service.notify import Notifier
from edge_pose.service.status import STATUS_FILE, StatusDirBusy, StatusWriter, find_status
from edge_pose.service.status_dir import named_uid, other_users_dirs
from edge_pose.service.status_text import format_status
from edge_pose.service.supervisor import Supervisor, status_line
from edge_pose.stats import RATE_WINDOW_S, PipelineStats

STAGES = (1_000_000, 1_000_000, 5_000_000, 1_000_000, 1_000_000)
FOREIGN_UID = 54321  # no such user on a test machine


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def frames(stats: PipelineStats, clock: Clock, count: int, fps: float) -> None:
    for _ in range(count):
        clock.now += 1 / fps
        stats.record(STAGES, 20.0, True)


def not_mine() -> frozenset[int]:
    """A trusted set without this process's uids: files the test creates count as foreign."""
    return frozenset({FOREIGN_UID})


# --------------------------------------------------------------------------- rates (item 6)


def test_processed_rate_decays_to_zero_during_a_stall() -> None:
    clock = Clock()
    stats = PipelineStats(clock=clock)
    frames(stats, clock, 100, fps=10.0)
    assert stats.fps() == pytest.approx(10.0, rel=0.05)
    clock.now += RATE_WINDOW_S / 2  # stalled for half the window: about half the rate
    assert 3.0 < stats.fps() < 7.0
    clock.now += RATE_WINDOW_S  # no frame in the whole window: nothing processed
    assert stats.fps() == 0.0


@pytest.mark.parametrize("seed", range(20))
def test_rate_matches_any_steady_pace_and_falls_with_any_stall(seed: int) -> None:
    rng = random.Random(seed)
    fps = rng.uniform(0.5, 400.0)  # a slow camera to an Edge TPU faster than the ring
    clock = Clock(rng.uniform(0, 1e6))
    stats = PipelineStats(clock=clock)
    clock.now += rng.uniform(0, 30)  # model load before the first frame is not counted
    frames(stats, clock, max(3, int(fps * rng.uniform(1, 20))), fps)
    steady = stats.fps()
    assert steady == pytest.approx(fps, rel=0.25, abs=0.6)
    clock.now += rng.uniform(0.5, 100)
    assert stats.fps() < steady  # never frozen at the last value
    clock.now += RATE_WINDOW_S
    assert stats.fps() == 0.0


# --------------------------------------------------------------------------- supervisor


class Recorder:
    def __init__(self) -> None:
        self.docs: list[dict[str, Any]] = []

    def __call__(self, doc: dict[str, Any]) -> None:
        self.docs.append(doc)


def test_supervisor_writes_when_the_last_frame_came() -> None:
    clock, wall = Clock(), Clock(1_700_000_000.0)
    snapshot = {"fps": {"processed": 10.0}, "updated": 0.0}
    written = Recorder()
    sup = Supervisor(
        Notifier(), lambda: dict(snapshot), written, stall_seconds=4.0, clock=clock, wall=wall
    )
    sup.tick(0)
    assert written.docs[-1]["last_frame"] is None and written.docs[-1]["stall_s"] == 4.0
    for progress in range(1, 4):  # frames flowing, ticks once a second
        clock.now += 1.0
        wall.now += 1.0
        sup.tick(progress)
    last = written.docs[-1]["last_frame"]
    assert last == pytest.approx(wall.now)
    for _ in range(10):  # stalled: empty waits keep ticking, last_frame stays put
        clock.now += 1.0
        wall.now += 1.0
        sup.tick(3)
    assert written.docs[-1]["last_frame"] == pytest.approx(last)
    assert sup.stalled
    doc = {**written.docs[-1], "updated": wall.now, "state": "running", "pid": os.getpid()}
    verdict = evaluate(doc, wall.now)
    assert verdict.code == 1
    assert any(r.startswith("no frame processed for 10 s") for r in verdict.reasons)
    assert status_line(doc).endswith(", no frame for 10 s")  # systemctl status shows it too
    assert "snapshot" not in written.docs[-1] and "last_frame" not in snapshot  # a copy


# --------------------------------------------------------------------------- verdict


@pytest.mark.parametrize("seed", range(10))
def test_no_frame_for_longer_than_the_stall_limit_is_degraded(seed: int) -> None:
    rng = random.Random(seed)
    now = time.time()
    for _ in range(50):
        limit = rng.choice([None, 0, -3, "15", rng.uniform(0.5, 60)])
        idle = rng.uniform(0, 120)
        doc = make_doc(last_frame=now - idle, stall_s=limit, min_fps=5.0)
        doc["fps"] = {"capture": 0.0, "processed": 0.0}
        verdict = evaluate(doc, now)
        effective = limit if isinstance(limit, float) and limit > 0 else 10.0
        stalled = [r for r in verdict.reasons if r.startswith("no frame processed for")]
        assert bool(stalled) == (idle > effective), (limit, idle, verdict.reasons)
        assert verdict.code == 1  # stalled, or 0 fps below the minimum of 5
        if stalled:  # one reason, not a second one about the rate
            assert not any("below status.min_fps" in r for r in verdict.reasons)


def test_a_stall_shows_in_the_text() -> None:
    now = time.time()
    doc = make_doc(last_frame=now - 42, stall_s=15.0)
    text = format_status(doc, evaluate(doc, now), None, now=now)
    assert "running (degraded)" in text.splitlines()[0]
    assert "last 42 s ago" in text
    assert "no frame processed for 42 s" in text


def test_paused_is_its_own_degraded_state() -> None:
    now = time.time()
    doc = make_doc(paused=True, fps={"capture": 30.0, "processed": 0.0}, last_frame=now)
    verdict = evaluate(doc, now)
    assert (verdict.code, verdict.state) == (1, "paused")
    assert verdict.reasons[0].startswith("paused by an MQTT command")
    assert '{"command": "resume"}' in verdict.reasons[0]
    assert not any("min_fps" in r for r in verdict.reasons)  # the pause says why
    text = format_status(doc, verdict, None, now=now)
    assert text.splitlines()[0] == "● edge-pose (pi-lab): paused (degraded)"
    assert "paused by an MQTT command" in text
    assert evaluate(make_doc(paused=False), now).code == 0
    assert evaluate(make_doc(paused="yes"), now).code == 0  # only a real true counts


@pytest.mark.parametrize("state", ["stopped", "stale"])
def test_a_document_of_a_stopped_daemon_claims_no_connection(state: str) -> None:
    now = time.time()
    doc = make_doc(state="stopped") if state == "stopped" else make_doc(pid=dead_pid())
    verdict = evaluate(doc, now)
    assert verdict.code == 3
    text = format_status(doc, verdict, None, now=now)
    mqtt = next(line for line in text.splitlines() if line.strip().startswith("mqtt:"))
    assert "connected to" not in mqtt and "not connected" in mqtt
    assert "127.0.0.1:1883" in mqtt


# --------------------------------------------------------------------------- fuzzed documents


JUNK: list[Any] = [
    None, True, 0, -1, 2**70, 1e308, float("nan"), "", "x" * 300, "\x1b[2J", [], [1, [2]],
    {}, {"a": {"b": None}}, "0x5", -0.0,
]


@pytest.mark.parametrize("seed", range(8))
def test_any_mutated_document_is_judged_and_printed(seed: int) -> None:
    """The document is another process's output: every field of any type, nested or not,
    must give a verdict (0, 1 or 3) and a text, never an exception."""
    rng = random.Random(seed)
    now = time.time()
    for _ in range(150):
        doc = make_doc(paused=False, last_frame=now, stall_s=15.0)
        for key in rng.sample(sorted(doc), rng.randint(1, 6)):
            value = doc[key]
            if isinstance(value, dict) and value and rng.random() < 0.5:
                value[rng.choice(sorted(value))] = rng.choice(JUNK)
            else:
                doc[key] = rng.choice(JUNK)
        doc["pid"] = os.getpid() if rng.random() < 0.7 else doc.get("pid")
        verdict = evaluate(doc, now)
        assert verdict.code in (0, 1, 3)
        format_status(doc, verdict, None, now=now, path=Path("/run/x"), owner=rng.choice(
            [None, 0, os.geteuid(), FOREIGN_UID]))


def hostile_files(rng: random.Random) -> list[bytes]:
    depth = rng.randint(2000, 200_000)
    return [
        b"[" * depth + b"]" * depth,
        b'{"v": 1, "a": ' + b"[" * depth + b"]" * depth + b"}",
        bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 4000))),
        b'{"v": ' + b"9" * rng.randint(400, 5000) + b"}",
        json.dumps({"v": 1, "state": "running", "pid": rng.choice(JUNK[:6])}).encode(),
        b"\xef\xbb\xbf" + json.dumps(make_doc()).encode(),
    ]


@pytest.mark.parametrize("seed", range(4))
def test_hostile_status_files_are_reported_not_raised(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    for n, data in enumerate(hostile_files(rng)):
        directory = tmp_path / str(n)
        directory.mkdir()
        (directory / STATUS_FILE).write_bytes(data)
        lookup = find_status([directory])
        if lookup.doc is None:
            assert len(lookup.problems) == 1 and "\n" not in lookup.problems[0]
        else:
            evaluate(lookup.doc, time.time())


# --------------------------------------------------------------------------- trust (item 10)


def write_doc(directory: Path, **changes: Any) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    assert StatusWriter(directory).write(make_doc(**changes))
    return directory / STATUS_FILE


def test_documents_of_other_users_are_not_trusted(tmp_path: Path) -> None:
    write_doc(tmp_path / "shared")
    lookup = find_status([tmp_path / "shared"], trusted=not_mine())
    assert lookup.doc is None
    [problem] = lookup.problems
    assert "not trusted" in problem and str(tmp_path / "shared") in problem
    assert f"uid {os.geteuid()}" in problem
    assert find_status([tmp_path / "shared"]).doc is not None  # the caller's own: trusted


def test_a_per_user_directory_is_trusted_for_the_user_it_is_named_for(
    tmp_path: Path, other_edge_pose
) -> None:
    me = os.geteuid()
    run = {"pid": other_edge_pose.pid, "uptime_s": 0.0}  # a run of this user
    mine = write_doc(tmp_path / f"edge-pose-{me}", **run).parent
    xdg = write_doc(tmp_path / str(me) / "edge-pose", **run).parent
    theirs = write_doc(tmp_path / f"edge-pose-{FOREIGN_UID}", **run).parent  # someone else's
    assert (named_uid(mine), named_uid(xdg), named_uid(tmp_path)) == (me, me, None)
    assert find_status([mine], trusted=not_mine()).path == mine / STATUS_FILE
    assert find_status([xdg], trusted=not_mine()).path == xdg / STATUS_FILE
    lookup = find_status([theirs], trusted=not_mine())
    assert lookup.doc is None and "not trusted" in lookup.problems[0]


def test_untrusted_file_in_a_trusted_directory(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to give a file to another user")
    path = write_doc(tmp_path / "run")
    os.chown(path, FOREIGN_UID, FOREIGN_UID)
    lookup = find_status([tmp_path / "run"])
    assert lookup.doc is None
    assert f"the file is owned by uid {FOREIGN_UID}" in lookup.problems[0]


@pytest.mark.parametrize("seed", range(6))
def test_only_trusted_regular_files_are_read(tmp_path: Path, seed: int) -> None:
    """Owner of the directory and of the file, the directory's mode, the kind of file: a
    document is read only when everything is trusted, and nothing blocks or raises."""
    rng = random.Random(seed)
    trusted_me = frozenset({os.geteuid(), os.getuid()})
    for n in range(25):
        directory = tmp_path / f"d{n}"
        directory.mkdir()
        kind = rng.choice(["file", "symlink", "fifo", "dir"])
        target = write_doc(tmp_path / f"t{n}")
        path = directory / STATUS_FILE
        if kind == "file":
            path.write_bytes(target.read_bytes())
        elif kind == "symlink":
            path.symlink_to(target)
        elif kind == "fifo":
            os.mkfifo(path)
        else:
            path.mkdir()
        mode = rng.choice([0o755, 0o777, 0o1777, 0o700])
        directory.chmod(mode)
        trusted = rng.choice([trusted_me, not_mine()])
        lookup = find_status([directory], trusted=trusted)
        usable = kind == "file" and trusted == trusted_me and mode != 0o777
        assert (lookup.doc is not None) == usable, (kind, oct(mode), lookup.problems)
        if not usable:
            assert len(lookup.problems) == 1 and "\n" not in lookup.problems[0]


def test_status_command_says_why_a_file_was_not_trusted(tmp_path: Path) -> None:
    write_doc(tmp_path / "run")
    (tmp_path / "run").chmod(0o777)  # anyone could have written it
    config = tmp_path / "config.toml"
    config.write_text(f'[status]\ndir = "{tmp_path / "run"}"\n')
    result = run_status("--config", str(config))
    assert result.returncode == 3, result.stdout
    assert "writable by every user" in result.stdout and "not trusted" in result.stdout


# --------------------------------------------------------------------------- root finds users


def test_other_users_dirs_put_the_sudo_user_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_user, tmp = tmp_path / "run-user", tmp_path / "tmp"
    for uid in (1003, 1001, 1002):
        (run_user / str(uid) / "edge-pose").mkdir(parents=True)
        (tmp / f"edge-pose-{uid}").mkdir(parents=True)
    (tmp / "edge-pose-x").mkdir()  # not a per-user directory
    (run_user / "1004").mkdir()  # a user without a run
    monkeypatch.setenv("SUDO_UID", "1002")
    found = other_users_dirs(run_user, tmp)
    assert [named_uid(d) for d in found] == [1002, 1002, 1001, 1001, 1003, 1003]
    assert tmp / "edge-pose-x" not in found


def test_sudo_status_finds_a_run_of_another_user(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("`sudo edge-pose status` needs root")
    uid = FOREIGN_UID
    directory = tmp_path / f"edge-pose-{uid}"
    path = write_doc(directory, uptime_s=0.0, device="alice-desk")
    os.chown(directory, uid, uid)
    os.chown(path, uid, uid)
    empty = tmp_path / "service"
    empty.mkdir()
    config = tmp_path / "config.toml"
    config.write_text("")
    env = {"TMPDIR": str(tmp_path), "RUNTIME_DIRECTORY": str(empty), "SUDO_UID": str(uid)}
    result = run_status("--config", str(config), "--json", env=env)
    out = json.loads(result.stdout)
    assert out["file"] == str(path), out["searched"]
    assert result.returncode == 0, out["verdict"]
    text = run_status("--config", str(config), env=env).stdout
    assert f"(run of uid {uid})" in text and "alice-desk" in text


# --------------------------------------------------------------------------- one writer (17)


@pytest.fixture
def other_edge_pose():
    """A real, live edge-pose process other than this one (`status --watch` sleeps)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge_pose.cli", "status", "--watch", "60", "--config", "/x"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10  # until the child has exec'd, it is still pytest
    while not is_edge_pose(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    yield proc
    proc.kill()
    proc.wait()


def test_one_reading_of_the_command_line_answers_both_questions(other_edge_pose) -> None:
    """Is it edge-pose at all (status files), is it `edge-pose run` (a reload's SIGHUP)."""
    argv = read_command_line(other_edge_pose.pid)
    assert argv[1:] == ["-m", "edge_pose.cli", "status", "--watch", "60", "--config", "/x"]
    assert is_edge_pose(other_edge_pose.pid)
    assert edge_pose_command(argv) == "status"  # not a process to send a reload to
    sleeper = subprocess.Popen(["sleep", "60"])
    sleeper.kill()
    sleeper.wait()
    assert not is_edge_pose(sleeper.pid)  # reaped: no /proc entry
    with pytest.raises(OSError):
        read_command_line(sleeper.pid)


def test_a_second_run_in_the_same_folder_is_refused(tmp_path: Path, other_edge_pose) -> None:
    write_doc(tmp_path, pid=other_edge_pose.pid, uptime_s=0.0)
    assert is_edge_pose(other_edge_pose.pid)
    with pytest.raises(StatusDirBusy) as caught:
        StatusWriter(tmp_path)
    message = str(caught.value)
    assert "\n" not in message
    assert f"pid {other_edge_pose.pid}" in message and str(tmp_path / STATUS_FILE) in message
    assert "status.dir" in message


def test_a_folder_whose_writer_is_gone_or_not_edge_pose_is_taken(
    tmp_path: Path, other_edge_pose
) -> None:
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        for changes in (
            {"pid": other_edge_pose.pid, "uptime_s": 0.0, "state": "stopped"},
            {"pid": dead_pid()},
            {"pid": sleeper.pid, "uptime_s": 0.0},  # alive, but not edge-pose (reused pid)
            {"pid": os.getpid()},  # this process: a restart of the session
        ):
            write_doc(tmp_path, **changes)
            assert StatusWriter(tmp_path).write(make_doc())
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not is_edge_pose(sleeper.pid)


def test_run_refuses_a_status_folder_in_use(tmp_path: Path, other_edge_pose) -> None:
    write_doc(tmp_path / "run", pid=other_edge_pose.pid, uptime_s=0.0)
    config = tmp_path / "config.toml"
    config.write_text(f'[status]\ndir = "{tmp_path / "run"}"\n[mqtt]\nenabled = false\n')
    result = subprocess.run(
        [sys.executable, "-m", "edge_pose.cli", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("edge-pose: error: another edge-pose run (pid ")
    doc = json.loads((tmp_path / "run" / STATUS_FILE).read_text())
    assert doc["pid"] == other_edge_pose.pid  # the other run's document is untouched


def test_a_user_folder_counts_only_for_an_edge_pose_of_that_user(
    tmp_path: Path, other_edge_pose
) -> None:
    """A per-user folder is trusted for its own user's run only: a document there whose pid is
    not an edge-pose of that user (a `sleep`, any long-lived process) is passed over, so a user
    cannot make root's `status` report a healthy run that is not there."""
    folder = tmp_path / f"edge-pose-{os.getuid()}"
    folder.mkdir()
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        write_doc(folder, pid=sleeper.pid, uptime_s=0.0)
        lookup = find_status([folder], trusted=frozenset())
        assert lookup.doc is None and "not a running edge-pose" in lookup.problems[0]
        write_doc(folder, pid=other_edge_pose.pid, uptime_s=0.0)
        lookup = find_status([folder], trusted=frozenset())
        assert lookup.doc is not None and lookup.path == folder / STATUS_FILE
    finally:
        sleeper.kill()
        sleeper.wait()
