#!/usr/bin/env python3
"""`make demo`: edge-pose on a video, publishing to a private Mosquitto, keypoints shown live.

Starts Mosquitto on 127.0.0.1 with a free port, subscribes to edge-pose's topics, runs
`edge-pose run` on the video and prints a line per keypoints message as it arrives, then a
summary. Without a video argument it downloads the public squats sample once into .cache/.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import paho.mqtt.client as mqtt

SAMPLE_URL = (
    "https://github.com/tensorflow/tfjs-models/raw/master/pose-detection/test_data/pose_squats.mp4"
)
REPO = Path(__file__).resolve().parents[1]


def sample_video() -> Path:
    """The public squats sample, downloaded once into .cache/. Through a ``.part`` file, so a
    failed download leaves nothing that a later run would take for the video; a failure is one
    line (offline is the usual cause, and a traceback hides the way out: VIDEO=)."""
    target = REPO / ".cache" / "pose_squats.mp4"
    if target.exists():
        return target
    part = target.with_name(target.name + ".part")
    print(f"demo: downloading the sample video from {SAMPLE_URL}")
    try:
        target.parent.mkdir(exist_ok=True)
        with urllib.request.urlopen(SAMPLE_URL, timeout=60) as response:
            part.write_bytes(response.read())
        part.replace(target)
    except (OSError, http.client.HTTPException, ValueError) as exc:  # URLError is an OSError
        with contextlib.suppress(OSError):
            part.unlink(missing_ok=True)
        sys.exit(
            f"demo: cannot download the sample video {SAMPLE_URL}: {_reason(exc)} "
            "(offline? give a video of your own: make demo VIDEO=/path/to/video.mp4)"
        )
    return target


def _reason(exc: BaseException) -> str:
    """The cause in a few words: urllib wraps the socket error, HTTP errors carry a status."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, BaseException):
        exc = exc.reason
    text = (exc.strerror if isinstance(exc, OSError) else None) or str(exc) or type(exc).__name__
    return " ".join(text.split())  # one line, whatever the server sent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def web_port() -> int:
    """The web view's usual port, 8080, when it is free here; else any free port."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", 8080))
        except OSError:
            return free_port()
    return 8080


def start_broker(workdir: Path) -> tuple[subprocess.Popen, int]:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).is_file():
        sys.exit("demo: mosquitto is not installed: make broker (apt-get install mosquitto)")
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
    broker = subprocess.Popen(
        [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return broker, port
        except OSError:
            time.sleep(0.05)
    broker.kill()
    sys.exit("demo: mosquitto did not start")


def describe(payload: dict) -> str:
    points = {k["name"]: k for k in payload["keypoints"]}
    nose, hip = points["nose"], points["left_hip"]
    who = "person   " if payload["person"] else "no person"
    label = (payload.get("pose") or {}).get("label", "-")
    return (
        f"frame {payload['frame']:4d}  {who}  {label:<11} score {payload['score']:.2f}  "
        f"nose ({nose['x']:6.1f},{nose['y']:6.1f})  left_hip ({hip['x']:6.1f},{hip['y']:6.1f})  "
        f"latency {payload['latency_ms']:5.1f} ms"
    )


def main() -> int:
    video = Path(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1] else sample_video()
    with tempfile.TemporaryDirectory() as tmp:
        broker, port = start_broker(Path(tmp))
        received: list[dict] = []
        availability: list[str] = []
        events: list[dict] = []

        def on_message(_client, _userdata, message) -> None:
            kind = message.topic.rsplit("/", 1)[-1]
            if kind == "availability":
                availability.append(message.payload.decode())
                print(f"availability: {availability[-1]}")
                return
            payload = json.loads(message.payload)
            if kind == "keypoints":
                received.append(payload)
                print(describe(payload))
            elif kind == "event":
                details = {k: v for k, v in payload.items() if k not in ("v", "device", "ts")}
                print(f"event:        {details}")
                events.append(payload)

        sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="edge-pose-demo-viewer")
        sub.on_message = on_message
        sub.connect("127.0.0.1", port)
        sub.subscribe("edge-pose/demo/#")
        sub.loop_start()
        print(f"demo: mosquitto on 127.0.0.1:{port}, subscribed to edge-pose/demo/#; video {video}")
        edge_pose = Path(sys.executable).with_name("edge-pose")
        page = web_port()
        print(f"demo: while the video plays, the web view is at http://127.0.0.1:{page}/")
        run = subprocess.run(
            [
                str(edge_pose),
                "run",
                "--camera",
                f"file:{video}",
                "--device-id",
                "demo",
                "--mqtt-host",
                "127.0.0.1",
                "--mqtt-port",
                str(port),
                "--http-port",
                str(page),
            ],
            check=False,
        )
        time.sleep(0.5)
        sub.loop_stop()
        sub.disconnect()
        broker.terminate()
        broker.wait()
    people = sum(p["person"] for p in received)
    reps = [e["count"] for e in events if e["type"] == "rep"]
    print(
        f"demo: {len(received)} keypoints messages received, {people} with a person, "
        f"{len(events)} events ({len(reps)} repetitions); availability "
        f"{' -> '.join(availability)}; edge-pose exited {run.returncode}"
    )
    return run.returncode


if __name__ == "__main__":
    sys.exit(main())
