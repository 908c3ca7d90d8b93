"""`edge-pose bench --web`: what the web view costs the pipeline, in one run.

As the main bench (edge_pose.bench), every figure is a ratio of measurements interleaved in
rounds on the same loaded model, so a noisy minute hits them alike:
- off: the in-memory pipeline with the MQTT sink (on a client that discards), no web view;
- idle: the same with the web view serving and nobody watching;
- one / ten: with one or ten viewers of ``/stream.mjpg``, in another process (as browsers
  are: their reading must not take this process's CPU or GIL);
- memory: peak RSS of a real `edge-pose run` with no web view and with one viewer.
The stream's pace with one and with ten viewers (frames flowing for PACE_SECONDS each) shows
whether ten viewers share one encode per picture.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_pose.bench import (
    DiscardPublisher,
    MemoryCamera,
    Step,
    decode_frames,
    interleaved,
    no_progress,
    run_pipeline,
)
from edge_pose.config import Config, HttpConfig
from edge_pose.inference.estimator import PoseEstimator
from edge_pose.pipeline import Pipeline
from edge_pose.sinks.mqtt import MqttSink
from edge_pose.track import Temporal
from edge_pose.web.hub import WebHub, WebSink
from edge_pose.web.server import WebServer

# How long frames flow with viewers watching to measure the stream's own pace (several of its
# intervals at the default 5 pictures a second).
PACE_SECONDS = 2.0

# Reads ``count`` MJPEG streams and throws the bytes away, until killed: the viewers.
_VIEWERS = """
import sys, threading, urllib.request
def watch():
    with urllib.request.urlopen(sys.argv[1], timeout=30) as stream:
        while stream.read(65536):
            pass
for _ in range(int(sys.argv[2])):
    threading.Thread(target=watch, daemon=True).start()
threading.Event().wait()
"""


@dataclass
class WebBenchResult:
    frames: int
    stream_fps: float
    off_fps: float = 0.0
    idle_ratio: float = 0.0  # idle / off, median of the rounds
    one_ratio: float = 0.0
    ten_ratio: float = 0.0
    idle_rounds: list[float] = field(default_factory=list)
    one_rounds: list[float] = field(default_factory=list)
    ten_rounds: list[float] = field(default_factory=list)
    encodes_per_s: dict[str, float] = field(default_factory=dict)  # one and ten viewers
    peak_rss_mb: dict[str, float] = field(default_factory=dict)  # off, one viewer

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Viewers:
    """``count`` viewers of ``url`` in a child process, connected before the measure starts."""

    def __init__(self, server: WebServer, count: int) -> None:
        self.server = server
        self.count = count
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Viewers:
        url = f"http://127.0.0.1:{self.server.port}/stream.mjpg"
        self.proc = subprocess.Popen([sys.executable, "-c", _VIEWERS, url, str(self.count)])
        deadline = time.monotonic() + 20
        while self.server.viewers < self.count:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"{self.count} viewers did not connect to {url}")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()
        deadline = time.monotonic() + 5
        while self.server.viewers and time.monotonic() < deadline:
            time.sleep(0.02)


def run_web_bench(model: PoseEstimator, cfg: Config, *, video: Path, model_name: str,
                  frames: int, step: Step = no_progress) -> WebBenchResult:  # fmt: skip
    """The pipeline without and with the web view (no, one, ten viewers), interleaved;
    ``step`` is told each of the ``bench_steps(4)`` steps as it ends."""
    hub = WebHub()
    http = HttpConfig(port=0, stream_fps=cfg.http.stream_fps, jpeg_quality=cfg.http.jpeg_quality)
    server = WebServer(http, hub, None)
    server.start()

    def make_pipeline(web: bool) -> Pipeline:
        pipeline = Pipeline(
            model, device_id="bench", crop=cfg.model.crop,
            min_pose_score=cfg.model.min_pose_score, temporal=Temporal.from_config(cfg),
        )  # fmt: skip
        pipeline.sinks.append(MqttSink(DiscardPublisher(), pipeline.stats))
        if web:
            pipeline.sinks.append(WebSink(hub))
        return pipeline

    images = decode_frames(video, 16)
    pipelines = {name: make_pipeline(name != "off") for name in ("off", "idle", "one", "ten")}

    def measure(name: str, viewers: int) -> Any:
        pipeline = pipelines[name]

        def timed(n: int) -> float:
            if not viewers:
                return run_pipeline(pipeline, MemoryCamera(images, n), n)
            with Viewers(server, viewers):
                return run_pipeline(pipeline, MemoryCamera(images, n), n)

        return timed

    def stream_pace(name: str, viewers: int) -> float:
        """The stream's own pace with ``viewers`` watching frames flow for PACE_SECONDS:
        pictures after the first, over the time from the first to the last. A slice of the
        rounds can be shorter than two pictures' interval on a fast machine, so not there."""
        pipeline = pipelines[name]
        with Viewers(server, viewers):
            started = time.monotonic()
            while time.monotonic() - started < PACE_SECONDS:
                run_pipeline(pipeline, MemoryCamera(images, 30), 30)
            made = [t for t in server.stream.made if t >= started]
        return (len(made) - 1) / (made[-1] - made[0]) if len(made) >= 2 else 0.0

    try:
        warmup = max(20, frames // 10)
        run_pipeline(make_pipeline(True), MemoryCamera(images, warmup), warmup)
        rates = interleaved(
            {"off": measure("off", 0), "idle": measure("idle", 0),
             "one": measure("one", 1), "ten": measure("ten", 10)},
            frames, step,
        )  # fmt: skip
        paces = {"one": stream_pace("one", 1), "ten": stream_pace("ten", 10)}
    finally:
        server.close()
    result = WebBenchResult(frames, http.stream_fps, off_fps=round(rates.fps("off"), 2))
    for name in ("idle", "one", "ten"):
        setattr(result, f"{name}_ratio", round(rates.ratio(name, "off"), 3))
        setattr(result, f"{name}_rounds", [round(r, 3) for r in rates.ratios(name, "off")])
    result.encodes_per_s = {name: round(pace, 2) for name, pace in paces.items()}
    off = _peak_rss_mb(video, model_name, model.threads, frames, viewer=False)
    step("memory without the web view")
    result.peak_rss_mb = {
        "off": off,
        "one": _peak_rss_mb(video, model_name, model.threads, frames, viewer=True),
    }
    step("memory with one viewer")
    return result


def _peak_rss_mb(video: Path, model: str, threads: int, frames: int, *, viewer: bool) -> float:
    """Peak RSS of a real `edge-pose run` on the video: without the web view, or with it and
    one viewer watching from another process the whole time."""
    with tempfile.TemporaryDirectory() as status_dir:
        status = Path(status_dir) / "status.json"
        web = ["--http-port", "0"] if viewer else ["--no-http"]
        proc = subprocess.Popen(
            [sys.executable, "-m", "edge_pose.cli", "run", "--camera", str(video),
             "--no-realtime", "--loop", "--no-mqtt", "--model", model, "--threads",
             str(threads), "--max-frames", str(frames), *web],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "RUNTIME_DIRECTORY": status_dir},
        )  # fmt: skip
        watcher = None
        try:
            while viewer and watcher is None and proc.poll() is None:
                port = _port(status)
                if port is None:
                    time.sleep(0.05)
                    continue
                url = f"http://127.0.0.1:{port}/stream.mjpg"
                watcher = subprocess.Popen([sys.executable, "-c", _VIEWERS, url, "1"])
            if proc.wait(600) != 0:
                raise RuntimeError(f"edge-pose run for the memory figure exited {proc.returncode}")
        finally:
            if watcher is not None:
                watcher.kill()
                watcher.wait()
        doc = json.loads(status.read_text())
    return round(float(doc["memory"]["peak_rss_mb"] or 0.0), 1)


def _port(status: Path) -> int | None:
    try:
        doc = json.loads(status.read_text())
    except (OSError, ValueError):
        return None
    return (doc.get("http") or {}).get("port")
