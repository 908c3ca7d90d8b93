"""The hub between the pipeline and the web view's threads: what a follower of /api/events
gets, in which order, after a reconnect, when it falls behind; and that the pipeline side does
nothing but store a reference while nobody follows."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from edge_pose.camera.base import Frame
from edge_pose.classify.events import PoseState
from edge_pose.pose import Pose, Region
from edge_pose.sinks.base import FrameResult
from edge_pose.web.hub import LOG_SIZE, FallenBehind, WebHub
from edge_pose.wire import DeviceWire

WIRE = DeviceWire("hub-test")


def result(index: int, events: int = 0, state: str | None = None) -> FrameResult:
    """A real frame result: a black frame, a pose, ``events`` rep events, a new pose state."""
    image = np.zeros((48, 64, 3), np.uint8)
    frame = Frame(image, time.monotonic_ns(), time.time(), index)
    keypoints = np.zeros((17, 3), np.float32)
    pose = Pose(keypoints, 0.5, True, Region(0, 0, 64, 48), index, frame.capture_ns,
                frame.wall, 64, 48)  # fmt: skip
    evts = [{"type": "rep", "exercise": "squat", "count": index * 10 + n} for n in range(events)]
    pose_state = None if state is None else PoseState(state, 0.9, True, frame.wall)
    return FrameResult(frame, [pose], evts, pose_state, (0, 0, 0, 0), WIRE)


def test_nobody_following_costs_a_count_and_no_text() -> None:
    hub = WebHub()
    frame = result(1)
    hub.frame(frame)
    assert hub.frames == 1 and hub._offered is None  # no frame held
    assert frame._keypoints_text is None  # nothing was formatted


def test_take_hands_over_the_next_frame_and_keeps_none() -> None:
    hub = WebHub()
    hub.frame(result(1))
    assert hub.take(0.05) is None  # an earlier frame is not handed over: none came since
    taken: list[object] = []
    taker = threading.Thread(target=lambda: taken.append(hub.take(5.0)))
    taker.start()
    while not hub._takers:
        time.sleep(0.001)
    second = result(2)
    hub.frame(second)
    taker.join(5.0)
    assert taken == [(2, second)]
    assert hub._offered is None  # handed over and let go: the hub pins no camera image


def test_a_follower_gets_the_current_pose_first_then_events_in_order() -> None:
    hub = WebHub()
    hub.frame(result(1, state="standing"))
    follower = hub.follow()
    hub.frame(result(2, events=2))
    hub.frame(result(3, state="squat_down"))
    hub.publish_document({"v": 1, "state": "running"})
    sent = follower.wait(1.0)
    names = [name for name, _, _ in sent]
    assert names[0] == "pose" and '"standing"' in sent[0][1]
    assert names[1:4] == ["event", "event", "pose"]
    assert '"count": 20' in sent[1][1] and '"count": 21' in sent[2][1]
    assert "status" in names and "keypoints" in names
    ids = [seq for _, _, seq in sent if seq is not None]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    follower.close()
    assert hub.followers == 0


def test_keypoints_are_the_newest_only() -> None:
    hub = WebHub()
    follower = hub.follow()
    for index in range(1, 6):
        hub.frame(result(index))
    sent = follower.wait(1.0)
    keypoints = [text for name, text, _ in sent if name == "keypoints"]
    assert len(keypoints) == 1 and '"frame":5' in keypoints[0]


def test_a_follower_without_keypoints_gets_none_and_costs_no_text() -> None:
    hub = WebHub()
    page = hub.follow(keypoints=False)  # the page: pictures instead of keypoints
    frame = result(1, events=1)
    hub.frame(frame)
    sent = page.wait(1.0)
    assert [name for name, _, _ in sent] == ["event"]
    assert frame._keypoints_text is None  # nobody wants keypoints: none were formatted
    script = hub.follow()
    hub.frame(result(2))
    assert [name for name, _, _ in script.wait(1.0)] == ["keypoints"]
    assert page.wait(0.05) == []  # still none for the page
    page.close()
    script.close()
    assert hub.followers == 0 and hub.keypoint_followers == 0


def test_a_reconnect_with_last_event_id_resumes_exactly() -> None:
    hub = WebHub()
    for index in range(1, 4):
        hub.frame(result(index, events=1))
    follower = hub.follow(last_seen=1)
    sent = follower.wait(1.0)
    assert [seq for name, _, seq in sent if name == "event"] == [2, 3]
    # An id from the future (another run) or garbage: from now on, no replay.
    assert [n for n, _, _ in hub.follow(last_seen=99).wait(0.01) if n == "event"] == []


def test_a_follower_the_log_has_passed_is_told_so() -> None:
    hub = WebHub()
    follower = hub.follow()
    for index in range(LOG_SIZE + 5):
        hub.frame(result(index, events=1))
    with pytest.raises(FallenBehind):
        follower.wait(0.1)


def test_a_browser_back_after_the_log_moved_on_starts_afresh() -> None:
    """A phone asleep overnight reconnects with an id the log no longer holds: it starts from
    now with the current pose (sending it away would bring it back with the same id)."""
    hub = WebHub()
    hub.frame(result(0, state="standing"))
    for index in range(1, LOG_SIZE + 5):
        hub.frame(result(index, events=1))
    for stale in (1, LOG_SIZE + 50):  # too old, and from an earlier run of the daemon
        follower = hub.follow(last_seen=stale)
        sent = follower.wait(0.1)
        assert sent[0][0] == "pose" and '"standing"' in sent[0][1]
        follower.close()
    oldest = LOG_SIZE + 5 - LOG_SIZE + 1  # still resumable: the message after it is held
    assert hub.follow(last_seen=oldest - 1).wait(0.1)[0][2] == oldest


def test_the_document_is_served_as_status_json_writes_it() -> None:
    hub = WebHub()
    assert hub.document_json() is None
    document = {"v": 1, "pose": {"confidence": float("nan")}, "fps": {"processed": np.float32(4.5)}}
    hub.publish_document(document)  # type: ignore[arg-type]
    expected = b'{"v": 1, "pose": {"confidence": null}, "fps": {"processed": 4.5}}'
    assert hub.document_json() == expected


def test_a_taker_that_gives_up_leaves_no_frame_behind() -> None:
    hub = WebHub()
    assert hub.take(0.01) is None
    hub.frame(result(1))
    assert hub._offered is None and hub._takers == 0


def test_closing_the_stream_returns_a_waiting_taker_at_once() -> None:
    hub = WebHub()
    got: list[object] = []
    taker = threading.Thread(target=lambda: got.append(hub.take(30.0)))
    started = time.monotonic()
    taker.start()
    while not hub._takers:
        time.sleep(0.001)
    hub.wake_takers()
    taker.join(5.0)
    assert got == [None] and time.monotonic() - started < 2.0


def test_keypoints_a_follower_left_are_not_sent_to_the_next() -> None:
    hub = WebHub()
    first = hub.follow()
    hub.frame(result(1))
    first.close()
    second = hub.follow()
    assert not [name for name, _, _ in second.wait(0.05) if name == "keypoints"]


def test_wake_releases_a_waiting_follower_at_once() -> None:
    hub = WebHub()
    follower = hub.follow()
    done: list[float] = []

    def wait() -> None:
        start = time.monotonic()
        follower.wait(10.0)
        done.append(time.monotonic() - start)

    thread = threading.Thread(target=wait)
    thread.start()
    time.sleep(0.1)
    hub.wake()
    thread.join(2.0)
    assert done and done[0] < 1.0


def test_the_pipeline_and_the_daemon_do_not_import_the_web_package() -> None:
    """A leaf package: a run with ``--no-http`` loads none of it (nor prometheus_client)."""
    code = (
        "import sys, edge_pose.pipeline, edge_pose.service.daemon, edge_pose.commands.run; "
        "print(sorted(m for m in sys.modules if m.startswith(('edge_pose.web', 'prometheus'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
