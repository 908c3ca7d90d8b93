"""`edge-pose config set --reload` signals only a real edge-pose daemon.

The pid to signal comes from a status file (or systemd), and the command often runs as root: a
pid planted there must not get root's SIGHUP, which ends most processes. Every process here is
real (`sleep`, Python scripts standing in for the daemon, one run as another user); only the
systemd look-up is absent (no systemd in the test machine, or no edge-pose unit).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_pose.service.cmdline import edge_pose_command as _edge_pose_command

WRAPPER = "import sys; from edge_pose.cli import main; sys.exit(main(['config', *sys.argv[1:]]))"
NOBODY = 65534
# A stand-in daemon: says it is ready, then writes a flag file on SIGHUP.
DAEMON = (
    "import pathlib, signal, sys, time\n"
    "flag = pathlib.Path(sys.argv[-1])\n"
    "signal.signal(signal.SIGHUP, lambda *a: flag.write_text('hup'))\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)


def config_set_reload(conf: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", WRAPPER, "set", "--config", str(conf), "camera.fps=20"]
    return subprocess.run(
        [*command, "--reload"], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    """A config whose status.dir is ``tmp_path/run``: the status file reload reads the pid from."""
    (tmp_path / "run").mkdir()
    path = tmp_path / "config.toml"
    path.write_text(f'[status]\ndir = "{tmp_path / "run"}"\n')
    return path


def plant(status_dir: Path, pid: int) -> None:
    doc = {"v": 1, "pid": pid, "state": "running", "uptime_s": 0, "time": time.time()}
    (status_dir / "status.json").write_text(json.dumps(doc))


def start(command: list[str], **kw: object) -> subprocess.Popen[str]:
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, **kw)  # type: ignore[call-overload]
    if "sleep" not in command[0]:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    return proc


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def script(folder: Path, name: str) -> Path:
    path = folder / name
    path.write_text(DAEMON)
    path.chmod(0o755)
    return path


def wrong_targets(tmp_path: Path) -> dict[str, list[str]]:
    """Live processes that are not an edge-pose daemon, by kind (all owned by the caller)."""
    flag = str(tmp_path / "never")
    return {
        "sleep": ["sleep", "60"],
        "python -c": [sys.executable, "-c", DAEMON, flag],
        "other script": [sys.executable, str(script(tmp_path, "not-edge-pose")), "run", flag],
        "edge-pose watch": [sys.executable, str(script(tmp_path, "edge-pose")), "watch", flag],
        "edge-pose, no command": [sys.executable, str(script(tmp_path, "edge-pose")), flag],
    }


@pytest.mark.parametrize(
    "kind", ["sleep", "python -c", "other script", "edge-pose watch", "edge-pose, no command"]
)
def test_a_pid_that_is_not_edge_pose_run_is_not_signalled(
    kind: str, tmp_path: Path, conf: Path, processes: list
) -> None:
    proc = start(wrong_targets(tmp_path)[kind])
    processes.append(proc)
    plant(tmp_path / "run", proc.pid)
    result = config_set_reload(conf)
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith(f"not signalling pid {proc.pid} (from {tmp_path / 'run'}")
    assert "it is not an `edge-pose run` process" in line
    assert "sudo systemctl reload edge-pose" in line
    time.sleep(0.3)
    assert proc.poll() is None  # still running: SIGHUP would have ended it
    assert not (tmp_path / "never").exists()


def test_an_edge_pose_run_of_another_user_is_not_signalled(
    tmp_path: Path, conf: Path, world_dir: Path, processes: list
) -> None:
    """`exec -a`, a script named edge-pose: any user can fake the command line, not the owner."""
    if os.geteuid() != 0:
        pytest.skip("needs root to start a process as another user")
    world = world_dir / "nobody"
    world.mkdir()
    world.chmod(0o777)
    fake = script(world, "edge-pose")
    setpriv = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    proc = start([*setpriv, sys.executable, str(fake), "run", str(world / "hup")])
    processes.append(proc)
    plant(tmp_path / "run", proc.pid)
    result = config_set_reload(conf)
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert f"not signalling pid {proc.pid}" in line
    assert f"it runs as uid {NOBODY}/{NOBODY}, not as root, you or the service user" in line
    time.sleep(0.3)
    assert proc.poll() is None and not (world / "hup").exists()


@pytest.mark.parametrize("form", ["console script", "python -m edge_pose.cli"])
def test_an_edge_pose_run_of_the_caller_gets_the_sighup(
    form: str, tmp_path: Path, conf: Path, processes: list
) -> None:
    flag = tmp_path / "hup"
    if form == "console script":
        proc = start([sys.executable, str(script(tmp_path, "edge-pose")), "run", str(flag)])
    else:  # a stand-in edge_pose.cli (-S: no site, so the editable install cannot win)
        package = tmp_path / "fake" / "edge_pose"
        package.mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "cli.py").write_text(DAEMON)
        env = {**os.environ, "PYTHONPATH": str(tmp_path / "fake")}
        argv = [sys.executable, "-S", "-m", "edge_pose.cli", "-v", "run", str(flag)]
        proc = start(argv, env=env, cwd=tmp_path)  # -m puts the cwd first on the path
    processes.append(proc)
    plant(tmp_path / "run", proc.pid)
    result = config_set_reload(conf)
    assert result.returncode == 0, result.stderr
    assert f"sent SIGHUP to edge-pose (pid {proc.pid}" in result.stdout
    deadline = time.monotonic() + 10
    while not flag.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert flag.read_text() == "hup" and proc.poll() is None


# --------------------------------------------------------------------------- command lines

RUN = "/opt/edge-pose/venv/bin/edge-pose"


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["/usr/bin/python3", RUN, "run", "--config", "/etc/edge-pose/config.toml"], "run"),
        (["/usr/bin/python3", "-s", "-X", "faulthandler", RUN, "-v", "run"], "run"),
        (["python3.11", "-m", "edge_pose.cli", "run"], "run"),
        (["edge-pose", "--verbose", "run"], "run"),
        ([RUN, "status", "--watch"], "status"),
        (["/usr/bin/python3", "-c", "edge-pose", "run"], ""),
        (["/usr/bin/python3", "-m", "edge_pose_fake", "run"], ""),
        (["/usr/bin/python3", "/tmp/edge-pose-x", "run"], ""),
        (["/bin/sh", RUN, "run"], ""),
        (["sleep", "60"], ""),
        ([], ""),
        (["edge-pose"], ""),
    ],
)
def test_the_edge_pose_command_of_an_argv(argv: list[str], command: str) -> None:
    assert _edge_pose_command(argv) == command


def test_random_argvs_never_raise_and_run_needs_an_edge_pose_program() -> None:
    """Seeded fuzz: what a process can put on its command line does not break the check, and
    only an edge-pose program followed by `run` is taken for the daemon."""
    rng = random.Random(20261124)
    words = ["run", "-m", "-c", "-X", "-W", "-v", "--verbose", "edge-pose", "edge_pose.cli",
             "python3", "/usr/bin/python3", RUN, "", "\x1b[2J", "ü", "-", "--", "sleep"]
    for _ in range(3000):
        argv = [rng.choice(words) for _ in range(rng.randrange(0, 7))]
        got = _edge_pose_command(argv)
        assert isinstance(got, str)
        if got == "run":
            assert any(os.path.basename(a) == "edge-pose" or a == "edge_pose.cli" for a in argv)
