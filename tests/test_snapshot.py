"""The fall snapshot and reset_fall, with real parts: the real model on ambianic's fall images,
a real Mosquitto, a real `edge-pose run`, and Home Assistant's entities read from the discovery
message the run retains.

The footage is a folder of symlinks made here: fall_img_11.png (a person standing) for 2 s of
scene time, then fall_img_12.png (the same person on the floor) for the rest, played at
``camera.fps = 10`` without real-time pacing, so one `fall` is confirmed some 3.3 s of scene
time after the first frame on the floor and the person then stays down.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from conftest import require
from mqtt_broker import MosquittoBroker, Subscriber
from test_homeassistant import _ha_template_env, home_assistant_problems

from edge_pose import wire
from edge_pose.camera.file import ImageSequenceCamera
from edge_pose.classify.rules import LABELS
from edge_pose.config import load_config
from edge_pose.homeassistant import COMPONENTS, Safety, discovery_config
from edge_pose.inference.movenet import MoveNet
from edge_pose.mqtt.remote import parse_command
from edge_pose.pipeline import Pipeline
from edge_pose.schemas import load_schema
from edge_pose.sinks.snapshot import SnapshotSink, snapshot_jpeg
from edge_pose.track import Temporal

jsonschema = pytest.importorskip("jsonschema", reason="pip install -e '.[test]'")

STANDING, DOWN = "fall_img_11.png", "fall_img_12.png"
FPS = 10
ZONE = "Floor"
CONFIG = f"""
[camera]
fps = {FPS}
realtime = false
loop = false

[[zones]]
name = "{ZONE}"
polygon = [[0.0, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]]
"""


def fall_footage(folder: Path, data_dir: Path, standing: int = 20, down: int = 100) -> Path:
    """``folder`` holding ``standing`` frames of the person standing, then ``down`` of them on
    the floor, as symlinks named in playing order."""
    up_image = require(data_dir / "ambianic" / STANDING)
    down_image = require(data_dir / "ambianic" / DOWN)
    folder.mkdir(parents=True)
    for number in range(standing + down):
        source = up_image if number < standing else down_image
        (folder / f"frame_{number:05d}.png").symlink_to(source)
    return folder


def start(broker: MosquittoBroker, footage: Path, device: str, config: Path) -> subprocess.Popen:
    """`edge-pose run` over ``footage`` once (no --loop: a second pass would be a second fall),
    its status in a folder of its own."""
    status_dir = tempfile.mkdtemp(prefix="status-", dir=broker.workdir)
    return subprocess.Popen(
        [sys.executable, "-m", "edge_pose.cli", "run", "--camera", str(footage),
         "--device-id", device, "--mqtt-host", broker.host, "--mqtt-port", str(broker.port),
         "--config", str(config)],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "RUNTIME_DIRECTORY": status_dir},
    )  # fmt: skip


def events(sub: Subscriber) -> list[dict[str, Any]]:
    return [json.loads(p) for p in sub.payloads("/event")]


def retained(broker: MosquittoBroker, topic: str) -> list[tuple[str, bytes, bool]]:
    """What a client subscribing now gets on ``topic`` (a filter): the retained messages."""
    late = Subscriber(broker.host, broker.port, topic)
    try:
        time.sleep(0.5)
        return [m for m in late.messages if m[2]]
    finally:
        late.close()


# --------------------------------------------------------------------------- a real run


@pytest.fixture(scope="module")
def fall_run(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Iterator[dict]:
    """A real run over the fall footage: the snapshot, the retained pose while the fall is on,
    Home Assistant's Reset fall button pressed (its payload to its topic, as the discovery
    message says), then the pose after it; every message in order."""
    work = tmp_path_factory.mktemp("fall-run")
    # Long enough on the floor that frames still flow while the test answers the fall (a
    # loop would play the standing frames again: a recovery and a second fall).
    footage = fall_footage(work / "frames", data_dir, down=1200)
    config = work / "config.toml"
    config.write_text(CONFIG)
    device = "fall-e2e"
    base = f"edge-pose/{device}"
    found: dict[str, Any] = {"base": base, "device": device}
    with MosquittoBroker(work / "broker") as broker:
        sub = Subscriber(broker.host, broker.port, "#")
        proc = start(broker, footage, device, config)
        try:
            assert sub.wait_for(
                lambda: any(e["type"] == "fall" for e in events(sub)), 90
            ), "no fall event"
            assert sub.wait_for(lambda: sub.payloads(f"/{wire.SNAPSHOT}"), 10), "no snapshot"
            found["pose_during"] = retained(broker, f"{base}/pose")
            found["snapshot_retained"] = retained(broker, f"{base}/{wire.SNAPSHOT}")
            discovery = json.loads(sub.payloads(f"homeassistant/device/{device}/config")[-1])
            button = discovery["components"]["reset_fall"]
            sub.client.publish(button["command_topic"], button["payload_press"], qos=1)
            assert sub.wait_for(
                lambda: any(e["type"] == "fall_recovered" for e in events(sub)), 30
            ), "reset_fall did not end the fall (did the footage end first?)"
            assert sub.wait_for(
                lambda: (poses := sub.payloads("/pose")) and not json.loads(poses[-1])["fall"],
                10,
            ), "the pose still says fall"
            found["pose_after"] = retained(broker, f"{base}/pose")
        finally:
            proc.send_signal(signal.SIGINT)
            _, stderr = proc.communicate(timeout=60)
        found["returncode"], found["stderr"] = proc.returncode, stderr
        found["messages"] = list(sub.messages)
        sub.close()
    yield found


def test_one_snapshot_of_the_fall_never_retained(fall_run: dict) -> None:
    assert fall_run["returncode"] == 0, fall_run["stderr"]
    messages = fall_run["messages"]
    snapshots = [(p, r) for t, p, r in messages if t == f"{fall_run['base']}/{wire.SNAPSHOT}"]
    assert len(snapshots) == 1, f"{len(snapshots)} snapshots"
    jpeg, was_retained = snapshots[0]
    assert not was_retained and fall_run["snapshot_retained"] == []
    assert jpeg[:3] == b"\xff\xd8\xff"  # a JPEG, nothing around it (Home Assistant's image)
    picture = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert picture is not None and picture.shape == (480, 640, 3)
    # the fall event went out first, and nothing else is ever a picture
    topics = [t for t, _, _ in messages]
    falls = [i for i, (t, p, _) in enumerate(messages)
             if t.endswith("/event") and json.loads(p)["type"] == "fall"]  # fmt: skip
    assert len(falls) == 1 and falls[0] < topics.index(f"{fall_run['base']}/{wire.SNAPSHOT}")
    assert "fall snapshot: " in fall_run["stderr"]  # the log says what went out


def test_the_snapshot_shows_the_floor_frame_with_the_skeleton(
    fall_run: dict, data_dir: Path
) -> None:
    """The picture is the frame the fall was confirmed in (the person on the floor) with the
    skeleton and the zone drawn in: close to that frame, far from the standing one, and with
    drawn pixels that JPEG noise alone does not make."""
    jpeg = next(p for t, p, _ in fall_run["messages"] if t.endswith(f"/{wire.SNAPSHOT}"))
    picture = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).astype(np.int16)
    down = cv2.imread(str(data_dir / "ambianic" / DOWN)).astype(np.int16)
    up = cv2.imread(str(data_dir / "ambianic" / STANDING)).astype(np.int16)
    # Where the standing person's head and shoulders were (above the zone, the lower half,
    # which is drawn with a wash since the person is in it), the picture is the floor frame.
    head = (slice(165, 235), slice(400, 500))
    assert np.abs(picture - down)[head].mean() < np.abs(picture - up)[head].mean() / 2
    drawn = (np.abs(picture - down).max(axis=2) > 80).sum()
    assert 300 < drawn < 30_000, drawn


def test_the_pose_says_fall_until_reset_fall(fall_run: dict) -> None:
    base = fall_run["base"]
    ((_, during, _),) = fall_run["pose_during"]
    ((_, after, _),) = fall_run["pose_after"]
    assert json.loads(during)["fall"] is True
    assert json.loads(after)["fall"] is False
    found = [e for e in (json.loads(p) for t, p, _ in fall_run["messages"]
             if t == f"{base}/event")]  # fmt: skip
    falls = [e for e in found if e["type"] == "fall"]
    recovered = [e for e in found if e["type"] == "fall_recovered"]
    assert len(falls) == 1 and 0 <= falls[0]["confidence"] <= 1 and falls[0]["person_id"] == 1
    assert recovered == [{**recovered[0], "reset": True}] and recovered[0]["person_id"] == 1
    assert "down_s" not in recovered[0]
    state = [json.loads(p) for t, p, _ in fall_run["messages"] if t == f"{base}/state"]
    assert state[-1]["command"] == "reset_fall"
    validator = jsonschema.Draft202012Validator(load_schema("event"))
    for event in falls + recovered:
        assert list(validator.iter_errors(event)) == [], event
    pose_schema = jsonschema.Draft202012Validator(load_schema("pose"))
    for payload in (during, after):
        assert list(pose_schema.iter_errors(json.loads(payload))) == []


def test_home_assistant_sees_the_fall(fall_run: dict) -> None:
    """The retained discovery message of the run announces the safety entities as the config
    says (schema and Home Assistant's rules), and its templates turn the run's real messages
    into the states Home Assistant would show: Fall on then off, the Safety event entity
    taking the fall and its reset, the Pose event entity none of them."""
    device, base = fall_run["device"], fall_run["base"]
    topic = f"homeassistant/device/{device}/config"
    messages = fall_run["messages"]
    payload = [p for t, p, _ in messages if t == topic][-1]
    config = json.loads(payload)
    assert home_assistant_problems(topic, payload, prefix="homeassistant", base=base) == []
    schema = jsonschema.Draft202012Validator(load_schema("ha-discovery"))
    assert list(schema.iter_errors(config)) == []
    safety = Safety(fall=True, snapshot=True, inactivity=True, zones=(ZONE,))
    assert config == discovery_config(device, base, labels=LABELS, exercise="squat",
                                      safety=safety)  # fmt: skip
    components = config["components"]
    assert set(components) == set(COMPONENTS) | {"zone_floor"}
    assert components["fall"]["device_class"] == "safety"
    assert components["fall_snapshot"]["image_topic"] == f"{base}/{wire.SNAPSHOT}"
    assert parse_command(components["reset_fall"]["payload_press"].encode()).name == "reset_fall"

    env = _ha_template_env()

    def states(cid: str) -> list[str]:
        comp = components[cid]
        template = env.from_string(comp["value_template"])
        return [
            template.render(value=p.decode(), value_json=json.loads(p)).strip()
            for t, p, _ in messages if t == comp["state_topic"] and p
        ]  # fmt: skip

    fall_states = states("fall")
    assert "ON" in fall_states and fall_states[-1] == "OFF"
    assert fall_states.index("ON") > 0  # off before the fall
    assert set(states("inactive")) == {"OFF"}  # 10 minutes of stillness: not in this footage
    assert "ON" in states("zone_floor") and set(states("zone_floor")) <= {"ON", "OFF"}
    safety_events = [json.loads(s) for s in states("safety_event") if s]
    kinds = [e["event_type"] for e in safety_events]
    assert {"zone_enter", "fall", "fall_recovered"} <= set(kinds)
    assert next(e for e in safety_events if e["event_type"] == "fall")["zone"] == ZONE
    assert set(kinds) <= set(components["safety_event"]["event_types"])
    for state in states("event"):  # the Pose event entity: never a safety event, no warning
        assert not state or json.loads(state)["event_type"] in components["event"]["event_types"]
    assert not any(
        s and json.loads(s)["event_type"] in ("fall", "fall_recovered") for s in states("event")
    )


def test_snapshots_off_means_no_picture_and_no_image_entity(
    tmp_path: Path, data_dir: Path
) -> None:
    """`events.fall.snapshot = false`: the fall is reported, no picture goes out, and Home
    Assistant's Fall snapshot entity is removed (listed with its platform only)."""
    footage = fall_footage(tmp_path / "frames", data_dir, down=60)
    config = tmp_path / "config.toml"
    config.write_text(CONFIG + "\n[events.fall]\nsnapshot = false\n")
    device = "fall-nopic"
    with MosquittoBroker(tmp_path / "broker") as broker:
        sub = Subscriber(broker.host, broker.port, "#")
        proc = start(broker, footage, device, config)
        try:
            _, stderr = proc.communicate(timeout=120)  # the footage ends: the run ends
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, stderr
        assert sub.wait_for(lambda: b"offline" in sub.payloads("/availability"), 10)
        messages = list(sub.messages)
        sub.close()
    assert [e for e in (json.loads(p) for t, p, _ in messages if t.endswith("/event"))
            if e["type"] == "fall"], "no fall"  # fmt: skip
    assert not [t for t, _, _ in messages if t.endswith(f"/{wire.SNAPSHOT}")]
    discovery = json.loads(
        [p for t, p, _ in messages if t == f"homeassistant/device/{device}/config"][-1]
    )
    assert discovery["components"]["fall_snapshot"] == {"platform": "image"}
    assert "platform" in discovery["components"]["reset_fall"]
    assert discovery["components"]["reset_fall"]["command_topic"] == f"edge-pose/{device}/set"


# --------------------------------------------------------------------------- the sink


class Recorder:
    """The one method the sink asks of the MQTT client, recorded."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes | str, int, bool]] = []

    def publish(
        self, suffix: str, payload: bytes | str, qos: int = 1, retain: bool = False
    ) -> bool:
        self.messages.append((suffix, payload, qos, retain))
        return True


def pipeline_over(footage: Path, lightning_path: Path, config: Path, *sinks) -> Pipeline:
    """The real pipeline of `run` (model, tracks, safety events) over ``footage``."""
    cfg = load_config(config, {})
    pipeline = Pipeline(MoveNet(lightning_path, threads=2), device_id="snap",
                        temporal=Temporal.from_config(cfg))  # fmt: skip
    pipeline.sinks.extend(sinks)
    camera = ImageSequenceCamera(sorted(footage.iterdir()), realtime=False, loop=False, fps=FPS)
    while (frame := camera.read()) is not None:
        pipeline.process(frame)
    pipeline.close()
    return pipeline


def test_the_sink_sends_one_jpeg_per_fall_and_nothing_else(
    tmp_path: Path, data_dir: Path, lightning_path: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(CONFIG)
    recorder = Recorder()
    sink = SnapshotSink(recorder)
    assert sink.timed is False  # not part of the frame's latency
    pipeline_over(fall_footage(tmp_path / "fall", data_dir, down=60), lightning_path, config,
                  sink)  # fmt: skip
    assert [(s, q, r) for s, _, q, r in recorder.messages] == [(wire.SNAPSHOT, 1, False)]
    assert sink.sent == 1 and sink.last_ms is not None and sink.last_ms < 1000
    jpeg = recorder.messages[0][1]
    assert isinstance(jpeg, bytes)
    assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape == (480, 640, 3)
    still = Recorder()
    pipeline_over(fall_footage(tmp_path / "still", data_dir, standing=80, down=0), lightning_path,
                  config, SnapshotSink(still))  # fmt: skip
    assert still.messages == []  # no fall: no picture


def test_snapshot_jpeg_draws_on_a_copy_in_rgb(data_dir: Path, lightning_path: Path) -> None:
    """The frame (RGB, as every camera gives it) is not drawn on, and the JPEG's colours are
    the frame's, not swapped."""
    from edge_pose.estimate import estimate_pose

    bgr = cv2.imread(str(require(data_dir / "ambianic" / DOWN)))
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    before = rgb.copy()
    pose = estimate_pose(MoveNet(lightning_path, threads=2), rgb)
    picture = cv2.imdecode(np.frombuffer(snapshot_jpeg(rgb, [pose]), np.uint8), cv2.IMREAD_COLOR)
    assert np.array_equal(rgb, before)
    same = np.abs(picture.astype(np.int16) - bgr).mean()
    swapped = np.abs(picture.astype(np.int16) - rgb).mean()
    assert same < 5 < swapped
