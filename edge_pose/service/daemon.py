"""`edge-pose run`: assemble camera, model, pipeline and MQTT from the config and keep them going.

The order matters for users: the slow and fallible parts (model, camera) are set up first so a
mistake fails fast with its own message, and the broker sees `online` only once frames flow.
SIGINT/SIGTERM stop the loop: STOPPING=1, `offline` published, QoS 1 messages flushed, all
within a few seconds. SIGHUP re-reads the config and loads what it names (model, classifier)
while the running session goes on: any failure up to there is a rejected reload that leaves the
session untouched. Only then does the pipeline restart in-process, keeping the model, the MQTT
connection and the labelling state (reps) when their settings did not change; a new config whose
camera or broker login fails goes back to the running one, with its labelling state.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from edge_pose.camera.base import Camera
from edge_pose.camera.grabber import FrameGrabber
from edge_pose.camera.open import open_camera
from edge_pose.config import Config, file_problems, load_config, read_http_password, read_password
from edge_pose.errors import ConfigError, EdgePoseError
from edge_pose.homeassistant import start_discovery
from edge_pose.inference.backend import Backend, fallback_after_loss, load_estimator
from edge_pose.inference.edgetpu import EdgeTpuLost
from edge_pose.inference.estimator import PoseEstimator, input_dims
from edge_pose.inference.refine import refined
from edge_pose.mqtt import MqttPublisher
from edge_pose.mqtt.remote import RemoteControl
from edge_pose.pipeline import Pipeline
from edge_pose.safety.watch import zones_of
from edge_pose.service.document import StatusDocument
from edge_pose.service.notify import Notifier
from edge_pose.service.status import StatusWriter
from edge_pose.service.status_builder import StatusBuilder
from edge_pose.service.status_dir import writer_status_dir
from edge_pose.service.supervisor import Supervisor
from edge_pose.sinks.mqtt import MqttSink
from edge_pose.sinks.printer import PrintSink
from edge_pose.sinks.snapshot import SnapshotSink
from edge_pose.sinks.video import VideoSink
from edge_pose.track import Temporal

if TYPE_CHECKING:
    from edge_pose.web.hub import WebHub
    from edge_pose.web.server import WebServer

log = logging.getLogger(__name__)

# Told to systemd while the model loads or the camera starts (a Pi Zero is slow at both).
START_EXTENSION_SECONDS = 90
# SIGTERM to exit stays within 3 s: at most this for the camera and this for the broker.
STOP_WAIT_SECONDS = 1.0
# At start, how long the first frame waits for the broker connection (see connect).
CONNECT_GRACE_SECONDS = 2.0


@dataclass
class Parts:
    """What a run is made of; kept across a SIGHUP reload when its settings did not change."""

    cfg: Config
    model: PoseEstimator
    backend: Backend
    model_name: str
    publisher: MqttPublisher | None = None
    # Smoothing and labelling state (reps), carried across sessions while its settings hold.
    temporal: Temporal = field(default_factory=Temporal)
    started: float = field(default_factory=time.time)


def same_people_state(old: Config, new: Config) -> bool:
    """Whether the people followed (their ids, smoothing, labels, reps) carry over from ``old``
    to ``new``: ``[smoothing]``, ``[classifier]`` and the matching of ``[tracking]`` unchanged
    (``refine`` and ``refine_model`` change what looks at people, not who they are; new
    ``[events]`` or ``[[zones]]`` settings watch the same people anew: :meth:`Temporal.rewatch`
    when the session starts)."""

    def state(c: Config) -> tuple[object, ...]:
        matching = c.tracking.model_copy(update={"refine": False, "refine_model": ""})
        return c.smoothing, c.classifier, matching

    return state(old) == state(new)


class Daemon:
    """One `edge-pose run` process."""

    def __init__(
        self,
        cfg: Config,
        config_path: Path | None,
        overrides: dict[str, Any],
        printer: TextIO | None = None,
        annotate: Path | None = None,
    ) -> None:
        self.cfg = cfg
        self.config_path = config_path
        self.overrides = overrides
        self.printer = printer
        self.annotate = annotate
        self.notifier = Notifier()
        self.stop = threading.Event()
        self.reload_requested = False
        self.restart = threading.Event()  # set when a reloaded config takes over
        # The parts of the config that ran before a reload, until the new one has started.
        self._fallback: Parts | None = None
        self._pending: Parts | None = None  # a reloaded config's parts, loaded, not yet running
        self.last_error: str | None = None
        # May refuse (another run writes there): before anything needs undoing.
        self.writer = StatusWriter(writer_status_dir(cfg.status.dir))
        self.status = StatusBuilder()
        self.last_document: StatusDocument | None = None  # the latest running document
        # The web view: its hub outlives sessions (reps, events and followers carry over a
        # reload), its server is replaced when [http] changes.
        self.web: WebServer | None = None
        self.hub: WebHub | None = None

    # -- signals -------------------------------------------------------------------------------

    def install_signal_handlers(self) -> dict[int, Any]:
        def on_stop(signum: int, _frame: object) -> None:
            log.info("%s received, stopping", signal.Signals(signum).name)
            self.stop.set()

        def on_reload(_signum: int, _frame: object) -> None:
            self.reload_requested = True

        handlers: dict[int, Callable[[int, object], None]] = {
            signal.SIGINT: on_stop,
            signal.SIGTERM: on_stop,
            signal.SIGHUP: on_reload,
        }
        previous = {}
        for signum, handler in handlers.items():
            previous[signum] = signal.getsignal(signum)
            signal.signal(signum, handler)
        return previous

    # -- building ------------------------------------------------------------------------------

    def build(self, cfg: Config, old: Parts | None) -> Parts:
        """Load what the config asks for, reusing the model, the MQTT client and the labelling
        state of ``old`` when their settings are unchanged. Touches nothing that runs."""
        self.notifier.extend_timeout(START_EXTENSION_SECONDS)
        def loads(c: Config) -> tuple[object, ...]:  # what the model (and its refiner) depend on
            return c.model, c.tracking.refine, c.tracking.refine_model

        if old is not None and loads(old.cfg) == loads(cfg):
            model, backend, name = old.model, old.backend, old.model_name
        else:
            model, backend, name = load_estimator(cfg.model)
            model = refined(model, cfg)
            log.info(
                "model %s (%dx%d) on %s: %s, %s (%s)",
                name,
                *input_dims(model),
                backend.kind,
                backend.delegate,
                backend.runtime,
                backend.reason,
            )
        publisher = None
        if old is not None and (old.cfg.mqtt, old.cfg.device) == (cfg.mqtt, cfg.device):
            publisher = old.publisher
        if old is not None and same_people_state(old.cfg, cfg):
            temporal = old.temporal
        else:  # new settings: a new state, which hands on the id count and the leaves
            temporal = Temporal.from_config(cfg, None if old is None else old.temporal)
        return Parts(cfg, model, backend, name, publisher, temporal)

    def connect(self, parts: Parts) -> None:
        if parts.publisher is None and parts.cfg.mqtt.enabled:
            parts.publisher = MqttPublisher(
                parts.cfg.mqtt, parts.cfg.device.id, read_password(parts.cfg.mqtt)
            )
            parts.publisher.start()
            # A moment for the broker before the first frame, so a file's first frames are not
            # counted as dropped while the connection is still being made. A broker that is down
            # costs this once (a stop request ends it); frames flow anyway and the client keeps
            # retrying.
            deadline = time.monotonic() + CONNECT_GRACE_SECONDS
            while not (
                parts.publisher.wait_connected(0.05)
                or self.stop.is_set()
                or time.monotonic() > deadline
            ):
                pass

    # -- running -------------------------------------------------------------------------------

    def run(self, max_frames: int | None = None) -> None:
        previous = self.install_signal_handlers()
        self.write_status(self.status.document("starting", self.cfg, self.last_error))
        parts: Parts | None = None
        try:
            self.serve_web(self.cfg)  # a port that is taken fails here, before the model loads
            parts = self.build(self.cfg, None)
            while True:
                self.restart.clear()
                try:
                    self.run_session(parts, max_frames)
                except EdgeTpuLost as lost:
                    # The Coral went away mid-run: continue on the CPU (or re-raise for "exit").
                    self.last_error = str(lost)
                    model, backend, name = fallback_after_loss(parts.cfg.model, lost)
                    parts = dataclasses.replace(
                        parts, model=model, backend=backend, model_name=name
                    )
                    continue
                except SessionNotStarted as failed:
                    parts = self.reject_reload(failed.error, failed.running, failed.parts)
                    if self.stop.is_set():  # no need to start the old config only to stop it
                        break
                    continue
                if not self.restart.is_set() or self.stop.is_set() or self._pending is None:
                    break
                new_parts, self._pending = self._pending, None
                if parts.publisher is not None and new_parts.publisher is not parts.publisher:
                    parts.publisher.stop(STOP_WAIT_SECONDS)  # other broker settings
                    parts = dataclasses.replace(parts, publisher=None)
                self._fallback, parts = parts, new_parts
        except Exception as exc:
            self.last_error = str(exc).splitlines()[0]
            raise
        finally:
            self.notifier.stopping()
            if parts is not None and parts.publisher is not None:
                parts.publisher.stop(STOP_WAIT_SECONDS)
                self.status.mqtt_stopped(parts.cfg.mqtt, parts.publisher)
            self.write_status(self.status.document("stopped", self.cfg, self.last_error))
            self.close_web()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            self.notifier.close()

    def run_session(self, parts: Parts, max_frames: int | None) -> None:
        """Run until the source ends, a stop, or a reload that takes effect.

        After a reload, a config that cannot start (camera, broker login, classifier) raises
        SessionNotStarted, so ``run`` goes back to the config that was running.
        """
        try:
            camera, pipeline = self.start_session(parts)
        except Exception as exc:
            running, self._fallback = self._fallback, None
            if running is None:
                raise
            raise SessionNotStarted(exc, running, parts) from exc
        if self._fallback is not None:  # a reloaded config runs: nothing to go back to
            self._fallback = None
            self.last_error = None
        cfg = parts.cfg
        grabber = FrameGrabber(camera)
        supervisor = Supervisor(
            self.notifier, lambda: self.snapshot(parts, pipeline, grabber), self.write_status
        )
        halt = _AnyEvent(self.stop, self.restart)
        remote = None
        if parts.publisher is not None:
            remote = RemoteControl(
                parts.publisher, pipeline, cfg.device.id, cfg.mqtt.stats_interval
            )
        discovery = start_discovery(
            parts.publisher,
            cfg,
            pipeline.temporal.classifier,
            web_port=None if self.web is None else self.web.port,
        )

        def tick() -> None:
            if self.reload_requested:
                self.reload_requested = False
                self.reload(parts)
            supervisor.tick(pipeline.handled)
            if remote is not None:
                remote.tick(lambda: self.last_document)
                remote.publisher.check_link()

        grabber.start()
        started = time.monotonic()
        try:
            pipeline.run(grabber, halt, max_frames, on_tick=tick)
        finally:
            if discovery is not None:
                discovery.close()
            grabber.stop(STOP_WAIT_SECONDS)
            pipeline.close()
            self.snapshot(parts, pipeline, grabber)  # final numbers for the "stopped" document
            elapsed = time.monotonic() - started
            stats = pipeline.stats
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

    def start_session(self, parts: Parts) -> tuple[Camera, Pipeline]:
        """Open the camera, connect to the broker and set up the pipeline (closing the camera
        again when a later step fails, so the session after it can open it)."""
        cfg = parts.cfg
        temporal, zones = parts.temporal, zones_of(cfg.zones)
        if (temporal.events, temporal.zones) != (cfg.events, zones):  # a reload changed them
            temporal.rewatch(cfg.events, zones)
        camera = open_camera(
            cfg.camera.source,
            width=cfg.camera.width,
            height=cfg.camera.height,
            fps=cfg.camera.fps,
            realtime=cfg.camera.realtime,
            loop=cfg.camera.loop,
        )
        log.info("camera %s", camera.description)
        try:
            self.serve_web(cfg)
            self.connect(parts)
            pipeline = Pipeline(
                parts.model,
                device_id=cfg.device.id,
                min_pose_score=cfg.model.min_pose_score,
                crop=cfg.model.crop,
                temporal=parts.temporal,
                compact_keypoints=cfg.mqtt.compact_keypoints,
            )
            if parts.publisher is not None:
                pipeline.sinks.append(MqttSink(parts.publisher, pipeline.stats))
                if cfg.events.fall.enabled and cfg.events.fall.snapshot:  # a JPEG per fall
                    pipeline.sinks.append(SnapshotSink(parts.publisher, zoned=pipeline.temporal))
            if self.web is not None and self.hub is not None:
                from edge_pose.web.hub import WebSink

                pipeline.sinks.append(WebSink(self.hub))
            if self.printer is not None:
                pipeline.sinks.append(PrintSink(self.printer))
            if self.annotate is not None:
                fps = camera.fps or cfg.camera.fps
                pipeline.sinks.append(VideoSink(self.annotate, fps, pipeline.temporal))
        except BaseException:
            camera.close()
            raise
        return camera, pipeline

    def reject_reload(self, error: Exception, running: Parts, failed: Parts | None) -> Parts:
        """A reloaded config that cannot start: say why and go back to ``running``, the one
        that ran, with its labelling state.

        ``failed`` are the new config's parts when they were built. Their MQTT client is stopped
        unless it is the running one, reused; when the switch stopped the running one (other
        broker settings), ``connect`` makes it again.
        """
        line = _first_line(error)
        log.error("reload rejected, back to the running config: %s", line)
        self.last_error = f"reload rejected: {line}"
        self.cfg = running.cfg
        publisher = running.publisher
        if failed is not None and failed.publisher is not publisher:
            if failed.publisher is not None:
                failed.publisher.stop(STOP_WAIT_SECONDS)
            publisher = None
        return dataclasses.replace(running, publisher=publisher)

    def reload(self, running: Parts) -> None:
        """SIGHUP: read the config file again and load what it names while ``running`` goes on;
        switch to it only when all of that worked. Any failure is a rejected reload."""
        self.notifier.reloading()
        try:
            cfg = load_config(self.config_path, self.overrides)
            # Files it names that are not there: rejected before the running session stops.
            if problems := file_problems(cfg) + self._web_port_problems(cfg):
                raise ConfigError(problems)
        except ConfigError as exc:
            for line in exc.problems:
                log.error("reload rejected, keeping the running config: %s", line)
            self._rejected(exc.problems[0], "invalid config (see the journal)")
            return
        if cfg == self.cfg:
            log.info("reload: config unchanged")
            if (self.last_error or "").startswith("reload rejected"):
                self.last_error = None  # the file says what runs again
            self.notifier.ready("config unchanged")
            return
        try:
            pending = self.build(cfg, running)
        except Exception as exc:  # a model or classifier that does not load, of any kind
            line = _first_line(exc)
            log.error("reload rejected, keeping the running config: %s", line)
            self._rejected(line, line)
            return
        log.info("reload: applying the new config")
        self.cfg, self._pending = cfg, pending
        self.restart.set()

    def _rejected(self, line: str, status: str) -> None:
        self.last_error = f"reload rejected: {line}"
        self.notifier.ready(f"reload rejected: {status}")

    # -- web view ------------------------------------------------------------------------------

    def serve_web(self, cfg: Config) -> None:
        """Serve the web view as ``cfg.http`` says: keep the running server when its settings
        are unchanged, else close it and bind anew (a port that is taken raises, one line)."""
        if self.web is not None and self.web.cfg == cfg.http:
            return
        self.close_web()
        if not cfg.http.enabled:
            return
        from edge_pose.web.hub import WebHub
        from edge_pose.web.server import WebServer

        if self.hub is None:
            self.hub = WebHub()
        web = WebServer(cfg.http, self.hub, read_http_password(cfg.http))
        web.start()
        self.web = self.status.web = web
        self.hub.publish_document(
            self.last_document or self.status.document("starting", cfg, self.last_error)
        )

    def _web_port_problems(self, cfg: Config) -> list[str]:
        """A new web view port that is taken, found before the running session stops. (Our own
        server's port is not probed: it is ours, and is given up and bound anew on the switch.)"""
        new = cfg.http
        if not new.enabled or new.port in (0, self.web.port if self.web is not None else None):
            return []
        from edge_pose.web.server import bind_problem

        problem = bind_problem(new)
        return [] if problem is None else [problem]

    def close_web(self) -> None:
        if self.web is not None:
            self.web.close()
            self.web = self.status.web = None

    def write_status(self, document: StatusDocument) -> None:
        """A status document for status.json and the web view."""
        self.writer.write(document)
        if self.hub is not None:
            self.hub.publish_document(document)

    # -- status --------------------------------------------------------------------------------

    def snapshot(self, parts: Parts, pipeline: Pipeline, grabber: FrameGrabber) -> StatusDocument:
        """The running status document, built once a second."""
        self.last_document = self.status.running(
            parts.cfg,
            model_name=parts.model_name,
            input_size=parts.model.input_size,
            backend=parts.backend,
            capture=grabber,
            stats=pipeline.stats,
            labels=pipeline.temporal.spoken_of(),
            people=pipeline.temporal.present_people(),
            mqtt=parts.publisher,
            paused=pipeline.paused,
            events=pipeline.events,
            last_error=self.last_error,
            safety=pipeline.temporal,
        )
        return self.last_document


def _first_line(error: BaseException) -> str:
    """An error's first line, with its type when it has no message of its own."""
    lines = str(error).splitlines()
    if isinstance(error, EdgePoseError) and lines:
        return lines[0]
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


class SessionNotStarted(Exception):
    """A session of a reloaded config (``parts``) failed to start with ``error``; ``running``
    are the parts of the config that ran before the reload."""

    def __init__(self, error: Exception, running: Parts, parts: Parts) -> None:
        super().__init__(str(error))
        self.error = error
        self.running = running
        self.parts = parts


class _AnyEvent:
    """Looks set when any of its events is (what Pipeline.run checks to stop)."""

    def __init__(self, *events: threading.Event) -> None:
        self.events = events

    def is_set(self) -> bool:
        return any(e.is_set() for e in self.events)


def run(
    cfg: Config,
    config_path: Path | None = None,
    overrides: dict[str, Any] | None = None,
    *,
    printer: TextIO | None = None,
    max_frames: int | None = None,
    annotate: Path | None = None,
) -> None:
    """`edge-pose run` in the foreground."""
    Daemon(cfg, config_path, overrides or {}, printer, annotate).run(max_frames)
