"""Commands on <base>/set and stats on <base>/stats, through a real daemon and Mosquitto."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
from mqtt_broker import Subscriber, start_run

from edge_pose.mqtt.remote import Command, parse_command
from edge_pose.wire import stats_payload


@pytest.mark.parametrize(
    ("payload", "command"),
    [
        (b'{"command": "pause"}', Command("pause")),
        (b'{"command": "resume"}', Command("resume")),
        (b'{"command": "reset_reps"}', Command("reset_reps")),
        (b'{"command": "keypoints_rate", "value": 5}', Command("keypoints_rate", 5.0)),
    ],
)
def test_parse_commands(payload: bytes, command: Command) -> None:
    assert parse_command(payload) == command


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"pause", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "expected an object"),
        (b'{"command": "explode"}', "unknown command 'explode'"),
        (b'{"command": "pause", "value": 1}', "takes no value"),
        (b'{"command": "pause", "force": true}', "unknown field(s) 'force'"),
        (b'{"command": "keypoints_rate"}', "needs a value"),
        (b'{"command": "keypoints_rate", "value": -1}', "needs a value"),
        (b'{"command": "keypoints_rate", "value": true}', "needs a value"),
    ],
)
def test_malformed_commands(payload: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_command(payload)


def test_stats_payload_carries_the_status_numbers() -> None:
    doc = {"device": "d", "version": "1", "uptime_s": 5.0, "fps": {"capture": 30, "processed": 29},
           "frames": {"processed": 10}, "inference_ms": {"p50": 3.0, "p95": 4.0},
           "latency_ms": {"p50": 5.0, "p95": 6.0}, "backend": {"kind": "cpu"},
           "model": {"name": "m"}, "updated": 100.0, "pose": None, "reps": None,
           "mqtt": {"sent": 3, "dropped": 1, "rate_limited": 2, "reconnects": 0},
           "system": {"cpu_temp_c": 51.2, "throttled": "0x0"}}
    stats = stats_payload(doc)
    assert stats["fps"]["processed"] == 29 and stats["inference_ms"]["p95"] == 4.0
    assert stats["mqtt"] == {"sent": 3, "dropped": 1, "rate_limited": 2, "reconnects": 0,
                             "events_dropped": None}  # a document from before the counter
    assert stats["cpu_temp_c"] == 51.2 and stats["v"] == 1 and stats["ts"] == 100.0


def test_commands_round_trip(mosquitto, data_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[mqtt]\nstats_interval = 5\n")
    sub = Subscriber(mosquitto.host, mosquitto.port, "edge-pose/remote/#")
    proc = start_run(mosquitto, data_dir / "tfjs" / "pose_1.mp4", "remote", "--config", str(config))

    def states() -> list[dict]:
        return [json.loads(p) for p in sub.payloads("/state")]

    def send(payload: str) -> None:
        sub.client.publish("edge-pose/remote/set", payload, qos=1)

    try:
        assert sub.wait_for(lambda: len(sub.payloads("/keypoints")) > 5, 30)
        assert states() and states()[0]["paused"] is False
        send('{"command": "pause"}')
        assert sub.wait_for(lambda: states()[-1]["command"] == "pause", 10)
        assert states()[-1]["paused"] is True
        time.sleep(0.5)  # frames in flight
        count = len(sub.payloads("/keypoints"))
        time.sleep(1.5)
        assert len(sub.payloads("/keypoints")) == count  # nothing inferred while paused
        send('{"command": "resume"}')
        assert sub.wait_for(lambda: len(sub.payloads("/keypoints")) > count + 5, 10)
        send('{"command": "keypoints_rate", "value": 2}')
        assert sub.wait_for(lambda: states()[-1]["keypoints_rate"] == 2.0, 10)
        before = len(sub.payloads("/keypoints"))
        time.sleep(3)
        assert len(sub.payloads("/keypoints")) - before <= 8  # 2/s instead of 30/s
        send("not json")
        send('{"command": "explode"}')
        assert sub.wait_for(lambda: len([e for e in map(json.loads, sub.payloads("/event"))
                                          if e["type"] == "error"]) == 2, 10)
        send('{"command": "reset_reps"}')
        assert sub.wait_for(lambda: states()[-1]["command"] == "reset_reps", 10)
        assert states()[-1]["reps"] == 0
        assert sub.wait_for(lambda: sub.payloads("/stats"), 10)
        stats = json.loads(sub.payloads("/stats")[-1])
        assert stats["device"] == "remote" and stats["fps"]["processed"] > 0
        assert stats["backend"]["kind"] == "cpu" and stats["uptime_s"] > 4
        assert proc.poll() is None  # nothing crashed it
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=10)
        sub.close()
    assert proc.returncode == 0, stderr
    assert "command rejected" in stderr
    retained = Subscriber(mosquitto.host, mosquitto.port, "edge-pose/remote/state")
    assert retained.wait_for(lambda: retained.messages)
    assert retained.messages[0][2] is True
    retained.close()
