"""The client factory and the connection check shared by the daemon, `watch` and `doctor`, and
the publisher's keypoints schedule, each on its own (end to end they are in test_mqtt.py,
test_watch.py and test_doctor.py)."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from mqtt_broker import MosquittoBroker, free_port, mqtt_settings, wait_for

from edge_pose.config import MqttConfig
from edge_pose.errors import ConfigError
from edge_pose.mqtt.acks import ACK_TIMEOUT_S, PROBE_INTERVAL_S, AckWatch
from edge_pose.mqtt.client import (
    CheckedConnection,
    Outcome,
    describe_connect_error,
    describe_refusal,
    make_client,
)
from edge_pose.mqtt.pacing import RateSchedule


@pytest.mark.parametrize(("protocol", "version"), [("3.1.1", mqtt.MQTTv311), ("5", mqtt.MQTTv5)])
def test_the_factory_honours_the_protocol_setting(protocol: str, version: int) -> None:
    client = make_client(MqttConfig(protocol=protocol), "factory", None)
    assert client.protocol == version


def test_the_factory_refuses_tls_files_it_cannot_load() -> None:
    settings = MqttConfig(tls=True, ca_file="/no/ca.crt")
    with pytest.raises(ConfigError, match=r"mqtt.ca_file = '/no/ca.crt': no such file"):
        make_client(settings, "factory", None)


def test_an_accepting_broker_and_a_lost_connection(mosquitto: MosquittoBroker) -> None:
    connects: list[bool] = []
    lost = threading.Event()
    client = make_client(mqtt_settings(mosquitto), "check-ok", None)
    connection = CheckedConnection(client, connects.append, lost.set)
    try:
        answer = connection.open(mosquitto.host, mosquitto.port, keepalive=30, timeout=5)
        assert answer.outcome is Outcome.ACCEPTED and connection.connected
        assert connects == [False]  # the first connect is no reconnect
        mosquitto.stop()
        assert lost.wait(5) and not connection.connected
        mosquitto.start()
        assert wait_for(lambda: connects == [False, True], 10)  # paho's thread came back
    finally:
        connection.close()


def test_a_refused_login_is_not_retried(tmp_path: Path) -> None:
    with MosquittoBroker(tmp_path, users={"edge": "s3cret"}) as broker:
        settings = mqtt_settings(broker, username="edge")
        connection = CheckedConnection(make_client(settings, "check-refused", "wrong"))
        try:
            answer = connection.open(broker.host, broker.port, keepalive=30, timeout=5)
            assert answer.outcome is Outcome.REFUSED and answer.reason is not None
            assert describe_refusal(answer.reason).startswith("not authorised (")
            assert "check mqtt.username and mqtt.password_file" in describe_refusal(answer.reason)
            assert not wait_for(lambda: broker.log.read_text().count("not authorised") > 1, 1.5)
        finally:
            connection.close()


def test_nobody_listening_is_unreachable() -> None:
    port = free_port()
    connection = CheckedConnection(make_client(MqttConfig(port=port), "check-down", None))
    try:
        answer = connection.open("127.0.0.1", port, keepalive=30, timeout=5)
    finally:
        connection.close()
    assert answer.outcome is Outcome.UNREACHABLE
    assert isinstance(answer.error, ConnectionRefusedError)
    where = f"127.0.0.1:{port}"
    assert (
        describe_connect_error(answer.error, "127.0.0.1", where) == f"connection refused by {where}"
    )


def test_a_listener_that_speaks_no_mqtt() -> None:
    """Silent: the connection is taken (the kernel's backlog) and never answered. Closed: it is
    accepted and hung up at once, as a TLS listener does to a plain client."""
    with (
        socket.create_server(("127.0.0.1", 0)) as quiet,
        socket.create_server(("127.0.0.1", 0)) as hanging_up,
    ):
        threading.Thread(target=lambda: hanging_up.accept()[0].close(), daemon=True).start()
        for server, timeout, outcome in (
            (quiet, 0.5, Outcome.SILENT),
            (hanging_up, 5, Outcome.CLOSED),
        ):
            port = server.getsockname()[1]
            connection = CheckedConnection(make_client(MqttConfig(port=port), "check-no", None))
            try:
                answer = connection.open("127.0.0.1", port, keepalive=30, timeout=timeout)
            finally:
                connection.close()
            assert answer.outcome is outcome


def test_the_keypoints_schedule_allows_half_an_interval_early() -> None:
    schedule = RateSchedule(10.0)
    assert schedule.rate == 10.0
    assert not schedule.early(100.0)
    schedule.book(100.0)  # next slot at 100.1, open from 100.05
    assert schedule.early(100.04) and not schedule.early(100.06)
    schedule.set_rate(0.0)  # no limit: never early, booking changes nothing
    schedule.book(200.0)
    assert schedule.rate == 0.0 and not schedule.early(200.0)


class _AnswersAtOnce:
    """The race paho allows: the broker's UNSUBACK is handled on paho's network thread before
    ``unsubscribe`` has returned the mid to the caller (here: synchronously, every time)."""

    def __init__(self, answer_early: bool) -> None:
        self.watch: AckWatch | None = None
        self.answer_early = answer_early
        self.mid = 0

    def unsubscribe(self, _topic: str) -> tuple[mqtt.MQTTErrorCode, int]:
        self.mid += 1
        if self.answer_early:
            assert self.watch is not None
            self.watch.unsubscribed(self.mid, 0.0)
        return mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS, self.mid


@pytest.mark.parametrize("answer_early", [True, False])
def test_a_probe_answered_before_its_mid_is_known_is_still_answered(answer_early: bool) -> None:
    client = _AnswersAtOnce(answer_early)
    watch = AckWatch(client, "edge-pose/x/probe", capacity=16)  # type: ignore[arg-type]
    client.watch = watch
    watch.connected(0.0)
    now = PROBE_INTERVAL_S + 1
    watch.probe(now)
    assert client.mid == 1
    later = now + ACK_TIMEOUT_S + 1
    if answer_early:  # answered: the broker is fine, nothing is overdue
        assert watch.overdue(later) is None
    else:  # never answered: the probe is overdue
        assert watch.overdue(later) == pytest.approx(ACK_TIMEOUT_S + 1)
