"""The camera source grammar (edge_pose/camera/source.py) and the places that use it.

Config validation, open_camera and doctor must never disagree about what a source string names:
they all parse it with ``parse_source``, and these tests pin the grammar and that each user
refuses the same strings.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from test_camera import fake_picamera2

from edge_pose.camera import checks as camera_checks
from edge_pose.camera.open import open_camera
from edge_pose.camera.source import (
    SOURCE_ALLOWED,
    FileSource,
    PiCameraSource,
    SourceError,
    V4l2Source,
    _Source,
    file_path,
    parse_source,
)
from edge_pose.config import CameraConfig, Config
from edge_pose.config import files as config_files
from edge_pose.doctor import Check, Context
from edge_pose.errors import CameraError
from edge_pose.inference import edgetpu

REFUSED = [
    "",
    "picamera",
    "picamera3",
    "Picamera2",
    "picamera2:",
    "picamera2:x",
    "picamera2:1:2",
    "v4l2:video0",
    "V4L2:/dev/video0",
    "file:",
    "rtsp://cam/stream",
    "usb:0",
    "C:/clips/a.mp4",
]


@pytest.mark.parametrize(
    ("text", "source"),
    [
        ("picamera2", PiCameraSource(0)),
        ("picamera2:0", PiCameraSource(0)),
        ("picamera2:12", PiCameraSource(12)),
        ("v4l2:/dev/video0", V4l2Source("/dev/video0")),
        ("v4l2:/dev/v4l/by-id/usb-cam0", V4l2Source("/dev/v4l/by-id/usb-cam0")),
        ("file:clip.mp4", FileSource("clip.mp4")),
        ("file:picamera2", FileSource("picamera2")),
        ("file:~/clips/a.mp4", FileSource("~/clips/a.mp4")),
        ("/data/frames/*.jpg", FileSource("/data/frames/*.jpg")),
        ("frames/", FileSource("frames/")),
        ("./a:b.mp4", FileSource("./a:b.mp4")),
    ],
)
def test_what_a_source_names(text: str, source: object) -> None:
    assert parse_source(text) == source


def test_globs_are_told_from_paths() -> None:
    assert FileSource("/data/*.jpg").is_glob and FileSource("/data/img[0-9].png").is_glob
    assert not FileSource("/data/clip.mp4").is_glob


@pytest.mark.parametrize("text", REFUSED)
def test_config_and_open_camera_refuse_the_same_strings(text: str) -> None:
    with pytest.raises(SourceError):
        parse_source(text)
    with pytest.raises(ValueError, match=f"must be {SOURCE_ALLOWED}"):
        CameraConfig(source=text)
    with pytest.raises(CameraError, match=f"^camera source {text!r}: "):
        open_camera(text)


def test_a_camera_number_that_is_not_one_says_so() -> None:
    with pytest.raises(SourceError, match=r"^the camera number must be 0, 1, \.\.\.$"):
        parse_source("picamera2:x")


def camera_check(source: str) -> Check:
    cfg = Config(camera=CameraConfig(source=source))
    who = edgetpu.Identity.current()
    ctx = Context(cfg, None, [], 1.0, who, "", edgetpu.Settings.from_config(cfg.model))
    return camera_checks.camera(ctx)


def test_doctor_reads_each_kind_of_source_with_the_same_grammar(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", fake_picamera2(np.zeros((2, 2, 3), np.uint8)))
    assert camera_check("picamera2").summary == "picamera2: imx708 (found: 0: imx708)"
    missing = camera_check("picamera2:1")
    assert missing.status == "fail"
    assert missing.summary == "picamera2:1: no such camera (found: 0: imx708)"
    device = camera_check("v4l2:/dev/video-does-not-exist")
    assert device.status == "fail" and device.data["node"] == "/dev/video-does-not-exist"
    assert device.summary.startswith("/dev/video-does-not-exist does not exist (video devices: ")
    gone = tmp_path / "gone.mp4"
    footage = camera_check(f"file:{gone}")
    assert (footage.status, footage.summary) == (
        "fail",
        f"camera source not found: {gone} (give a video, image, folder or glob)",
    )


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("file:clip.mp4", "clip.mp4"),
        ("clip.mp4", "clip.mp4"),
        ("file:~/clips/a.mp4", "~/clips/a.mp4"),
        ("file:picamera2", "picamera2"),
        ("/data/frames/*.jpg", "/data/frames/*.jpg"),
        ("picamera2", None),
        ("v4l2:/dev/video0", None),
        ("file:", None),
        ("rtsp://cam/stream", None),
    ],
)
def test_the_footage_a_source_names(text: str, path: str | None) -> None:
    """``file_path``: what --annotate, bench and the config's ``~user`` check compare."""
    assert file_path(text) == path


def test_only_a_v4l2_source_is_opened_by_a_node_of_its_own() -> None:
    assert V4l2Source("/dev/video0").device_node == "/dev/video0"
    assert PiCameraSource(1).device_node is None
    assert FileSource("/dev/video0").device_node is None


def test_config_warnings_name_a_missing_device_node() -> None:
    gone = "v4l2:/dev/video-does-not-exist"
    assert config_files._camera_warnings(gone) == [
        f"camera.source = {gone!r}: no /dev/video-does-not-exist on this machine"
    ]
    assert config_files._camera_warnings("picamera2") == []


@dataclass(frozen=True)
class _NodeCamera(_Source):
    """A kind of live camera the grammar might grow: opened by a device node."""

    node: str

    @property
    def device_node(self) -> str:
        return self.node


@dataclass(frozen=True)
class _NetworkCamera(_Source):
    """A kind of live camera the grammar might grow: no device node."""

    url: str


def test_a_new_kind_of_camera_needs_no_change_in_config_warnings_or_doctor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The config's warnings and doctor ask a source what they need (a file? a device node?)
    rather than matching on every kind: a kind added to the grammar alone is handled."""
    monkeypatch.setattr(config_files, "parse_source", lambda text: _NetworkCamera(text))
    assert config_files._camera_warnings("picamera2") == []
    monkeypatch.setattr(config_files, "parse_source", lambda text: _NodeCamera("/dev/gone0"))
    assert config_files._camera_warnings("picamera2") == [
        "camera.source = 'picamera2': no /dev/gone0 on this machine"
    ]
    monkeypatch.setattr(camera_checks, "parse_source", lambda text: _NetworkCamera(text))
    check = camera_check("picamera2")
    assert (check.status, check.summary) == (
        "info",
        "picamera2: not checked (doctor has no check for this kind of camera)",
    )


@pytest.mark.parametrize("text", ["~nosuchuser/v.mp4", "file:~nosuchuser/v.mp4"])
def test_the_home_folder_of_a_file_source_is_checked(text: str) -> None:
    with pytest.raises(ValueError, match="user 'nosuchuser' is not known on this system"):
        CameraConfig(source=text)
