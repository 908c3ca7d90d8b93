"""Camera sources on real files, the capture thread, and picamera2 faked at its import."""

from __future__ import annotations

import itertools
import sys
import time
import types
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_pose.camera.base import Camera, Frame, FrameClock
from edge_pose.camera.file import load_image
from edge_pose.camera.grabber import FrameGrabber
from edge_pose.camera.open import open_camera
from edge_pose.errors import CameraError


def read_all(camera: Camera, limit: int = 10_000) -> list[Frame]:
    frames = []
    while len(frames) < limit and (frame := camera.read()) is not None:
        frames.append(frame)
    return frames


def test_video_file_frames(data_dir: Path) -> None:
    camera = open_camera(str(data_dir / "tfjs" / "pose_squats.mp4"), realtime=False)
    frames = read_all(camera)
    assert len(frames) == 65
    assert camera.fps == pytest.approx(5.0)
    first = frames[0]
    assert first.image.shape == (1280, 720, 3) and first.image.dtype == np.uint8
    assert [f.index for f in frames] == list(range(65))
    assert all(b.capture_ns > a.capture_ns for a, b in itertools.pairwise(frames))


def test_video_frames_are_rgb(data_dir: Path) -> None:
    """Frames come out RGB: the same pixels OpenCV decodes as BGR, channels reversed."""
    video = data_dir / "tfjs" / "pose_1.mp4"
    ok, bgr = cv2.VideoCapture(str(video)).read()
    assert ok
    frame = open_camera(f"file:{video}", realtime=False).read()
    assert np.array_equal(frame.image, bgr[:, :, ::-1])


def test_realtime_pacing_follows_file_rate(data_dir: Path) -> None:
    camera = open_camera(str(data_dir / "tfjs" / "pose_1.mp4"), realtime=True)
    assert camera.live
    start = time.monotonic()
    read_all(camera, limit=10)
    assert time.monotonic() - start >= 9 / 30 - 0.01


def test_loop_starts_again(data_dir: Path) -> None:
    camera = open_camera(str(data_dir / "mmpose" / "street_walk.mp4"), realtime=False, loop=True)
    frames = read_all(camera, limit=12)
    assert len(frames) == 12
    assert np.array_equal(frames[0].image, frames[5].image)


def test_still_image_once_or_looped(data_dir: Path) -> None:
    path = data_dir / "coral" / "squat.bmp"
    assert len(read_all(open_camera(str(path), realtime=False))) == 1
    looped = read_all(open_camera(f"file:{path}", realtime=False, loop=True), limit=5)
    assert len(looped) == 5 and looped[4].image is looped[0].image  # decoded once


def test_folder_and_glob_of_images(tmp_path: Path, data_dir: Path) -> None:
    for name in ("b.png", "a.jpg"):
        cv2.imwrite(str(tmp_path / name), np.full((48, 64, 3), 100, np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    assert len(read_all(open_camera(str(tmp_path), realtime=False))) == 2
    assert len(read_all(open_camera(f"file:{tmp_path}/*.png", realtime=False))) == 1


@pytest.mark.parametrize(
    ("make", "shape"),
    [
        (lambda: np.full((20, 30), 200, np.uint8), (20, 30, 3)),  # grey
        (lambda: np.full((20, 30, 4), 200, np.uint8), (20, 30, 3)),  # with alpha
        (lambda: np.full((20, 30, 3), 50000, np.uint16), (20, 30, 3)),  # 16-bit
        (lambda: np.zeros((1, 1, 3), np.uint8), (1, 1, 3)),
    ],
)
def test_unusual_images_become_rgb(tmp_path: Path, make, shape) -> None:
    path = tmp_path / "odd.png"
    assert cv2.imwrite(str(path), make())
    image = load_image(path)
    assert image.shape == shape and image.dtype == np.uint8


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.mp4", None, "camera source not found"),
        ("empty.mp4", b"", "cannot open video|no decodable frames"),
        ("text.mp4", b"this is not a video\n" * 10, "cannot open video|no decodable frames"),
        ("broken.jpg", b"\xff\xd8\xff\xe0 truncated", "cannot decode image"),
        ("empty_dir", "dir", "holds no image files"),
        ("nothing*.png", None, "matches no image files"),
    ],
)
def test_bad_sources_give_clear_errors(tmp_path: Path, name: str, content, message: str) -> None:
    path = tmp_path / name
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(CameraError, match=message):
        open_camera(str(path), realtime=False)


def test_unreadable_image_in_a_folder_is_skipped(tmp_path: Path, data_dir: Path) -> None:
    """One corrupt file does not end a run over a folder; a folder of nothing but is an error."""
    good = (data_dir / "coral" / "squat.bmp").read_bytes()
    for name, content in (("1.bmp", good), ("2.bmp", good[:5000]), ("3.bmp", good)):
        (tmp_path / name).write_bytes(content)
    camera = open_camera(str(tmp_path), realtime=False, loop=True)
    frames = [camera.read() for _ in range(4)]  # 1, 3, 1, 3: the bad one once, then never
    assert [f.image.shape for f in frames] == [(610, 500, 3)] * 4 and camera.skipped == 1
    for name in ("1.bmp", "3.bmp"):
        (tmp_path / name).write_bytes(good[:5000])
    camera = open_camera(str(tmp_path), realtime=False)
    with pytest.raises(CameraError, match="none of the 3 images could be read"):
        camera.read()


def test_truncated_video_with_header_only(tmp_path: Path, data_dir: Path) -> None:
    path = tmp_path / "cut.mp4"
    path.write_bytes((data_dir / "tfjs" / "pose_1.mp4").read_bytes()[:600])
    with pytest.raises(CameraError, match=str(path)):
        open_camera(str(path), realtime=False)


class CountingCamera(Camera):
    """Produces ``count`` small frames as fast as it can."""

    def __init__(self, count: int, live: bool) -> None:
        self.live = live
        self.count = count
        self.clock = FrameClock()

    def read(self) -> Frame | None:
        if self.clock.index >= self.count:
            return None
        return self.clock.stamp(np.zeros((2, 2, 3), np.uint8))


def drain(grabber: FrameGrabber, delay: float) -> list[int]:
    seen = []
    while (frame := grabber.get(2)) is not None:
        seen.append(frame.index)
        time.sleep(delay)
    return seen


def test_live_source_hands_on_only_the_newest_frame() -> None:
    grabber = FrameGrabber(CountingCamera(200, live=True)).start()
    seen = drain(grabber, delay=0.002)
    assert seen == sorted(seen) and seen[-1] == 199
    assert grabber.skipped == 200 - len(seen) > 0
    assert grabber.captured == 200


def test_unpaced_file_applies_back_pressure() -> None:
    grabber = FrameGrabber(CountingCamera(50, live=False)).start()
    assert drain(grabber, delay=0.001) == list(range(50))
    assert grabber.skipped == 0


def test_capture_error_is_reported() -> None:
    class Failing(CountingCamera):
        def read(self) -> Frame | None:
            raise OSError("device unplugged")

    grabber = FrameGrabber(Failing(1, live=True)).start()
    assert grabber.get(2) is None
    assert isinstance(grabber.error, CameraError)
    assert "device unplugged" in str(grabber.error)


# --- picamera2, faked at the import boundary --------------------------------------------------


def fake_picamera2(rgb: np.ndarray, cameras: int = 1) -> types.ModuleType:
    """A `picamera2` module that follows its byte-order naming: "BGR888" gives R, G, B."""
    module = types.ModuleType("picamera2")
    calls: dict[str, object] = {}

    class Request:
        def __init__(self, fmt: str) -> None:
            self.fmt = fmt

        def make_array(self, stream: str) -> np.ndarray:
            assert stream == "main"
            return rgb.copy() if self.fmt == "BGR888" else rgb[:, :, ::-1].copy()

        def get_metadata(self) -> dict:
            return {"SensorTimestamp": time.monotonic_ns() - 3_000_000}

        def release(self) -> None:
            calls["released"] = int(calls.get("released", 0)) + 1

    class Picamera2:
        @staticmethod
        def global_camera_info() -> list[dict]:
            return [{"Model": "imx708", "Num": i} for i in range(cameras)]

        def __init__(self, index: int) -> None:
            calls["index"] = index

        def create_video_configuration(self, main: dict, controls: dict) -> dict:
            return {"main": main, "controls": controls}

        def configure(self, config: dict) -> None:
            calls["config"] = config

        def start(self) -> None:
            calls["started"] = True

        def capture_request(self) -> Request:
            return Request(calls["config"]["main"]["format"])

        def stop(self) -> None:
            calls["stopped"] = True

        def close(self) -> None:
            calls["closed"] = True

    module.Picamera2 = Picamera2
    module.calls = calls
    return module


def test_picamera2_frames_are_rgb_with_sensor_time(monkeypatch, data_dir: Path) -> None:
    rgb = load_image(data_dir / "coral" / "squat.bmp")
    module = fake_picamera2(rgb)
    monkeypatch.setitem(sys.modules, "picamera2", module)
    camera = open_camera("picamera2", width=500, height=610, fps=15)
    frame = camera.read()
    camera.close()
    assert np.array_equal(frame.image, rgb)
    assert module.calls["config"]["main"] == {"size": (500, 610), "format": "BGR888"}
    assert module.calls["config"]["controls"] == {"FrameRate": 15.0}
    assert module.calls["released"] == 1 and module.calls["closed"]
    assert 2_000_000 < time.monotonic_ns() - frame.capture_ns < 1_000_000_000
    assert "imx708" in camera.description


def test_picamera2_missing_names_apt_package(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)  # import fails
    with pytest.raises(CameraError, match=r"apt install python3-picamera2.*--system-site-packages"):
        open_camera("picamera2:0")


def test_picamera2_unknown_camera_index(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", fake_picamera2(np.zeros((2, 2, 3), np.uint8)))
    with pytest.raises(CameraError, match=r"picamera2:1: no such camera \(found: 0: imx708\)"):
        open_camera("picamera2:1")
    with pytest.raises(CameraError, match="camera number"):
        open_camera("picamera2:x")


def test_v4l2_missing_device() -> None:
    with pytest.raises(CameraError, match=r"no such device"):
        open_camera("v4l2:/dev/video-does-not-exist")


# --- hiccups -------------------------------------------------------------------------------------


def test_live_camera_recovers_from_read_errors(monkeypatch) -> None:
    """A device that fails twice (a USB reset) is reopened; indices keep counting."""
    from edge_pose.camera.recover import RecoveringCamera

    opened: list[CountingCamera] = []
    failures = iter([False, False, False, True, True, False, False, False])

    class Flaky(CountingCamera):
        def read(self) -> Frame | None:
            if next(failures):
                raise CameraError("v4l2:/dev/video0: the device stopped delivering frames")
            return super().read()

    def open_flaky() -> Camera:
        opened.append(Flaky(100, live=True))
        return opened[-1]

    monkeypatch.setattr(time, "sleep", lambda s: None)
    camera = RecoveringCamera(open_flaky, retries=3)
    indices = [camera.read().index for _ in range(6)]
    assert indices == [0, 1, 2, 3, 4, 5]
    assert camera.restarts == 2 and len(opened) == 3


def test_camera_that_stays_gone_ends_the_run(monkeypatch) -> None:
    from edge_pose.camera.recover import RecoveringCamera

    class Gone(CountingCamera):
        def read(self) -> Frame | None:
            raise CameraError("picamera2:0: capture failed: timeout")

    monkeypatch.setattr(time, "sleep", lambda s: None)
    camera = RecoveringCamera(lambda: Gone(1, live=True), retries=2)
    with pytest.raises(CameraError, match="gave up after 2 reopen attempts"):
        camera.read()


def test_picamera2_capture_failure_is_recovered(monkeypatch, data_dir: Path) -> None:
    rgb = load_image(data_dir / "coral" / "squat.bmp")
    module = fake_picamera2(rgb)
    broken = {"once": True}
    original = module.Picamera2.capture_request

    def flaky_capture(self):
        if broken.pop("once", False):
            raise RuntimeError("Camera frontend has timed out!")
        return original(self)

    module.Picamera2.capture_request = flaky_capture
    monkeypatch.setitem(sys.modules, "picamera2", module)
    monkeypatch.setattr(time, "sleep", lambda s: None)
    camera = open_camera("picamera2", width=500, height=610, fps=15)
    frame = camera.read()
    assert np.array_equal(frame.image, rgb) and camera.restarts == 1
    camera.close()
