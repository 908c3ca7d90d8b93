"""The status document: its types, its JSON Schema, its parsing, its builder and its folders.

The schema is checked against the documents a real `edge-pose run` writes on a real video
(starting, running, stopped) and against what the builder makes from real parts; the types and
the schema must name the same fields, so neither can drift from the other.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, get_args, get_type_hints, is_typeddict

import pytest
from test_status import make_doc, run_status

from edge_pose.camera.file import VideoFileCamera
from edge_pose.camera.grabber import FrameGrabber
from edge_pose.classify.events import PoseState
from edge_pose.config import load_config
from edge_pose.inference.backend import Backend
from edge_pose.mqtt import MqttPublisher
from edge_pose.schemas import FILE_SCHEMAS, load_schema
from edge_pose.service import status_dir
from edge_pose.service.document import STATES, StatusDocument, parse_document
from edge_pose.service.health import evaluate
from edge_pose.service.notify import Notifier
from edge_pose.service.status import STATUS_FILE, load_status_file
from edge_pose.service.status_builder import StatusBuilder
from edge_pose.service.status_dir import status_dirs, writer_status_dir
from edge_pose.service.status_text import format_status
from edge_pose.service.supervisor import Supervisor, status_line
from edge_pose.stats import PipelineStats
from edge_pose.wire import stats_payload

jsonschema = pytest.importorskip("jsonschema", reason="pip install -e '.[test]'")


def errors(instance: Any, name: str = "status") -> list[str]:
    validator = jsonschema.Draft202012Validator(load_schema(name))
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(instance)]  # fmt: skip


# --------------------------------------------------------------------------- types and schema


def test_the_schema_is_valid_and_names_the_fields_of_the_types() -> None:
    assert FILE_SCHEMAS == ("status",)
    schema = load_schema("status")
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$id"] == "urn:edge-pose:status:v1"
    assert schema["properties"]["state"]["enum"] == list(STATES)

    def compare(section: type, properties: dict[str, Any], where: str) -> None:
        hints = get_type_hints(section)
        assert sorted(hints) == sorted(properties), where
        for key, kind in hints.items():
            nested = [k for k in (kind, *get_args(kind)) if is_typeddict(k)]
            if nested:
                compare(nested[0], properties[key]["properties"], f"{where}.{key}")

    compare(StatusDocument, schema["properties"], "document")


def test_the_example_in_the_docs_follows_the_schema() -> None:
    text = (Path(__file__).resolve().parents[1] / "docs" / "status.md").read_text()
    example = text.split("## The file", 1)[1].split("```json\n", 1)[1].split("```", 1)[0]
    doc = json.loads(example)
    assert errors(doc) == [] and parse_document(doc) == doc


# --------------------------------------------------------------------------- parsing


def test_a_valid_document_parses_to_itself() -> None:
    doc = {**make_doc(paused=False, events=3, last_frame=time.time(), stall_s=10.0), "new": [1]}
    parsed = parse_document(doc)
    assert parsed == doc and list(parsed) == list(doc)  # same keys, same order, unknown kept
    assert parse_document(parsed) == parsed


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("pid", "812"), ("pid", True), ("pid", 1.5), ("updated", math.nan),
        ("updated", 10**400), ("uptime_s", "1"), ("state", 3), ("paused", "yes"),
        ("fps", "fast"), ("fps.processed", True), ("fps.capture", math.inf),
        ("mqtt.connected", 1), ("mqtt.sent", 2.0), ("pose.label", None),
        ("system.throttled_flags", ["under-voltage", 1]), ("system.throttled", 0x5),
        ("camera.source", ["picamera2"]), ("backend", "edgetpu"), ("stall_s", None),
    ],
)  # fmt: skip
def test_a_field_of_another_type_counts_as_missing(path: str, value: object) -> None:
    doc = make_doc(stall_s=10.0)
    *sections, key = path.split(".")
    target: dict[str, Any] = doc
    for section in sections:
        target = target[section]
    target[key] = value
    parsed: dict[str, Any] = dict(parse_document(doc))
    for section in sections:
        parsed = parsed[section]
    assert key not in parsed
    assert sorted(parsed) == sorted(k for k in target if k != key)  # the rest is kept


def test_values_of_the_declared_types_are_kept() -> None:
    doc = make_doc(backend=None, frames=None, stall_s=10)  # an int is a number
    doc["model"]["input_size"] = None
    doc["fps"] = {"capture": 0, "processed": 2**70}
    assert parse_document(doc) == doc


# --------------------------------------------------------------------------- the builder


@pytest.fixture
def grabber(data_dir: Path) -> FrameGrabber:
    camera = VideoFileCamera(data_dir / "tfjs" / "pose_squats.mp4", realtime=False, loop=False)
    grabber = FrameGrabber(camera)
    grabber.captured, grabber.skipped = 20, 2  # as if it had run: it is never started here
    return grabber


def test_the_builder_documents_follow_the_schema_in_every_state(grabber: FrameGrabber) -> None:
    cfg = load_config(None, {"device.id": "unit"})  # rules, counting squats
    builder = StatusBuilder()
    starting = builder.document("starting", cfg, None)
    assert errors(starting) == [] and starting["backend"] is None

    stats = PipelineStats()
    for n in range(18):
        stats.record((1_000_000, 1_000_000, 5_000_000 + n, 1_000_000, 1_000_000), 20.0, n > 3)
    publisher = MqttPublisher(cfg.mqtt, cfg.device.id)  # never started: all counters zero

    def running() -> StatusDocument:
        return builder.running(
            cfg, model_name="movenet_lightning_int8", input_size=192,
            backend=Backend("cpu", "XNNPACK, 2 threads", "ai-edge-litert 1.2.0", "auto"),
            capture=grabber, stats=stats,
            labels=PoseState(label="standing", confidence=0.91234, person=True, since=5.0,
                             reps=2),
            mqtt=publisher, paused=False, events=4, last_error=None,
        )  # fmt: skip

    written: list[StatusDocument] = []
    Supervisor(Notifier(), running, written.append).tick(18)  # as the file gets it
    [doc] = written
    assert errors(doc) == []
    assert doc["state"] == "running" and doc["frames"] == {
        "captured": 20, "processed": 18, "skipped": 2, "with_person": 14}  # fmt: skip
    assert doc["pose"] == {"label": "standing", "confidence": 0.912, "person": True, "since": 5.0}
    assert doc["reps"] == {"exercise": "squat", "count": 2}
    assert doc["inference_ms"] == {"p50": 5.0, "p95": 5.0}

    # every view reads the same document
    assert errors(stats_payload(doc), "stats") == []
    assert status_line(doc).endswith(", cpu, MQTT disconnected, standing")
    verdict = evaluate(doc, doc["updated"])
    assert verdict.reasons and verdict.reasons[0].startswith("MQTT disconnected from localhost")
    assert "pose: standing (0.91)" in format_status(doc, verdict, None, now=doc["updated"])

    builder.mqtt_stopped(cfg.mqtt, publisher)
    stopped = builder.document("stopped", cfg, "camera gone")
    assert errors(stopped) == []
    assert stopped["frames"] == doc["frames"] and stopped["last_error"] == "camera gone"


def test_without_mqtt_or_classifier(grabber: FrameGrabber) -> None:
    cfg = load_config(None, {"mqtt.enabled": False})
    doc = StatusBuilder().running(
        cfg, model_name="m.tflite", input_size=256, backend=Backend("edgetpu", "", "", ""),
        capture=grabber, stats=PipelineStats(), labels=None, mqtt=None, paused=True, events=0,
        last_error="reload rejected: bad",
    )  # fmt: skip
    assert doc["pose"] is None and doc["reps"] is None
    assert doc["inference_ms"] == {"p50": None, "p95": None}
    assert doc["mqtt"] is not None and not doc["mqtt"]["enabled"] and doc["mqtt"]["sent"] == 0
    assert errors({**doc, "last_frame": None, "stall_s": 10.0}) == []
    assert status_line(doc) == "0.0 fps, inference - ms, edgetpu, MQTT off, paused"


# --------------------------------------------------------------------------- a real run


def closed_port() -> tuple[socket.socket, int]:
    """A bound, not listening TCP port: connecting is refused at once."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock, sock.getsockname()[1]


@pytest.fixture(scope="module")
def real_documents(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The first document of each state a real `edge-pose run` writes, and its config.

    The broker's port refuses connections, so the run waits its grace time for it with the
    model loaded and the camera open: a "starting" document stays long enough to be read."""
    work = tmp_path_factory.mktemp("status-run")
    sock, port = closed_port()
    config = work / "config.toml"
    config.write_text(f'[device]\nid = "doc"\n[mqtt]\nhost = "127.0.0.1"\nport = {port}\n'
                      f'[status]\ndir = "{work / "run"}"\n')  # fmt: skip
    path = work / "run" / STATUS_FILE
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge_pose.cli", "run", "--config", str(config), "--camera",
         str(data_dir / "tfjs" / "pose_squats.mp4"), "--loop", "--threads", "1"],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    seen: dict[str, dict] = {}
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                doc = json.loads(path.read_bytes())
            except (FileNotFoundError, ValueError):
                doc = None
            if doc is not None:
                seen.setdefault(doc["state"], doc)
                if doc["state"] == "running" and doc["frames"]["processed"] >= 10:
                    seen["running"] = doc
                    break
            time.sleep(0.005)
    finally:
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
        sock.close()
    assert proc.returncode == 0, stderr
    seen["stopped"] = json.loads(path.read_bytes())
    return {"docs": seen, "config": config, "file": path}


def test_a_real_run_writes_documents_that_follow_the_schema(real_documents: dict) -> None:
    docs = real_documents["docs"]
    assert list(docs) == ["starting", "running", "stopped"]
    for state, doc in docs.items():
        assert errors(doc) == [], state
        assert doc["state"] == state
        parsed = parse_document(doc)
        assert parsed == doc and list(parsed) == list(doc), state  # nothing lost on reading
    starting, running, stopped = docs.values()
    assert starting["frames"] is None and starting["model"]["input_size"] is None
    assert running["frames"]["processed"] >= 10 and running["model"]["input_size"] == 192
    assert running["mqtt"]["enabled"] and not running["mqtt"]["connected"]
    assert stopped["frames"]["processed"] >= running["frames"]["processed"]
    assert stopped["pid"] == running["pid"] == starting["pid"]


def test_status_shows_the_document_as_written(real_documents: dict) -> None:
    result = run_status("--config", str(real_documents["config"]), "--json")
    assert result.returncode == 3, result.stderr  # stopped
    out = json.loads(result.stdout)
    written = json.loads(real_documents["file"].read_bytes())
    assert out["status"] == written == load_status_file(real_documents["file"])
    assert out["verdict"]["state"] == "stopped"


# --------------------------------------------------------------------------- folders


def test_the_folders_of_the_writer_and_the_readers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    temp = Path(tempfile.gettempdir()) / f"edge-pose-{os.getuid()}"
    assert status_dirs(str(tmp_path / "st")) == [tmp_path / "st"]
    assert writer_status_dir("~/st") == Path.home() / "st"
    monkeypatch.setenv("RUNTIME_DIRECTORY", f"{tmp_path}/rt:{tmp_path}/other")
    assert writer_status_dir() == tmp_path / "rt"
    monkeypatch.delenv("RUNTIME_DIRECTORY")
    monkeypatch.setattr(status_dir, "SYSTEM_STATUS_DIR", tmp_path / "run" / "edge-pose")
    (tmp_path / "run").mkdir()
    assert writer_status_dir() == tmp_path / "run" / "edge-pose"  # creatable
    assert not (tmp_path / "run" / "edge-pose").exists()  # ... but not created
    monkeypatch.setattr(status_dir, "SYSTEM_STATUS_DIR", tmp_path / "no" / "such" / "edge-pose")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "xdg"))
    assert writer_status_dir() == tmp_path / "xdg" / "edge-pose"
    # readers (edge-pose status) look everywhere the daemon may have written, in the same order
    assert status_dirs() == [tmp_path / "no" / "such" / "edge-pose", tmp_path / "xdg" / "edge-pose",
                             temp]  # fmt: skip
    monkeypatch.setenv("XDG_RUNTIME_DIR", "relative/xdg")  # not a runtime directory
    assert writer_status_dir() == temp
    unusable = str(tmp_path / "no" / "such" / "edge-pose")
    assert writer_status_dir(unusable) == Path(unusable)  # configured: used as it is
