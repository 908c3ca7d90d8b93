"""JSON Schemas of the MQTT payloads: valid, shown in docs/mqtt.md, and true of real payloads."""

from __future__ import annotations

import dataclasses
import json
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mqtt_broker import MosquittoBroker, Subscriber, start_run

from edge_pose.camera.file import VideoFileCamera
from edge_pose.classify.rules import LABELS
from edge_pose.config import MqttConfig, load_config
from edge_pose.homeassistant import discovery_config
from edge_pose.inference.movenet import MoveNet
from edge_pose.mqtt.remote import parse_command
from edge_pose.pipeline import Pipeline
from edge_pose.pose import KEYPOINT_NAMES
from edge_pose.schemas import FILE_SCHEMAS, NAMES, TOPIC_SCHEMAS, load_schema
from edge_pose.track import Temporal
from edge_pose.wire import compact_keypoints_payload, keypoints_payload

jsonschema = pytest.importorskip("jsonschema", reason="pip install -e '.[test]'")

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs" / "mqtt.md"
SCHEMA_DIR = REPO / "edge_pose" / "schemas"
# The real run sends compact keypoints once the config has the option (the full form is
# checked on the same poses in-process below).
COMPACT_OPTION = "compact_keypoints" in MqttConfig.model_fields


def validator(name: str) -> Any:
    schema = load_schema(name)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def errors(name: str, instance: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator(name).iter_errors(instance)]  # fmt: skip


def test_every_schema_is_valid_draft_2020_12() -> None:
    assert sorted(p.name for p in SCHEMA_DIR.glob("*.schema.json")) == sorted(
        f"{n}.schema.json" for n in NAMES + FILE_SCHEMAS  # status.json: test_status_document.py
    )
    for name in NAMES:
        schema = load_schema(name)
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["$id"] == f"urn:edge-pose:mqtt:{name}:v1"
    with pytest.raises(KeyError, match="no schema 'nope'"):
        load_schema("nope")


# --------------------------------------------------------------------------- docs/mqtt.md


def doc_blocks() -> list[tuple[str, str, str]]:
    """``(kind, name, body)`` of the docs' JSON blocks marked ``<!-- schema: NAME -->`` (a full
    schema) or ``<!-- example: NAME -->`` (payloads, one per line or one block)."""
    text = DOCS.read_text()
    pattern = re.compile(r"<!-- (schema|example): ([a-z-]+) -->\s*```json\n(.*?)```", re.S)
    return [(m[1], m[2], m[3]) for m in pattern.finditer(text)]


def test_the_docs_show_every_schema_as_shipped() -> None:
    shown = {name: json.loads(body) for kind, name, body in doc_blocks() if kind == "schema"}
    assert sorted(shown) == sorted(NAMES)
    for name, schema in shown.items():
        assert schema == load_schema(name), f"docs/mqtt.md shows an outdated {name} schema"


def test_the_docs_examples_follow_the_schemas() -> None:
    examples = [(name, body) for kind, name, body in doc_blocks() if kind == "example"]
    assert {name for name, _ in examples} >= set(NAMES) - {"availability"}
    for name, body in examples:
        try:
            payloads = [json.loads(body)]
        except ValueError:
            payloads = [json.loads(line) for line in body.splitlines() if line.strip()]
        for payload in payloads:
            assert errors(name, payload) == [], (name, payload)


# --------------------------------------------------------------------------- real payloads


@pytest.fixture(scope="module")
def real_messages(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Iterator[list]:
    """Every message of a real `edge-pose run` with commands sent to it: (topic, payload)."""
    work = tmp_path_factory.mktemp("schema-run")
    with MosquittoBroker(work / "broker") as broker:
        sub = Subscriber(broker.host, broker.port, "#")
        config = work / "config.toml"
        config.write_text("[mqtt]\nstats_interval = 5\nkeypoints_max_rate = 10\n"
                          + ("compact_keypoints = true\n" if COMPACT_OPTION else ""))
        proc = start_run(broker, data_dir / "tfjs" / "pose_squats.mp4", "schema",
                         "--config", str(config), "--no-realtime")  # fmt: skip
        try:
            assert sub.wait_for(lambda: sub.payloads("/state"), 60)
            for command in (b'{"command": "keypoints_rate", "value": 20}', b"not json"):
                sub.client.publish("edge-pose/schema/set", command, qos=1)
            assert sub.wait_for(lambda: sub.payloads("/stats"), 60), "no stats within 60 s"
            assert sub.wait_for(lambda: any(b'"rep"' in p for p in sub.payloads("/event")), 30)
            assert sub.wait_for(lambda: any(b'"error"' in p for p in sub.payloads("/event")), 5)
        finally:
            proc.send_signal(signal.SIGINT)
            _, stderr = proc.communicate(timeout=30)
        assert proc.returncode == 0, stderr
        assert sub.wait_for(lambda: b"offline" in sub.payloads("/availability"), 10)
        time.sleep(0.2)
        messages = [(t, p) for t, p, _ in sub.messages]
        sub.close()
    yield messages


def test_real_payloads_follow_their_schemas(real_messages: list) -> None:
    seen: dict[str, int] = {}
    for topic, payload in real_messages:
        suffix = topic.rsplit("/", 1)[-1]
        if suffix == "set":
            continue  # our own test commands, one of them malformed on purpose
        if suffix == "snapshot":  # a fall's JPEG, not JSON (tests/test_snapshot.py)
            assert payload.startswith(b"\xff\xd8"), payload[:10]
            continue
        if topic.startswith("homeassistant/"):
            name, instance = "ha-discovery", json.loads(payload)
        elif suffix == "availability":
            name, instance = "availability", payload.decode()
        else:
            name, instance = TOPIC_SCHEMAS[suffix], json.loads(payload)
            if suffix == "keypoints" and instance.get("format") == "compact":
                name = "keypoints-compact"
        assert errors(name, instance) == [], (topic, payload[:300])
        seen[name] = seen.get(name, 0) + 1
    keypoints = "keypoints-compact" if COMPACT_OPTION else "keypoints"
    assert {"availability", keypoints, "pose", "event", "stats", "state"} <= set(seen), seen
    states = [json.loads(p) for t, p in real_messages if t.endswith("/state")]
    assert [s["command"] for s in states][:2] == [None, "keypoints_rate"]


def test_the_schemas_reject_what_the_contract_forbids() -> None:
    pose = {"v": 1, "label": "standing", "confidence": 0.9, "person": True, "since": 1.0}
    assert errors("pose", pose) == []
    assert errors("pose", {**pose, "person": False})  # nobody there: the label is `none`
    assert errors("pose", {**pose, "label": "none"})
    assert errors("pose", {**pose, "label": "x" * 256})  # never a state over 255 characters
    assert errors("pose", {**pose, "extra": 1})
    event = {"v": 1, "device": "d", "ts": 1.0, "type": "rep", "exercise": "squat", "count": 2}
    assert errors("event", event) == []
    assert errors("event", {**event, "count": 0})
    assert errors("event", {**event, "type": "person_enter"})  # person_enter has no count
    assert errors("event", {**event, "type": "explode"})
    assert errors("availability", "online") == [] and errors("availability", "maybe")


@pytest.mark.parametrize(
    "payload",
    [b'{"command": "pause"}', b'{"command": "resume"}', b'{"command": "reset_reps"}',
     b'{"command": "keypoints_rate", "value": 5}', b'{"command": "keypoints_rate", "value": 0}',
     b'{"command": "explode"}', b'{"command": "pause", "value": 1}', b'{"command": "pause", '
     b'"force": true}', b'{"command": "keypoints_rate"}', b'{"command": "keypoints_rate", '
     b'"value": -1}', b"[1, 2]", b'{"value": 3}'],
)  # fmt: skip
def test_the_command_schema_accepts_what_the_device_accepts(payload: bytes) -> None:
    try:
        parse_command(payload)
        accepted = True
    except ValueError:
        accepted = False
    assert (errors("command", json.loads(payload)) == []) == accepted


def test_the_discovery_message_follows_its_schema() -> None:
    for labels, exercise in ((LABELS, "squat"), (None, None), (["a", "b"], None)):
        config = discovery_config("d-1", "edge-pose/d-1", labels=labels, exercise=exercise)
        assert errors("ha-discovery", config) == []
    config["components"]["fps"]["object_id"] = "x"
    assert errors("ha-discovery", config)
    for url in ("http://pi-lab.local:8080/", "https://[fd00::5]:8443/", "http://10.0.0.7/"):
        linked = discovery_config("d-1", "edge-pose/d-1", labels=None, configuration_url=url)
        assert linked["device"]["configuration_url"] == url
        assert errors("ha-discovery", linked) == []
    for url in ("pi-lab.local:8080", "ftp://pi-lab.local/", "http://pi-lab.local:8080/api"):
        linked["device"]["configuration_url"] = url
        assert errors("ha-discovery", linked), url


# --------------------------------------------------------------------------- compact keypoints


@pytest.fixture(scope="module")
def real_poses(lightning_path: Path, data_dir: Path) -> list:
    """Poses of the squat video from the real pipeline, labelled by the rules."""
    pipeline = Pipeline(MoveNet(lightning_path, threads=2), device_id="c",
                        temporal=Temporal.from_config(load_config(None, {})))
    camera = VideoFileCamera(data_dir / "tfjs" / "pose_squats.mp4", realtime=False, loop=False)
    poses = []
    while (frame := camera.read()) is not None:
        poses.append(pipeline.process(frame))
    return poses


def test_compact_keypoints_carry_the_same_numbers(real_poses: list) -> None:
    sizes = []
    for pose in real_poses:
        full = json.loads(keypoints_payload([pose], "pi-lab", 12.34))
        compact = json.loads(compact_keypoints_payload([pose], "pi-lab", 12.34))
        assert errors("keypoints", full) == []
        assert errors("keypoints-compact", compact) == []
        assert compact.pop("format") == "compact"
        points = compact.pop("keypoints")
        objects = full.pop("keypoints")
        assert "people" not in compact and "people" not in full  # single-pose: no list
        assert compact == full  # everything else is the same
        assert [k["name"] for k in objects] == list(KEYPOINT_NAMES)
        assert points == [[k["x"], k["y"], k["score"]] for k in objects]
        sizes.append((len(keypoints_payload([pose], "pi-lab", 12.34)),
                      len(compact_keypoints_payload([pose], "pi-lab", 12.34))))  # fmt: skip
    assert any(p.label is not None for p in real_poses)
    full_size = sum(f for f, _ in sizes) / len(sizes)
    compact_size = sum(c for _, c in sizes) / len(sizes)
    assert compact_size < 0.55 * full_size, (full_size, compact_size)


def test_compact_payload_escapes_odd_labels_and_devices(real_poses: list) -> None:
    pose = dataclasses.replace(real_poses[-1], label='say "hi"\\', confidence=0.5)
    message = json.loads(compact_keypoints_payload([pose], "dev", 1.0))
    assert message["pose"] == {"label": 'say "hi"\\', "confidence": 0.5}
    pose = dataclasses.replace(pose, label=None)
    assert json.loads(compact_keypoints_payload([pose], "dev", 1.0))["pose"] is None
