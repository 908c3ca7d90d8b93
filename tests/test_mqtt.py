"""MqttPublisher against a real Mosquitto: availability, keypoints, rate limit, outages, auth."""

from __future__ import annotations

import itertools
import logging
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import need_tool
from mqtt_broker import MosquittoBroker, Subscriber, mqtt_settings, wait_for

from edge_pose.errors import ConfigError
from edge_pose.mqtt import MqttPublisher

REPO = Path(__file__).resolve().parents[1]


MakePublisher = Callable[..., MqttPublisher]


@pytest.fixture
def make_publisher() -> Iterator[MakePublisher]:
    """Publishers for a broker; all stopped at the end, even when the test fails."""
    made: list[MqttPublisher] = []

    def make(broker: MosquittoBroker, device: str, password: str | None = None, **changes: object):
        made.append(MqttPublisher(mqtt_settings(broker, **changes), device, password))
        return made[-1]

    yield make
    for publisher in made:
        publisher.stop(timeout=0.5)


def test_online_keypoints_events_and_offline_on_stop(
    mosquitto: MosquittoBroker, make_publisher: MakePublisher
) -> None:
    sub = Subscriber(mosquitto.host, mosquitto.port, "edge-pose/dev1/#")
    pub = make_publisher(mosquitto, "dev1")
    assert pub.base_topic == "edge-pose/dev1"
    pub.start()
    assert pub.wait_connected(5) and wait_for(lambda: pub.sent == 1, 5)  # `online` acknowledged
    late = Subscriber(mosquitto.host, mosquitto.port, "edge-pose/dev1/availability")
    assert late.wait_for(lambda: late.messages)
    assert late.messages == [("edge-pose/dev1/availability", b"online", True)]  # retained
    late.close()

    assert pub.publish_keypoints(b'{"v":1,"frame":7}', time.monotonic())
    assert pub.publish("event", '{"v":1,"type":"person_enter"}')
    assert sub.wait_for(lambda: sub.payloads("/event"))
    assert ("edge-pose/dev1/keypoints", b'{"v":1,"frame":7}', False) in sub.messages
    assert sub.payloads("/event") == [b'{"v":1,"type":"person_enter"}']
    assert wait_for(lambda: pub.sent == 3, 5)  # online, keypoints, event
    assert pub.last_publish is not None and abs(pub.last_publish - time.time()) < 5
    assert (pub.dropped, pub.rate_limited, pub.reconnects, pub.last_error) == (0, 0, 0, None)

    pub.stop()
    assert not pub.connected
    assert sub.wait_for(lambda: sub.payloads("/availability") == [b"online", b"offline"], 5)
    pub.stop()  # idempotent
    assert not pub.publish("event", "after stop") and pub.dropped == 1
    fresh = Subscriber(mosquitto.host, mosquitto.port, "edge-pose/dev1/availability")
    assert fresh.wait_for(lambda: fresh.messages)
    assert fresh.messages == [("edge-pose/dev1/availability", b"offline", True)]
    fresh.close()
    sub.close()


def test_keypoints_rate_limit(mosquitto: MosquittoBroker, make_publisher: MakePublisher) -> None:
    sub = Subscriber(mosquitto.host, mosquitto.port, "edge-pose/dev2/keypoints")
    pub = make_publisher(mosquitto, "dev2", keypoints_max_rate=10.0)
    pub.start()
    assert pub.wait_connected(5)
    handed = [i * 0.01 for i in range(200) if pub.publish_keypoints(b"x", 5.0 + i * 0.01)]
    assert 20 <= len(handed) <= 21  # 2 s at 10/s (+1: the schedule starts with the first call)
    assert min(b - a for a, b in itertools.pairwise(handed)) >= 0.05 - 1e-9
    assert all(sum(t <= h < t + 1 for h in handed) <= 11 for t in handed)
    assert (pub.rate_limited, pub.dropped) == (200 - len(handed), 0)
    assert sub.wait_for(lambda: len(sub.messages) == len(handed), 5)

    # The pipeline's way (ask first, format only when due): a camera at exactly the limit's
    # rate, with frame jitter, gets every frame through.
    pub30 = make_publisher(mosquitto, "dev2b", keypoints_max_rate=30.0)
    pub30.start()
    assert pub30.wait_connected(5)
    now = 100.0
    for i in range(90):
        now += 1 / 30 + (0.004 if i % 3 == 0 else -0.002)
        assert pub30.keypoints_due(now) and pub30.publish_keypoints(b"y", now), i
    assert pub30.rate_limited == 0

    every = make_publisher(mosquitto, "dev2c", keypoints_max_rate=0.0)  # 0 = every frame
    every.start()
    assert every.wait_connected(5)
    assert all(every.publish_keypoints(b"z", 1.0) for _ in range(50))
    sub.close()


def test_broker_down_at_start_then_up(
    tmp_path: Path, make_publisher: MakePublisher, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edge_pose.mqtt")
    broker = MosquittoBroker(tmp_path)  # not started: nothing listens on its port
    pub = make_publisher(broker, "dev3")
    t0 = time.monotonic()
    pub.start()
    assert time.monotonic() - t0 < 0.5  # never blocks on the network
    assert not pub.publish_keypoints(b"x", 1.0) and not pub.connected
    assert (pub.dropped, pub.rate_limited) == (1, 0)
    assert wait_for(lambda: pub.last_error, 5)
    assert pub.last_error == f"connection refused by 127.0.0.1:{broker.port}"
    with broker:
        assert pub.wait_connected(15)
        assert pub.reconnects == 0  # the first connection is not a reconnect
        assert wait_for(lambda: pub.sent == 1, 5)  # `online` acknowledged: now retained
        sub = Subscriber(broker.host, broker.port, "edge-pose/dev3/#")
        assert sub.wait_for(lambda: sub.messages)
        assert sub.messages == [("edge-pose/dev3/availability", b"online", True)]
        assert pub.publish_keypoints(b"x", 2.0)
        assert sub.wait_for(lambda: sub.payloads("/keypoints") == [b"x"])
        sub.close()
        pub.stop()
    records = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "edge_pose.mqtt"]
    assert [level for level, _ in records] == ["WARNING", "INFO", "INFO"], records
    assert "connection refused" in records[0][1] and "connected to" in records[1][1]


def test_outage_mid_run_reconnects_and_delivers_queued_qos1(
    mosquitto: MosquittoBroker, make_publisher: MakePublisher
) -> None:
    # A persistent session: the broker keeps (and queues for) this subscriber across its restart.
    sub = Subscriber(mosquitto.host, mosquitto.port, "edge-pose/dev4/#", persistent=True)
    pub = make_publisher(mosquitto, "dev4")
    pub.start()
    assert sub.wait_for(lambda: sub.payloads("/availability") == [b"online"], 5)

    mosquitto.stop()
    assert wait_for(lambda: not pub.connected, 5)
    assert pub.last_error == f"connection to 127.0.0.1:{mosquitto.port} lost"
    assert not pub.publish_keypoints(b"lost", 1.0) and pub.dropped == 1  # QoS 0: not queued
    assert pub.publish("event", b'{"v":1,"type":"rep","count":1}')  # QoS 1: queued by paho

    mosquitto.start()
    assert pub.wait_connected(15)
    assert pub.reconnects == 1
    assert sub.wait_for(lambda: sub.payloads("/event"), 15)
    assert sub.payloads("/event") == [b'{"v":1,"type":"rep","count":1}']
    # `online` again after the reconnect: a live publication, not the retained copy.
    assert sub.wait_for(lambda: sub.payloads("/availability", retained=False).count(b"online") == 2)
    assert sub.payloads("/keypoints") == []
    sub.close()


def test_last_will_offline_when_the_process_dies(mosquitto: MosquittoBroker) -> None:
    sub = Subscriber(mosquitto.host, mosquitto.port, "edge-pose/dying/availability")
    code = (
        "import time\n"
        "from edge_pose.config import MqttConfig\n"
        "from edge_pose.mqtt import MqttPublisher\n"
        f"s = MqttConfig(host={mosquitto.host!r}, port={mosquitto.port}, keepalive=5)\n"
        "p = MqttPublisher(s, 'dying')\n"
        "p.start()\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stderr=subprocess.PIPE)
    try:
        assert sub.wait_for(lambda: sub.payloads() == [b"online"], 10), proc.poll()
    finally:
        proc.kill()  # SIGKILL: no clean disconnect, no `offline` from the client itself
        proc.communicate(timeout=5)
    assert sub.wait_for(lambda: sub.payloads() == [b"online", b"offline"], 10)
    fresh = Subscriber(mosquitto.host, mosquitto.port, "edge-pose/dying/availability")
    assert fresh.wait_for(lambda: fresh.messages)
    assert fresh.messages == [("edge-pose/dying/availability", b"offline", True)]
    fresh.close()
    sub.close()


def test_username_and_password(
    tmp_path: Path, make_publisher: MakePublisher, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with MosquittoBroker(tmp_path, users={"edge": "s3cret-pw"}) as broker:
        good = make_publisher(broker, "auth-good", "s3cret-pw", username="edge")
        bad = make_publisher(broker, "auth-bad", "wrong-pw", username="edge")
        good.start()
        bad.start()
        assert good.wait_connected(5)
        # Refused twice (paho retries after 1 s), yet the refusal is logged once.
        assert wait_for(lambda: broker.log.read_text().count("not authorised") >= 2, 10)
        assert not bad.connected and bad.reconnects == 0
        assert bad.last_error is not None and "not authorised" in bad.last_error
        assert f"127.0.0.1:{broker.port}" in bad.last_error
        warnings = [
            r for r in caplog.records if r.name == "edge_pose.mqtt" and r.levelname == "WARNING"
        ]
        assert len(warnings) == 1 and "not authorised" in warnings[0].getMessage()
        good.stop()
        bad.stop(timeout=0)
    assert "s3cret-pw" not in caplog.text and "wrong-pw" not in caplog.text


def test_tls(tmp_path: Path, make_publisher: MakePublisher) -> None:
    openssl = need_tool("openssl", "openssl")
    cert, key = tmp_path / "broker.crt", tmp_path / "broker.key"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    with MosquittoBroker(tmp_path, f"certfile {cert}\nkeyfile {key}\n") as broker:
        pub = make_publisher(broker, "tls", tls=True, ca_file=str(cert))
        pub.start()
        assert pub.wait_connected(5)
        plain = make_publisher(broker, "plain")  # tls = false against a TLS listener
        plain.start()
        assert wait_for(lambda: plain.last_error, 5)
        assert "check mqtt.tls" in plain.last_error
        pub.stop()
        plain.stop(timeout=0)
    with pytest.raises(ConfigError, match=r"mqtt.ca_file = '/no/ca.crt': no such file"):
        make_publisher(broker, "tls2", tls=True, ca_file="/no/ca.crt").start()
    # A file that is there but not PEM is named, not reported as the TLS library's "PEM lib".
    with pytest.raises(ConfigError, match=rf"mqtt.ca_file = '{key}': not a CA certificate"):
        make_publisher(broker, "tls3", tls=True, ca_file=str(key)).start()
    with pytest.raises(
        ConfigError, match=rf"mqtt.certfile = '{key}', mqtt.keyfile = '{cert}': not a client"
    ):
        make_publisher(broker, "tls4", tls=True, certfile=str(key), keyfile=str(cert)).start()
