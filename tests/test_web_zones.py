"""Zones and falls as the device shows them: the status document and `edge-pose status`, the
picture of the web view (zone outlines, occupied zones highlighted), /metrics and a real
Prometheus scraping it.

The scene is real: ambianic's fall pictures as a folder of links, a man standing (20 frames)
then lying on the floor, played in real time at 10 fps by a real `edge-pose run` with two zones,
``hall`` (the floor he stands and then lies on) and ``bed`` (a corner nobody enters). With
``[events]`` at its defaults exactly one fall is detected, about 3.3 s of scene time after the
first frame on the floor, and he stays down until the pictures run out. The page's fall banner
in Chromium is in test_web_page.py, the zones of ``run --annotate`` in test_run.py.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import jsonschema
import numpy as np
import pytest
from conftest import need_tool
from test_web_metrics import Prometheus, labelled, one, parse, scrape, until
from test_web_server import Device, get

from edge_pose.annotate import ZONE, ZONE_OCCUPIED, ZoneOutline, draw_people, draw_zones
from edge_pose.camera.base import Frame
from edge_pose.pose import Pose, Region
from edge_pose.schemas import load_schema
from edge_pose.sinks.base import FrameResult
from edge_pose.web.metrics import Metrics
from edge_pose.web.stream import encode, zone_outlines
from edge_pose.wire import DeviceWire

HALL = [[0.0, 0.6], [1.0, 0.6], [1.0, 1.0], [0.0, 1.0]]  # the floor in front of the camera
BED = [[0.05, 0.1], [0.3, 0.1], [0.3, 0.5], [0.05, 0.5]]  # a corner of the wall: nobody there
ZONES = f"""
[camera]
fps = 10

[[zones]]
name = "hall"
polygon = {HALL}

[[zones]]
name = "bed"
polygon = {BED}
lying_ok = true
"""
STANDING = 20  # frames of the man standing, before he is on the floor


def fall_scene(folder: Path, data_dir: Path, down: int) -> Path:
    """A folder of links: the man standing (:data:`STANDING` frames), then ``down`` frames of
    him on the floor (names sort in that order)."""
    pictures = data_dir / "ambianic"
    folder.mkdir()
    for n in range(STANDING):
        (folder / f"a{n:05d}.png").symlink_to(pictures / "fall_img_11.png")
    for n in range(down):
        (folder / f"b{n:05d}.png").symlink_to(pictures / "fall_img_12.png")
    return folder


def rgb(image_bgr: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB).astype(int)


def share_near(pixels: np.ndarray, colour: tuple[int, int, int], within: float = 60) -> float:
    """The share of ``pixels`` (N x 3, RGB) within ``within`` of ``colour``."""
    distance = np.linalg.norm(pixels - np.array(colour), axis=1)
    return float(np.mean(distance < within))


def horizontal_edge(image: np.ndarray, y: float, x0: float, x1: float) -> np.ndarray:
    """The pixels along the line at height fraction ``y`` from ``x0`` to ``x1`` (fractions)."""
    height, width = image.shape[:2]
    row = round(y * (height - 1))
    return image[row, round(x0 * (width - 1)) : round(x1 * (width - 1))]


def vertical_edge(image: np.ndarray, x: float, y0: float, y1: float) -> np.ndarray:
    height, width = image.shape[:2]
    column = round(x * (width - 1))
    return image[round(y0 * (height - 1)) : round(y1 * (height - 1)), column]


# --------------------------------------------------------------------------- drawing


def test_zones_are_outlined_named_and_the_occupied_one_washed() -> None:
    grey = np.full((480, 640, 3), 90, np.uint8)
    zones = [ZoneOutline("hall", [tuple(c) for c in HALL], occupied=True),
             ZoneOutline("bed", [tuple(c) for c in BED])]  # fmt: skip
    out = np.empty_like(grey)
    drawn = draw_zones(grey, zones, out=out)
    assert drawn is out and np.all(grey == 90)  # drawn into out, the frame untouched
    image = drawn.astype(int)
    # The edges in their colours (the hall's top edge, the bed's right edge), away from names.
    assert share_near(horizontal_edge(image, 0.6, 0.2, 0.95), ZONE_OCCUPIED, 1) == 1.0
    assert share_near(vertical_edge(image, 0.3, 0.2, 0.45), ZONE, 1) == 1.0
    # Inside the occupied zone a light wash of its colour; inside the empty one, the frame.
    washed = image[400, 320]
    assert 90 < washed[0] < 255 and washed[1] < 90, washed
    assert (image[200, 100] == 90).all() and (image[20, 620] == 90).all()
    # Each name, in the zone's colour, under its top corner.
    label = image[290:320, 0:60].reshape(-1, 3)
    assert share_near(label, ZONE_OCCUPIED, 40) > 0.02
    assert share_near(image[50:75, 30:90].reshape(-1, 3), ZONE, 40) > 0.02
    # A zone of fewer than 3 corners is not drawn; any picture size takes the fractions.
    small = draw_zones(np.zeros((48, 64, 3), np.uint8), [ZoneOutline("x", [(0, 0), (1, 1)])])
    assert not small.any()
    assert draw_zones(np.zeros((48, 64, 3), np.uint8), zones[:1]).any()


def test_people_are_drawn_over_the_zones() -> None:
    image = np.full((480, 640, 3), 90, np.uint8)
    keypoints = np.zeros((17, 3), np.float32)
    keypoints[:, 0], keypoints[:, 1], keypoints[:, 2] = 320, np.linspace(100, 460, 17), 0.9
    pose = Pose(keypoints, 0.9, True, Region(0, 0, 640, 480), 1, 0, 0.0, 640, 480)
    zones = [ZoneOutline("hall", [tuple(c) for c in HALL], occupied=True)]
    drawn = draw_people(image, [pose], zones=zones)
    assert np.all(image == 90)
    # A joint on the hall's edge (x 320, y 287) is the joints' red, not the zone's colour.
    joint = keypoints[np.argmin(np.abs(keypoints[:, 1] - 287))]
    assert tuple(drawn[round(float(joint[1])), 320]) == (255, 40, 40)
    assert share_near(horizontal_edge(drawn.astype(int), 0.6, 0.2, 0.4), ZONE_OCCUPIED, 1) == 1


def test_the_stream_reads_the_zones_of_the_status_document() -> None:
    doc: dict[str, Any] = {"zones": [
        {"name": "hall", "polygon": HALL, "lying_ok": False, "occupied": True, "people": [1]},
        {"name": "bed", "polygon": BED, "lying_ok": True, "occupied": False, "people": []},
        {"name": "bad corner", "polygon": [[0, 0], [1, "x"], [0, 1]], "occupied": True},
        {"name": "too few", "polygon": [[0, 0], [1, 1]]}, {"polygon": HALL}, "junk",
        {"name": "outside", "polygon": [[-1, 0], [2, 0], [0.5, math.inf]]},
    ]}  # fmt: skip
    outlines = zone_outlines(doc)
    assert [(z.name, z.occupied) for z in outlines] == [("hall", True), ("bed", False)]
    assert zone_outlines(None) == zone_outlines({"zones": "x"}) == []
    # The JPEG of a frame with them: the hall's edge in the occupied colour, the bed's in the
    # empty one's (JPEG blurs colour: most pixels near it, not all exact).
    image = np.full((480, 640, 3), 90, np.uint8)
    frame = Frame(image, time.monotonic_ns(), time.time(), 1)
    pose = Pose(np.zeros((17, 3), np.float32), 0.1, False, Region(0, 0, 640, 480), 1,
                frame.capture_ns, frame.wall, 640, 480)  # fmt: skip
    result = FrameResult(frame, [pose], [], None, (0, 0, 0, 0), DeviceWire("zones"))
    picture = rgb(cv2.imdecode(np.frombuffer(encode(result, 90, zones=outlines), np.uint8),
                               cv2.IMREAD_COLOR))  # fmt: skip
    assert share_near(horizontal_edge(picture, 0.6, 0.2, 0.95), ZONE_OCCUPIED) > 0.9
    assert share_near(vertical_edge(picture, 0.3, 0.2, 0.45), ZONE) > 0.9


# --------------------------------------------------------------------------- metrics alone


def test_fall_inactivity_and_zones_as_metrics() -> None:
    metrics = Metrics()
    doc = {"fall": True, "inactive": False, "zones": [
        {"name": "hall", "occupied": True}, {"name": "bed", "occupied": False},
        {"name": 'odd "name" \\ with\nnewline', "occupied": True},
        {"name": "hall", "occupied": False},  # a name twice: the first is written
        {"name": "", "occupied": True}, {"name": "x", "occupied": 1}, "junk", {"occupied": True},
    ]}  # fmt: skip
    body = metrics.render(doc)
    types, samples = parse(body.decode())
    assert one(samples, "edge_pose_fall") == 1 and one(samples, "edge_pose_inactive") == 0
    zones = {r["zone"]: one(samples, "edge_pose_zone_occupied", **r)
             for r in labelled(samples, "edge_pose_zone_occupied")}  # fmt: skip
    assert zones == {"hall": 1, "bed": 0, 'odd "name" \\ with\nnewline': 1}
    assert types["edge_pose_zone_occupied"] == types["edge_pose_fall"] == "gauge"
    assert types["edge_pose_falls"] == "counter" and one(samples, "edge_pose_falls_total") == 0
    promtool = need_tool("promtool", "prometheus")
    check = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True,
                           timeout=30)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    # Nothing said, nothing written: no fall gauge from a document without one.
    _, bare = parse(metrics.render({"fall": "yes", "zones": {}}).decode())
    assert one(bare, "edge_pose_fall") is None and not labelled(bare, "edge_pose_zone_occupied")
    # Falls are counted per frame, from the frame's events.
    image = np.zeros((48, 64, 3), np.uint8)
    frame = Frame(image, time.monotonic_ns(), time.time(), 1)
    pose = Pose(np.zeros((17, 3), np.float32), 0.1, False, Region(0, 0, 64, 48), 1,
                frame.capture_ns, frame.wall, 64, 48)  # fmt: skip
    events = [{"type": "zone_enter", "zone": "hall"}, {"type": "fall", "confidence": 0.7,
              "descent_s": 0.5}]  # fmt: skip
    for evts in (events, [], [{"type": "fall_recovered"}], [{"type": "fall"}]):
        metrics.observe(FrameResult(frame, [pose], evts, None, (0, 0, 0, 0), DeviceWire("m")))
    assert one(parse(metrics.render(None).decode())[1], "edge_pose_falls_total") == 2


# --------------------------------------------------------------------------- a real fall


@pytest.fixture(scope="module")
def fallen(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Iterator[Device]:
    """The fall scene in real time (the floor for 5 minutes: longer than this module), once
    the device says he fell."""
    tmp = tmp_path_factory.mktemp("fall")
    scene = fall_scene(tmp / "scene", data_dir, down=3000)
    device = Device(tmp, "--camera", str(scene), config=ZONES)
    try:
        until(lambda: device.status().get("fall") is True, 30, "the fall in the status")
        yield device
    finally:
        stderr = device.stop()
    assert "Traceback" not in stderr, stderr


def test_the_status_document_says_who_fell_and_where(fallen: Device) -> None:
    doc = fallen.status()
    validator = jsonschema.Draft202012Validator(load_schema("status"))
    assert [e.message for e in validator.iter_errors(doc)] == []
    assert doc["state"] == "running" and doc["fall"] is True and doc["inactive"] is False
    (fall,) = doc["falls"]
    assert fall["id"] == 1 and fall["zones"] == ["hall"] and fall["present"] is True
    assert 0 <= doc["updated"] - fall["since"] < 60
    (person,) = doc["people"]
    assert person["id"] == 1 and person["label"] == "lying", person
    assert person["zones"] == ["hall"] and person["fallen"] is True and not person["inactive"]
    assert doc["zones"] == [
        {"name": "hall", "polygon": HALL, "lying_ok": False, "occupied": True, "people": [1]},
        {"name": "bed", "polygon": BED, "lying_ok": True, "occupied": False, "people": []},
    ]
    code, _, body = get(fallen.port, "/api/status")
    assert code == 200 and json.loads(body)["fall"] is True


def test_edge_pose_status_says_fall_first_and_stays_healthy(fallen: Device) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "edge_pose.cli", "status"],
        env={**os.environ, "RUNTIME_DIRECTORY": str(fallen.status_dir)},
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout  # a fall is no fault of the device
    lines = [line.strip() for line in result.stdout.splitlines()]
    assert lines[0].endswith("running (healthy)")
    assert lines[1].startswith("state: running")
    assert re.fullmatch(
        r"FALL: person 1 down since \d\d:\d\d:\d\d \(for [^)]+\), in zone 'hall' — reset: "
        r'send \{"command": "reset_fall"\} to <base>/set', lines[2]
    ), lines[2]  # fmt: skip
    assert "zones: hall: #1; bed: empty" in lines
    assert not any(line.startswith("inactive:") for line in lines)


def test_the_picture_outlines_the_zones_and_highlights_the_occupied_one(fallen: Device) -> None:
    code, headers, body = get(fallen.port, "/snapshot.jpg")
    assert code == 200 and headers["content-type"] == "image/jpeg"
    picture = rgb(cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR))
    assert picture.shape == (480, 640, 3)
    # The hall's top edge left of where he lies, and the bed's right edge over the wall.
    assert share_near(horizontal_edge(picture, 0.6, 0.15, 0.6), ZONE_OCCUPIED) > 0.8
    assert share_near(vertical_edge(picture, 0.3, 0.2, 0.45), ZONE) > 0.8
    assert share_near(vertical_edge(picture, 0.3, 0.2, 0.45), ZONE_OCCUPIED) < 0.1


def test_metrics_show_the_fall_and_the_zones(fallen: Device) -> None:
    types, samples = scrape(fallen.port)
    assert one(samples, "edge_pose_fall") == 1 and one(samples, "edge_pose_inactive") == 0
    assert one(samples, "edge_pose_falls_total") == 1  # exactly one fall in the scene
    assert one(samples, "edge_pose_zone_occupied", zone="hall") == 1
    assert one(samples, "edge_pose_zone_occupied", zone="bed") == 0
    assert types["edge_pose_falls"] == "counter"
    promtool = need_tool("promtool", "prometheus")
    body = get(fallen.port, "/metrics")[2]
    check = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True,
                           timeout=30)  # fmt: skip
    assert (check.returncode, check.stdout, check.stderr) == (0, b"", b""), check


def test_prometheus_sees_the_fall(fallen: Device, tmp_path: Path) -> None:
    server = Prometheus(tmp_path, [{
        "job_name": "edge-pose-fall", "metrics_path": "/metrics",
        "static_configs": [{"targets": [f"127.0.0.1:{fallen.port}"]}],
    }])  # fmt: skip
    try:
        until(lambda: server.values('edge_pose_fall{job="edge-pose-fall"}') == [1], 40,
              "the fall stored", 0.5)  # fmt: skip
        zones = {row["metric"]["zone"]: float(row["value"][1])
                 for row in server.query("edge_pose_zone_occupied")}  # fmt: skip
        assert zones == {"hall": 1, "bed": 0}
        # The alert expression of docs/metrics.md finds the device.
        (alert,) = server.query("edge_pose_fall == 1")
        assert alert["metric"]["instance"] == f"127.0.0.1:{fallen.port}"
        assert server.values("edge_pose_falls_total") == [1]
    finally:
        server.stop()
