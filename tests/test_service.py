"""`edge-pose run` under a service manager: the sd_notify protocol on a real datagram socket,
the watchdog driven by progress, SIGTERM/SIGHUP, and `edge-pose status` against the daemon."""

from __future__ import annotations

import json
import os
import random
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
from edge_pose.service.health import evaluate

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
        # The stall shows in status.json: the rate falls instead of freezing at ~10 fps, and
        # the verdict names the stall (limit: half the watchdog, 1 s).
        doc = json.loads((tmp_path / "run" / "status.json").read_text())
        assert doc["fps"]["processed"] < 5.0 and doc["stall_s"] == 1.0
        assert doc["updated"] - doc["last_frame"] > 2.0
        verdict = evaluate(doc, time.time())
        assert verdict.code == 1
        assert any(r.startswith("no frame processed for") for r in verdict.reasons)
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


def test_sighup_reload_with_broken_files_keeps_the_session(tmp_path: Path, data_dir: Path) -> None:
    """Every kind of broken file a reloaded config names (k-NN files corrupt in several ways, a
    model that is not installed, a classifier that is not there) is a rejected reload that leaves
    the running session alone: frames keep counting up, nothing restarts. A config that loads but
    whose camera cannot open goes back to the running config. A good reload then clears the
    error."""
    rng = random.Random(12)
    knn_files = {
        "text": b"not a classifier",
        "empty": b"",
        "binary": bytes(rng.randrange(256) for _ in range(512)),
        "nested": b"[" * 100_000 + b"]" * 100_000,
        "shape": json.dumps({"format": "edge-pose-knn", "version": 1, "labels": ["a", "b"],
                             "samples": [{"label": ["x"], "keypoints": "no"}]}).encode(),
        "huge-number": b'{"format": "edge-pose-knn", "version": 1e999}',
    }
    broken = []
    for name, content in knn_files.items():
        path = tmp_path / f"{name}.knn"
        path.write_bytes(content)
        broken.append((f'type = "knn"\npath = "{path}"\n', str(path)))
    broken += [
        ('[model]\nname = "/no/such/model.tflite"\n', "/no/such/model"),
        ('type = "knn"\npath = "/no/such/poses.knn"\n', "/no/such"),
    ]
    # The camera comes from the config file here, so a reload can change it.
    camera = f'[camera]\nsource = "{data_dir / "tfjs" / "pose_1.mp4"}"\nloop = true\n'
    config = tmp_path / "config.toml"
    write_config(config, extra=camera)
    notify = NotifySocket(str(tmp_path / "notify"))
    env = {**os.environ, "NOTIFY_SOCKET": notify.env_value, "RUNTIME_DIRECTORY": str(tmp_path)}
    proc = start_daemon(["--config", str(config)], env)
    status = tmp_path / "status.json"

    def doc() -> dict:
        return json.loads(status.read_text())

    try:
        assert wait_for(lambda: "READY" in notify.fields(), 30)
        for extra, why in broken:
            before = doc()["frames"]["processed"]
            write_config(config, rep_name="knee_bend", extra=extra + camera)
            proc.send_signal(signal.SIGHUP)
            assert wait_for(lambda w=why: w in (doc()["last_error"] or ""), 15), proc.poll()
            assert wait_for(lambda b=before: doc()["frames"]["processed"] > b + 5, 15)
            assert doc()["state"] == "running" and doc()["reps"]["exercise"] == "squat"
        not_a_video = tmp_path / "camera.mp4"
        not_a_video.write_text("not a video")
        write_config(config, rep_name="knee_bend", extra=f'[camera]\nsource = "{not_a_video}"\n')
        proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: str(not_a_video) in (doc()["last_error"] or ""), 15)
        time.sleep(1.0)  # the running config's session starts again
        before = doc()["frames"]["processed"]
        assert wait_for(lambda b=before: doc()["frames"]["processed"] > b + 5, 15)
        assert doc()["reps"]["exercise"] == "squat"
        write_config(config, rep_name="knee_bend", extra=camera)
        proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: doc()["reps"]["exercise"] == "knee_bend", 15)
        assert doc()["last_error"] is None  # the good reload cleared it
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=10)
        notify.close()
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    rejected = [line for line in stderr.splitlines() if "reload rejected" in line]
    assert len(rejected) == len(broken) + 1, stderr
    assert all("keeping the running config" in line for line in rejected[:-1]), rejected
    assert "back to the running config" in rejected[-1]
    assert "model file /no/such/model.tflite does not exist" in rejected[-3]


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
        first = report()
        assert first["verdict"]["code"] == 0 and first["status"]["state"] == "running"
        doc = first["status"]
        assert doc["fps"]["processed"] > 5 and doc["inference_ms"]["p50"] > 0
        assert doc["mqtt"]["connected"] is True and doc["backend"]["kind"] == "cpu"
        assert doc["pose"]["person"] is True and doc["pid"] == proc.pid
        text = status(tmp_path).stdout
        assert "running" in text and "fps" in text and "inference" in text
        remote = Subscriber(mosquitto.host, mosquitto.port, "edge-pose/st/state")
        remote.client.publish("edge-pose/st/set", '{"command": "pause"}', qos=1)
        assert wait_for(lambda: report()["verdict"]["state"] == "paused", 15)
        paused = status(tmp_path)
        assert paused.returncode == 1 and "paused (degraded)" in paused.stdout
        assert "paused by an MQTT command" in paused.stdout
        remote.client.publish("edge-pose/st/set", '{"command": "resume"}', qos=1)
        assert wait_for(lambda: report()["verdict"]["code"] == 0, 15)
        remote.close()
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
