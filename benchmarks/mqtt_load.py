#!/usr/bin/env python3
"""A fleet against one broker: N real `edge-pose run` devices, one Mosquitto, one subscriber.

Every device runs the real pipeline (model, smoothing, rules, events) on the same video, paced
in real time, and publishes to a Mosquitto on 127.0.0.1. Halfway through, the broker is stopped
for a few seconds and started again. Reported:

- QoS 0 keypoints delivered: received / handed to the broker by the devices (outage losses
  included: keypoints are not queued while the broker is away, by design);
- QoS 1 events delivered: unique events received / events the devices generated (must be 100 %:
  they wait in the devices' queues during the outage, and the subscriber has a persistent
  session the broker keeps across its restart);
- every device `online` again after the restart;
- broker CPU (seconds and % of one core) and capture -> subscriber latency p50/p99 of keypoints.

    python benchmarks/mqtt_load.py [--devices 20] [--seconds 40] [--outage 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VIDEO = REPO.parent / "shared" / "data" / "tfjs" / "pose_squats.mp4"


class Broker:
    """Mosquitto with persistence, restartable on the same port."""

    def __init__(self, workdir: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.config = workdir / "mosquitto.conf"
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n"
            f"persistence true\npersistence_location {workdir}/\n"
            + ("user root\n" if os.geteuid() == 0 else "")
        )
        self.binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.process: subprocess.Popen | None = None
        self.cpu_seconds = 0.0

    def start(self) -> None:
        self.process = subprocess.Popen([self.binary, "-c", str(self.config)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        if self.process is None:
            return
        self.cpu_seconds += _cpu_seconds(self.process.pid)
        self.process.terminate()
        self.process.wait(10)
        self.process = None


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Recorder:
    """A persistent-session subscriber to every device's topics."""

    def __init__(self, port: int) -> None:
        self.keypoints = 0
        self.latency_ms: list[float] = []
        self.events: set[tuple] = set()
        self.availability: dict[str, str] = {}
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="load-recorder",
                                  clean_session=False)
        self.client.on_message = self.on_message
        self.client.on_connect = lambda c, *_: c.subscribe("edge-pose/#", qos=1)
        self.client.reconnect_delay_set(1, 2)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def on_message(self, _client, _userdata, message) -> None:
        device, kind = message.topic.split("/")[1:3]
        now = time.time()
        with self.lock:
            if kind == "keypoints":
                self.keypoints += 1
                self.latency_ms.append((now - json.loads(message.payload)["ts"]) * 1000)
            elif kind == "event":
                event = json.loads(message.payload)
                self.events.add((device, event["ts"], event["type"], event.get("label"),
                                 event.get("count")))
            elif kind == "availability":
                self.availability[device] = message.payload.decode()


def run(devices: int, seconds: float, outage: float, video: Path) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        broker = Broker(work)
        broker.start()
        recorder = Recorder(broker.port)
        config = work / "device.toml"
        config.write_text("[model]\nthreads = 1\n[mqtt]\nkeypoints_max_rate = 0\n")
        procs = []
        for i in range(devices):
            env = {**os.environ, "RUNTIME_DIRECTORY": str(work / f"dev{i:02d}")}
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "edge_pose.cli", "run", "--config", str(config),
                 "--camera", str(video), "--loop", "--device-id", f"dev{i:02d}",
                 "--mqtt-host", "127.0.0.1", "--mqtt-port", str(broker.port)],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        half = seconds / 2
        time.sleep(half)
        broker.stop()
        time.sleep(outage)
        broker.start()
        time.sleep(seconds - half)
        online = {f"dev{i:02d}" for i in range(devices)}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with recorder.lock:
                back = {d for d, state in recorder.availability.items() if state == "online"}
            if back >= online:
                break
            time.sleep(0.2)
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        codes = [proc.wait(30) for proc in procs]
        time.sleep(1.0)  # last QoS 1 deliveries
        broker_cpu = broker.cpu_seconds + _cpu_seconds(broker.process.pid)
        broker.stop()
        recorder.client.loop_stop()
        docs = [json.loads((work / f"dev{i:02d}" / "status.json").read_text())
                for i in range(devices)]
    sent_keypoints = sum(d["frames"]["processed"] for d in docs)
    generated_events = sum(d["events"] for d in docs)
    latency = np.array(recorder.latency_ms) if recorder.latency_ms else np.zeros(1)
    wall = seconds + outage
    return {
        "devices": devices, "seconds": wall, "outage_s": outage, "exit_codes_ok": codes.count(0),
        "keypoints_published": sent_keypoints, "keypoints_received": recorder.keypoints,
        "keypoints_delivered": round(recorder.keypoints / max(sent_keypoints, 1), 4),
        "events_generated": generated_events, "events_received": len(recorder.events),
        "events_delivered": round(len(recorder.events) / max(generated_events, 1), 4),
        "back_online": len(back & online), "broker_cpu_s": round(broker_cpu, 2),
        "broker_cpu_pct": round(100 * broker_cpu / wall, 1),
        "latency_ms": {"p50": round(float(np.percentile(latency, 50)), 1),
                       "p99": round(float(np.percentile(latency, 99)), 1)},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=40, help="run time besides the outage")
    parser.add_argument("--outage", type=float, default=5, help="seconds the broker is down")
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not args.video.is_file():
        parser.error(f"video not found: {args.video} (--video PATH)")
    result = run(args.devices, args.seconds, args.outage, args.video)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:<22} {value}")
    ok = result["events_delivered"] == 1.0 and result["back_online"] == args.devices
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
