"""Sources that stall, resume, end or vanish: only a finite regular file ends a run cleanly.

Named pipes are fed by a real writer thread (YUV4MPEG2, what `ffmpeg -f yuv4mpegpipe` writes,
and MJPEG in AVI and Matroska); files are real files removed under a running camera; the daemon
is the real `edge-pose run` with its status file. Stalls are a few seconds: the limit under test
is a parameter of the camera.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_pose.camera.base import Camera, Frame, FrameClock
from edge_pose.camera.file import VideoFileCamera, open_file_camera
from edge_pose.camera.open import open_camera
from edge_pose.camera.recover import RecoveringCamera
from edge_pose.errors import CameraError

# 320x240 4:2:0 is 115 kB a frame: more than a pipe's 64 kB buffer, so one frame takes several
# reads, as a real camera's does (FFmpeg checked its timeout between those reads).
WIDTH, HEIGHT = 320, 240


def y4m_stream(frames: int) -> tuple[bytes, bytes]:
    """A YUV4MPEG2 header and one frame of noise."""
    image = np.random.default_rng(5).integers(0, 256, (HEIGHT, WIDTH, 3), np.uint8)
    header = f"YUV4MPEG2 W{WIDTH} H{HEIGHT} F10:1 Ip A1:1 C420jpeg\n".encode()
    return header, b"FRAME\n" + cv2.cvtColor(image, cv2.COLOR_RGB2YUV_I420).tobytes()


class PipeWriter:
    """A thread writing ``frames`` y4m frames into a new named pipe, pausing ``stall`` seconds
    after ``stall_after`` of them, then (``cut``) dying in the middle of a frame, or closing."""

    def __init__(
        self,
        tmp: Path,
        frames: int,
        *,
        stall_after: int | None = None,
        stall: float = 0.0,
        cut: bool = False,
        on_stall: Callable[[Path], None] | None = None,
    ) -> None:
        self.path = tmp / "camera.y4m"
        os.mkfifo(self.path)
        self.header, self.frame = y4m_stream(frames)
        self.frames, self.stall_after, self.stall, self.cut = frames, stall_after, stall, cut
        self.on_stall = on_stall
        self.thread = threading.Thread(target=self._feed, daemon=True)
        self.thread.start()

    def _feed(self) -> None:
        with contextlib.suppress(BrokenPipeError):  # the reader gave up (a stall limit)
            self._write()

    def _write(self) -> None:
        with open(self.path, "wb") as pipe:
            pipe.write(self.header)
            for n in range(self.frames):
                if n == self.stall_after:
                    pipe.flush()
                    if self.on_stall is not None:
                        self.on_stall(self.path)
                    time.sleep(self.stall)
                pipe.write(self.frame)
            if self.cut:
                pipe.write(self.frame[: len(self.frame) // 3])


def read_until_end(camera: Camera) -> tuple[int, Exception | None]:
    """Frames read, and the error that ended them (None: a clean end)."""
    count = 0
    try:
        while camera.read() is not None:
            count += 1
    except CameraError as exc:
        return count, exc
    finally:
        camera.close()
    return count, None


@pytest.mark.parametrize("stall_after", [0, 3], ids=["before the first frame", "mid-run"])
def test_a_stall_is_waited_out_and_the_stream_goes_on(tmp_path: Path, stall_after: int) -> None:
    writer = PipeWriter(tmp_path, 8, stall_after=stall_after, stall=2.5)
    count, error = read_until_end(open_file_camera(str(writer.path), realtime=False, loop=False))
    assert count == 8
    assert error is not None and "ended after 8 frames" in str(error)


@pytest.mark.parametrize("stall_after", [1, 4])
def test_a_stall_past_the_limit_is_a_failure_not_the_end(tmp_path: Path, stall_after: int) -> None:
    """A stall longer than the limit is an error naming the stall, never the clean end that
    FFmpeg's own read timeout used to look like."""
    writer = PipeWriter(tmp_path, 6, stall_after=stall_after, stall=2.5)
    camera = VideoFileCamera(
        writer.path, realtime=False, loop=False, stream=True, stall_timeout=1.0
    )
    count, error = read_until_end(camera)
    assert count == stall_after
    assert error is not None and "no frame from the named pipe for" in str(error)
    assert "stalled" in str(error)


@pytest.mark.parametrize(
    "ending",
    ["closed", "cut mid-frame", "deleted then closed"],
)
def test_the_end_of_a_pipe_is_a_failure(tmp_path: Path, ending: str) -> None:
    writer = PipeWriter(
        tmp_path,
        5,
        stall_after=2 if ending == "deleted then closed" else None,
        stall=0.3,
        cut=ending == "cut mid-frame",
        on_stall=os.unlink,
    )
    count, error = read_until_end(open_file_camera(str(writer.path), realtime=True, loop=False))
    assert count == 5
    assert isinstance(error, CameraError) and "the named pipe ended after 5 frames" in str(error)
    assert "\n" not in str(error)


@pytest.mark.parametrize("container", [("avi", "MJPG"), ("mkv", "MJPG"), ("avi", "XVID")])
def test_the_end_of_a_pipe_is_a_failure_in_any_container(
    tmp_path: Path, container: tuple[str, str]
) -> None:
    suffix, fourcc = container
    video = tmp_path / f"clip.{suffix}"
    out = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*fourcc), 10, (WIDTH, HEIGHT))
    image = np.random.default_rng(1).integers(0, 256, (HEIGHT, WIDTH, 3), np.uint8)
    for _ in range(6):
        out.write(image)
    out.release()
    pipe = tmp_path / "camera"
    os.mkfifo(pipe)
    threading.Thread(target=lambda: pipe.write_bytes(video.read_bytes()), daemon=True).start()
    count, error = read_until_end(open_file_camera(str(pipe), realtime=False, loop=False))
    assert count == 6 and error is not None and "named pipe ended" in str(error)


def test_a_video_file_deleted_while_running_ends_cleanly(tmp_path: Path, data_dir: Path) -> None:
    """A finite file: the open file is read to its end (exit 0), removed or not."""
    video = tmp_path / "clip.mp4"
    video.write_bytes((data_dir / "mmpose" / "street_walk.mp4").read_bytes())
    camera = open_camera(str(video), realtime=False)
    assert camera.read() is not None
    video.unlink()
    count, error = read_until_end(camera)
    assert (count, error) == (4, None)


def test_a_looped_video_deleted_while_running_is_a_failure(
    tmp_path: Path, data_dir: Path
) -> None:
    video = tmp_path / "clip.mp4"
    video.write_bytes((data_dir / "mmpose" / "street_walk.mp4").read_bytes())
    camera = open_camera(str(video), realtime=False, loop=True)
    assert camera.read() is not None
    video.unlink()
    count, error = read_until_end(camera)
    assert count == 4
    assert error is not None and f"{video}: the file is gone" in str(error)


def test_a_folder_emptied_while_running_is_a_failure(tmp_path: Path, data_dir: Path) -> None:
    for n in range(3):
        (tmp_path / f"{n}.bmp").write_bytes((data_dir / "coral" / "squat.bmp").read_bytes())
    camera = open_camera(str(tmp_path), realtime=False, loop=True)
    assert camera.read() is not None
    for path in tmp_path.glob("*.bmp"):
        path.unlink()
    count, error = read_until_end(camera)
    assert count == 0  # every image left is skipped, one warning each
    assert error is not None and "none of the 3 images could be read" in str(error)


class Ending(Camera):
    """A live device whose driver reports the end of its frames after ``frames``."""

    def __init__(self, frames: int) -> None:
        self.left = frames
        self.description = "v4l2:/dev/video9"
        self.clock = FrameClock()

    def read(self) -> Frame | None:
        if self.left == 0:
            return None
        self.left -= 1
        return self.clock.stamp(np.zeros((2, 2, 3), np.uint8))


def test_a_live_camera_that_ends_is_reopened(monkeypatch) -> None:
    monkeypatch.setattr(time, "sleep", lambda s: None)
    camera = RecoveringCamera(lambda: Ending(2), retries=3)
    indices = [camera.read().index for _ in range(5)]
    assert indices == [0, 1, 2, 3, 4] and camera.restarts == 2


def test_a_live_camera_that_keeps_ending_is_a_failure(monkeypatch) -> None:
    monkeypatch.setattr(time, "sleep", lambda s: None)
    camera = RecoveringCamera(lambda: Ending(0), retries=2)
    with pytest.raises(CameraError, match=r"stopped delivering frames .*gave up after 2"):
        camera.read()


def test_daemon_fails_with_last_error_when_its_pipe_ends(tmp_path: Path) -> None:
    """The real `edge-pose run` on a pipe whose writer goes away: a non-zero exit that systemd's
    Restart=on-failure acts on, and the reason in the status file."""
    writer = PipeWriter(tmp_path, 12)
    config = tmp_path / "config.toml"
    config.write_text("[mqtt]\nenabled = false\n")
    env = {**os.environ, "RUNTIME_DIRECTORY": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "edge_pose.cli", "run", "--config", str(config),
         "--camera", str(writer.path)],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "the named pipe ended after 12 frames" in proc.stderr
    status = json.loads((tmp_path / "status.json").read_text())
    assert "the named pipe ended after 12 frames" in status["last_error"]
