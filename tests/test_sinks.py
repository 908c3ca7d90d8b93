"""Frame results and sinks on the real model and video: one result per frame, every output a
sink, and JSON only for frames someone receives (formatted once when two sinks want it)."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import ClassVar

import cv2
import pytest

from edge_pose.camera.file import VideoFileCamera
from edge_pose.config import load_config
from edge_pose.inference.estimator import Detection
from edge_pose.inference.movenet import MoveNet
from edge_pose.pipeline import Pipeline
from edge_pose.pose import Pose
from edge_pose.sinks.base import FrameResult, Sink
from edge_pose.sinks.mqtt import MqttSink
from edge_pose.sinks.printer import PrintSink
from edge_pose.sinks.video import VideoSink
from edge_pose.track import Temporal
from edge_pose.wire import DeviceWire


class Publisher:
    """An MQTT client that records what it is given; keypoints due every ``every``-th ask."""

    def __init__(self, every: int = 1) -> None:
        self.every = every
        self.asked = 0
        self.messages: list[tuple[str, str, int, bool]] = []

    def keypoints_due(self, now: float) -> bool:
        self.asked += 1
        return self.asked % self.every == 0 if self.every else False

    def publish_keypoints(self, payload: bytes, now: float) -> bool:
        self.messages.append(("keypoints", payload.decode(), 0, False))
        return True

    def publish(
        self, suffix: str, payload: bytes | str, qos: int = 1, retain: bool = False
    ) -> bool:
        self.messages.append((suffix, str(payload), qos, retain))
        return True

    def texts(self, suffix: str) -> list[str]:
        return [text for s, text, _, _ in self.messages if s == suffix]


class CountingWire(DeviceWire):
    """The device's wire format, counting the keypoints messages it formats."""

    formatted: ClassVar[list[str]] = []

    def keypoints(self, pose: Pose, latency_ms: float) -> str:
        text = super().keypoints(pose, latency_ms)
        CountingWire.formatted.append(text)
        return text


class Collect(Sink):
    """A sink of the kind a new output is: one class, one method."""

    def __init__(self) -> None:
        self.results: list[FrameResult] = []
        self.closed = False

    def deliver(self, result: FrameResult) -> None:
        self.results.append(result)

    def close(self) -> None:
        self.closed = True


@pytest.fixture(scope="module")
def model(lightning_path: Path) -> MoveNet:
    return MoveNet(lightning_path, threads=2)


def run(
    model: MoveNet, video: Path, *sinks: Sink | Publisher, compact: bool = False
) -> Pipeline:
    """The squat-video pipeline of `run` (rules, smoothing) with these sinks (a Publisher
    behind the MQTT sink)."""
    pipeline = Pipeline(model, device_id="sinks", compact_keypoints=compact,
                        temporal=Temporal.from_config(load_config(None, {})))
    CountingWire.formatted = []
    pipeline.wire = CountingWire("sinks", compact)
    for sink in sinks:
        pipeline.sinks.append(
            MqttSink(sink, pipeline.stats) if isinstance(sink, Publisher) else sink
        )
    camera = VideoFileCamera(video, realtime=False, loop=False)
    while (frame := camera.read()) is not None:
        pipeline.process(frame)
    pipeline.close()
    return pipeline


def test_one_result_per_frame_to_every_sink(model: MoveNet, data_dir: Path) -> None:
    first, second = Collect(), Collect()
    pipeline = run(model, data_dir / "tfjs" / "pose_squats.mp4", first, second)
    assert len(first.results) == pipeline.stats.processed == 65
    assert [id(r) for r in first.results] == [id(r) for r in second.results]
    assert first.closed and second.closed
    for result in first.results:
        assert len(result.poses) == 1 and result.primary is result.poses[0]
        assert result.primary.frame_index == result.frame.index
        assert len(result.stage_ns) == 4 and result.stage_ns[2] > 0  # invoke
    events = [e for r in first.results for e in r.events]
    assert len(events) == pipeline.events and sum(e["type"] == "rep" for e in events) == 2
    # The first frame says the state (over whatever the broker kept); after it the state is
    # sent only with the events that changed it.
    assert first.results[0].state is not None and first.results[0].state.label == "none"
    changed = [r for r in first.results[1:] if r.state is not None]
    assert changed and all(r.events for r in changed)
    assert not CountingWire.formatted  # nobody asked for JSON: none was made


def test_frames_nobody_receives_cost_no_json(model: MoveNet, data_dir: Path) -> None:
    publisher = Publisher(every=0)  # rate-limited: keypoints never due
    pipeline = run(model, data_dir / "tfjs" / "pose_squats.mp4", publisher)
    assert publisher.asked == 65 and not publisher.texts("keypoints")
    assert not CountingWire.formatted and pipeline.stats.published == 0
    assert publisher.texts("event") and publisher.texts("pose")  # those go out regardless


@pytest.mark.parametrize("compact", [False, True])
def test_mqtt_and_print_share_one_text_per_frame(
    model: MoveNet, data_dir: Path, compact: bool
) -> None:
    publisher, out = Publisher(every=2), io.StringIO()
    pipeline = run(model, data_dir / "tfjs" / "pose_squats.mp4", publisher, PrintSink(out),
                   compact=compact)
    assert len(CountingWire.formatted) == 65  # once per frame, though two sinks sent it
    lines = out.getvalue().splitlines()
    keypoints = [line for line in lines if '"frame":' in line]
    assert keypoints == CountingWire.formatted
    assert publisher.texts("keypoints") == keypoints[1::2] and pipeline.stats.published == 32
    assert all(("format" in json.loads(k)) == compact for k in keypoints)
    assert [line for line in lines if '"frame":' not in line] == publisher.texts("event")
    retained = [(s, q, r) for s, _, q, r in publisher.messages if s == "pose"]
    assert retained and all(q == 1 and r for _, q, r in retained)


def test_video_sink_writes_every_frame(
    model: MoveNet, data_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "annotated.avi"
    with caplog.at_level(logging.INFO):
        run(model, data_dir / "mmpose" / "street_walk.mp4", VideoSink(out, 5.0))
    assert f"annotated video: {out} (5 frames)" in caplog.text
    video = cv2.VideoCapture(str(out))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    assert (video.get(cv2.CAP_PROP_FRAME_WIDTH), video.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (960, 540)
    video.release()


class SeesNoOneEveryThirdFrame:
    """The real model, as a model kind that may find no one, or several people, in a frame:
    every third frame returns nothing, the others the real detection and a weaker copy."""

    def __init__(self, model: MoveNet) -> None:
        self.model = model
        self.calls = 0

    def __getattr__(self, name: str) -> object:  # input_size, stage_ns, ...: the real model's
        return getattr(self.model, name)

    def estimate(self, image, region=None):  # type: ignore[no-untyped-def]
        self.calls += 1
        if self.calls % 3 == 0:
            return []
        (best,) = self.model.estimate(image, region)
        return [best, Detection(best.keypoints * 0.5, best.score / 2, best.region)]


def test_any_number_of_detections_is_one_followed_person(model: MoveNet, data_dir: Path) -> None:
    """An empty list is nobody in view (keypoints still go out, person false); of several
    detections the first, best one continues the person followed."""
    collect, out = Collect(), io.StringIO()
    pipeline = Pipeline(SeesNoOneEveryThirdFrame(model), device_id="sinks",  # type: ignore[arg-type]
                        temporal=Temporal.from_config(load_config(None, {})))
    pipeline.sinks += [collect, PrintSink(out)]
    camera = VideoFileCamera(data_dir / "tfjs" / "pose_squats.mp4", realtime=False, loop=False)
    while (frame := camera.read()) is not None:
        pipeline.process(frame)
    assert len(collect.results) == 65
    for number, result in enumerate(collect.results, 1):
        assert len(result.poses) == 1
        assert result.primary.person == (number % 3 != 0)
    messages = [json.loads(line) for line in out.getvalue().splitlines() if '"frame":' in line]
    assert len(messages) == 65 and [m["person"] for m in messages[2::3]] == [False] * 21
    assert all(m["score"] == 0 for m in messages[2::3])


class Slow(Collect):
    """A local recording: not part of what a subscriber waits for."""

    timed = False

    def __init__(self, pipeline: Pipeline) -> None:
        super().__init__()
        self.pipeline = pipeline
        self.processed_when_called: list[int] = []

    def deliver(self, result: FrameResult) -> None:
        self.processed_when_called.append(self.pipeline.stats.processed)
        super().deliver(result)


def test_an_untimed_sink_runs_after_the_frame_is_measured(model: MoveNet, data_dir: Path) -> None:
    """The annotated video's drawing and encoding do not count in latency or publish time:
    untimed sinks get the result after the frame's numbers are recorded."""
    assert VideoSink.timed is False and MqttSink.timed and PrintSink.timed
    pipeline = Pipeline(model, device_id="sinks")
    slow, fast = Slow(pipeline), Collect()
    pipeline.sinks += [slow, fast]
    camera = VideoFileCamera(data_dir / "tfjs" / "pose_squats.mp4", realtime=False, loop=False)
    for _ in range(5):
        frame = camera.read()
        assert frame is not None
        pipeline.process(frame)
    camera.close()
    assert slow.processed_when_called == [1, 2, 3, 4, 5]  # recorded before it was called
    assert [id(r) for r in slow.results] == [id(r) for r in fast.results]
