"""The web page in a real browser: Debian's headless Chromium, driven by selenium, opens the page
of a real `edge-pose run` on the squat video and reads what a person would see.

The page must show the live picture (it changes), the pose label as it changes (standing and
squat_down), the repetitions as they rise, the frame rate and the health; it must come back by
itself after the device restarts, fit a phone's width, and stay private behind a password.
A screenshot of the page goes to the test's directory, and to ``$EDGE_POSE_SCREENSHOT`` when set
(``make screenshot`` writes docs/images/web-view.jpg that way).
"""

from __future__ import annotations

import base64
import itertools
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from conftest import need_tool
from scenes import load_clips, side_by_side, write_video
from test_web_server import PASSWORD, SQUATS, Device, get

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.service import Service  # noqa: E402

WIDE = (1280, 860)
PHONE = (390, 844)  # a phone's CSS pixels


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the module (a second or two to start)."""
    binary = need_tool("chromium", "chromium")
    driver_path = need_tool("chromedriver", "chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", "--hide-scrollbars", f"--window-size={WIDE[0]},{WIDE[1]}",
    ):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the console, read below
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def device(tmp_path: Path, data_dir: Path) -> Iterator[Device]:
    run = Device(tmp_path, "--camera", str(data_dir / SQUATS), "--loop")
    yield run
    run.stop()


def text(driver: Any, element_id: str) -> str:
    return str(driver.execute_script(f"return document.getElementById('{element_id}').textContent"))


def picture(driver: Any) -> np.ndarray:
    """What the stream's <img> shows now, as a grey image."""
    png = driver.find_element("id", "stream").screenshot_as_png
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert image is not None
    return image


def picture_loaded(driver: Any) -> bool:
    return bool(driver.execute_script("return document.getElementById('stream').naturalWidth > 0"))


def wait_for(what: str, condition: Callable[[], object], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"the page did not show {what} within {timeout:.0f} s")


def watch(driver: Any, seconds: float) -> tuple[set[str], list[int], list[np.ndarray]]:
    """The labels, rep counts and pictures the page showed over ``seconds``."""
    labels: set[str] = set()
    reps: list[int] = []
    pictures: list[np.ndarray] = []
    deadline = time.monotonic() + seconds
    next_picture = 0.0
    while time.monotonic() < deadline:
        labels.add(text(driver, "label"))
        if (count := text(driver, "reps")).isdigit():
            reps.append(int(count))
        if time.monotonic() >= next_picture:
            pictures.append(picture(driver))
            next_picture = time.monotonic() + 1.0
        time.sleep(0.2)
    return labels, reps, pictures


def changes(pictures: list[np.ndarray]) -> float:
    """The largest mean difference between consecutive pictures (grey levels)."""
    return max(float(np.mean(cv2.absdiff(a, b))) for a, b in itertools.pairwise(pictures))


def test_the_page_shows_the_device_live(browser: Any, device: Device, tmp_path: Path) -> None:
    browser.set_window_size(*WIDE)
    browser.get(f"http://127.0.0.1:{device.port}/")
    wait_for("a live connection", lambda: text(browser, "link") == "live")
    wait_for("the picture", lambda: picture_loaded(browser))
    wait_for("a pose label", lambda: text(browser, "label") not in ("-", ""))
    # The squat video loops every 13 s: within 16 s the woman stands, squats and counts a rep.
    labels, reps, pictures = watch(browser, 16)
    assert {"standing", "squat_down"} <= labels, labels
    assert reps and max(reps) > min(reps), reps
    assert changes(pictures) > 1.0  # the picture moves
    fps = re.match(r"([\d.]+) processed", text(browser, "fps"))
    assert fps and float(fps.group(1)) > 0, text(browser, "fps")
    inference = text(browser, "inference")
    assert re.match(r"[\d.]+ ms \(p95 [\d.]+\)", inference), inference
    assert "capture → publish" in text(browser, "latency")
    assert text(browser, "health") == "healthy"
    assert text(browser, "mqtt") == "off"  # the test's config turns MQTT off
    assert text(browser, "model").startswith("movenet_lightning_int8")
    events = text(browser, "events")
    assert "→" in events and "squat #" in events, events
    assert browser.execute_script("return document.getElementById('problems').hidden")
    # Nothing failed to load: no resource from elsewhere, no script error.
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors
    shot = tmp_path / "web-view.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 20_000
    if target := os.environ.get("EDGE_POSE_SCREENSHOT"):  # the format by the name: .jpg, .png
        assert cv2.imwrite(target, cv2.imread(str(shot)), [cv2.IMWRITE_JPEG_QUALITY, 80])


def test_the_page_fits_a_phone(browser: Any, device: Device) -> None:
    browser.set_window_size(*PHONE)
    try:
        browser.get(f"http://127.0.0.1:{device.port}/")
        wait_for("the picture", lambda: picture_loaded(browser))
        wait_for("a pose label", lambda: text(browser, "label") not in ("-", ""))
        width = browser.execute_script("return document.documentElement.clientWidth")
        scroll = browser.execute_script("return document.documentElement.scrollWidth")
        assert scroll <= width, (scroll, width)  # nothing wider than the screen
        shown = browser.find_element("id", "stream").size["width"]
        assert shown >= width * 0.9  # the picture takes the screen's width
    finally:
        browser.set_window_size(*WIDE)


def test_the_page_comes_back_after_the_device_restarts(
    browser: Any, tmp_path: Path, data_dir: Path
) -> None:
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    first = Device(tmp_path / "first", "--camera", str(data_dir / SQUATS), "--loop")
    port = first.port
    second = None
    try:
        browser.get(f"http://127.0.0.1:{port}/")
        wait_for("a live connection", lambda: text(browser, "link") == "live")
        wait_for("the picture", lambda: picture_loaded(browser))
        first.stop()
        wait_for("that the device went away", lambda: text(browser, "link") != "live")
        second = Device(
            tmp_path / "second", "--camera", str(data_dir / SQUATS), "--loop",
            "--http-port", str(port),
        )  # fmt: skip
        wait_for("the device again", lambda: text(browser, "link") == "live", timeout=30)
        # The old stream's connection died with the first run: only a picture the page asked
        # the second run for can move.
        _, _, pictures = watch(browser, 4)
        assert changes(pictures) > 1.0
        assert re.fullmatch(r"\d+ s", text(browser, "uptime")), text(browser, "uptime")
    finally:
        if first.proc.poll() is None:
            first.stop()
        if second is not None:
            second.stop()


def test_a_password_keeps_the_page_private(browser: Any, tmp_path: Path, data_dir: Path) -> None:
    secret = tmp_path / "http-password"
    secret.write_text(PASSWORD + "\n")
    run = Device(
        tmp_path, "--camera", str(data_dir / SQUATS), "--loop",
        config=f'[http]\npassword_file = "{secret}"\n',
    )  # fmt: skip
    try:
        browser.get(f"http://127.0.0.1:{run.port}/")
        # The browser holds the 401 behind its login dialog: nothing of the page is shown.
        assert not browser.find_elements("id", "stream") and browser.title != "edge-pose"
        # As a browser does once the user typed the password into its login dialog.
        authorization = "Basic " + base64.b64encode(f"edge-pose:{PASSWORD}".encode()).decode()
        browser.execute_cdp_cmd("Network.enable", {})
        browser.execute_cdp_cmd(
            "Network.setExtraHTTPHeaders", {"headers": {"Authorization": authorization}}
        )
        browser.get(f"http://127.0.0.1:{run.port}/")
        wait_for("a live connection", lambda: text(browser, "link") == "live")
        wait_for("the picture", lambda: picture_loaded(browser))
        wait_for("a pose label", lambda: text(browser, "label") not in ("-", ""))
        assert text(browser, "health") == "healthy"
        assert get(run.port, "/")[0] == 401  # still private to everyone else
    finally:
        browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {}})
        run.stop()


def test_several_people_are_named_on_the_page_and_by_status(
    browser: Any, tmp_path: Path, data_dir: Path, multipose_path: Path
) -> None:
    """MultiPose on a two-person video (made from the shared clips): the person tile counts
    both and names each by track id with their label, the picture draws both skeletons, and
    `edge-pose status` lists them too."""
    clips = load_clips(data_dir)
    video = write_video(tmp_path / "two.avi", side_by_side(clips), len(clips.squatter))
    device = Device(tmp_path, "--camera", str(video), "--loop", "--model", str(multipose_path),
                    "--threads", "2")  # fmt: skip
    try:
        browser.get_log("browser")  # what earlier tests left in the console is theirs
        browser.set_window_size(*WIDE)
        browser.get(f"http://127.0.0.1:{device.port}/")
        wait_for("two people", lambda: text(browser, "person") == "2 people")
        wait_for("both labelled", lambda: "?" not in text(browser, "since"))
        named = text(browser, "since")
        people = re.findall(r"#(\d+) (\w+)", named)
        assert len(people) == 2 and len({i for i, _ in people}) == 2, named
        wait_for("the picture", lambda: picture_loaded(browser))
        assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        browser.save_screenshot(str(tmp_path / "two-people.png"))
        env = {**os.environ, "RUNTIME_DIRECTORY": str(device.status_dir)}
        both = re.compile(r"people\s*:?\s+2: #\d+ \w+ \([\d.]+\).*, #\d+ \w+")

        def status_names_both() -> bool:
            status = subprocess.run(
                [sys.executable, "-m", "edge_pose.cli", "status"], capture_output=True,
                text=True, timeout=30, check=False, env=env,
            )  # fmt: skip
            return bool(both.search(status.stdout))

        wait_for("both people in `edge-pose status`", status_names_both)
    finally:
        device.stop()


def test_a_fall_shows_a_banner_the_zones_and_the_events(
    browser: Any, tmp_path: Path, data_dir: Path
) -> None:
    """The fall scene (test_web_zones.py) in real time with the page open from the start: the
    zones tile lists both zones, the man in the hall; when he falls a red band names him and
    where, the tab's title says FALL, and the events list says he entered the hall and fell."""
    from test_web_zones import ZONES, fall_scene

    scene = fall_scene(tmp_path / "scene", data_dir, down=300)
    device = Device(tmp_path, "--camera", str(scene), config=ZONES)
    try:
        browser.get_log("browser")  # what earlier tests left in the console is theirs
        browser.set_window_size(*WIDE)
        browser.get(f"http://127.0.0.1:{device.port}/")
        wait_for("a live connection", lambda: text(browser, "link") == "live")
        wait_for("the zones", lambda: not browser.execute_script(
            "return document.getElementById('zonestile').hidden"))  # fmt: skip
        wait_for("the man in the hall", lambda: "hall#1" in text(browser, "zones"))
        assert "bedempty" in text(browser, "zones")
        assert browser.execute_script("return document.getElementById('fall').hidden")
        wait_for("the fall banner", lambda: not browser.execute_script(
            "return document.getElementById('fall').hidden"), timeout=30)  # fmt: skip
        banner = text(browser, "fall")
        assert re.fullmatch(r"FALL#1 down since \d\d:\d\d:\d\d \(\d+ s\) in hall", banner), banner
        assert browser.title.startswith("FALL · edge-pose")
        colour = browser.execute_script(
            "return getComputedStyle(document.getElementById('fall')).backgroundColor"
        )
        assert colour == "rgb(255, 95, 86)", colour  # --bad: red
        # At the top of the page, across it.
        box = browser.find_element("id", "fall").rect
        assert box["y"] < 120 and box["width"] > WIDE[0] * 0.9, box
        wait_for("the fall event", lambda: "FELL in hall" in text(browser, "events"))
        assert "entered hall" in text(browser, "events")
        assert "#1" not in text(browser, "events")  # one person: no ids, as before
        assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        browser.save_screenshot(str(tmp_path / "fall.png"))
    finally:
        stderr = device.stop()
    assert "Traceback" not in stderr, stderr
