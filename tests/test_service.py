"""`edge-pose run` under a service manager: the sd_notify protocol on a real datagram socket,
the watchdog driven by progress, SIGTERM/SIGHUP, and `edge-pose status` against the daemon."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from mqtt_broker import Subscriber, wait_for

from edge_pose.camera.file import load_image

EDGE_POSE = [sys.executable, "-m", "edge_pose.cli"]


class NotifySocket:
    """A service manager's end of NOTIFY_SOCKET: records every datagram with its arrival time."""

    def __init__(self, address: str) -> None:
        self.env_value = address
        bind = "\0" + address[1:] if address.startswith("@") else address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(bind)
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, dict[str, str]]] = []
        self._stop = False
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._stop:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            fields = dict(line.split("=", 1) for line in data.decode().splitlines())
            self.messages.append((time.monotonic(), fields))

    def fields(self) -> list[str]:
        return [k for _, fields in list(self.messages) for k in fields]

    def times(self, key: str) -> list[float]:
        return [t for t, fields in list(self.messages) if key in fields]

    def close(self) -> None:
        self._stop = True
        self._thread.join()
        self.sock.close()


def y4m_frame(image: np.ndarray) -> bytes:
    """One YUV4MPEG2 frame (what `ffmpeg -f yuv4mpegpipe` writes) of an RGB image."""
    import cv2

    return b"FRAME\n" + cv2.cvtColor(image, cv2.COLOR_RGB2YUV_I420).tobytes()


class StallingCamera:
    """A named pipe fed with frames at 10 fps that stops delivering while staying open,
    the way a hung camera driver looks to the reader."""

    def __init__(self, tmp: Path, image: np.ndarray, frames: int) -> None:
        self.path = tmp / "camera.y4m"
        os.mkfifo(self.path)
        height, width = image.shape[:2]
        self.header = f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode()
        self.frame = y4m_frame(image)
        self.frames = frames
        self.stalled = threading.Event()
        self.release = threading.Event()
        self._thread = threading.Thread(target=self._feed, daemon=True)
        self._thread.start()

    def _feed(self) -> None:
        with open(self.path, "wb") as pipe:
            pipe.write(self.header)
            for _ in range(self.frames):
                pipe.write(self.frame)
                pipe.flush()
                time.sleep(0.1)
            self.stalled.set()
            self.release.wait(30)

    def close(self) -> None:
        self.release.set()
        self._thread.join(5)


def small_image(data_dir: Path) -> np.ndarray:
    import cv2

    image = load_image(data_dir / "coral" / "squat.bmp")
    return cv2.resize(image, (250, 304))  # even sizes for 4:2:0


def start_daemon(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [*EDGE_POSE, "run", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_notify_ready_watchdog_stall_and_stop(
    tmp_path: Path, data_dir: Path, mosquitto, abstract: bool
) -> None:
    address = f"@edge-pose-test-{os.getpid()}-{abstract}" if abstract else str(tmp_path / "notify")
    notify = NotifySocket(address)
    camera = StallingCamera(tmp_path, small_image(data_dir), frames=30)
    sub = Subscriber(mosquitto.host, mosquitto.port, "edge-pose/svc/availability")
    env = {
        **os.environ,
        "NOTIFY_SOCKET": address,
        "WATCHDOG_USEC": "2000000",
        "RUNTIME_DIRECTORY": str(tmp_path / "run"),
    }
    proc = start_daemon(
        [
            "--camera",
            str(camera.path),
            "--device-id",
            "svc",
            "--mqtt-host",
            mosquitto.host,
            "--mqtt-port",
            str(mosquitto.port),
        ],
        env,
    )
    try:
        assert wait_for(lambda: "READY" in notify.fields(), 30), proc.stderr
        assert wait_for(lambda: len(notify.times("WATCHDOG")) >= 2, 10)
        assert notify.fields().index("EXTEND_TIMEOUT_USEC") < notify.fields().index("READY")
        assert wait_for(lambda: camera.stalled.is_set(), 10)
        stalled_at = time.monotonic()
        time.sleep(3.5)
        # Stall threshold is half the watchdog (1 s): at most one ping after the last frame.
        late_pings = [t for t in notify.times("WATCHDOG") if t > stalled_at + 1.2]
        assert late_pings == []
        assert notify.times("STATUS"), "no STATUS= line"
        status_lines = [f["STATUS"] for _, f in notify.messages if "STATUS" in f]
        assert any("fps" in line and "inference" in line for line in status_lines)
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(5)
        assert time.monotonic() - start < 3.0
        assert proc.returncode == 0
        assert "STOPPING" in notify.fields()
        assert wait_for(lambda: sub.payloads("availability")[-1:] == [b"offline"])
        retained = Subscriber(mosquitto.host, mosquitto.port, "edge-pose/svc/availability")
        assert wait_for(lambda: retained.messages) and retained.messages[0][1:] == (
            b"offline",
            True,
        )
        retained.close()
    finally:
        if proc.poll() is None:
            proc.kill()
        camera.close()
        notify.close()
        sub.close()


def write_config(path: Path, rep_name: str = "squat", extra: str = "") -> None:
    path.write_text(f'[mqtt]\nenabled = false\n[classifier]\nrep_name = "{rep_name}"\n{extra}')


def start_reloadable_daemon(
    tmp_path: Path, data_dir: Path
) -> tuple[Path, NotifySocket, subprocess.Popen]:
    """A daemon looping pose_1.mp4 with tmp_path/config.toml (squat reps, no MQTT), its status
    in tmp_path and its sd_notify messages on a socket: what the reload tests change and watch."""
    config = tmp_path / "config.toml"
    write_config(config)
    notify = NotifySocket(str(tmp_path / "notify"))
    env = {**os.environ, "NOTIFY_SOCKET": notify.env_value, "RUNTIME_DIRECTORY": str(tmp_path)}
    proc = start_daemon(
        ["--config", str(config), "--camera", str(data_dir / "tfjs" / "pose_1.mp4"), "--loop"], env
    )
    return config, notify, proc


def test_sighup_reload_valid_and_invalid(tmp_path: Path, data_dir: Path) -> None:
    config, notify, proc = start_reloadable_daemon(tmp_path, data_dir)
    status = tmp_path / "status.json"
    try:
        assert wait_for(lambda: "READY" in notify.fields(), 30)
        config.write_text("[camera]\nfps = -1\n")  # invalid: must be rejected, run goes on
        proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: "RELOADING" in notify.fields(), 10)
        time.sleep(1.5)
        assert proc.poll() is None
        doc = json.loads(status.read_text())
        assert doc["state"] == "running" and "reload rejected" in doc["last_error"]
        assert doc["reps"]["exercise"] == "squat"
        write_config(config, rep_name="knee_bend")  # valid: the pipeline restarts with it
        proc.send_signal(signal.SIGHUP)
        assert wait_for(
            lambda: json.loads(status.read_text())["reps"]["exercise"] == "knee_bend", 15
        )
        assert json.loads(status.read_text())["state"] == "running"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=10)
        notify.close()
    assert proc.returncode == 0, stderr
    assert "camera.fps = -1: must be >= 1" in stderr and "keeping the running config" in stderr
    assert "reload: applying the new config" in stderr


def test_sighup_reload_that_cannot_start_goes_back(tmp_path: Path, data_dir: Path) -> None:
    """A reloaded config that is valid but cannot start (a classifier file that does not load, a
    model that is not installed, a classifier file that is not there) is rejected like an
    invalid one: the running config comes back, the service goes on."""
    corrupt = tmp_path / "poses.knn"
    corrupt.write_text("not a classifier")
    config, notify, proc = start_reloadable_daemon(tmp_path, data_dir)
    status = tmp_path / "status.json"

    def frames() -> int:
        return json.loads(status.read_text())["frames"]["processed"]

    try:
        assert wait_for(lambda: "READY" in notify.fields(), 30)
        for broken, why in (
            (f'type = "knn"\npath = "{corrupt}"\n', str(corrupt)),  # fails as the session starts
            ('[model]\nname = "/no/such/model.tflite"\n', "/no/such/model"),  # model load fails
            ('type = "knn"\npath = "/no/such/poses.knn"\n', "/no/such"),  # found before stopping
        ):
            write_config(config, rep_name="knee_bend", extra=broken)
            proc.send_signal(signal.SIGHUP)
            assert wait_for(lambda w=why: w in (
                json.loads(status.read_text())["last_error"] or ""), 15), proc.poll()
            time.sleep(1.0)  # the running config's session starts again
            before = frames()
            assert wait_for(lambda b=before: frames() > b + 5, 15)  # frames flow again
            doc = json.loads(status.read_text())
            assert doc["state"] == "running" and doc["reps"]["exercise"] == "squat"
        write_config(config, rep_name="knee_bend")
        proc.send_signal(signal.SIGHUP)
        assert wait_for(
            lambda: json.loads(status.read_text())["reps"]["exercise"] == "knee_bend", 15
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=10)
        notify.close()
    assert proc.returncode == 0, stderr
    rejected = [line for line in stderr.splitlines() if "reload rejected" in line]
    assert len(rejected) == 3, stderr
    assert str(corrupt) in rejected[0] and "back to the running config" in rejected[0]
    assert "model file /no/such/model.tflite does not exist" in rejected[1]
    assert "/no/such/poses.knn" in rejected[2] and "keeping the running config" in rejected[2]


def status(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    config = tmp_path / "status.toml"
    config.write_text(f'[status]\ndir = "{tmp_path / "run"}"\n')
    return subprocess.run(
        [*EDGE_POSE, "status", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_status_against_a_running_daemon(tmp_path: Path, data_dir: Path, mosquitto) -> None:
    assert status(tmp_path).returncode == 3  # no status file yet
    config = tmp_path / "daemon.toml"
    config.write_text(f'[status]\ndir = "{tmp_path / "run"}"\n')
    proc = start_daemon(
        [
            "--config",
            str(config),
            "--camera",
            str(data_dir / "tfjs" / "pose_1.mp4"),
            "--loop",
            "--device-id",
            "st",
            "--mqtt-host",
            mosquitto.host,
            "--mqtt-port",
            str(mosquitto.port),
        ],
        dict(os.environ),
    )
    try:

        def report() -> dict:
            return json.loads(status(tmp_path, "--json").stdout)

        def processed() -> int:
            return ((report()["status"] or {}).get("frames") or {}).get("processed", 0)

        assert wait_for(lambda: processed() > 60, 30)
        report = report()
        assert report["verdict"]["code"] == 0 and report["status"]["state"] == "running"
        doc = report["status"]
        assert doc["fps"]["processed"] > 5 and doc["inference_ms"]["p50"] > 0
        assert doc["mqtt"]["connected"] is True and doc["backend"]["kind"] == "cpu"
        assert doc["pose"]["person"] is True and doc["pid"] == proc.pid
        text = status(tmp_path).stdout
        assert "running" in text and "fps" in text and "inference" in text
        mosquitto.stop()  # broker gone -> degraded
        assert wait_for(lambda: status(tmp_path).returncode == 1, 15)
        assert "MQTT" in status(tmp_path).stdout
        proc.kill()  # SIGKILL: the file stays, the pid is gone -> not running
        proc.wait(5)
        result = status(tmp_path)
        assert result.returncode == 3 and "gone" in result.stdout
    finally:
        if proc.poll() is None:
            proc.kill()
