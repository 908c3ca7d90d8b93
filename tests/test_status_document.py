"""The status document: its types, its JSON Schema, its parsing, its builder and its folders.

The schema is checked against the documents a real `edge-pose run` writes on a real video
(starting, running, stopped) and against what the builder makes from real parts; the types and
the schema must name the same fields, so neither can drift from the other.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints, is_typeddict

import pytest
from test_status import make_doc, run_status

from edge_pose import __version__
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
from edge_pose.service.status_report import report_status
from edge_pose.service.status_text import format_status
from edge_pose.service.supervisor import Supervisor, status_line
from edge_pose.stats import PipelineStats
from edge_pose.track import Temporal
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
            union = get_origin(kind) in (Union, types.UnionType)
            for member in get_args(kind) if union else (kind,):
                if is_typeddict(member):
                    compare(member, properties[key]["properties"], f"{where}.{key}")
                elif get_origin(member) is list and is_typeddict(item := get_args(member)[0]):
                    compare(item, properties[key]["items"]["properties"], f"{where}.{key}[]")

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


# --------------------------------------------------------------------------- as written


def hand_edited(path: str, value: object) -> dict[str, Any]:
    """A healthy document of this process with one field (``section.key`` for a nested one)
    replaced, as a person editing the file, or a disk error, would leave it."""
    doc = make_doc()
    *sections, key = path.split(".")
    target: dict[str, Any] = doc
    for name in sections:
        target = target[name]
    target[key] = value
    return doc


THROTTLED_TEXT = (
    "61.3 °C, THROTTLED NOW: under-voltage, throttled, since boot: under-voltage, throttled "
    "(0x50005)"
)
# (field, value as written, the line `edge-pose status` shows, exit code, a reason it starts with)
AS_WRITTEN: list[tuple[str, object, str, int, str | None]] = [
    ("pid", "812", "state: running, pid 812, up 1 s", 3,
     "stale status file: process 812 is gone (killed or crashed; last update 0.0 s ago)"),
    ("pid", None, "state: running, pid None, up 1 s", 3, "stale status file: process None"),
    ("pid", 1.5, "state: running, pid 1.5, up 1 s", 3, "stale status file: process 1.5 is"),
    ("state", 5, "state: 5, pid {pid}, up 1 s", 1, "unknown state 5 in the status file"),
    ("state", None, "state: None, pid {pid}, up 1 s", 1, "unknown state None in the status"),
    ("version", 7, "version: 7 (this command is {version}: restart the service)", 0, None),
    ("camera.source", ["picamera2"], "camera: ['picamera2'] (imx708_wide 640x480 @ 30 fps)", 0,
     None),
    ("model.input_size", "192", "model: movenet_lightning_int8, 192x192 input", 0, None),
    ("backend.runtime", 2, "backend: edgetpu (libedgetpu.so.1 usb, 2)", 0, None),
    ("fps", "fast", "fps: - capture / - processed / 10 skipped total (minimum 10)", 0, None),
    ("frames.processed", 3.9, "frames: 3 processed, 4000 with a person", 0, None),
    ("frames.with_person", "many", "frames: 4990 processed, - with a person", 0, None),
    ("mqtt.enabled", 1, "mqtt: connected to 127.0.0.1:1883, last publish 0.2 s ago, 4990 sent / "
     "0 dropped, 1 reconnect", 0, None),
    ("mqtt.connected", 0, "mqtt: DISCONNECTED from 127.0.0.1:1883, last publish 0.2 s ago, 4990 "
     "sent / 0 dropped, 1 reconnect", 1, "MQTT disconnected from 127.0.0.1:1883 — check"),
    ("mqtt.sent", 12.0, "mqtt: connected to 127.0.0.1:1883, last publish 0.2 s ago, 12 sent / 0 "
     "dropped, 1 reconnect", 0, None),
    ("pose.person", 0, "pose: no person for 2m 10s", 0, None),
    ("pose.person", 1, "pose: standing (0.94) for 2m 10s", 0, None),
    ("pose.label", 5, "pose: 5 (0.94) for 2m 10s", 0, None),
    ("pose.label", None, "pose: person (no pose label) for 2m 10s", 0, None),
    ("pose", [], "pose: -", 0, None),
    ("reps.count", 2.7, "reps: squat: 2", 0, None),
    ("last_error", 42, "last error: 42", 0, None),
    ("paused", 1, "state: running, pid {pid}, up 1 s, PAUSED (send {{\"command\": \"resume\"}} "
     "to <base>/set)", 0, None),  # shown as written; only a real true is a paused verdict
    ("system.throttled", 0x50005, f"cpu: {THROTTLED_TEXT}", 1,
     "CPU throttled now (under-voltage, throttled, 0x50005) — under-voltage: use"),
    ("system.throttled", "50005", f"cpu: {THROTTLED_TEXT}", 1, "CPU throttled now"),
    ("system.throttled", 0, "cpu: 61.3 °C, not throttled (0x0)", 0, None),
    ("system.throttled", "throttled=0x5", "cpu: 61.3 °C, throttling unknown", 0, None),
    ("system.throttled", True, "cpu: 61.3 °C, throttling unknown", 0, None),
    ("system.cpu_temp_c", "hot", "cpu: temperature unknown, not throttled (0x0)", 0, None),
    ("memory", {"rss_mb": "x"}, "memory: - MB resident, - MB peak", 0, None),
]  # fmt: skip


@pytest.mark.parametrize(("path", "value", "line", "code", "reason"), AS_WRITTEN)
def test_status_shows_a_field_of_another_type_as_the_file_has_it(
    path: str, value: object, line: str, code: int, reason: str | None
) -> None:
    """A hand-edited or corrupt file: `edge-pose status` names what the file says (the typed
    view would drop the field) and judges it as it always has."""
    doc = hand_edited(path, value)
    now = doc["updated"]
    verdict = evaluate(doc, now)
    lines = [row.strip() for row in format_status(doc, verdict, None, now=now).splitlines()]
    assert line.format(pid=os.getpid(), version=__version__) in lines
    assert verdict.code == code, verdict.reasons
    if reason is not None:
        assert any(r.startswith(reason) for r in verdict.reasons), verdict.reasons
    elif code == 0:
        assert verdict.reasons == []


JUNK: list[object] = [
    None, True, False, 0, 7, -3, 3.9, 2**70, 10**400, "", "x", "0x50005", [], [1, "a"], {},
    {"a": {"b": None}},
]  # fmt: skip


@pytest.mark.parametrize("seed", range(4))
def test_status_json_prints_the_document_as_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], seed: int
) -> None:
    """Seeded hand-edits of any field, nested or not: ``--json`` prints the file as read, the
    text names the state and pid as written, and the exit code is the verdict's."""
    rng = random.Random(seed)
    config = tmp_path / "config.toml"
    config.write_text(f'[status]\ndir = "{tmp_path}"\n')
    for _ in range(10):
        doc = make_doc(paused=False, last_frame=time.time(), stall_s=15.0)
        for key in rng.sample(sorted(k for k in doc if k != "v"), rng.randint(1, 6)):
            if isinstance(doc[key], dict) and doc[key] and rng.random() < 0.6:
                doc[key][rng.choice(sorted(doc[key]))] = rng.choice(JUNK)
            else:
                doc[key] = rng.choice(JUNK)
        (tmp_path / STATUS_FILE).write_text(json.dumps(doc))
        written = json.loads((tmp_path / STATUS_FILE).read_text())
        code = report_status(config, as_json=True, interval=None)
        out = json.loads(capsys.readouterr().out)
        assert out["status"] == written  # every field, of whatever type, as read
        assert code == out["verdict"]["code"] in (0, 1, 3)
        assert report_status(config, as_json=False, interval=None) == code
        state = next(row for row in capsys.readouterr().out.splitlines() if "state:" in row)
        assert state.strip().startswith(
            f"state: {written.get('state', '?')}, pid {written.get('pid', '?')}"
        )


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
            people=[(3, PoseState("standing", 0.91234, True, 5.0, 2)),
                    (7, PoseState("squat_down", 0.8, True, 6.0, 0))],
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
    nothing = {"zones": [], "fallen": False, "inactive": False}  # no safety state given
    assert doc["people"] == [
        {"id": 3, "label": "standing", "confidence": 0.912, "since": 5.0, "reps": 2, **nothing},
        {"id": 7, "label": "squat_down", "confidence": 0.8, "since": 6.0, "reps": 0, **nothing},
    ]
    assert (doc["fall"], doc["falls"], doc["inactive"], doc["zones"]) == (False, [], False, [])
    assert doc["inference_ms"] == {"p50": 5.0, "p95": 5.0}

    # every view reads the same document
    assert errors(stats_payload(doc), "stats") == []
    assert status_line(doc).endswith(", cpu, MQTT disconnected, standing")
    assert status_line({**doc, "fall": True}).endswith(", standing, FALL")  # type: ignore[typeddict-item]
    verdict = evaluate(doc, doc["updated"])
    assert verdict.reasons and verdict.reasons[0].startswith("MQTT disconnected from localhost")
    text = format_status(doc, verdict, None, now=doc["updated"])
    assert "pose: standing (0.91)" in text
    assert "people: 2: #3 standing (0.91) 2 reps, #7 squat_down (0.80)" in text
    hostile = {**doc, "people": [{"id": 10**400, "label": "\x1b[2J" + "x" * 500}, "junk", {}]}
    line = next(x for x in format_status(hostile, verdict, None, now=1.0).splitlines()
                if "people" in x)  # fmt: skip
    assert "\x1b" not in line and len(line) < 200, line
    parsed = parse_document({**doc, "people": [{"id": "x", "label": 3, "reps": True}]})
    assert parsed["people"] == [{}]  # every field of the wrong type left out

    builder.mqtt_stopped(cfg.mqtt, publisher)
    stopped = builder.document("stopped", cfg, "camera gone")
    assert errors(stopped) == []
    assert stopped["frames"] == doc["frames"] and stopped["last_error"] == "camera gone"


def test_without_mqtt_or_classifier(grabber: FrameGrabber) -> None:
    cfg = load_config(None, {"mqtt.enabled": False})
    doc = StatusBuilder().running(
        cfg, model_name="m.tflite", input_size=256, backend=Backend("edgetpu", "", "", ""),
        capture=grabber, stats=PipelineStats(), labels=None, people=None, mqtt=None,
        paused=True, events=0, last_error="reload rejected: bad",
    )  # fmt: skip
    assert doc["pose"] is None and doc["reps"] is None and doc["people"] is None
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


# --------------------------------------------------------------------------- zones and falls


def test_zones_are_in_the_document_from_the_start(tmp_path: Path) -> None:
    from test_web_zones import BED, HALL, ZONES

    path = tmp_path / "config.toml"
    path.write_text(ZONES)
    cfg = load_config(path, {})
    starting = StatusBuilder().document("starting", cfg, None)
    assert errors(starting) == []
    assert starting["fall"] is False and starting["falls"] == [] and starting["inactive"] is False
    assert starting["zones"] == [
        {"name": "hall", "polygon": HALL, "lying_ok": False, "occupied": False, "people": []},
        {"name": "bed", "polygon": BED, "lying_ok": True, "occupied": False, "people": []},
    ]
    assert StatusBuilder().document("starting", load_config(None, {}), None)["zones"] == []


def test_a_fall_whose_track_ended_stays_until_it_is_reset(
    grabber: FrameGrabber, tmp_path: Path
) -> None:
    """A real Temporal: a person who fell and whose track then ended is still a fall (not
    present), its ``since`` is kept from the snapshot that first saw it, and ``reset_fall``
    ends it."""
    from test_web_zones import ZONES

    path = tmp_path / "config.toml"
    path.write_text(ZONES)
    cfg = load_config(path, {})
    temporal = Temporal.from_config(cfg)
    builder = StatusBuilder()

    def running() -> StatusDocument:
        return builder.running(
            cfg, model_name="m", input_size=192, backend=Backend("cpu", "", "", ""),
            capture=grabber, stats=PipelineStats(), labels=temporal.spoken_of(),
            people=temporal.present_people(), mqtt=None, paused=False, events=0,
            last_error=None, safety=temporal,
        )  # fmt: skip

    doc = running()
    assert errors({**doc, "last_frame": None, "stall_s": 10.0}) == []
    assert (doc["fall"], doc["falls"], doc["people"]) == (False, [], [])
    temporal.fallen_gone.add(3)  # as Temporal.end leaves a person who fell and was lost
    first = running()
    assert first["fall"] is True and errors({**first, "last_frame": None, "stall_s": 1.0}) == []
    (fall,) = first["falls"]
    assert fall == {"id": 3, "since": fall["since"], "zones": [], "present": False}
    time.sleep(0.01)
    assert running()["falls"] == [fall]  # the same since: when it was first seen
    assert [e["person_id"] for e in temporal.reset_fall()] == [3]
    assert (running()["fall"], running()["falls"]) == (False, [])


def test_a_real_run_writes_the_fall_and_the_zones(tmp_path: Path, data_dir: Path) -> None:
    """The fall scene as fast as it goes (not in real time): the stopped document carries the
    last snapshot, the man down in the hall; `edge-pose status` says so, not running."""
    from test_web_zones import ZONES, fall_scene

    scene = fall_scene(tmp_path / "scene", data_dir, down=60)
    config = tmp_path / "config.toml"
    config.write_text(f'[mqtt]\nenabled = false\n[http]\nenabled = false\n'
                      f'[status]\ndir = "{tmp_path / "run"}"\n' + ZONES)  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "edge_pose.cli", "run", "--config", str(config), "--camera",
         str(scene), "--no-realtime"], capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((tmp_path / "run" / STATUS_FILE).read_bytes())
    assert errors(doc) == [] and parse_document(doc) == doc
    assert doc["state"] == "stopped" and doc["fall"] is True
    assert [(f["id"], f["zones"], f["present"]) for f in doc["falls"]] == [(1, ["hall"], True)]
    assert [(p["id"], p["zones"], p["fallen"]) for p in doc["people"]] == [(1, ["hall"], True)]
    assert [(z["name"], z["occupied"], z["people"]) for z in doc["zones"]] == [
        ("hall", True, [1]), ("bed", False, []),
    ]  # fmt: skip
    result = run_status("--config", str(config))
    assert result.returncode == 3, result.stdout
    lines = [line.strip() for line in result.stdout.splitlines()]
    assert re.fullmatch(r"FALL: person 1 down since \d\d:\d\d:\d\d, in zone 'hall' \(when the "
                        r"daemon stopped\)", lines[2]), lines  # fmt: skip
    assert "zones: hall: #1; bed: empty" in lines
