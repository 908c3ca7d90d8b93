"""`edge-pose bench`: how fast the pipeline runs compared with the model alone, in one run.

The machine this runs on may be shared and noisy, so every figure that matters is a ratio of
measurements on the same model and thread count, interleaved in rounds so that a slow moment
hits all of them alike, and each ratio is the median of the per-round ratios:
- bare: ``invoke()`` alone on a fixed input, the physical limit of the model on this CPU;
- pipeline: frames already in memory handed over as a camera would, through the real pipeline;
  its ratio to bare is the pipeline's own overhead;
- file: the same pipeline reading a video as fast as possible (decode in the capture thread),
  against a straightforward single-threaded decode -> resize -> invoke loop;
- latency: capture -> publish with frames paced at 30 fps as a live camera delivers them;
- memory: peak RSS of a real `edge-pose run` process on the video.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge_pose.camera.base import Camera, Frame, FrameClock
from edge_pose.camera.file import VideoFileCamera
from edge_pose.camera.grabber import FrameGrabber
from edge_pose.config import Config
from edge_pose.inference.estimator import PoseEstimator
from edge_pose.pipeline import Pipeline
from edge_pose.sinks.mqtt import MqttSink
from edge_pose.track import Temporal

# In-memory frames kept for the pipeline runs: enough variety, bounded memory.
MEMORY_FRAMES = 16
LATENCY_FPS = 30.0
PACED_FRAMES = 150  # 5 s of frames paced at LATENCY_FPS
ROUNDS = 5


class MemoryCamera(Camera):
    """Cycles decoded frames from memory, paced (live) or as fast as the reader takes them."""

    def __init__(self, images: list[np.ndarray], count: int, fps: float | None = None) -> None:
        self.live = fps is not None
        self.fps = fps
        self.description = f"memory ({len(images)} frames)"
        self._images = images
        self._count = count
        self._clock = FrameClock()
        self._start = time.monotonic()

    def read(self) -> Frame | None:
        index = self._clock.index
        if index >= self._count:
            return None
        if self.fps:
            delay = self._start + index / self.fps - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        return self._clock.stamp(self._images[index % len(self._images)])


class DiscardPublisher:
    """An MQTT client that takes every message and drops it: behind the real MQTT sink, the
    formatting is measured, the network is not."""

    def keypoints_due(self, now: float) -> bool:
        return True

    def publish_keypoints(self, payload: bytes, now: float) -> bool:
        return True

    def publish(
        self, suffix: str, payload: bytes | str, qos: int = 1, retain: bool = False
    ) -> bool:
        return True


@dataclass
class BenchResult:
    model: str
    threads: int
    backend: str
    runtime: str
    frames: int
    bare_fps: float = 0.0
    pipeline_fps: float = 0.0
    file_fps: float = 0.0
    naive_file_fps: float = 0.0
    ratio: float = 0.0  # pipeline / bare, median of the rounds
    file_vs_naive: float = 0.0  # file / naive, median of the rounds
    # The per-round ratios: their spread tells a quiet run from a disturbed one.
    ratio_rounds: list[float] = field(default_factory=list)
    file_vs_naive_rounds: list[float] = field(default_factory=list)
    stages_ms: dict[str, float] = field(default_factory=dict)
    latency_ms: dict[str, float] = field(default_factory=dict)
    invoke_ms_p50: float = 0.0
    paced_invoke_ms: dict[str, float] = field(default_factory=dict)
    peak_rss_mb: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def decode_frames(video: Path, limit: int) -> list[np.ndarray]:
    """Up to ``limit`` RGB frames spread over a video (only those are kept in memory)."""
    camera = VideoFileCamera(video, realtime=False, loop=False)
    total = camera.frame_count or limit
    step = max(1, total // limit)
    frames: list[np.ndarray] = []
    try:
        while len(frames) < limit and (frame := camera.read()) is not None:
            if frame.index % step == 0:
                frames.append(frame.image)
    finally:
        camera.close()
    return frames


def bare_invoke(model: PoseEstimator, times: list[float]) -> Callable[[int], float]:
    """``invoke()`` alone on the prepared input: seconds for n calls (each call's ms kept)."""

    def measure(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            t = time.perf_counter_ns()
            model.interpreter.invoke()
            times.append((time.perf_counter_ns() - t) / 1e6)
        return time.perf_counter() - start

    return measure


def run_pipeline(pipeline: Pipeline, camera: Camera, frames: int) -> float:
    """The pipeline with a capture thread on ``camera`` for ``frames`` frames: seconds taken."""
    grabber = FrameGrabber(camera).start()
    start = time.perf_counter()
    try:
        pipeline.run(grabber, threading.Event(), max_frames=pipeline.stats.processed + frames)
    finally:
        elapsed = time.perf_counter() - start
        grabber.stop()
    return elapsed


def naive_file_loop(model: PoseEstimator, video: Path) -> Callable[[int], float]:
    """A straightforward single-threaded loop: decode, convert, letterbox-resize, invoke."""
    interpreter = model.interpreter
    in_h, in_w = (int(d) for d in interpreter.get_input_details()[0]["shape"][1:3])
    inp = interpreter.get_input_details()[0]["index"]
    out = interpreter.get_output_details()[0]["index"]

    def measure(n: int) -> float:
        capture = cv2.VideoCapture(str(video))
        done = 0
        start = time.perf_counter()
        while done < n:
            ok, bgr = capture.read()
            if not ok:
                capture.release()
                capture = cv2.VideoCapture(str(video))
                continue
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            h, w = rgb.shape[:2]
            scale = min(in_w / w, in_h / h)
            resized = cv2.resize(rgb, (round(w * scale), round(h * scale)))
            padded = np.zeros((in_h, in_w, 3), np.uint8)
            padded[: resized.shape[0], : resized.shape[1]] = resized
            interpreter.set_tensor(inp, padded[np.newaxis].astype(model.input_dtype))
            interpreter.invoke()
            interpreter.get_tensor(out)
            done += 1
        elapsed = time.perf_counter() - start
        capture.release()
        return elapsed

    return measure


@dataclass
class Interleaved:
    """Per-round rates of several measurements taken in turn (frames per second)."""

    rounds: dict[str, list[float]]

    def fps(self, name: str) -> float:
        """The overall rate: all frames of ``name`` over all its time."""
        rates = self.rounds[name]
        return len(rates) / sum(1.0 / r for r in rates)

    def ratios(self, name: str, reference: str) -> list[float]:
        """``name``'s rate / ``reference``'s rate, round by round."""
        pairs = zip(self.rounds[name], self.rounds[reference], strict=True)
        return [a / b for a, b in pairs]

    def ratio(self, name: str, reference: str) -> float:
        """Median over rounds of ``name``'s rate / ``reference``'s rate in the same round.

        A burst from another tenant that slows one slice moves one round's ratio, not the median.
        """
        return float(np.median(self.ratios(name, reference)))


Step = Callable[[str], None]
"""Told ``what`` was just measured (a progress bar moves one step); see :func:`bench_steps`."""


def no_progress(what: str) -> None:
    """The default :data:`Step`: nobody watches."""


def interleaved(
    measures: dict[str, Callable[[int], float]], frames: int, step: Step = no_progress
) -> Interleaved:
    """Each measurement run in turn in ROUNDS slices of the frames, their rates per round.

    On a shared, noisy machine a slow minute hits every measurement alike instead of one,
    so their ratios hold even when the absolute rates wander.
    """
    per_round = max(1, frames // ROUNDS)
    rounds: dict[str, list[float]] = {name: [] for name in measures}
    for number in range(1, ROUNDS + 1):
        for name, measure in measures.items():
            rounds[name].append(per_round / measure(per_round))
            step(f"round {number}/{ROUNDS}: {name}")
    return Interleaved(rounds)


def bench_steps(measures: int) -> int:
    """How many steps a bench of ``measures`` interleaved measures tells its :data:`Step`:
    each slice of each round, then the two runs after them (paced latency or a second memory
    figure, and the memory of a real run)."""
    return ROUNDS * measures + 2


def verdict(result: dict[str, Any], camera_fps: float) -> str:
    """The bench in plain words: what the pipeline adds to the model per frame, and whether
    this device keeps up with a camera at ``camera_fps`` (a live camera hands over decoded
    frames, so the in-memory rate is what it can hold)."""
    model_ms = 1000.0 / result["bare_fps"]
    added_ms = max(0.0, model_ms * (1.0 / result["ratio"] - 1.0))
    capacity = result["pipeline_fps"]
    threads = result["threads"]
    cost = (
        f"the pipeline adds {added_ms:.2f} ms per frame to the model's {model_ms:.2f} ms: "
        f"{min(result['ratio'], 1.0):.0%} of the model's speed"
    )
    runs = (
        f"this device runs {result['model']} at up to {capacity:.0f} fps with {threads} "
        f"thread{'s' if threads != 1 else ''}"
    )
    if capacity >= camera_fps:
        keeps = f"a {camera_fps:g} fps camera is kept up with"
    else:
        keeps = (
            f"a {camera_fps:g} fps camera is not: about {capacity:.0f} of its {camera_fps:g} "
            "frames a second are inferred, the others skipped (more threads, a lower "
            "camera.fps or a Coral)"
        )
    return f"{cost}; {runs}, so {keeps}"


def service_peak_rss_mb(video: Path, model: str, threads: int, frames: int) -> float:
    """Peak RSS of a real `edge-pose run` process on the video, from its final status file."""
    import json
    import os
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as status_dir:
        subprocess.run(
            [sys.executable, "-m", "edge_pose.cli", "run", "--camera", str(video),
             "--no-realtime", "--loop", "--no-mqtt", "--model", model, "--threads",
             str(threads), "--max-frames", str(frames)],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "RUNTIME_DIRECTORY": status_dir},
        )
        doc = json.loads((Path(status_dir) / "status.json").read_text())
    return float(doc["memory"]["peak_rss_mb"] or 0.0)


def run_bench(
    model: PoseEstimator,
    cfg: Config,
    *,
    model_name: str,
    backend: str,
    runtime: str,
    video: Path,
    frames: int,
    step: Step = no_progress,
) -> BenchResult:
    """All measurements on the same loaded model; pipelines run with the smoothing and
    classification of ``cfg`` and the MQTT sink (on a client that discards), as `edge-pose run`
    would. ``step`` is told each of the :func:`bench_steps` steps as it ends."""

    def make_pipeline() -> Pipeline:
        pipeline = Pipeline(
            model,
            device_id="bench",
            crop=cfg.model.crop,
            min_pose_score=cfg.model.min_pose_score,
            temporal=Temporal.from_config(cfg),
        )
        pipeline.sinks.append(MqttSink(DiscardPublisher(), pipeline.stats))
        return pipeline

    images = decode_frames(video, MEMORY_FRAMES)
    result = BenchResult(model_name, model.threads, backend, runtime, frames)
    memory, file_run = make_pipeline(), make_pipeline()
    # Warm up caches, XNNPACK packing and the CPU clock before anything is timed.
    warmup = max(20, frames // 10)
    run_pipeline(make_pipeline(), MemoryCamera(images, warmup), warmup)

    invoke_ms: list[float] = []
    rates = interleaved(
        {
            "bare": bare_invoke(model, invoke_ms),
            "pipeline": lambda n: run_pipeline(memory, MemoryCamera(images, n), n),
            "file": lambda n: run_pipeline(
                file_run, VideoFileCamera(video, realtime=False, loop=True), n
            ),
            "naive": naive_file_loop(model, video),
        },
        frames,
        step,
    )
    result.bare_fps, result.pipeline_fps = rates.fps("bare"), rates.fps("pipeline")
    result.file_fps, result.naive_file_fps = rates.fps("file"), rates.fps("naive")
    result.ratio = round(rates.ratio("pipeline", "bare"), 3)
    result.file_vs_naive = round(rates.ratio("file", "naive"), 3)
    result.ratio_rounds = [round(r, 3) for r in rates.ratios("pipeline", "bare")]
    result.file_vs_naive_rounds = [round(r, 3) for r in rates.ratios("file", "naive")]
    result.invoke_ms_p50 = float(np.median(invoke_ms))
    paced_frames = min(frames, PACED_FRAMES)
    paced = make_pipeline()
    run_pipeline(paced, MemoryCamera(images, paced_frames, LATENCY_FPS), paced_frames)
    step(f"latency at {LATENCY_FPS:.0f} fps")

    result.stages_ms = memory.stats.stage_means_ms()
    result.stages_ms["decode"] = file_run.stats.stage_means_ms()["decode"]
    result.latency_ms = {
        "p50": round(paced.stats.latency_ms.percentile(50) or 0.0, 3),
        "p99": round(paced.stats.latency_ms.percentile(99) or 0.0, 3),
    }
    # invoke() in the paced run: a CPU that idles between frames wakes up slower.
    result.paced_invoke_ms = {
        "p50": round(paced.stats.invoke_ms.percentile(50) or 0.0, 3),
        "p99": round(paced.stats.invoke_ms.percentile(99) or 0.0, 3),
    }
    result.peak_rss_mb = round(service_peak_rss_mb(video, model_name, model.threads, frames), 1)
    step("memory of a real run")
    for name in ("bare_fps", "pipeline_fps", "file_fps", "naive_file_fps", "invoke_ms_p50"):
        setattr(result, name, round(getattr(result, name), 2))
    return result
