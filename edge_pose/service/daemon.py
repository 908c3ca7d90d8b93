"""`edge-pose run`: assemble camera, model, pipeline and MQTT from the config and run them.

The order matters for users: the slow and fallible parts (model, camera) are set up first so a
mistake fails fast with its own message, and the broker sees `online` only once frames flow.
SIGINT and SIGTERM stop the loop; on the way out `offline` is published and queued QoS 1 messages
are flushed.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from typing import TextIO

from edge_pose.camera.base import open_camera
from edge_pose.camera.grabber import FrameGrabber
from edge_pose.config import Config, read_password
from edge_pose.inference.backend import load_estimator
from edge_pose.pipeline import Pipeline

log = logging.getLogger(__name__)


def run(cfg: Config, *, printer: TextIO | None = None, max_frames: int | None = None) -> None:
    """Run the pipeline until the source ends, a signal arrives or ``max_frames`` were done."""
    model, backend, model_name = load_estimator(cfg.model)
    log.info(
        "model %s (%dx%d input) on %s, %s, %s",
        model_name,
        model.input_size,
        model.input_size,
        backend.kind,
        backend.delegate,
        backend.runtime,
    )
    camera = open_camera(
        cfg.camera.source,
        width=cfg.camera.width,
        height=cfg.camera.height,
        fps=cfg.camera.fps,
        realtime=cfg.camera.realtime,
        loop=cfg.camera.loop,
    )
    log.info("camera %s", camera.description)
    publisher = None
    if cfg.mqtt.enabled:
        from edge_pose.mqtt import MqttPublisher

        publisher = MqttPublisher(cfg.mqtt, cfg.device.id, read_password(cfg.mqtt))
        publisher.start()
    pipeline = Pipeline(
        model,
        device_id=cfg.device.id,
        min_pose_score=cfg.model.min_pose_score,
        crop=cfg.model.crop,
        sink=publisher,
        printer=printer,
    )
    stop = threading.Event()
    previous = _handle_stop_signals(stop)
    grabber = FrameGrabber(camera).start()
    started = time.monotonic()
    try:
        pipeline.run(grabber, stop, max_frames)
    finally:
        grabber.stop()
        if publisher is not None:
            publisher.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        stats = pipeline.stats
        elapsed = time.monotonic() - started
        log.info(
            "stopped after %d frames in %.1f s (%.1f fps, %d skipped, %d with a person, "
            "%d published)",
            stats.processed,
            elapsed,
            stats.processed / max(elapsed, 1e-9),
            grabber.skipped,
            stats.with_person,
            stats.published,
        )


def _handle_stop_signals(stop: threading.Event) -> dict[int, object]:
    """SIGINT and SIGTERM set ``stop``; returns the handlers they replaced."""

    def handler(signum: int, _frame: object) -> None:
        log.info("%s received, stopping", signal.Signals(signum).name)
        stop.set()

    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.getsignal(signum)
        signal.signal(signum, handler)
    return previous
